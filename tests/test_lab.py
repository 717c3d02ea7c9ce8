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


def test_lab_task_data_is_the_generators_output(tmp_path):
    from spsbench import paths
    from spsbench.lab import task
    from spsbench.tasks import load_task

    assert (paths.tasks_dir() / task.DATA_FILE).read_text() == task.write_data(tmp_path / "x.jsonl").read_text()
    loaded = load_task(task.TASK)
    assert len(loaded.problems) == 47 and loaded.spec.grader == "math"
    assert {len(task.correct_decompositions(13, 3)), len(task.correct_decompositions(0, 2))} == {75, 1}


def test_lab_exact_cached_prefix_matches_full_sequences(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from spsbench.lab.exact import completion_logprobs, shared_prefix_logprobs

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    prompts, conts = [[5, 6, 7], [8, 9, 10]], [[11, 12], [13, 14], [12, 11]]
    with torch.no_grad():
        cached = shared_prefix_logprobs(model, prompts, [20], conts)
        full = completion_logprobs(model, [p for p in prompts for _ in conts], [[20, *c] for _ in prompts for c in conts])
    assert torch.allclose(cached.flatten(), full, atol=1e-4)


def test_lab_dynamics_settings_errors():
    from spsbench.lab.dynamics import DynamicsConfig
    from spsbench.lab.settings import apply_overrides, parse_sweep

    with pytest.raises(ConfigError, match="lab.arms"):
        apply_overrides(DynamicsConfig, ["lab.arms=grpo,ppo"], "lab")
    with pytest.raises(ConfigError, match="at least two"):
        parse_sweep("sps.irl_learning_rate=1e-6")
    assert parse_sweep("sps.irl_learning_rate=1e-6,1e-5") == ("sps.irl_learning_rate", [1e-6, 1e-5])


def test_lab_cli_unknown_recipe_key_fails_before_training(capsys, tmp_path):
    from spsbench.cli import main

    assert main(["lab", "dynamics", "--store", str(tmp_path / "l.db"), "--set", "rl.nope=1"]) == 2
    assert "unknown key rl.nope" in capsys.readouterr().err
    assert not (tmp_path / "l.db").exists()


def test_lab_dynamics_shrunken_end_to_end(tmp_path, monkeypatch):
    """Warm-up, an SPS sweep through the product's trainer, exact + sampled measurement, page: all measured."""
    import torch

    from spsbench.lab.dynamics import DynamicsConfig, run_dynamics
    from spsbench.lab.page import write_page
    from spsbench.lab.page_dynamics import View, latest_session
    from spsbench.lab.warmup import WarmupConfig
    from spsbench.store import Store

    torch.set_num_threads(1)
    monkeypatch.setenv("SPSBENCH_CACHE", str(tmp_path / "cache"))
    store = tmp_path / "lab.db"
    extra = ["rl.max_steps=2", "rl.save_steps=1", "sps.rl_steps_per_phase=1", "rl.per_device_train_batch_size=16"]
    session = run_dynamics(store, DynamicsConfig(arms=["sps"], seeds=1, eval_n=4), WarmupConfig(steps=60, hidden=32),
                           extra, sweep=("sps.irl_learning_rate", [1e-3, 1e-2]), log=lambda m: None)
    assert [r["run_name"] for r in session["runs"]] == ["lab-sps-s0-sps.irl_learning_rate=0.001",
                                                        "lab-sps-s0-sps.irl_learning_rate=0.01"]
    low, high = session["runs"]
    assert low["irl_steps"] == high["irl_steps"] == [1, 2]
    # ten times the IRL learning rate moved the weights more in every phase (AdamW: step ~ lr)
    assert all(h["rel_weight_change"] > 3 * lo["rel_weight_change"] > 0
               for lo, h in zip(low["sps_phases"], high["sps_phases"], strict=True))
    with Store(store) as db:
        view = View(*latest_session(db))
        evals = db.evaluations(task="lab-sums")
    base = view.base
    ks = [base["pass_at_k"][str(k)] for k in (1, 16, 256)]
    assert 0 < ks[0] < ks[1] < ks[2] <= 1 and 0 <= base["leak_mean"] <= base["leak_max"] <= 1
    for runs in view.groups.values():
        assert [c["step"] for c in runs[0]["checkpoints"]] == [1, 2]
        assert view.final(runs)[0]["pass_at_k"] != base["pass_at_k"]       # the IRL phases moved the policy
    assert len(evals) == 3 and all(ev.n == 4 for ev in evals)   # base + each run's last checkpoint, sampled
    files = write_page(store, tmp_path / "page")
    text = (tmp_path / "page" / "README.md").read_text()
    assert "## 3. Ablation: `--sweep sps.irl_learning_rate=0.001,0.01`" in text
    assert "| sps (sps.irl_learning_rate=0.01) (step 2) | 1 |" in text
    before = {f.name: f.read_bytes() for f in files}
    write_page(store, tmp_path / "page")
    assert {f.name: f.read_bytes() for f in files} == before


def test_lab_arm_config_layers_algorithm_recipe_lab_overlay_and_sweep(tmp_path):
    from spsbench.lab.dynamics import arm_config, run_name

    name = run_name("sps", 2, ("sps.irl_learning_rate", 1e-5))
    assert name == "lab-sps-s2-sps.irl_learning_rate=1e-05"
    cfg = arm_config("sps", tmp_path / "base", 2, ["sps.irl_learning_rate=1e-05"], name, tmp_path / "run")
    assert (cfg.algo, cfg.base, cfg.task, cfg.run_name) == ("sps", "grpo", "lab-sums", name)
    assert cfg.sps.irl_learning_rate == 1e-5 and cfg.sps.seed == 2 and cfg.rl["seed"] == 2
    assert cfg.rl["loss_type"] == "grpo" and cfg.rl["beta"] == 0.01          # from recipes/grpo.yaml
    assert cfg.rl["max_completion_length"] == 10 and not cfg.eval.enabled    # from recipes/lab/dynamics.yaml
    gspo = arm_config("gspo", tmp_path / "base", 0, [], "g", tmp_path / "g")
    assert gspo.rl["importance_sampling_level"] == "sequence" and gspo.optimizer_steps_per_generation == 4
    dapo = arm_config("dapo", tmp_path / "base", 0, [], "d", tmp_path / "d")
    assert dapo.dynamic_sampling.enabled and dapo.dynamic_sampling.soft_overlong_cache is None


def test_lab_page_verdicts_follow_the_seed_intervals():
    from spsbench.lab.page_dynamics import interval, verdict

    mean, low, high = interval([0.1, 0.2, 0.3])
    assert mean == pytest.approx(0.2) and low == pytest.approx(0.2 - 4.303 * 0.1 / 3 ** 0.5)
    assert interval([0.5]) == (0.5, 0.5, 0.5)
    assert verdict(0.08, 1.0, (0.11, 0.10, 0.12), (1.0, 0.999, 1.0)).startswith("sharpening (Pass@1 up, Pass@256 not up")
    assert verdict(0.08, 1.0, (0.06, 0.01, 0.11), (0.88, 0.7, 0.95)).startswith("squeezing without gain")
    assert verdict(0.08, 0.9, (0.2, 0.15, 0.25), (0.97, 0.95, 0.99)).startswith("exploration")
    assert verdict(0.08, 1.0, (0.06, 0.01, 0.11), (0.9, 0.6, 1.2)).startswith("no change")
    from spsbench.lab.page_dynamics import squeeze_verdict

    assert squeeze_verdict(-3.75, 16.7, (-2.55, -3.34, -1.77), (11.4, 10.0, 12.9)).startswith("Squeezed")
    assert squeeze_verdict(-3.75, 16.7, (-3.96, -5.3, -2.6), (13.5, -4.7, 31.8)).startswith("Not squeezed")
