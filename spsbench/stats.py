"""Statistics for comparing two evaluations of the same problems (numpy only): the paired bootstrap of
a difference in Pass@k or Avg@n, and the exact sign test of a change in the solvable set. (The interval
of a single score is `spsbench.metrics.score_interval`.)

Paired bootstrap (`paired_difference`): replicate r draws problems with replacement (the same draws for
both evaluations: the pairing) and, within each drawn problem, each evaluation's n samples with
replacement (a binomial count at its observed rate); the statistic is the difference of the two means
of Pass@k (unbiased estimator on the redrawn counts) or of c/n. 95% percentile interval, centred on the
observed difference (see `_diff`); significant when it excludes 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from spsbench.metrics import pass_at_k

_CHUNK_CELLS = 1_000_000          # bootstrap (replicate x problem) cells held in memory at once


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
