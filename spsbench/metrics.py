"""Metrics: unbiased Pass@k (Chen et al. 2021), Avg@n, bootstrap CIs, chance floors. numpy only.

CONTRACT (owned by the metrics work): pass_at_k, report_ks, summarize, chance_pass_at_k.
"""

from __future__ import annotations

from typing import Sequence


def pass_at_k(n, c, k):
    """1 - C(n-c, k)/C(n, k), stable product form, vectorised. k > n raises ValueError."""
    raise NotImplementedError


def report_ks(n: int, requested: Sequence[int] = ()) -> list[int]:
    """Every power of two <= n plus requested ks (each must be <= n), sorted, unique."""
    raise NotImplementedError


def summarize(n: Sequence[int], c: Sequence[int], ks: Sequence[int], n_boot: int = 1000, seed: int = 0) -> dict:
    """Per-problem sample counts n_i and correct counts c_i -> aggregate scores with 95% bootstrap CIs.

    Returns {"avg@n": {"value", "ci_low", "ci_high"}, "pass@k": {k: {"value", "ci_low", "ci_high"}},
             "problems": int, "n": int (min n_i)}.
    """
    raise NotImplementedError


def chance_pass_at_k(num_choices: int, k: int) -> float:
    """Pass@k of a uniform random guesser over `num_choices` options: 1 - (1 - 1/m)^k."""
    raise NotImplementedError
