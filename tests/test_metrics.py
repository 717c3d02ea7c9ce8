"""Metrics: pass@k exact against rational arithmetic, k > n refused, report_ks, bootstrap summary, chance floor."""

from __future__ import annotations

import time
from fractions import Fraction
from math import comb

import numpy as np
import pytest

from spsbench.metrics import chance_pass_at_k, pass_at_k, report_ks, summarize


def exact(n: int, c: int, k: int) -> Fraction:
    return 1 - Fraction(comb(n - c, k), comb(n, k))


@pytest.mark.parametrize("n, c, k", [
    (1, 0, 1), (1, 1, 1), (10, 0, 1), (10, 0, 10), (10, 10, 1), (10, 10, 10), (10, 3, 7), (10, 3, 8),
    (10, 7, 4), (128, 1, 1), (128, 1, 128), (128, 64, 64), (128, 127, 2), (1024, 1, 512), (1024, 3, 1000),
    (1000, 999, 1), (4096, 2, 2048),
])
def test_pass_at_k_matches_rational_reference(n, c, k):
    got = pass_at_k(n, c, k)
    assert isinstance(got, float)
    assert abs(got - float(exact(n, c, k))) < 1e-12


def test_pass_at_k_edge_cases():
    assert pass_at_k(16, 0, 4) == 0.0 and str(pass_at_k(16, 0, 4)) == "0.0"      # not -0.0
    assert pass_at_k(16, 16, 4) == 1.0
    assert pass_at_k(16, 13, 4) == 1.0                                            # n - c < k
    assert pass_at_k(16, 5, 1) == pytest.approx(5 / 16, abs=1e-15)


def test_pass_at_k_vectorised_random_against_reference():
    rng = np.random.default_rng(1)
    n = rng.integers(1, 600, size=400)
    c = rng.integers(0, n + 1)
    k = rng.integers(1, n + 1)
    got = pass_at_k(n, c, k)
    assert got.shape == (400,)
    ref = np.array([float(exact(int(a), int(b), int(d))) for a, b, d in zip(n, c, k, strict=True)])
    assert np.max(np.abs(got - ref)) < 1e-12


def test_pass_at_k_broadcasts_and_keeps_shape():
    got = pass_at_k(np.array([[8, 8], [8, 8]]), np.array([[0, 1], [2, 8]]), 2)
    assert got.shape == (2, 2)
    assert got[1, 1] == 1.0 and got[0, 0] == 0.0
    assert np.allclose(pass_at_k(8, np.arange(9), 1), np.arange(9) / 8)
    assert pass_at_k(np.array([4, 4]), np.array([4, 3]), 2).tolist() == [1.0, 1.0]     # all n - c < k
    assert pass_at_k(np.array([], dtype=int), np.array([], dtype=int), 1).shape == (0,)


@pytest.mark.parametrize("n, c, k, match", [
    (4, 1, 5, "k=5 is larger than n=4"), (4, 5, 1, "c must be in"), (4, -1, 1, "c must be in"),
    (0, 0, 1, "n .* must be >= 1"), (4, 1, 0, "k must be >= 1"), (4.5, 1, 1, "integers"),
])
def test_pass_at_k_refuses_bad_input(n, c, k, match):
    with pytest.raises(ValueError, match=match):
        pass_at_k(n, c, k)


def test_pass_at_k_refuses_k_above_n_inside_arrays():
    with pytest.raises(ValueError, match="k=8 is larger than n=4"):
        pass_at_k(np.array([16, 4]), np.array([1, 1]), 8)


def test_report_ks():
    assert report_ks(128) == [1, 2, 4, 8, 16, 32, 64, 128]
    assert report_ks(100, [3, 100, 3]) == [1, 2, 3, 4, 8, 16, 32, 64, 100]
    assert report_ks(1) == [1]
    with pytest.raises(ValueError, match="k=129"):
        report_ks(128, [129])
    with pytest.raises(ValueError):
        report_ks(0)


def test_summarize_values_and_intervals():
    n = [8, 8, 8, 8]
    c = [0, 2, 8, 4]
    s = summarize(n, c, ks=[1, 4, 8], n_boot=500, seed=3)
    assert s.problems == 4 and s.n == 8
    assert s.avg.value == pytest.approx(np.mean([0, 2 / 8, 1, 4 / 8]))
    assert s.pass_at_k[1].value == pytest.approx(s.avg.value)
    assert s.pass_at_k[8].value == pytest.approx(0.75)
    expected4 = np.mean([float(exact(8, ci, 4)) for ci in c])
    assert s.pass_at_k[4].value == pytest.approx(expected4)
    for entry in [s.avg, *s.pass_at_k.values()]:
        assert entry.ci_low <= entry.value <= entry.ci_high
        assert 0.0 <= entry.ci_low and entry.ci_high <= 1.0
    assert s.pass_at_k[8].ci_low < s.pass_at_k[8].ci_high


def test_summarize_is_seeded_and_mixed_n_is_handled():
    a = summarize([16, 8, 12], [3, 0, 12], ks=[1, 8], n_boot=200, seed=7, interval="bootstrap")
    b = summarize([16, 8, 12], [3, 0, 12], ks=[1, 8], n_boot=200, seed=7, interval="bootstrap")
    c = summarize([16, 8, 12], [3, 0, 12], ks=[1, 8], n_boot=200, seed=8, interval="bootstrap")
    assert a == b and a != c
    assert a.n == 8
    with pytest.raises(ValueError, match="k=16 is larger than n=8"):
        summarize([16, 8], [1, 1], ks=[16])
    with pytest.raises(ValueError, match="one n and one c"):
        summarize([16, 8], [1], ks=[1])


def test_summarize_ci_covers_a_known_rate():
    rng = np.random.default_rng(0)
    c = rng.binomial(64, 0.3, size=200)
    s = summarize([64] * 200, c, ks=[1], n_boot=1000, seed=0)
    assert s.avg.ci_low < 0.3 < s.avg.ci_high
    assert s.avg.ci_high - s.avg.ci_low < 0.05


def test_summarize_is_fast_enough_for_a_benchmark():
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    summarize([128] * 30, rng.integers(0, 129, 30), report_ks(128), n_boot=1000, seed=0)
    summarize([4] * 14_000, rng.integers(0, 5, 14_000), report_ks(4), n_boot=200, seed=0)   # MMLU-sized
    assert time.perf_counter() - start < 10                     # generous: bench/bench_core.py measures it


def test_chance_pass_at_k():
    assert chance_pass_at_k(4, 1) == pytest.approx(0.25)
    assert chance_pass_at_k(4, 2) == pytest.approx(1 - 0.75 ** 2)
    assert chance_pass_at_k(1, 3) == 1.0
    assert chance_pass_at_k(4, 64) > 0.9999                      # why MMLU pass@64 means little
    with pytest.raises(ValueError):
        chance_pass_at_k(0, 1)
