"""The squeezing lab, shrunken: assertions on measured quantities (see spsbench/lab/)."""

from __future__ import annotations

import pytest

from spsbench.errors import ConfigError


@pytest.fixture(scope="module")
def squeeze_result():
    import torch

    from spsbench.lab import squeeze

    torch.set_num_threads(1)
    return squeeze.run(squeeze.SqueezeConfig(fit_steps=200))


def test_squeeze_negative_update_squeezes_a_peaked_distribution_only(squeeze_result):
    from spsbench.lab.page import squeeze_summary

    s = squeeze_summary(squeeze_result)
    peaked, balanced = s[("peaked", "grpo")], s[("balanced", "grpo")]
    start = {r["regime"]: r for r in squeeze_result["regimes"]}
    assert start["peaked"]["p_dom"] > 0.7 and start["balanced"]["p_dom"] < 0.2
    # peaked: p(dominant) rises, entropy falls, the other correct sequences lose mass; p(y-) barely moves
    assert peaked["d_p_dom"] > 0 and peaked["d_entropy"] < 0 and peaked["d_other_correct"] < 0
    assert peaked["share_up"] > 0.6
    assert peaked["d_p_dom"] > 5 * abs(peaked["d_p_neg"])
    # balanced: the same updates leave the most likely sequence (almost) where it was
    assert abs(balanced["d_p_dom"]) < 0.1 * peaked["d_p_dom"]


def test_squeeze_irl_update_moves_mass_off_the_dominant_sequence(squeeze_result):
    from spsbench.lab.page import squeeze_summary

    s = squeeze_summary(squeeze_result)
    irl, grpo, both = s[("peaked", "irl")], s[("peaked", "grpo")], s[("peaked", "grpo+irl")]
    assert irl["d_p_dom"] < 0 and irl["d_entropy"] > 0
    assert both["d_p_dom"] < grpo["d_p_dom"]


def test_squeeze_page_and_store_roundtrip(squeeze_result, tmp_path):
    from spsbench.lab import record
    from spsbench.lab.page import write_page

    store = tmp_path / "lab.db"
    record.save_squeeze(store, squeeze_result)
    first = write_page(store, tmp_path / "page")
    text = (tmp_path / "page" / "README.md").read_text()
    assert "squeezing, as in the paper" in text and (tmp_path / "page" / "squeeze.png").stat().st_size > 10_000
    png = (tmp_path / "page" / "squeeze.png").read_bytes()
    write_page(store, tmp_path / "page")
    assert (tmp_path / "page" / "squeeze.png").read_bytes() == png     # deterministic
    assert [f.name for f in first] == ["README.md", "squeeze.png"]


def test_squeeze_bad_settings_are_one_line_errors():
    from spsbench.lab.settings import apply_overrides
    from spsbench.lab.squeeze import SqueezeConfig

    with pytest.raises(ConfigError, match="unknown squeeze setting 'lrr'"):
        apply_overrides(SqueezeConfig, ["lrr=1"], "squeeze")
    with pytest.raises(ConfigError, match="must be an integer"):
        apply_overrides(SqueezeConfig, ["vocab=abc"], "squeeze")
    with pytest.raises(ConfigError, match="vocab\\*\\*length"):
        apply_overrides(SqueezeConfig, ["squeeze.vocab=50", "length=9"], "squeeze")


def test_lab_cli_bad_set_exits_2(capsys):
    from spsbench.cli import main

    assert main(["lab", "squeeze", "--set", "nope=1"]) == 2
    assert "unknown squeeze setting" in capsys.readouterr().err
