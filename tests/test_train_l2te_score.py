"""L2TE's score options: `sps.l2te_truncated: exclude` never imitates a completion cut before its EOS."""

from types import SimpleNamespace

import pytest

from spsbench.errors import ConfigError
from spsbench.train.config import SPSConfig, load_config
from spsbench.train.sps.state import PhaseState
from spsbench.train.sps.trainer import SPSTrainer

ROWS = [{"logp": -50.0, "completion_ids": [5] * 96, "correct": False, "truncated": True},    # long, cut off
        {"logp": -9.0, "completion_ids": [5] * 9, "correct": False, "truncated": False},
        {"logp": -4.0, "completion_ids": [5] * 2, "correct": False, "truncated": False},
        {"logp": -3.0, "completion_ids": [5] * 3, "correct": True, "truncated": False}]


def picked(**sps):
    fake = SimpleNamespace(sps=SPSConfig(quantile=0.0, **sps), phase=PhaseState())
    return [r["logp"] for r in SPSTrainer._select(fake, [ROWS], first_group=0)]


def test_sum_keeps_the_truncated_rollout_and_exclude_drops_it():
    assert picked(sampling_size=1, l2te_truncated="keep") == [-50.0]        # sum: the longest is least likely
    assert picked(sampling_size=1, l2te_truncated="exclude") == [-9.0]
    assert picked(sampling_size=1, l2te_logprob="mean", l2te_truncated="exclude") == [-4.0]   # -2/token
    # too few eligible negatives: topped up with correct ones, the truncated one still never taken
    assert picked(sampling_size=3, l2te_truncated="exclude") == [-9.0, -4.0, -3.0]


def test_bad_truncated_option_is_one_line():
    with pytest.raises(ConfigError, match="sps.l2te_truncated"):
        load_config("sps", overrides=["sps.l2te_truncated=drop"], model="some/model")
