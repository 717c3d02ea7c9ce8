"""Intervals that stay honest at the edges (coverage by simulation), the paired bootstrap of a
difference between two evaluations, and the exact sign test of a solvable-set change."""

from __future__ import annotations

import numpy as np
import pytest

from spsbench.metrics import pass_at_k, score_interval, summarize, wilson
from spsbench.stats import paired_difference, sign_test
from tests.test_import_light import HEAVY, imported_after

# (Beta a, b) of the per-problem solve rates: rare successes, balanced, near-certain.
POPULATIONS = [(0.05, 5.0), (0.3, 9.0), (2.0, 2.0), (9.0, 0.3)]


def _coverage(a: float, b: float, problems: int, n: int, k: int, sims: int, method: str, seed: int) -> float:
    """Share of simulated evaluations whose 95% interval holds the population's Pass@k."""
    rng = np.random.default_rng(seed)
    true = float((1 - (1 - rng.beta(a, b, 200_000)) ** k).mean())
    hits = 0
    for s in range(sims):
        c = rng.binomial(n, rng.beta(a, b, problems))
        if method == "wilson":
            low, high = score_interval(pass_at_k(np.full(problems, n), c, k), n, k)
        else:
            r = summarize([n] * problems, c, [k], n_boot=200, seed=s, interval="bootstrap")["pass@k"][k]
            low, high = r["ci_low"], r["ci_high"]
        hits += low <= true <= high
    return hits / sims


@pytest.mark.parametrize("a,b", POPULATIONS)
@pytest.mark.parametrize("k", [1, 8])
def test_score_interval_covers_at_the_edges_and_in_the_middle(a, b, k):
    # Measured with 400 simulations per case: 0.91-1.00 for P in {10, 32}; the bootstrap 0.00-0.93.
    assert _coverage(a, b, problems=16, n=8, k=k, sims=250, method="wilson", seed=1) >= 0.88


def test_the_bootstrap_over_problems_does_not_cover_at_the_edge():
    """Why the pages changed method: with rare successes the bootstrap interval is often [0, 0]."""
    assert _coverage(0.05, 5.0, problems=16, n=8, k=1, sims=100, method="bootstrap", seed=2) < 0.8


def test_zero_of_eighty_is_not_a_point_interval():
    low, high = score_interval([0.0] * 10, samples_per_problem=8)
    assert low == 0.0 and 0.04 < high < 0.05                  # Wilson over 80 trials: [0, 4.6] %
    low, high = score_interval([1.0] * 10, samples_per_problem=8, k=8)
    assert high == 1.0 and 0.7 < low < 0.75                   # Pass@8 at n=8: one trial per problem
    s = summarize([8] * 10, [0] * 10, [1, 8])
    assert s["avg@n"]["ci_high"] > 0 and s["pass@k"][8]["ci_high"] > s["avg@n"]["ci_high"]


def test_wilson_matches_the_textbook_value():
    low, high = wilson(0.5, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)


def test_paired_difference_finds_a_real_gain_and_not_noise():
    rng = np.random.default_rng(0)
    n = [8] * 40
    c = rng.binomial(8, rng.beta(2, 2, 40))
    better = np.minimum(8, c + 2)
    gain = paired_difference(n, c, n, better, [1, 8])
    assert gain["avg"].significant and gain["avg"].low > 0 and gain["avg"].value == pytest.approx(
        (better - c).sum() / 320)
    same = paired_difference(n, c, n, c, [1, 8])
    assert not same["avg"].significant and not same["pass"][8].significant
    assert paired_difference(n, c, n, better, [1, 8], seed=0) == gain                 # seeded


def test_pairing_makes_a_small_consistent_gain_significant():
    """Problems differ a lot, but B beats A by one sample on every problem: only the paired test sees it."""
    n = [16] * 30
    c = [i % 15 for i in range(30)]
    d = [x + 1 for x in c]
    diff = paired_difference(n, c, n, d, [1])
    assert diff["avg"].significant
    a = summarize(n, c, [1])["avg@n"]
    b = summarize(n, d, [1])["avg@n"]
    assert b["ci_low"] < a["ci_high"]                          # the separate intervals overlap


def test_paired_difference_refuses_unpaired_input():
    with pytest.raises(ValueError, match="same problems"):
        paired_difference([8, 8], [1, 2], [8], [1], [1])


def test_sign_test_exact_values():
    assert sign_test(0, 0) == 1.0
    assert sign_test(5, 0) == pytest.approx(2 / 32)
    assert sign_test(3, 3) == 1.0
    assert sign_test(9, 1) == pytest.approx(2 * 11 / 1024)


def test_stats_import_no_heavy_library():
    modules = imported_after("import spsbench.stats")
    assert "spsbench.stats" in modules and not [m for m in HEAVY if m in modules]


def test_ratio_interval_brackets_the_ratio_and_widens_with_spread():
    import math

    from spsbench.stats import ratio_interval

    low, high = ratio_interval([2.0, 4.0, 6.0, 8.0], [1.0, 2.0, 3.0, 4.0])    # every unit has ratio 2
    assert low == high == 2.0
    narrow = ratio_interval([1.0, 1.1, 0.9, 1.0] * 5, [1.0] * 20)
    wide = ratio_interval([0.0, 2.0, 0.1, 1.9] * 5, [1.0] * 20)
    assert narrow[0] <= 1.0 <= narrow[1] and wide[0] <= 1.0 <= wide[1]
    assert wide[1] - wide[0] > 5 * (narrow[1] - narrow[0])
    assert all(math.isnan(v) for v in ratio_interval([1.0], [1.0]))       # one problem: no interval
