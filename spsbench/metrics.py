"""Metrics: unbiased Pass@k (Chen et al. 2021), Avg@n, 95% intervals, chance floors. numpy only.

Public: pass_at_k, report_ks, summarize (-> Summary of Intervals), score_interval, wilson, chance_pass_at_k.

pass@k per problem is 1 - C(n-c, k)/C(n, k) = 1 - prod_{i=n-c+1}^{n} (1 - k/i). The product is
evaluated as a difference of cumulative sums of log1p(-k/i), one table per distinct k in extended
precision, so 10^6 (n, c, k) triples cost a few vectorised passes instead of a Python loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

_BOOT_CHUNK_CELLS = 2_000_000     # bootstrap count-matrix cells held in memory at once
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Interval:
    """A score with its 95% interval (None: not known, e.g. a legacy row)."""

    value: float
    ci_low: float | None = None
    ci_high: float | None = None


@dataclass(frozen=True)
class Summary:
    """What `summarize` returns: Avg@n and Pass@k (each with its interval) over `problems` problems,
    n = the fewest samples any problem has."""

    avg: Interval
    pass_at_k: dict[int, Interval] = field(default_factory=dict)
    problems: int = 0
    n: int = 0


def _as_int_array(name: str, value) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"pass@k: {name} must be integers, got {arr.dtype} values")
    return arr.astype(np.int64)


def _check(n: np.ndarray, c: np.ndarray, k: np.ndarray) -> None:
    if np.any(n < 1):
        raise ValueError(f"pass@k: n (samples per problem) must be >= 1, got {int(n.min())}")
    if np.any((c < 0) | (c > n)):
        bad = np.flatnonzero((c < 0) | (c > n))[0]
        raise ValueError(f"pass@k: correct count c must be in [0, n], got c={int(c.flat[bad])}, n={int(n.flat[bad])}")
    if np.any(k < 1):
        raise ValueError(f"pass@k: k must be >= 1, got {int(k.min())}")
    if np.any(k > n):
        bad = np.flatnonzero(k > n)[0]
        raise ValueError(f"pass@k: k={int(k.flat[bad])} is larger than n={int(n.flat[bad])} samples; "
                         f"the unbiased estimator needs k <= n (draw more samples or lower k)")


def pass_at_k(n, c, k):
    """1 - C(n-c, k)/C(n, k), stable product form, vectorised. k > n raises ValueError.

    n, c, k broadcast against each other; all-scalar input returns a float, otherwise an array.
    """
    scalar = all(np.ndim(x) == 0 for x in (n, c, k))
    n_a, c_a, k_a = (_as_int_array(name, v) for name, v in (("n", n), ("c", c), ("k", k)))
    n_a, c_a, k_a = (a.ravel() for a in np.broadcast_arrays(n_a, c_a, k_a))
    shape = np.broadcast_shapes(np.shape(n), np.shape(c), np.shape(k))
    _check(n_a, c_a, k_a)
    out = np.ones(n_a.shape, dtype=np.float64)           # n - c < k: every k-subset has a correct one
    some_fail = np.flatnonzero(n_a - c_a >= k_a)
    order = some_fail[np.argsort(k_a[some_fail], kind="stable")]
    if order.size:
        ks, starts = np.unique(k_a[order], return_index=True)
        for kk, idx in zip(ks, np.split(order, starts[1:]), strict=True):
            out[idx] = _pass_for_k(int(kk), n_a[idx], c_a[idx])
    return float(out[0]) if scalar else out.reshape(shape)


def _pass_for_k(k: int, n: np.ndarray, c: np.ndarray) -> np.ndarray:
    """pass@k for one k where n - c >= k: 1 - exp(S[n] - S[n-c]), S[m] = sum_{i=k+1}^{m} log1p(-k/i)."""
    i = np.arange(k + 1, int(n.max()) + 1, dtype=np.longdouble)
    table = np.zeros(int(n.max()) + 1, dtype=np.longdouble)
    table[k + 1:] = np.cumsum(np.log1p(-k / i))
    log_ratio = (table[n] - table[n - c]).astype(np.float64)
    return 0.0 - np.expm1(log_ratio)           # 0.0 - x: c = 0 gives 0.0, not -0.0


def report_ks(n: int, requested: Sequence[int] = ()) -> list[int]:
    """Every power of two <= n plus requested ks (each must be <= n), sorted, unique."""
    if int(n) < 1:
        raise ValueError(f"report_ks: n must be >= 1, got {n}")
    for k in requested:
        if int(k) < 1:
            raise ValueError(f"report_ks: k must be >= 1, got {k}")
        if int(k) > int(n):
            raise ValueError(f"report_ks: pass@{k} needs at least {k} samples per problem but n={n}; "
                             f"raise n or drop k={k}")
    powers = [1 << e for e in range(int(n).bit_length()) if (1 << e) <= int(n)]
    return sorted(set(powers) | {int(k) for k in requested})


def _bootstrap_means(values: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, columns) means of `values` (problems x columns) over problems resampled with replacement.

    Resamples are turned into per-problem counts and multiplied in, in chunks, so memory stays
    bounded for large tasks (MMLU has 14k problems).
    """
    rng = np.random.default_rng(seed)
    problems = values.shape[0]
    chunk = max(1, _BOOT_CHUNK_CELLS // problems)
    out = []
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        idx = rng.integers(0, problems, size=(rows, problems))
        flat = (idx + problems * np.arange(rows)[:, None]).ravel()
        counts = np.bincount(flat, minlength=rows * problems).reshape(rows, problems)
        out.append(counts @ values / problems)
    return np.concatenate(out, axis=0)


def _interval(value: float, boots: np.ndarray) -> Interval:
    low, high = np.percentile(boots, [2.5, 97.5]) if boots.size else (value, value)
    return Interval(float(value), float(low), float(high))


def summarize(n: Sequence[int], c: Sequence[int], ks: Sequence[int], n_boot: int = 1000, seed: int = 0,
              interval: str = "wilson") -> Summary:
    """Per-problem sample counts n_i and correct counts c_i -> aggregate scores with 95% intervals.

    Returns a `Summary`: Avg@n and Pass@k per k as `Interval`s, the problems, n = min n_i.
    Avg@n is the mean over problems of c_i/n_i. Intervals: "wilson" (default) = `score_interval`;
    "bootstrap" = percentile intervals over problems resampled with replacement (seeded, so reruns
    agree; collapses at 0% and 100%). Every k must be <= min n_i.
    """
    if interval not in ("wilson", "bootstrap"):
        raise ValueError(f"summarize: interval must be wilson or bootstrap, got {interval!r}")
    n_a = _as_int_array("n", list(n))
    c_a = _as_int_array("c", list(c))
    if n_a.ndim != 1 or n_a.shape != c_a.shape or n_a.size == 0:
        raise ValueError(f"summarize: need one n and one c per problem, got {n_a.size} n and {c_a.size} c")
    if n_boot < 0:
        raise ValueError(f"summarize: n_boot must be >= 0, got {n_boot}")
    ks = sorted({int(k) for k in ks})
    columns = [c_a / n_a] + [pass_at_k(n_a, c_a, k) for k in ks]
    values = np.stack(columns, axis=1).astype(np.float64)
    means = values.mean(axis=0)
    if interval == "wilson":
        low_n = int(n_a.min())
        bounds = [score_interval(values[:, j], low_n, k) for j, k in enumerate([1, *ks])]
        found = [Interval(float(means[j]), lo, hi) for j, (lo, hi) in enumerate(bounds)]
    else:
        boots = _bootstrap_means(values, n_boot, seed) if n_boot else np.empty((0, len(columns)))
        found = [_interval(means[j], boots[:, j]) for j in range(len(columns))]
    return Summary(found[0], {k: found[j + 1] for j, k in enumerate(ks)}, int(n_a.size), int(n_a.min()))


def score_interval(values: Sequence[float], samples_per_problem: int, k: int = 1) -> tuple[float, float]:
    """95% interval of the mean of per-problem scores: a Wilson score interval over an effective number
    of trials from the problems' design effect.

    The mean m of P per-problem scores in [0, 1] is treated as a rate over N_eff independent trials,
    N_eff = m(1-m)/v with v the variance of the mean across problems (cluster-robust: what a bootstrap
    over problems estimates), clipped to [P, P*n/k]: never more trials than samples (Pass@k: n/k
    disjoint k-draws per problem), never fewer than problems. Unlike a bootstrap over problems it does
    not collapse at 0% or 100% or when few problems vary (0 of 80 samples: [0, 4.6] %, not [0, 0]).
    Coverage is checked by simulation in tests/test_stats.py."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("score_interval: no problems")
    m = float(x.mean())
    trials_max = x.size * max(1.0, samples_per_problem / max(1, k))
    v = float(x.var(ddof=1)) / x.size if x.size > 1 else 0.0
    n_eff = trials_max if v <= 0 else min(trials_max, max(float(x.size), m * (1 - m) / v))
    return wilson(m, n_eff)


def wilson(rate: float, trials: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a rate observed over `trials` (may be fractional) trials."""
    if trials <= 0:
        return (0.0, 1.0)
    rate = min(1.0, max(0.0, rate))
    z2 = z * z / trials
    center = (rate + z2 / 2) / (1 + z2)
    half = z / (1 + z2) * math.sqrt(rate * (1 - rate) / trials + z2 / (4 * trials))
    low, high = max(0.0, center - half), min(1.0, center + half)
    # Exact ends at 0 and 1 (float rounding would print 100.0 as the bound of a 99.99... interval).
    return (0.0 if rate == 0 else low, 1.0 if rate == 1 else high)


def chance_pass_at_k(num_choices: int, k: int) -> float:
    """Pass@k of a uniform random guesser over `num_choices` options: 1 - (1 - 1/m)^k."""
    if int(num_choices) < 1:
        raise ValueError(f"chance_pass_at_k: need at least one choice, got {num_choices}")
    if int(k) < 1:
        raise ValueError(f"chance_pass_at_k: k must be >= 1, got {k}")
    return float(1.0 - (1.0 - 1.0 / int(num_choices)) ** int(k))
