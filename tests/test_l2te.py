"""L2TE on hand-built prompt groups: the lower quantile of negatives first, positives only as a top-up."""

import random
from collections import Counter

import pytest

from spsbench.train.sps.l2te import Scored, group_rng, select_group, select_l2te


def g(*items):
    return [Scored(logp, correct) for logp, correct in items]


def test_never_picks_a_correct_rollout_while_enough_negatives_exist():
    # the correct rollout (index 1) is the least likely of the group: the old ranking picked it
    group = g((-5.0, False), (-9.0, True), (-2.0, False), (-8.0, False), (-1.0, False))
    for seed in range(50):
        picks = select_group(group, 3, 0.5, random.Random(seed))
        assert 1 not in picks and len(picks) == 3 == len(set(picks))


def test_quantile_zero_takes_the_least_likely_negatives():
    group = g((-5.0, False), (-1.0, False), (-9.0, False), (-3.0, False), (-7.0, True))
    assert select_group(group, 2, 0.0, random.Random(1)) == [2, 0]   # -9, -5; the correct -7 is skipped


def test_draws_come_only_from_the_lower_quantile_pool_and_cover_it():
    # 8 negatives, quantile 0.5 -> pool = the 4 least likely (indices 7, 6, 5, 4)
    group = g(*[(-float(i), False) for i in range(8)])
    seen = Counter()
    for seed in range(200):
        picks = select_group(group, 2, 0.5, random.Random(seed))
        assert set(picks) <= {4, 5, 6, 7}
        assert [group[i].logp for i in picks] == sorted(group[i].logp for i in picks)   # lowest first
        seen.update(picks)
    assert set(seen) == {4, 5, 6, 7} and min(seen.values()) > 50          # uniform-ish, not always the lowest


def test_pool_is_never_smaller_than_sampling_size():
    group = g(*[(-float(i), False) for i in range(8)])       # ceil(0.1 * 8) = 1 < 3: pool = lowest 3
    assert select_group(group, 3, 0.1, random.Random(0)) == [7, 6, 5]


def test_too_few_negatives_are_topped_up_with_the_least_likely_correct():
    group = g((-3.0, True), (-9.0, False), (-1.0, True), (-4.0, True), (-2.0, True), (-6.0, True),
              (-5.0, True), (-7.0, True))
    assert select_group(group, 3, 0.5) == [1, 7, 5]      # the only negative, then correct -7, -6


def test_all_correct_group_takes_lowest_correct():
    group = g((-2.0, True), (-7.0, True), (-4.0, True), (-1.0, True))
    assert select_group(group, 3, 0.5) == [1, 2, 0]


def test_selection_is_deterministic_per_seed_phase_and_group_index():
    group = g(*[(-float(i), False) for i in range(8)])
    groups = [group] * 6
    first = select_l2te(groups, 2, 1.0, seed=3, phase=1)
    assert first == select_l2te(groups, 2, 1.0, seed=3, phase=1)
    assert len({tuple(p) for p in first}) > 1                 # groups draw independently
    assert select_l2te(groups, 2, 1.0, seed=3, phase=2) != first
    # a rank holding groups 2.. of the same phase draws exactly what the single process drew for them
    assert select_l2te(groups[2:], 2, 1.0, seed=3, phase=1, first_group=2) == first[2:]
    assert select_group(group, 2, 1.0, group_rng(3, 1, 4)) == first[4]


def test_ties_break_by_position():
    group = g((-3.0, True), (-3.0, True), (-3.0, True), (-3.0, True))
    assert select_group(group, 2, 0.5) == [0, 1]


def test_sampling_size_larger_than_group_returns_whole_group():
    assert sorted(select_group(g((-1.0, True), (-2.0, False)), 5, 0.5)) == [0, 1]


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="sampling_size"):
        select_l2te([], 0, 0.5)
    with pytest.raises(ValueError, match="quantile"):
        select_l2te([], 3, 1.5)
    assert select_l2te([g((-1.0, False))], 1, 0.0) == [[0]]


# ------------------------------------------------------------------ sps.quantile_scope batch, positive_topup random

def test_batch_threshold_is_the_lower_quantile_of_a_batchs_negatives():
    from spsbench.train.sps.l2te import batch_threshold

    values = [-1.0, -8.0, -3.0, -6.0, -2.0, -5.0, -4.0, -7.0]
    assert batch_threshold(values, 0.5) == -5.0          # the 4 lowest: -8, -7, -6, -5
    assert batch_threshold(values, 1.0) == -1.0
    assert batch_threshold(values, 0.0) == float("-inf")
    assert batch_threshold([], 0.5) == float("-inf")


def test_batch_scope_draws_each_groups_negatives_below_the_batch_cut():
    # group A's negatives all lie below the batch's cut, group B's all above: per group, the scopes differ
    a = g((-9.0, False), (-8.5, False), (-8.0, False), (-7.5, False), (-1.0, True))
    b = g((-3.0, False), (-2.5, False), (-2.0, False), (-1.5, False), (-0.5, True))
    from spsbench.train.sps.l2te import batch_threshold

    cut = batch_threshold([r.logp for r in a + b if not r.correct], 0.5)        # -7.5
    for seed in range(30):
        per_group = select_l2te([a, b], 3, 0.5, seed=seed)
        per_batch = select_l2te([a, b], 3, 0.5, seed=seed, thresholds=[cut, cut])
        assert set(per_batch[0]) <= {0, 1, 2, 3}                    # A: all 4 negatives are under the cut
        assert per_batch[1] == [0, 1, 2]                            # B: none are: its 3 lowest negatives
        assert set(per_group[1]) <= {0, 1, 2} and len(per_group[1]) == 3


def test_positive_topup_lowest_or_random():
    group = g((-5.0, False), (-1.0, True), (-2.0, True), (-3.0, True), (-4.0, True))
    assert select_group(group, 3, 0.5, random.Random(0)) == [0, 4, 3]            # -5 (negative), -4, -3
    drawn = {tuple(select_group(group, 3, 0.5, random.Random(s), random_topup=True)) for s in range(40)}
    assert all(0 in picks for picks in drawn) and len(drawn) > 2                 # the negative always, positives vary
    with pytest.raises(ValueError, match="thresholds"):
        select_l2te([group], 3, 0.5, thresholds=[])
