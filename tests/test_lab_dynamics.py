"""`lab dynamics`, shrunken but real: peaked bases, the product's trainer with the lab's probes, paired seeds,
the mechanism controls' advantage masks inside the product's loss, and the session's page."""

from __future__ import annotations

import pytest
import torch

from spsbench.errors import ConfigError

TINY_WARMUP = {"steps": 40, "hidden": 32}
SHRUNK = ["rl.max_steps=4", "sps.rl_steps_per_phase=2", "rl.per_device_train_batch_size=16"]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """GRPO and SPS x 2 paired seeds, 4 steps, an IRL phase every 2 steps, probed every step."""
    from spsbench.lab.dynamics import DynamicsConfig, run_dynamics
    from spsbench.lab.warmup import WarmupConfig

    tmp = tmp_path_factory.mktemp("lab")
    mp = pytest.MonkeyPatch()
    mp.setenv("SPSBENCH_CACHE", str(tmp / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = DynamicsConfig(arms=["grpo", "sps"], seeds=2, workers=1, probe_every=1, eval_n=4, tag="t")
        out = run_dynamics(tmp / "data", tmp / "lab.db", cfg, WarmupConfig(**TINY_WARMUP), SHRUNK, log=lambda m: None)
    finally:
        torch.set_num_threads(threads)
        mp.undo()
    return out, tmp


def test_seeds_pair_the_arms_until_the_first_irl_phase(session):
    """Same base, data order and rollout stream: GRPO and SPS measure the same policy up to the IRL phase."""
    data, _ = session
    for seed in data["seeds"]:
        grpo, sps = seed["runs"]
        assert (grpo["arm"], sps["arm"]) == ("grpo", "sps")
        assert [(p["step"], p["when"]) for p in grpo["points"]] == [(1, "rl"), (2, "rl"), (3, "rl"), (4, "rl")]
        assert [(p["step"], p["when"]) for p in sps["points"]] == [(1, "rl"), (2, "pre"), (2, "post"), (3, "rl"),
                                                                     (4, "pre"), (4, "post")]
        assert grpo["points"][0]["p"] == sps["points"][0]["p"]       # step 1: bit-identical
        assert grpo["points"][1]["p"] == sps["points"][1]["p"]       # step 2, before SPS's IRL phase
        assert sps["points"][2]["p"] != sps["points"][1]["p"]        # the IRL phase moved the policy
        assert [p["step"] for p in sps["irl"]] == [2, 4]
    a, b = (s["base"]["probe"]["p"] for s in data["seeds"])
    assert a != b                                                     # each seed its own base
    assert data["seeds"][0]["base"]["favourite_correct"] != data["seeds"][1]["base"]["favourite_correct"]


def test_probes_are_consistent_measures(session):
    from spsbench.lab import view as v

    data, _ = session
    view = v.SessionView(data)
    base = view.bases()[0]
    assert len(base["p"]) == 47 and all(0 <= p <= 1 for p in base["p"])
    assert 0 < v.pass_k(base, 1) < v.pass_k(base, 16) < v.pass_k(base, 256) <= 1
    seed0 = data["seeds"][0]["base"]
    assert sum(seed0["favourite_correct"]) == 24 and len(seed0["leak"]) == 47      # round(0.5 x 47)
    # the product's evaluator (sampled, base 0) against the exact Pass@1: within its own interval
    sampled = seed0["sampled"]
    assert sampled["n"] == 4 and sampled["avg_low"] - 0.02 <= v.pass_k(base, 1) <= sampled["avg_high"] + 0.02
    for label in view.labels:
        for run in view.runs(label):
            for seg in v.segments(view, run):
                assert seg["d_dom"] + seg["d_other"] + seg["d_wrong"] == pytest.approx(0, abs=1e-6)
            # a post-IRL probe reads the pre-IRL dominant: its probability then was the greedy mass
            for prev, point in zip(run["points"][:-1], run["points"][1:], strict=True):
                if point["when"] == "post":
                    assert prev["when"] == "pre" and prev["step"] == point["step"]
    kinds = [s["kind"] for s in v.segments(view, view.runs("sps")[0])]
    assert kinds == ["rl", "irl", "rl", "irl"]
    assert [s["kind"] for s in v.segments(view, view.runs("grpo")[0])] == ["rl", "rl"]


def test_session_is_committed_data_and_the_page_is_deterministic(session):
    from spsbench.lab import record
    from spsbench.lab.page import write_page

    data, tmp = session
    stored = record.load_sessions(tmp / "data")
    assert [s["tag"] for s in stored] == ["t"] and stored[0]["seeds"][1]["runs"][1]["points"][-1]["when"] == "post"
    (tmp / "page").mkdir()
    (tmp / "page" / "stale.png").write_bytes(b"old")
    files = write_page(tmp / "data", tmp / "page")
    text = (tmp / "page" / "README.md").read_text()
    assert "## 2. Further arms: `t`" in text and "| sps vs grpo |" in text and "-0.0 " not in text
    assert "### The frontier: Pass@k at matched Pass@1" in text and "| sps |" in text
    assert "IRL phase at step 2" in text and "favourite wrong" in text
    assert not (tmp / "page" / "stale.png").exists()
    before = {f.name: f.read_bytes() for f in files}
    write_page(tmp / "data", tmp / "page")
    assert {f.name: f.read_bytes() for f in files} == before


def test_advantage_masks_split_grpos_gradient_exactly(tmp_path, monkeypatch):
    """grpo-pos + grpo-neg = GRPO: with beta 0 and ratio 1 the two masked losses' gradients add up to the full
    one, and the lab trainer really hands the product's loss the masked advantages."""
    from spsbench.lab.trainer import lab_trainer, mask_advantages
    from spsbench.train.config import load_config
    from spsbench.train.run import build_trainer
    from tests.fixtures.tiny_model import tiny_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("spsbench.grading.reward", lambda texts, golds, kind="math", choices=None:
                        [float(len(t) % 2) for t in texts])
    torch.set_num_threads(1)
    model = str(tiny_model(tmp_path / "model"))
    items = ["rl.num_generations=4", "rl.per_device_train_batch_size=8", "rl.gradient_accumulation_steps=1",
             "rl.max_completion_length=6", "rl.max_steps=1", "rl.beta=0.0", "eval.enabled=false", "limit=8",
             f"output_dir={tmp_path / 'run'}", "rl.save_steps=100"]
    counts = {}
    probes = type("P", (), {"advantages": counts, "log": []})()
    trainer, _ = build_trainer(load_config("grpo", overrides=items, model=model), wrap=lab_trainer("negative", probes))
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1          # set by Trainer's loop, which this test skips
    counts.update(nonzero=0, dropped=0)
    batch = next(iter(trainer.get_train_dataloader()))
    out = trainer._generate_and_score_completions(batch)
    assert (out["advantages"] <= 0).all() and counts["dropped"] > 0 and counts["nonzero"] >= counts["dropped"]
    full = super(type(trainer), trainer)._generate_and_score_completions(batch)     # the product's, unmasked
    assert (full["advantages"] > 0).any() and (full["advantages"] < 0).any()

    def grads(advantages):
        trainer.model.zero_grad(set_to_none=True)
        trainer.compute_loss(trainer.model, {**full, "advantages": advantages}).backward()
        return torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None])

    g_all = grads(full["advantages"])
    g_pos = grads(mask_advantages(full["advantages"], "positive")[0])
    g_neg = grads(mask_advantages(full["advantages"], "negative")[0])
    assert torch.allclose(g_pos + g_neg, g_all, atol=1e-6) and g_pos.abs().sum() > 0 and g_neg.abs().sum() > 0
    assert not torch.allclose(g_pos, g_all)


def test_arms_resolve_to_the_products_configs(tmp_path):
    from spsbench.lab import arms
    from spsbench.lab.dynamics import Group, arm_config, boundary

    names = arms.available()
    assert {"grpo", "sps", "grpo-slow", "grpo-pos", "grpo-neg", "sps-irl1e-4", "sps-irl3e-4"} <= set(names)
    configs = {n: arm_config(Group(n), tmp_path / "base", 3, [], f"r-{n}", tmp_path / n) for n in names}
    assert configs["grpo"].rl["learning_rate"] == 1e-3 and configs["grpo-slow"].rl["learning_rate"] == 2.5e-4
    assert configs["sps"].sps.irl_learning_rate == 1e-3 and configs["sps-irl1e-4"].sps.irl_learning_rate == 1e-4
    assert configs["sps"].algo == "sps" and configs["sps"].base == "grpo" and configs["sps"].rl["seed"] == 3
    assert configs["grpo"].rl["loss_type"] == "grpo" and configs["grpo"].rl["beta"] == 0.01   # recipes/grpo.yaml
    assert arms.load_arm("grpo-pos").advantages == "positive" and arms.load_arm("grpo-neg").advantages == "negative"
    assert boundary(configs["grpo"]) == boundary(configs["sps"]) == 10
    assert all(c.task == "lab-sums" and not c.eval.enabled for c in configs.values())
    swept = arm_config(Group("sps", "sps.irl_learning_rate", 3e-3), tmp_path / "b", 0, [], "s", tmp_path / "s")
    assert swept.sps.irl_learning_rate == 3e-3


def test_arm_and_dynamics_errors_are_one_line(tmp_path, capsys):
    from spsbench.cli import main
    from spsbench.lab import arms
    from spsbench.lab.dynamics import DynamicsConfig, groups_of

    with pytest.raises(ConfigError, match="unknown arm 'ppo'"):
        DynamicsConfig(arms=["grpo", "ppo"])
    with pytest.raises(ConfigError, match="advantage mask is a GRPO control"):
        arms.Arm(name="x", algo="sps", advantages="positive")
    with pytest.raises(ConfigError, match="lab.seeds"):
        DynamicsConfig(seeds=0)
    assert [g.label for g in groups_of(["sps"], None)] == ["grpo", "sps"]          # GRPO always, first
    assert [g.label for g in groups_of(["grpo", "sps"], ("k", [1, 2]))] == ["grpo", "sps k=1", "sps k=2"]
    db = tmp_path / "l.db"
    for argv, message in ((["--set", "rl.learning_rate=nan"], "finite"), (["--set", "rl.nope=1"], "unknown key"),
                          (["--arms", "grpo,nope"], "unknown arm"), (["--sweep", "sps.irl_learning_rate=1e-3,.inf"],
                                                                     "finite")):
        assert main(["lab", "dynamics", "--store", str(db), "--data", str(tmp_path / "d"), *argv]) == 2
        assert message in capsys.readouterr().err
    assert not db.exists() and not (tmp_path / "d").exists()


def test_a_set_key_that_replaces_an_arms_own_setting_is_said():
    from spsbench.lab.dynamics import Group, shadowed

    groups = [Group("grpo"), Group("grpo-slow"), Group("sps", "sps.irl_learning_rate", 1e-4)]
    warnings = shadowed(groups, ["rl.learning_rate=1e-3", "rl.max_steps=5"])
    assert warnings == ["arm grpo-slow: rl.learning_rate from --set/--sweep replaces the arm's own value "
                        "(recipes/lab/arms/grpo-slow.yaml)",
                        "arm sps sps.irl_learning_rate=0.0001: sps.irl_learning_rate from --set/--sweep replaces "
                        "the arm's own value (recipes/lab/arms/sps.yaml)"]
