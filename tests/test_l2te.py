"""L2TE on hand-built prompt groups: what paper section 4.1 / appendix C.1 says it picks."""

import pytest

from spsbench.train.l2te import Scored, select_group, select_l2te


def g(*items):
    return [Scored(logp, correct) for logp, correct in items]


def test_all_negative_group_takes_lowest_likelihood_first():
    group = g((-5.0, False), (-1.0, False), (-9.0, False), (-3.0, False))
    assert select_group(group, 3, 0.5) == [2, 0, 3]   # -9, -5 (lower half), then -3


def test_all_correct_group_tops_up_with_lowest_correct():
    group = g((-2.0, True), (-7.0, True), (-4.0, True), (-1.0, True))
    assert select_group(group, 3, 0.5) == [1, 2, 0]


def test_mixed_group_prefers_low_quantile_negatives_then_correct():
    # ranks by logp: 3(-8,F) 1(-6,T) 0(-5,F) 2(-2,F) ; lower half = {3, 1}
    group = g((-5.0, False), (-6.0, True), (-2.0, False), (-8.0, False))
    assert select_group(group, 3, 0.5) == [3, 1, 0]    # low negative, then correct, then likely negatives


def test_fewer_negatives_than_sampling_size_are_topped_up_with_correct():
    group = g((-3.0, True), (-9.0, False), (-1.0, True), (-4.0, True), (-2.0, True), (-6.0, True),
              (-5.0, True), (-7.0, True))
    picks = select_group(group, 3, 0.5)
    assert picks[0] == 1                              # the only negative first
    assert picks[1:] == [7, 5]                        # then correct ones, lowest log-prob first


def test_ties_break_by_position_and_are_deterministic():
    group = g((-3.0, False), (-3.0, False), (-3.0, False), (-3.0, False))
    assert select_group(group, 2, 0.5) == [0, 1]
    assert select_l2te([group, group], 2, 0.5) == [[0, 1], [0, 1]]


def test_quantile_one_takes_all_negatives_before_correct():
    group = g((-1.0, False), (-9.0, True), (-2.0, False))
    assert select_group(group, 3, 1.0) == [2, 0, 1]


def test_sampling_size_larger_than_group_returns_whole_group():
    assert sorted(select_group(g((-1.0, True), (-2.0, False)), 5, 0.5)) == [0, 1]


def test_invalid_arguments_raise():
    with pytest.raises(ValueError):
        select_l2te([], 0, 0.5)
    with pytest.raises(ValueError):
        select_l2te([], 3, 0.0)
