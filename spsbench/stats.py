"""Statistics for comparing two evaluations of the same problems (numpy only): the paired bootstrap of
a difference in Pass@k or Avg@n, the difference of two training runs' Pass@k at a matched Pass@1, and the
exact sign test of a change in the solvable set. (The interval of a single score is
`spsbench.metrics.score_interval`.)

Paired bootstrap (`paired_difference`): replicate r draws problems with replacement (the same draws for
both evaluations: the pairing) and, within each drawn problem, each evaluation's n samples with
replacement (a binomial count at its observed rate); the statistic is the difference of the two means
of Pass@k (unbiased estimator on the redrawn counts) or of c/n. 95% percentile interval, centred on the
observed difference (see `_diff`); significant when it excludes 0.

Pass@k at matched Pass@1 (`matched_difference`): two runs' checkpoints, each run's in training order (its
base model first), trace curves in the (Pass@1, Pass@k) plane. Both curves are read at one Pass@1 level
(by default the highest both reach) by linear interpolation between consecutive checkpoints, at the first
crossing in step order; B - A of the two Pass@k values says whether B buys its Pass@1 with less loss of
Pass@k (explores) or is the same trade-off reached more slowly. A level outside a run's trajectory gives
no value (never an extrapolation). The interval comes from the same two-level bootstrap as above, every
evaluation of both runs resampled on the same drawn problems and the level recomputed per replicate;
each redrawn Pass@k has the redraw's exact expected loss taken out (`redraw_bias`), and the interval is
centred on the observed difference as above (simulated coverage: tests/test_stats.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from spsbench.metrics import pass_at_k

_CHUNK_CELLS = 1_000_000          # bootstrap (replicate x problem) cells held in memory at once
_EPS = 1e-12                      # Pass@1 values closer than this are the same level
# More replicates than this share without a matched value (the level fell outside a trajectory) and the
# percentile interval would be computed on a biased subset: no interval is stated then.
UNDEFINED_SHARE = 0.025


@dataclass(frozen=True)
class Difference:
    """B - A with its 95% interval."""

    value: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


def paired_difference(n_a: Sequence[int], c_a: Sequence[int], n_b: Sequence[int], c_b: Sequence[int],
                      ks: Sequence[int], n_boot: int = 2000, seed: int = 0) -> dict:
    """Paired two-level bootstrap of B - A over the same problems (row i of each is problem i).

    Returns {"avg": Difference, "pass": {k: Difference}, "problems": P}; each k must be <= every n."""
    na, ca, nb, cb = (np.asarray(v, dtype=np.int64) for v in (n_a, c_a, n_b, c_b))
    if not (na.shape == ca.shape == nb.shape == cb.shape) or na.ndim != 1 or na.size == 0:
        raise ValueError("paired_difference: need one (n, c) per problem for both evaluations, same problems")
    ks = sorted({int(k) for k in ks})
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // na.size)          # bounded memory for large tasks
    boots = np.concatenate([_replicates(rng, min(chunk, n_boot - start), na, ca, nb, cb, ks)
                            for start in range(0, n_boot, chunk)], axis=0)
    points = [(cb / nb).mean() - (ca / na).mean()]
    points += [pass_at_k(nb, cb, k).mean() - pass_at_k(na, ca, k).mean() for k in ks]
    return {"avg": _diff(points[0], boots[:, 0]),
            "pass": {k: _diff(points[j + 1], boots[:, j + 1]) for j, k in enumerate(ks)},
            "problems": int(na.size)}


def _replicates(rng: np.random.Generator, rows: int, na: np.ndarray, ca: np.ndarray, nb: np.ndarray,
                cb: np.ndarray, ks: list[int]) -> np.ndarray:
    """(rows, 1 + len(ks)) bootstrap differences: Avg@n, then Pass@k per k."""
    idx = rng.integers(0, na.size, size=(rows, na.size))
    # Within-problem resampling: n draws with replacement from c correct of n = Binomial(n, c/n).
    boot_a = rng.binomial(na[idx], ca[idx] / na[idx])
    boot_b = rng.binomial(nb[idx], cb[idx] / nb[idx])
    cols = [(boot_b / nb[idx]).mean(axis=1) - (boot_a / na[idx]).mean(axis=1)]
    cols += [pass_at_k(nb[idx], boot_b, k).mean(axis=1) - pass_at_k(na[idx], boot_a, k).mean(axis=1) for k in ks]
    return np.stack(cols, axis=1)


def _diff(point: float, boots: np.ndarray) -> Difference:
    """Percentile interval of the replicates, moved so that their mean sits on the observed difference:
    redrawing a problem's samples with replacement repeats some of them, which lowers Pass@k (fewer
    distinct correct samples); the shift removes that bias and keeps the spread."""
    low, high = np.percentile(boots, [2.5, 97.5]) + (point - float(boots.mean()))
    # Rounded so float noise in a degenerate case (every replicate equal) cannot fake significance.
    return Difference(float(point), round(float(low), 12), round(float(high), 12))


@dataclass(frozen=True)
class Matched:
    """Pass@k of runs A and B at one matched Pass@1 (`matched_difference`); Pass@ values are fractions."""

    level: float                     # the Pass@1 both trajectories are read at
    a: float | None                  # A's Pass@k there; None: the level is outside A's trajectory
    b: float | None
    diff: Difference | None          # B - A; None without both values; NaN bounds: no interval (see `undefined`)
    span_a: tuple[float, float]      # (lowest, highest) Pass@1 along A's trajectory
    span_b: tuple[float, float]
    at_a: float                      # where A is read: checkpoint index in its trajectory + fraction (NaN: none)
    at_b: float
    shared: bool                     # both read at the same evaluation (their shared start): nothing compared
    undefined: float                 # share of bootstrap replicates in which a trajectory missed the level
    problems: int


def matched_difference(evals: Sequence[tuple[Sequence[int], Sequence[int]]], traj_a: Sequence[int],
                       traj_b: Sequence[int], k: int, *, level: float | None = None, n_boot: int = 2000,
                       seed: int = 0) -> Matched:
    """B - A of Pass@k at a matched Pass@1, with its paired bootstrap interval (module docstring).

    `evals[i]` = (n per problem, correct per problem) of one evaluation, the same problems in the same
    order in every one; `traj_a` / `traj_b` index `evals` in training order (a shared base model may sit
    in both). `level`: the Pass@1 to compare at; None = the highest both reach (the lower of the two
    runs' best Pass@1), recomputed in every replicate."""
    n, c = _eval_matrix(evals)
    ids = sorted(set(traj_a) | set(traj_b))
    if not traj_a or not traj_b or ids[0] < 0 or ids[-1] >= len(n):
        raise ValueError("matched_difference: each trajectory needs at least one index into evals")
    col = {e: j for j, e in enumerate(ids)}
    ia, ib = [col[e] for e in traj_a], [col[e] for e in traj_b]
    n, c = n[ids], c[ids]
    p1 = (c / n).mean(axis=1)[None, :]
    pk = np.stack([pass_at_k(n[j], c[j], k).mean() for j in range(len(ids))])[None, :]
    lv, va, pa, vb, pb = _read(p1, pk, ia, ib, level)
    boots = _matched_replicates(np.random.default_rng(seed), n, c, k, ia, ib, level, n_boot)
    point = float(vb[0] - va[0])
    defined = boots[~np.isnan(boots)]
    undefined = 1.0 - defined.size / boots.size
    if np.isnan(point):
        diff = None
    elif undefined > UNDEFINED_SHARE:
        diff = Difference(point, math.nan, math.nan)
    else:
        diff = _diff(point, defined)
    where_a, where_b = _evaluation_at(traj_a, float(pa[0])), _evaluation_at(traj_b, float(pb[0]))
    return Matched(float(lv[0]), _value(va[0]), _value(vb[0]), diff, _span(p1[0, ia]), _span(p1[0, ib]),
                   float(pa[0]), float(pb[0]), where_a is not None and where_a == where_b, undefined,
                   int(n.shape[1]))


def _eval_matrix(evals: Sequence[tuple[Sequence[int], Sequence[int]]]) -> tuple[np.ndarray, np.ndarray]:
    """(n, c) as (evaluations x problems) integer arrays; every evaluation must cover the same problems."""
    try:
        n = np.array([np.asarray(e[0], dtype=np.int64) for e in evals])
        c = np.array([np.asarray(e[1], dtype=np.int64) for e in evals])
    except ValueError:
        n = c = np.zeros((0, 0), dtype=np.int64)
    if n.ndim != 2 or n.shape != c.shape or n.size == 0 or (n <= 0).any():
        raise ValueError("matched_difference: need (n, c) per problem for every evaluation, same problems")
    return n, c


def _matched_replicates(rng: np.random.Generator, n: np.ndarray, c: np.ndarray, k: int, ia: list[int],
                        ib: list[int], level: float | None, n_boot: int) -> np.ndarray:
    """B - A per replicate (NaN where a trajectory misses the level): problems drawn once per replicate
    for every evaluation (the pairing), each evaluation's samples redrawn within the drawn problems."""
    problems = n.shape[1]
    chunk = max(1, _CHUNK_CELLS // problems)
    bias = redraw_bias(n, c, k)
    out = []
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        idx = rng.integers(0, problems, size=(rows, problems))
        p1, pk = np.empty((rows, len(n))), np.empty((rows, len(n)))
        for j in range(len(n)):
            nj = n[j][idx]
            cj = rng.binomial(nj, c[j][idx] / nj)
            p1[:, j], pk[:, j] = (cj / nj).mean(axis=1), (pass_at_k(nj, cj, k) - bias[j][idx]).mean(axis=1)
        _, va, _, vb, _ = _read(p1, pk, ia, ib, level)
        out.append(vb - va)
    return np.concatenate(out)


def _read(p1: np.ndarray, pk: np.ndarray, ia: list[int], ib: list[int], level: float | None) -> tuple:
    """(level, A's Pass@k, A's position, B's Pass@k, B's position) per row of (rows x evaluations) scores."""
    xa, ya, xb, yb = p1[:, ia], pk[:, ia], p1[:, ib], pk[:, ib]
    lv = np.full(len(p1), float(level)) if level is not None else np.minimum(xa.max(axis=1), xb.max(axis=1))
    va, pa = at_level(xa, ya, lv)
    vb, pb = at_level(xb, yb, lv)
    return lv, va, pa, vb, pb


def at_level(x: np.ndarray, y: np.ndarray, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """y interpolated linearly where the polyline through the points (x[:, t], y[:, t]), t in order, first
    reaches x = level; per row: (value, position = segment index + fraction), NaN where it never does.

    A flat segment at the level is read at its first point (where the trajectory got there first)."""
    rows, points = x.shape
    if points == 1:
        hit = np.abs(x[:, 0] - level) <= _EPS
        return np.where(hit, y[:, 0], np.nan), np.where(hit, 0.0, np.nan)
    lo, hi = np.minimum(x[:, :-1], x[:, 1:]), np.maximum(x[:, :-1], x[:, 1:])
    inside = (lo - _EPS <= level[:, None]) & (level[:, None] <= hi + _EPS)
    seg, found, r = inside.argmax(axis=1), inside.any(axis=1), np.arange(rows)
    x0, dx = x[r, seg], x[r, seg + 1] - x[r, seg]
    steep = np.abs(dx) > _EPS
    frac = np.clip(np.where(steep, (level - x0) / np.where(steep, dx, 1.0), 0.0), 0.0, 1.0)
    value = y[r, seg] + frac * (y[r, seg + 1] - y[r, seg])
    return np.where(found, value, np.nan), np.where(found, seg + frac, np.nan)


def redraw_bias(n: np.ndarray, c: np.ndarray, k: int) -> np.ndarray:
    """E[pass_at_k(n, c*, k)] - pass_at_k(n, c, k) for c* ~ Binomial(n, c/n), elementwise.

    Redrawing a problem's n samples with replacement repeats some and loses others, which lowers Pass@k,
    most where c is small. The loss differs between evaluations (a sharpened one has fewer small c), so it
    would move the matched reading by more than a shift: subtracting this exact expectation leaves each
    replicate's Pass@k unbiased for the observed one. (Pass@1 is linear in c: no such bias.)"""
    n, c = np.asarray(n, dtype=np.int64), np.asarray(c, dtype=np.int64)
    out = np.zeros(n.shape)
    for size in np.unique(n):
        size = int(size)
        table = pass_at_k(size, np.arange(size + 1), k)           # Pass@k at each possible count
        expected = _binomial_pmf(size) @ table - table             # row c: mean over c* ~ Bin(size, c/size)
        out[n == size] = expected[c[n == size]]
    return out


def _binomial_pmf(size: int) -> np.ndarray:
    """(size+1, size+1): row c = the Binomial(size, c/size) probabilities of 0..size."""
    j = np.arange(size + 1)
    log_comb = np.concatenate([[0.0], np.cumsum(np.log(size - j[:-1]) - np.log(j[1:]))])
    rate = (j / size)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p = np.where(j == 0, 0.0, j * np.log(rate)) + np.where(j == size, 0.0, (size - j) * np.log1p(-rate))
    return np.exp(log_comb + log_p)


def _evaluation_at(traj: Sequence[int], position: float) -> int | None:
    """The evaluation a trajectory is read at when that is exactly one of its points, else None."""
    if math.isnan(position) or abs(position - round(position)) > 1e-9:
        return None
    return traj[int(round(position))]


def _value(v: float) -> float | None:
    return None if math.isnan(v) else float(v)


def _span(x: np.ndarray) -> tuple[float, float]:
    return float(x.min()), float(x.max())


def sign_test(gained: int, lost: int) -> float:
    """Exact two-sided p-value of the sign test (McNemar's exact test) for `gained` vs `lost` changes."""
    total = gained + lost
    if total == 0:
        return 1.0
    tail = sum(math.comb(total, i) for i in range(min(gained, lost) + 1)) / 2**total
    return min(1.0, 2 * tail)


def ratio_interval(num: Sequence[float], den: Sequence[float], *, reps: int = 2000,
                   seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of sum(num) / sum(den) under a bootstrap over the units (problems).

    The diagnostics use it: token entropy is a ratio (entropy summed over a problem's sampled tokens /
    their count), greedy log-prob a plain mean (den all 1). Units are the cluster: a problem's tokens and
    samples move together, so the interval is as wide as the problems make it."""
    num_a, den_a = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    if len(num_a) < 2 or den_a.sum() <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(num_a), size=(reps, len(num_a)))
    dens = den_a[idx].sum(axis=1)
    ratios = num_a[idx].sum(axis=1) / np.where(dens > 0, dens, np.nan)
    low, high = np.nanpercentile(ratios, [2.5, 97.5])
    return float(low), float(high)
