"""The squeezing lab, shrunken: the mechanism measured exactly, its settings and flags, the pure statistics
(intervals, matched Pass@1, verdicts), the committed-data format and the figures' conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spsbench.errors import ConfigError


@pytest.fixture(scope="module")
def squeeze_result():
    import torch

    from spsbench.lab import squeeze

    torch.set_num_threads(1)
    return squeeze.run(squeeze.SqueezeConfig(fit_steps=200), seeds=1)


def test_squeeze_negative_update_squeezes_a_peaked_distribution(squeeze_result):
    from spsbench.lab.page_squeeze import summary

    s = summary(squeeze_result)
    peaked, balanced = s[("peaked", "grpo")], s[("balanced", "grpo")]
    start = {r["regime"]: r for r in squeeze_result["seeds"][0]["regimes"]}
    assert start["peaked"]["p_dom"] > 0.7 and start["balanced"]["p_dom"] < 0.2
    assert not start["peaked"]["flag"] and not start["balanced"]["flag"]
    # peaked: p(dominant) rises, entropy falls, the other correct sequences lose mass; p(y-) barely moves
    assert peaked["d_p_dom"][0] > 0 and peaked["d_entropy"][0] < 0 and peaked["d_other_correct"][0] < 0
    assert peaked["share_up"][0] > 0.6 and peaked["d_p_dom"][0] > 5 * abs(peaked["d_p_neg"][0])
    # the mass is accounted for: dominant + other correct + incorrect changes sum to 0, update by update
    for reg in squeeze_result["seeds"][0]["regimes"]:
        for r in reg["rows"]:
            assert r["d_p_dom"] + r["d_other_correct"] + r["d_incorrect"] == pytest.approx(0, abs=2e-6)
    assert abs(balanced["d_p_dom"][0]) < peaked["d_p_dom"][0]


def test_squeeze_irl_update_moves_mass_off_the_dominant_sequence(squeeze_result):
    from spsbench.lab.page_squeeze import irl_wrong_shares, summary

    s = summary(squeeze_result)
    irl, grpo, both = s[("peaked", "irl")], s[("peaked", "grpo")], s[("peaked", "grpo+irl")]
    assert irl["d_p_dom"][0] < 0 and irl["d_entropy"][0] > 0
    assert both["d_p_dom"][0] < grpo["d_p_dom"][0]
    [share] = irl_wrong_shares(squeeze_result)
    assert share == pytest.approx(irl["d_incorrect"][0] / -irl["d_p_dom"][0]) and 0 < share < 1


def test_squeeze_flagged_start_is_shown_and_left_out_of_the_means(squeeze_result):
    """A 'peaked' fit that did not peak is listed with its flag and never averaged in."""
    import copy

    from spsbench.lab.page_squeeze import fit_table, squeeze_markdown, summary
    from spsbench.lab.squeeze import fit_flag

    bad = copy.deepcopy(squeeze_result["seeds"][0])
    bad["seed"] = 7
    peaked = next(r for r in bad["regimes"] if r["regime"] == "peaked")
    peaked.update(p_dom=0.23)
    peaked["flag"] = fit_flag(peaked)
    for r in peaked["rows"]:
        r["d_p_dom"] = -1.0                                        # would flip the mean if averaged in
    result = {**squeeze_result, "seeds": [squeeze_result["seeds"][0], bad]}
    assert peaked["flag"].startswith("not peaked: p(dominant) 0.23")
    s = summary(result)
    assert len(s[("peaked", "grpo")]["seeds"]) == 1 and s[("peaked", "grpo")]["d_p_dom"][0] > 0
    assert len(s[("balanced", "grpo")]["seeds"]) == 2
    assert any("| 7 | peaked | 0.230" in line and "left out" in line for line in fit_table(result))
    assert "mean over 1 model seed;" in squeeze_markdown(result)


def test_squeeze_page_and_data_roundtrip(squeeze_result, tmp_path):
    from spsbench.lab import record
    from spsbench.lab.page import write_page

    path = record.save_squeeze(tmp_path / "data", squeeze_result)
    first = path.read_bytes()
    record.save_squeeze(tmp_path / "data", squeeze_result)
    assert path.read_bytes() == first and first[4:8] == b"\0\0\0\0"           # gzip without a timestamp
    files = write_page(tmp_path / "data", tmp_path / "page")
    text = (tmp_path / "page" / "README.md").read_text()
    assert "squeezing, as in the paper" in text and "Fitted starts, per model seed" in text
    assert [f.name for f in files] == ["README.md", "squeeze.png"]
    png = (tmp_path / "page" / "squeeze.png").read_bytes()
    write_page(tmp_path / "data", tmp_path / "page")
    assert (tmp_path / "page" / "squeeze.png").read_bytes() == png and len(png) > 10_000


def test_lab_settings_refuse_bad_and_non_finite_values():
    from spsbench.lab.settings import apply_overrides
    from spsbench.lab.squeeze import SqueezeConfig

    with pytest.raises(ConfigError, match="unknown squeeze setting 'lrr'"):
        apply_overrides(SqueezeConfig, ["lrr=1"], "squeeze")
    with pytest.raises(ConfigError, match="must be an integer"):
        apply_overrides(SqueezeConfig, ["vocab=abc"], "squeeze")
    with pytest.raises(ConfigError, match="vocab\\*\\*length"):
        apply_overrides(SqueezeConfig, ["squeeze.vocab=50", "length=9"], "squeeze")
    for value in ("nan", ".nan", "1e400", "-.inf"):
        with pytest.raises(ConfigError, match="lr"):
            apply_overrides(SqueezeConfig, [f"lr={value}"], "squeeze")
    with pytest.raises(ConfigError, match="finite"):
        SqueezeConfig(lr=math.nan)


def test_lab_cli_refuses_flags_that_would_do_nothing(tmp_path, capsys):
    from spsbench.cli import main

    data = ["--data", str(tmp_path / "d")]
    cases = ((["squeeze", "--set", "nope=1"], "unknown squeeze setting"),
             (["squeeze", "--set", "lr=.nan"], "finite"),
             (["squeeze", "--arms", "grpo"], "--arms applies to `lab dynamics` only"),
             (["squeeze", "--seeds", "0"], "--seeds: must be >= 1"),
             (["page", "--seeds", "3"], "does not apply"),
             (["page", "--tag", "x"], "--tag applies to `lab dynamics` only"))
    for argv, message in cases:
        assert main(["lab", *argv, *data]) == 2, argv
        assert message in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_lab_squeeze_honours_seeds(tmp_path, capsys):
    from spsbench.cli import main
    from spsbench.lab import record

    argv = ["lab", "squeeze", "--seeds", "2", "--workers", "1", "--data", str(tmp_path / "d"), "--no-page",
            "--set", "vocab=3", "--set", "fit_steps=30", "--set", "seed=4"]
    assert main(argv) == 0
    result = record.load_squeeze(tmp_path / "d")
    assert [s["seed"] for s in result["seeds"]] == [4, 5] and result["config"]["vocab"] == 3
    assert "model seeds 4..5" in capsys.readouterr().out


def test_lab_task_data_is_the_generators_output(tmp_path):
    from spsbench import paths
    from spsbench.lab import task
    from spsbench.tasks import load_task

    assert (paths.tasks_dir() / task.DATA_FILE).read_text() == task.write_data(tmp_path / "x.jsonl").read_text()
    loaded = load_task(task.TASK)
    assert len(loaded.problems) == 47 and loaded.spec.grader == "math"
    assert {len(task.correct_decompositions(13, 3)), len(task.correct_decompositions(0, 2))} == {75, 1}


def test_lab_exact_cached_prefixes_match_full_sequences(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from spsbench.lab.exact import completion_logprobs, indexed_prefix_logprobs, shared_prefix_logprobs

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    prompts, conts = [[5, 6, 7], [8, 9, 10]], [[11, 12], [13, 14], [12, 11]]
    with torch.no_grad():
        cached = shared_prefix_logprobs(model, prompts, [20], conts)
        full = completion_logprobs(model, [p for p in prompts for _ in conts], [[20, *c] for _ in prompts for c in conts])
        rows = [(1, [13, 14]), (0, [11, 12]), (1, [12, 11])]
        indexed = indexed_prefix_logprobs(model, prompts, [20], rows)
        direct = completion_logprobs(model, [prompts[i] for i, _ in rows], [[20, *c] for _, c in rows])
    assert torch.allclose(cached.flatten(), full, atol=1e-4)
    assert torch.allclose(indexed, direct, atol=1e-4)


def test_warmup_favourites_are_half_correct_and_seeded():
    from spsbench.lab import task
    from spsbench.lab.warmup import WarmupConfig, describe, favourites

    fav = favourites(0, 0.5)
    assert sum(ok for _, ok in fav.values()) == 24
    for p in task.problems():
        digits, ok = fav[p.id]
        assert len(digits) == p.terms and (sum(digits) == p.target) == ok
    assert favourites(0, 0.5) == fav and favourites(1, 0.5) != fav
    info = describe(WarmupConfig(seed=1))
    assert info["problems"][0] == "2d00" and len(info["favourite"]) == 47
    with pytest.raises(ConfigError, match="warmup.favourite"):
        WarmupConfig(favourite=1.5)
    with pytest.raises(ConfigError, match="finite"):
        WarmupConfig(lr=math.inf)


# -------------------------------------------------------------------------------------------- statistics


def test_intervals_stay_in_range_and_match_the_t_formula():
    from spsbench.lab.frontier import interval, paired

    mean, low, high = interval([0.1, 0.2, 0.3])
    assert mean == pytest.approx(0.2) and low == pytest.approx(0.2 - 4.303 * 0.1 / 3 ** 0.5)
    assert interval([0.5]) == (0.5, 0.5, 0.5)
    p = [0.97, 0.999, 0.93, 0.99]
    raw, logit = interval(p), interval(p, "logit")
    assert raw[2] > 1 and 0 < logit[1] < logit[0] < logit[2] < 1        # the raw band leaves [0, 1], logit cannot
    counts = interval([0.2, 3.0, 1.1], "log")
    assert counts[1] > 0 and interval([0.2, 3.0, 1.1])[1] < 0
    lp = interval([-0.2, -3.0, -1.1], "neglog")
    assert lp[2] < 0 and lp[1] < lp[0] < lp[2]
    d = paired([0.1, 0.2, 0.3], [0.15, 0.24, 0.36])
    assert d[0] == pytest.approx(0.05) and d[1] < d[0] < d[2]


def test_matched_pass1_reads_each_path_where_it_last_had_that_pass1():
    from spsbench.lab.frontier import ABOVE, BELOW, ON, at_level, diverged, gaps, pass_at_k, verdict

    grpo = [(0.30, 0.90), (0.35, 0.89), (0.40, 0.86), (0.50, 0.84)]
    assert at_level(grpo, 0.45) == pytest.approx(0.85)
    assert at_level([(0.3, 0.9), (0.4, 0.8), (0.35, 0.85), (0.45, 0.7)], 0.375) == pytest.approx(0.8125)  # last
    assert at_level(grpo, 0.6) is None
    sps = [(0.30, 0.90), (0.35, 0.89), (0.28, 0.93), (0.40, 0.88), (0.60, 0.80)]
    assert diverged(grpo, sps) == 2
    g = gaps(grpo, sps)
    assert g["below"] == 1 and g["above"] == 1 and g["gaps"] == [pytest.approx(0.02)] and g["levels"] == [0.40]
    assert verdict((0.02, 0.01, 0.03)) == ABOVE and verdict((0.0, -0.01, 0.02)) == ON
    assert verdict((-0.02, -0.03, -0.01)) == BELOW
    assert pass_at_k([0.5, 0.0], 2) == pytest.approx(0.375)


def test_frontier_view_on_a_synthetic_session():
    """GRPO squeezes, 'grpo-slow' walks GRPO's path more slowly (on the frontier), 'up' keeps the rare answers
    (above): the view and the page say so."""
    from spsbench.lab import view as v
    from spsbench.lab.page_dynamics import conclusion, headline, matched_table, verdict_sentence

    session = synthetic_session()
    view = v.SessionView(session)
    assert view.paired_labels() == ["grpo-slow", "up"]
    slow, up = v.matched_rows(view, "grpo-slow", 256), v.matched_rows(view, "up", 256)
    assert slow["verdict"] == "on" and up["verdict"] == "above" and up["seeds"] == 4
    assert "**above GRPO's frontier**" in verdict_sentence(view, "up")
    assert "**on GRPO's frontier**" in verdict_sentence(view, "grpo-slow")
    assert "slower RL" in verdict_sentence(view, "grpo-slow")
    table = matched_table(view)
    assert any(line.startswith("| up vs grpo |") for line in table)
    assert any(line.startswith("| up vs grpo-slow |") for line in table)
    assert conclusion(view, "up") == "up moves the frontier up (the slower-RL control does not)"
    assert headline([{**session, "tag": "main"}]) is None          # no SPS arm: no answer claimed
    change = v.change_from_base(view, "grpo", lambda p: v.pass_k(p, 256))
    assert change[2] < 0


def synthetic_session(seeds: int = 4) -> dict:
    """GRPO sharpens common answers and squeezes rare ones (p < 0.2) as training goes; `grpo-slow` visits
    exactly GRPO's states at half the pace; `up` sharpens like GRPO but leaves the rare answers alone."""
    rng = np.random.default_rng(0)

    def point(base_p, step, scale, squeeze_rare=True, when="rl"):
        rare = base_p < 0.2
        p = np.where(rare, base_p * (1 - scale) if squeeze_rare else base_p, np.minimum(base_p * (1 + scale), 1))
        logp = np.log(np.clip(p, 1e-9, 1)).tolist()
        return {"step": step, "when": when, "p": p.tolist(), "dom_logp": logp, "dom_ok": [1] * 47,
                "dom_wf": [1] * 47, "distinct": [3] * 47, "effective": [2.0] * 47, "p_prev_dom": p.tolist(),
                "p_anchor_dom": p.tolist(), "p_base_dom": p.tolist()}

    out = []
    for s in range(seeds):
        base_p = rng.uniform(0.0005, 0.8, 47)
        arms = {"grpo": [point(base_p, t, 0.04 * t) for t in range(1, 17)],
                "grpo-slow": [point(base_p, 2 * t, 0.08 * t) for t in range(1, 5)],   # GRPO's even states
                "up": [point(base_p, t, 0.04 * t, squeeze_rare=False) for t in range(1, 17)]}
        runs = [{"arm": a, "label": a, "seed": s, "points": pts, "settings": {"phase": 4, "rl.learning_rate": 1e-3}}
                for a, pts in arms.items()]
        out.append({"seed": s, "runs": runs, "base": {"probe": point(base_p, 0, 0.0),
                                                      "favourite_correct": [True, False] * 23 + [True],
                                                      "leak": [0.0] * 47}})
    groups = [{"arm": a, "label": a, "about": a, "sweep_value": None} for a in ("grpo", "grpo-slow", "up")]
    return {"tag": "syn", "groups": groups, "seeds": out, "max_steps": 16}


def test_conclusion_reads_the_arm_through_the_slower_rl_control(monkeypatch):
    """When slower GRPO is itself above GRPO's frontier, only the comparison with it decides."""
    from spsbench.lab import view as v
    from spsbench.lab.page_dynamics import conclusion

    view = v.SessionView(synthetic_session(2))
    table = {}
    monkeypatch.setattr(v, "matched_rows", lambda view, label, k, ref="grpo": {"verdict": table[(label, ref)]})
    table.update({("up", "grpo"): "above", ("grpo-slow", "grpo"): "above", ("up", "grpo-slow"): "on"})
    assert conclusion(view, "up").startswith("in this lab up behaves like slower RL")
    table[("up", "grpo-slow")] = "above"
    assert conclusion(view, "up").startswith("up does more than slow RL down")
    table.update({("up", "grpo"): "on", ("up", "grpo-slow"): "on"})
    assert conclusion(view, "up").endswith("this lab cannot tell it from either")
    table.update({("grpo-slow", "grpo"): "on", ("up", "grpo"): "on"})
    assert conclusion(view, "up") == "up stays on GRPO's frontier, like slower RL"


def test_arm_colours_are_fixed_and_shared_by_sweep_values():
    from spsbench.lab import plots
    from spsbench.lab import view as v

    session = synthetic_session(2)
    session["groups"] = [{"arm": "grpo", "label": "grpo"}, {"arm": "sps", "label": "sps k=1"},
                         {"arm": "sps", "label": "sps k=2"}]
    styles = plots.styles(v.SessionView(session))
    assert styles["grpo"]["color"] == plots.ARM_COLOURS["grpo"] == "#1f77b4"
    assert styles["sps k=1"]["color"] == styles["sps k=2"]["color"] == plots.ARM_COLOURS["sps"]
    assert styles["sps k=1"]["linestyle"] != styles["sps k=2"]["linestyle"]
    assert plots.arm_colour("my-arm") == plots.arm_colour("my-arm") in plots.SPARE
    assert len(set(plots.ARM_COLOURS.values())) == len(plots.ARM_COLOURS)


def test_lab_page_modules_import_without_torch():
    import subprocess
    import sys

    code = "import sys, spsbench.lab.page; print(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_frontier_and_versus_figures_are_deterministic(tmp_path):
    from spsbench.lab import plots
    from spsbench.lab import view as v

    view = v.SessionView(synthetic_session(3))
    a = plots.frontier_figure(tmp_path / "f.png", view).read_bytes()
    b = plots.versus_figure(tmp_path / "s.png", view, "grpo-slow").read_bytes()
    assert plots.frontier_figure(tmp_path / "f2.png", view).read_bytes() == a and len(a) > 20_000
    assert plots.versus_figure(tmp_path / "s2.png", view, "grpo-slow").read_bytes() == b
