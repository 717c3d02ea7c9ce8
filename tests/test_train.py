"""Training the tiny in-process model for a few steps of every algorithm (fast, CPU).

The grader is replaced by a local stand-in (reward 1.0 for completions of odd length: a random model
never solves arith, and the tests need reward variance) so these tests exercise the trainer, not math-verify; test_train_reward.py checks the
real wiring to `spsbench.grading.reward`.
"""

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from spsbench.testing import tiny_model
from spsbench.train.config import load_config
from spsbench.train.l2te import Scored, select_l2te
from spsbench.train.reward import TrainingError
from spsbench.train.run import build_trainer

SMALL = ["rl.num_generations=4", "rl.per_device_train_batch_size=8", "rl.gradient_accumulation_steps=1",
         "rl.max_completion_length=8", "rl.max_steps=2", "rl.save_steps=100", "rl.learning_rate=1e-3",
         "rl.logging_steps=100", "eval.enabled=false", "limit=16", "sps.rl_steps_per_phase=2",
         "sps.irl_batch_size=6", "sps.irl_micro_batch_size=4", "sps.irl_learning_rate=1e-3",
         "dynamic_sampling.soft_overlong_cache=null"]


def stand_in_reward(completions, golds, kind="math", choices=None):
    return [float(len(text) % 2) for text in completions]


@pytest.fixture(autouse=True)
def grader(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("spsbench.grading.reward", stand_in_reward)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)      # on a shared 2-core box, 2 spin-waiting threads are ~10x slower
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return str(tiny_model(tmp_path_factory.mktemp("tiny") / "model"))


def make(model_dir, tmp_path, algo, base=None, extra=(), callbacks=None):
    cfg = load_config(algo, base, overrides=[*SMALL, f"output_dir={tmp_path / 'run'}", *extra], model=model_dir)
    trainer, _ = build_trainer(cfg, callbacks)
    return trainer


def snapshot(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("algo, base", [("grpo", None), ("dapo", None), ("gspo", None), ("sps", None),
                                        ("sps", "dapo")])
def test_every_algorithm_trains_and_changes_parameters(model_dir, tmp_path, algo, base):
    extra = ["rl.steps_per_generation=2"] if algo == "gspo" else []
    trainer = make(model_dir, tmp_path, algo, base, extra)
    before = snapshot(trainer.model)
    trainer.train()
    after = snapshot(trainer.model)
    assert trainer.state.global_step == 2
    assert any(not torch.equal(before[k], after[k]) for k in before)
    if algo == "sps":
        assert len(trainer.sps_phase_log) == 1 and trainer.sps_phase_log[0]["step"] == 2
    if "dapo" in (algo, base):
        assert trainer.dynamic_sampling_log, "dynamic sampling never ran"
    info = json.loads((tmp_path / "run" / "spsbench_run.json").read_text())
    assert info["algo"] == {"sps": "sps+dapo" if base == "dapo" else "sps"}.get(algo, algo)
    assert info["base"] == (base or "grpo" if algo == "sps" else None) and info["base_model"] == model_dir


def test_irl_phase_runs_on_l2te_selection_and_leaves_rl_optimizer_alone(model_dir, tmp_path):
    trainer = make(model_dir, tmp_path, "sps", extra=["rl.max_steps=3", "sps.rl_steps_per_phase=2"])
    trainer.train()
    groups = trainer.sps_groups                 # step 3's rollouts: the next phase's input
    assert all(r["logp"] is not None for g in groups for r in g) and not trainer._sps_pending  # from the loss
    assert len(groups) == 2 and all(len(g) == 4 for g in groups)
    rl_state = {k: v.clone() for s in trainer.optimizer.state.values() for k, v in s.items()
                if isinstance(v, torch.Tensor)}
    rl_sched = trainer.lr_scheduler.state_dict()
    before = snapshot(trainer.model)
    record = trainer.run_irl_phase()
    expected = select_l2te([[Scored(r["logp"], r["correct"]) for r in g] for g in groups], 3, 0.5)
    chosen = [groups[g][i]["completion_ids"] for g, idx in enumerate(expected) for i in idx]
    assert [r["completion_ids"] for r in trainer.sps_last_selection] == chosen
    assert record["sequences"] == 6 == len(chosen)
    after_state = {k: v for s in trainer.optimizer.state.values() for k, v in s.items()
                   if isinstance(v, torch.Tensor)}
    assert all(torch.equal(rl_state[k], after_state[k]) for k in rl_state)
    assert trainer.lr_scheduler.state_dict() == rl_sched
    assert any(not torch.equal(before[k], p) for k, p in trainer.model.named_parameters())
    assert record["rel_weight_change"] > 0 and record["irl_loss_after"] < record["irl_loss_before"]
    assert trainer.irl_optimizer.state_dict()["state"][0]["step"] == 8   # 2 phases x 4 irl_steps


def test_recorded_logps_match_the_policy(model_dir, tmp_path):
    trainer = make(model_dir, tmp_path, "sps", extra=["rl.max_steps=1", "sps.rl_steps_per_phase=5"])
    trainer.train()
    row = trainer.sps_groups[0][0]
    ids = torch.tensor([row["prompt_ids"] + row["completion_ids"]])
    with torch.no_grad():
        logits = trainer.model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
    targets = ids[0, 1:]
    token_logps = logits.gather(1, targets[:, None])[len(row["prompt_ids"]) - 1:, 0]
    # one optimizer step happened after generation; at lr 1e-3 the value moves a little, not a lot
    assert abs(token_logps.sum().item() - row["logp"]) < 0.5 * abs(row["logp"]) + 1.0
    assert isinstance(row["correct"], bool) and row["reward"] in (0.0, 1.0)


def degenerate_reward(completions, golds, kind="math", choices=None):
    # prompts with an even gold answer: every completion gets 1.0 (no signal); odd ones: mixed rewards
    out = []
    for text, gold in zip(completions, golds, strict=True):
        out.append(1.0 if int(gold) % 2 == 0 else float(len(text) % 2))
    return out


def test_dynamic_sampling_drops_degenerate_groups_and_refills(model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("spsbench.grading.reward", degenerate_reward)
    trainer = make(model_dir, tmp_path, "dapo", extra=["dynamic_sampling.max_resample_times=4",
                                                       "dynamic_sampling.soft_overlong_cache=null"])
    trainer.model.train()
    odd_free = [row for row in trainer.train_dataset if int(row["answer"]) % 2 == 0][:2]
    inputs = [dict(row) for row in odd_free for _ in range(4)]   # a batch of two degenerate groups
    out = trainer._generate_and_score_completions(inputs)
    log = trainer.dynamic_sampling_log[-1]
    assert log["rounds"] >= 1 and log["dropped_groups"] >= 2
    rewards = out["task_rewards"].view(-1, 4)
    kept = (rewards.max(1).values > rewards.min(1).values).sum().item()
    assert kept == 2 - log["short_groups"]
    n = out["prompt_ids"].size(0)
    assert n == 8 and all(out[k].size(0) == n for k in ("completion_ids", "completion_mask", "advantages"))
    assert out["num_items_in_batch"] == out["completion_mask"].sum()


def test_nan_loss_stops_with_one_line_and_keeps_last_checkpoint(model_dir, tmp_path):
    trainer = make(model_dir, tmp_path, "grpo", extra=["rl.max_steps=3", "rl.save_steps=1"])
    real = trainer.compute_loss

    def nan_on_step_2(*args, **kwargs):
        loss = real(*args, **kwargs)
        return loss * float("nan") if trainer.state.global_step == 1 else loss

    trainer.compute_loss = nan_on_step_2
    with pytest.raises(TrainingError, match="loss is nan at step 2") as err:
        trainer.train()
    assert "\n" not in str(err.value)
    assert (tmp_path / "run" / "checkpoint-1" / "model.safetensors").is_file()
    assert not (tmp_path / "run" / "checkpoint-2").exists()


def test_non_finite_weights_stop_with_one_line(model_dir, tmp_path):
    trainer = make(model_dir, tmp_path, "grpo", extra=["rl.max_steps=1"])
    with torch.no_grad():
        next(trainer.model.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingError, match="not finite"):
        trainer.train()


def test_reward_function_that_raises_is_one_clear_error(model_dir, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("grader exploded")

    monkeypatch.setattr("spsbench.grading.reward", broken)
    trainer = make(model_dir, tmp_path, "grpo", extra=["rl.max_steps=1"])
    with pytest.raises(TrainingError, match="grader exploded"):
        trainer.train()


def test_cli_missing_model_exits_non_zero_with_one_line(tmp_path, capsys):
    from spsbench.cli import main

    assert main(["train", "--algo", "sps", "--model", str(tmp_path / "nope"), "--no-eval"]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not exist" in err and len(err.splitlines()) == 1


def test_missing_model_is_one_line_error(tmp_path):
    from spsbench.errors import SpsbenchError

    cfg = load_config("grpo", overrides=SMALL, model=str(tmp_path / "nope"))
    with pytest.raises(SpsbenchError, match="does not exist"):
        build_trainer(cfg)


def test_rng_streams_survive_the_eval_callback(model_dir, tmp_path, monkeypatch):
    from spsbench.train.callbacks import EvaluateCheckpointCallback

    calls = []

    def fake_evaluate(model, tasks, sampling, **kwargs):
        torch.rand(10), np.random.rand(3), random.random()      # an evaluator that consumes randomness
        calls.append((model, tuple(tasks), kwargs["tags"]))
        return []

    monkeypatch.setattr("spsbench.evaluate.evaluate", fake_evaluate)
    cfg = load_config("sps", overrides=[*SMALL, "eval.enabled=true", "eval.isolate=false"], model=model_dir)
    cfg.run_name = "r1"
    callback = EvaluateCheckpointCallback(cfg, base_model=model_dir)

    class Args:
        output_dir = str(tmp_path)

    class State:
        global_step, is_world_process_zero = 7, True

    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    callback.on_save(Args(), State(), None)
    with_eval = (torch.rand(3), np.random.rand(2), random.random())
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    without = (torch.rand(3), np.random.rand(2), random.random())
    assert torch.equal(with_eval[0], without[0]) and (with_eval[1] == without[1]).all()
    assert with_eval[2] == without[2]
    model, tasks, tags = calls[0]
    assert model.endswith("checkpoint-7") and tasks == ("arith",)
    assert (tags.run_name, tags.step, tags.algo) == ("r1", 7, "sps")


def test_base_model_is_evaluated_untagged_before_training_but_not_on_resume(model_dir, tmp_path, monkeypatch):
    from spsbench.train.callbacks import EvaluateCheckpointCallback

    calls = []
    monkeypatch.setattr("spsbench.evaluate.evaluate",
                        lambda model, tasks, sampling, **kw: calls.append((model, kw["tags"])) or ["scores"])
    cfg = load_config("sps", overrides=[*SMALL, "eval.enabled=true", "eval.isolate=false"], model=model_dir)
    callback = EvaluateCheckpointCallback(cfg, base_model=model_dir)

    class State:
        global_step, is_world_process_zero = 0, True

    callback.on_train_begin(None, State(), None)
    assert calls == [(model_dir, None)] and callback.base_results == ["scores"] and callback.results == []
    State.global_step = 4                                   # resumed from checkpoint-4: the base is done
    callback.on_train_begin(None, State(), None)
    overrides = [*SMALL, "eval.enabled=true", "eval.isolate=false", "eval.base=false"]
    off = EvaluateCheckpointCallback(load_config("sps", overrides=overrides, model=model_dir), base_model=model_dir)
    State.global_step = 0
    off.on_train_begin(None, State(), None)
    assert len(calls) == 1


def test_isolated_evaluation_stores_base_and_checkpoints_with_tags(model_dir, tmp_path):
    """The default: each evaluation runs in a child process (real evaluator, hf engine, real store)."""
    from spsbench.store import Store

    store = tmp_path / "results.db"
    trainer = make(model_dir, tmp_path, "grpo", extra=[
        "rl.max_steps=2", "rl.save_steps=2", "eval.enabled=true", "eval.limit=2", "eval.n=2",
        "eval.max_tokens=4", "eval.engine=hf", f"eval.store={store}", "run_name=iso"])
    [callback] = [c for c in trainer.callback_handler.callbacks if type(c).__name__ == "EvaluateCheckpointCallback"]
    trainer.train()
    assert [step for step, _ in callback.results] == [2] and callback.base_results[0].task == "arith"
    assert callback.results[0][1][0].scores["avg@n"]["value"] >= 0.0
    with Store(store) as s:
        evals = s.evaluations()
    tagged = {(e.run_name, e.step, e.algo) for e in evals}
    assert tagged == {(None, None, None), ("iso", 2, "grpo")} and all(e.n == 2 for e in evals)


def test_resume_restores_sps_phase_and_irl_optimizer(model_dir, tmp_path):
    extra = ["rl.max_steps=4", "rl.save_steps=2", "sps.rl_steps_per_phase=2"]
    first = make(model_dir, tmp_path, "sps", extra=extra)
    first.train()
    state = torch.load(tmp_path / "run" / "checkpoint-2" / "sps_state.pt", weights_only=True)
    assert state["phase_index"] == 1 and state["last_irl_step"] == 2 and state["buffer"] == "dropped"
    assert state["irl_optimizer"]["state"][0]["step"] == 4
    resumed = make(model_dir, tmp_path, "sps", extra=extra)
    resumed.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-2"))
    assert resumed.sps_phase_index == 2 and resumed.sps_last_irl_step == 4
    assert resumed.irl_optimizer.state_dict()["state"][0]["step"] == 8     # continued, not restarted
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.allclose(resumed.irl_optimizer.state_dict()["state"][0][key],
                              first.irl_optimizer.state_dict()["state"][0][key], atol=1e-6)


def test_evaluating_checkpoints_changes_neither_weights_nor_rng_stream(model_dir, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    calls = []

    def evaluating(model, tasks, sampling, **kwargs):     # what the hf engine does: its own model instance
        calls.append(model)
        policy = AutoModelForCausalLM.from_pretrained(model)
        policy.generate(torch.tensor([[5, 6, 7]]), do_sample=True, max_new_tokens=4)
        return []

    monkeypatch.setattr("spsbench.evaluate.evaluate", evaluating)
    runs = []
    for name, flag in (("with", "true"), ("without", "false")):
        trainer = make(model_dir, tmp_path / name, "sps", extra=["rl.max_steps=2", "rl.save_steps=1",
                                                                 f"eval.enabled={flag}", "eval.isolate=false"])
        trainer.train()
        runs.append(snapshot(trainer.model))
    assert len(calls) == 3 and calls[-1].endswith("checkpoint-2")
    assert Path(calls[0]).resolve() == Path(model_dir).resolve()     # eval.base: the base model first
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
