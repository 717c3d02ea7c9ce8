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

from spsbench.errors import TrainingError
from spsbench.train.config import load_config
from spsbench.train.run import build_trainer
from spsbench.train.sps import irl as sps_irl
from spsbench.train.sps.l2te import Scored, select_l2te
from tests.fixtures.tiny_model import tiny_model

SMALL = ["rl.num_generations=4", "rl.per_device_train_batch_size=8", "rl.gradient_accumulation_steps=1",
         "rl.max_completion_length=8", "rl.max_steps=2", "rl.save_steps=100", "rl.learning_rate=1e-3",
         "rl.logging_steps=100", "eval.enabled=false", "limit=16", "sps.rl_steps_per_phase=2", "sps.allow_no_irl=true",
         "sps.l2te_truncated=keep",   # the tiny random model rarely ends a completion: keep them selectable
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


def make(model_dir, tmp_path, algo, base=None, extra=(), callbacks=None, resume=None):
    """A trainer into tmp_path/run (`resume`: the checkpoint a second trainer of the same run continues)."""
    cfg = load_config(algo, base, overrides=[*SMALL, f"output_dir={tmp_path / 'run'}", *extra], model=model_dir)
    trainer, _ = build_trainer(cfg, callbacks, resume=resume)
    return trainer


def killed_after(run, step):
    """The run folder as a kill after checkpoint-`step` leaves it: a resume from an earlier checkpoint would
    overwrite the later ones, which spsbench refuses (tests/test_hostile_train.py)."""
    import shutil

    for later in run.glob("checkpoint-*"):
        if int(later.name.split("-")[1]) > step:
            shutil.rmtree(later)


def snapshot(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("algo, base", [("grpo", None), ("dapo", None), ("gspo", None), ("sps", None),
                                        ("sps", "dapo"), ("sps", "gspo")])
def test_every_algorithm_trains_and_changes_parameters(model_dir, tmp_path, algo, base):
    gspo = "gspo" in (algo, base)
    extra = ["optimizer_steps_per_generation=2"] if gspo else []     # both steps from one generation batch
    trainer = make(model_dir, tmp_path, algo, base, extra)
    generations = []
    real = trainer._generate_and_score_completions
    trainer._generate_and_score_completions = lambda inputs: generations.append(len(inputs)) or real(inputs)
    before = snapshot(trainer.model)
    trainer.train()
    after = snapshot(trainer.model)
    assert trainer.state.global_step == 2
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert len(generations) == (1 if gspo else 2)
    if algo == "sps":
        [phase] = trainer.phase.log
        # SPS over DAPO buffers every group generated, the ones dynamic sampling dropped included
        generated = sum((e["rounds"] + 1) * e["groups"] for e in getattr(trainer, "dynamic_sampling_log", []))
        groups = generated if base == "dapo" else 4
        assert phase["step"] == 2 and phase["groups"] == groups and phase["sequences"] == 3 * groups
        assert phase["rel_weight_change"] > 0 and phase["irl_loss_after"] < phase["irl_loss_before"]
    if "dapo" in (algo, base):
        assert trainer.dynamic_sampling_log, "dynamic sampling never ran"
    info = json.loads((tmp_path / "run" / "spsbench_run.json").read_text())
    assert info["algo"] == (f"sps+{base}" if base else algo)
    assert info["base"] == (base or "grpo" if algo == "sps" else None) and info["base_model"] == model_dir


def test_irl_phase_runs_on_l2te_selection_and_leaves_rl_optimizer_alone(model_dir, tmp_path):
    trainer = make(model_dir, tmp_path, "sps", extra=["rl.max_steps=3", "sps.rl_steps_per_phase=2"])
    trainer.train()
    groups = trainer.rollouts.groups                 # step 3's rollouts: the next phase's input
    assert all(r["logp"] is not None for g in groups for r in g) and not trainer.rollouts.pending  # from the loss
    assert len(groups) == 2 and all(len(g) == 4 for g in groups)
    rl_state = {k: v.clone() for s in trainer.optimizer.state.values() for k, v in s.items()
                if isinstance(v, torch.Tensor)}
    rl_sched = trainer.lr_scheduler.state_dict()
    before = snapshot(trainer.model)
    record = trainer.run_irl_phase()
    expected = select_l2te([[Scored(r["logp"], r["correct"]) for r in g] for g in groups], 3, 0.5, seed=0,
                           phase=1)
    chosen = [groups[g][i]["completion_ids"] for g, idx in enumerate(expected) for i in idx]
    assert [r["completion_ids"] for r in trainer.phase.last_selection] == chosen
    assert record["sequences"] == 6 == len(chosen)
    after_state = {k: v for s in trainer.optimizer.state.values() for k, v in s.items()
                   if isinstance(v, torch.Tensor)}
    assert all(torch.equal(rl_state[k], after_state[k]) for k in rl_state)
    assert trainer.lr_scheduler.state_dict() == rl_sched
    assert any(not torch.equal(before[k], p) for k, p in trainer.model.named_parameters())
    assert record["rel_weight_change"] > 0 and record["irl_loss_after"] < record["irl_loss_before"]
    assert trainer.irl_optimizer.state_dict()["state"][0]["step"] == 8   # 2 phases x 4 irl_steps


def batch_logps(model, rows, temperature):
    """Summed completion log-probs of `rows` laid out as TRL's batch (left-padded prompts), at `temperature`."""
    width = max(len(r["prompt_ids"]) for r in rows)
    out = []
    for row in rows:
        pad = width - len(row["prompt_ids"])
        assert row["prompt_pad"] == pad                       # recorded padding == the batch's
        ids = torch.tensor([[0] * pad + row["prompt_ids"] + row["completion_ids"]])
        mask = torch.tensor([[0] * pad + [1] * (ids.size(1) - pad)])
        with torch.no_grad():
            logps = (model(input_ids=ids, attention_mask=mask).logits[0, :-1] / temperature).log_softmax(-1)
        token = logps.gather(1, ids[0, 1:, None])[width - 1:, 0]
        out.append(token.sum().item())
    return out


def test_recorded_logps_match_the_policy(model_dir, tmp_path):
    """Captured from the loss's forward = log-probs under the generating policy at the rollout temperature."""
    from transformers import AutoModelForCausalLM

    trainer = make(model_dir, tmp_path, "sps", extra=["rl.max_steps=1", "sps.rl_steps_per_phase=5",
                                                      "rl.temperature=0.7"])
    trainer.train()
    rows = [r for g in trainer.rollouts.groups for r in g]        # one generation batch: 8 rows, 2 prompts
    generating = AutoModelForCausalLM.from_pretrained(model_dir)   # the weights before the optimizer step
    expected = batch_logps(generating, rows, 0.7)
    recorded = [r["logp"] for r in rows]
    assert recorded == pytest.approx(expected, rel=1e-5, abs=1e-4)
    assert max(abs(a - b) for a, b in zip(batch_logps(generating, rows, 1.0), recorded, strict=True)) > 1e-2
    assert all(isinstance(r["correct"], bool) and r["reward"] in (0.0, 1.0) for r in rows)


def test_filled_logps_equal_trl_captured_ones(model_dir, tmp_path):
    """Rows not trained on before a phase closes get the same value TRL's forward gave the others."""
    trainer = make(model_dir, tmp_path, "sps", extra=["rl.max_steps=1", "sps.rl_steps_per_phase=5",
                                                      "rl.temperature=0.7", "rl.learning_rate=0"])
    trainer.train()
    groups = trainer.rollouts.groups
    captured = [[r["logp"] for r in g] for g in groups]
    for g in groups:                                          # a whole group and part of one
        for r in g[: len(g) if g is groups[0] else 2]:
            r["logp"] = None
    trainer._fill_missing_logps(groups)
    assert [[r["logp"] for r in g] for g in groups] == [pytest.approx(c, rel=1e-5, abs=1e-4) for c in captured]


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

    def fake_evaluate(request, **kwargs):
        torch.rand(10), np.random.rand(3), random.random()      # an evaluator that consumes randomness
        calls.append((request.model, request.tasks, request.tags))
        return []

    monkeypatch.setattr("spsbench.train.eval_worker.evaluate", fake_evaluate)
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
    monkeypatch.setattr("spsbench.train.eval_worker.evaluate",
                        lambda request, **kw: calls.append((request.model, request.tags)) or ["scores"])
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
    assert callback.results[0][1][0].scores.avg.value >= 0.0
    with Store(store) as s:
        evals = s.evaluations()
    tagged = {(e.run_name, e.step, e.algo) for e in evals}
    assert tagged == {(None, None, None), ("iso", 2, "grpo")} and all(e.n == 2 for e in evals)


def test_resume_restores_sps_phase_and_irl_optimizer(model_dir, tmp_path):
    extra = ["rl.max_steps=4", "rl.save_steps=2", "sps.rl_steps_per_phase=2"]
    first = make(model_dir, tmp_path, "sps", extra=extra)
    first.train()
    state = torch.load(tmp_path / "run" / "checkpoint-2" / "sps_state.pt", weights_only=True)
    assert state["phase_index"] == 1 and state["last_irl_step"] == 2 and state["buffer"] == []   # phase just ran
    assert state["irl_optimizer"]["state"][0]["step"] == 4
    checkpoint = str(tmp_path / "run" / "checkpoint-2")
    killed_after(tmp_path / "run", 2)
    resumed = make(model_dir, tmp_path, "sps", extra=extra, resume=checkpoint)
    resumed.train(resume_from_checkpoint=checkpoint)
    assert resumed.phase.index == 2 and resumed.phase.last_irl_step == 4
    assert resumed.irl_optimizer.state_dict()["state"][0]["step"] == 8     # continued, not restarted
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.allclose(resumed.irl_optimizer.state_dict()["state"][0][key],
                              first.irl_optimizer.state_dict()["state"][0][key], atol=1e-6)


def test_evaluating_checkpoints_changes_neither_weights_nor_rng_stream(model_dir, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    calls = []

    def evaluating(request, **kwargs):     # what the hf engine does: its own model instance
        calls.append(request.model)
        policy = AutoModelForCausalLM.from_pretrained(request.model)
        policy.generate(torch.tensor([[5, 6, 7]]), do_sample=True, max_new_tokens=4)
        return []

    monkeypatch.setattr("spsbench.train.eval_worker.evaluate", evaluating)
    runs = []
    for name, flag in (("with", "true"), ("without", "false")):
        trainer = make(model_dir, tmp_path / name, "sps", extra=["rl.max_steps=2", "rl.save_steps=1",
                                                                 f"eval.enabled={flag}", "eval.isolate=false"])
        trainer.train()
        runs.append(snapshot(trainer.model))
    assert len(calls) == 3 and calls[-1].endswith("checkpoint-2")
    assert Path(calls[0]).resolve() == Path(model_dir).resolve()     # eval.base: the base model first
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def completion_nll_sum(model, row):
    ids = torch.tensor([row["prompt_ids"] + row["completion_ids"]])
    logps = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
    return -logps.gather(1, ids[0, 1:, None])[len(row["prompt_ids"]) - 1:, 0].sum()


def test_irl_gradient_comes_only_from_the_selected_rows(model_dir, tmp_path):
    """The IRL step's gradient = the token-mean cross-entropy gradient of exactly the L2TE selection."""
    from transformers import AutoModelForCausalLM

    trainer = make(model_dir, tmp_path, "sps", extra=["rl.max_steps=1", "sps.rl_steps_per_phase=5",
                                                      "sps.irl_steps=1", "sps.irl_batch_size=64"])
    trainer.train()
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    grads = {}
    make_optimizer = trainer._irl_optimizer

    def recording(params):
        optimizer = make_optimizer(params)
        step = optimizer.step
        optimizer.step = lambda *a, **k: grads.update(
            {n: p.grad.clone() for n, p in trainer.model.named_parameters()}) or step(*a, **k)
        return optimizer

    trainer._irl_optimizer = recording
    trainer.run_irl_phase()
    rows = [r for g in trainer.phase.last_groups for r in g]
    selected = trainer.phase.last_selection
    assert len(selected) == 6 < len(rows)                    # 2 micro-batches of 4: accumulation exercised
    reference = AutoModelForCausalLM.from_pretrained(model_dir)
    reference.load_state_dict(start)
    tokens = sum(len(r["completion_ids"]) for r in selected)
    (sum(completion_nll_sum(reference, r) for r in selected) / tokens).backward()
    for name, p in reference.named_parameters():
        assert torch.allclose(grads[name], p.grad, rtol=1e-4, atol=1e-7), name
    reference.zero_grad()
    everything = sum(len(r["completion_ids"]) for r in rows)
    (sum(completion_nll_sum(reference, r) for r in rows) / everything).backward()
    assert not all(torch.allclose(grads[n], p.grad, rtol=1e-4, atol=1e-7) for n, p in reference.named_parameters())


def nan_gradient_hook(trainer):
    p = next(trainer.model.parameters())
    return p.register_hook(lambda g: torch.full_like(g, float("nan")))


def poison_irl(trainer, monkeypatch, kind):
    """Make the IRL phase produce a NaN loss, finite loss with NaN gradients, or NaN weights."""
    if kind == "loss":
        real_nll = sps_irl.completion_nll
        monkeypatch.setattr(sps_irl, "completion_nll", lambda *a, **k: real_nll(*a, **k) * float("nan"))
    elif kind == "gradients":
        real_phase = trainer.run_irl_phase

        def phase():
            handle = nan_gradient_hook(trainer)
            try:
                return real_phase()
            finally:
                handle.remove()

        trainer.run_irl_phase = phase
    else:
        make_optimizer = trainer._irl_optimizer

        def breaking(params):
            optimizer = make_optimizer(params)
            step = optimizer.step
            optimizer.step = lambda *a, **k: (step(*a, **k), params[0].data.fill_(float("inf")))[0]
            return optimizer

        trainer._irl_optimizer = breaking


@pytest.mark.parametrize("kind, extra, message", [
    ("loss", [], "the IRL loss is nan"),
    ("gradients", [], "the IRL gradients are not finite"),
    ("weights", ["sps.irl_diagnostics=full"], "the IRL weights are not finite"),     # checked after every step
    # light diagnostics check the weights once, after the phase's last step (earlier: the next loss is NaN)
    ("weights", ["sps.irl_steps=1"], "the IRL weights are not finite after the update in IRL step 1")])
def test_non_finite_irl_phase_stops_before_its_checkpoint(model_dir, tmp_path, monkeypatch, kind, extra, message):
    trainer = make(model_dir, tmp_path, "sps", extra=["rl.max_steps=3", "rl.save_steps=1", *extra])   # IRL at step 2
    poison_irl(trainer, monkeypatch, kind)
    with pytest.raises(TrainingError, match=message) as err:
        trainer.train()
    assert "\n" not in str(err.value) and "before checkpoint-2 is saved" in str(err.value)
    assert (tmp_path / "run" / "checkpoint-1" / "model.safetensors").is_file()
    assert not (tmp_path / "run" / "checkpoint-2").exists()


@pytest.mark.parametrize("kind", ["gradients", "weights"])
def test_rl_step_with_finite_loss_but_non_finite_state_is_not_saved(model_dir, tmp_path, kind):
    from transformers import TrainerCallback

    class Poison(TrainerCallback):
        handle = None

        def on_step_begin(self, args, state, control, **kwargs):
            if kind == "gradients" and state.global_step == 1:
                self.handle = nan_gradient_hook(trainer)

        def on_optimizer_step(self, args, state, control, **kwargs):
            if kind == "weights" and state.global_step == 1:
                next(trainer.model.parameters()).data[0, 0] = float("nan")

    losses = []
    trainer = make(model_dir, tmp_path, "grpo", extra=["rl.max_steps=3", "rl.save_steps=1"], callbacks=[Poison()])
    real_step = trainer.training_step
    trainer.training_step = lambda *a: losses.append(real_step(*a)) or losses[-1]
    with pytest.raises(TrainingError, match=f"policy's {kind} are not finite at step 2") as err:
        trainer.train()
    assert torch.isfinite(torch.stack(losses)).all()          # the loss never gave it away
    assert "\n" not in str(err.value)
    assert (tmp_path / "run" / "checkpoint-1" / "model.safetensors").is_file()
    assert not (tmp_path / "run" / "checkpoint-2").exists()


@pytest.mark.parametrize("diagnostics, tolerance", [("full", 1e-4), ("light", 0.5)])
def test_phase_log_file_records_each_phase(model_dir, tmp_path, caplog, diagnostics, tolerance):
    """full: the weight change is exact (host copy); light: estimated on a 1/1021 strided sample of each
    parameter (on this tiny model a handful of elements per tensor, hence the loose bound)."""
    trainer = make(model_dir, tmp_path, "sps", extra=["rl.max_steps=4", "sps.rl_steps_per_phase=2",
                                                      f"sps.irl_diagnostics={diagnostics}"])
    changes = []
    real_phase = trainer.run_irl_phase

    def measured():
        before = snapshot(trainer.model)
        record = real_phase()
        delta = sum(((p - before[k]).double() ** 2).sum() for k, p in trainer.model.named_parameters())
        norm = sum((b.double() ** 2).sum() for b in before.values())
        changes.append(float((delta / norm).sqrt()))
        return record

    trainer.run_irl_phase = measured
    with caplog.at_level("WARNING", logger="spsbench.train.sps.trainer"):
        trainer.train()
    lines = [json.loads(line) for line in (tmp_path / "run" / "sps_phases.jsonl").read_text().splitlines()]
    assert lines == json.loads(json.dumps(trainer.phase.log))
    assert [(r["phase"], r["step"], r["groups"], r["sequences"]) for r in lines] == [(0, 2, 4, 12), (1, 4, 4, 12)]
    last = trainer.phase.last_selection
    assert lines[-1]["from_negatives_share"] == sum(not r["correct"] for r in last) / len(last)
    for record, measured_change in zip(lines, changes, strict=True):
        assert 0 < record["irl_loss_after"] < record["irl_loss_before"]    # lr 1e-3: the IRL loss drops
        assert record["rl_time_s"] > 0 and record["irl_time_s"] > 0 and 0 < record["irl_time_share"] < 1
        assert record["rel_weight_change"] == pytest.approx(measured_change, rel=tolerance)
        assert record["max_abs_change"] > 0 and record["dtype"] == "float32" and not record["below_resolution"]
        assert record["weight_change_stride"] == (1 if diagnostics == "full" else 1021)
        assert record["irl_steps"] == 4 and record["coverage"] == 1.0          # 12 selected, batches of 6
        assert record["irl_select_s"] + record["irl_steps_s"] + record["irl_diagnostics_s"] <= record["irl_time_s"]
    assert "below the resolution" not in caplog.text


def test_update_below_dtype_resolution_is_warned(model_dir, tmp_path, caplog):
    trainer = make(model_dir, tmp_path, "sps", extra=["sps.irl_learning_rate=1e-12"])
    with caplog.at_level("WARNING", logger="spsbench.train.sps.trainer"):
        trainer.train()
    [record] = trainer.phase.log
    assert record["below_resolution"] and record["rel_weight_change"] < record["dtype_resolution"] == 2 ** -23
    assert "SPS phase 0: IRL changed the weights" in caplog.text and "below the resolution of float32" in caplog.text


def test_resume_mid_phase_keeps_phase_position_and_buffer_and_ends_with_the_same_weights(model_dir, tmp_path):
    """A checkpoint inside an RL phase (where a preemption usually lands) carries this rank's rollouts: the
    resumed run's IRL phase selects from the same groups and the run ends with the uninterrupted weights."""
    extra = ["rl.max_steps=4", "rl.save_steps=1", "sps.rl_steps_per_phase=3"]
    first = make(model_dir, tmp_path, "sps", extra=extra)
    first.train()
    state = torch.load(tmp_path / "run" / "checkpoint-2" / "sps_state.pt", weights_only=True)
    assert (state["phase_index"], state["last_irl_step"], len(state["buffer"])) == (0, 0, 4)   # steps 1-2
    checkpoint = str(tmp_path / "run" / "checkpoint-2")
    killed_after(tmp_path / "run", 2)
    resumed = make(model_dir, tmp_path, "sps", extra=extra, resume=checkpoint)
    resumed.train(resume_from_checkpoint=checkpoint)
    [whole], [after_resume] = first.phase.log, resumed.phase.log
    assert (whole["phase"], whole["step"], whole["groups"]) == (0, 3, 6)            # steps 1-3
    assert (after_resume["phase"], after_resume["step"], after_resume["groups"]) == (0, 3, 6)
    assert resumed.phase.index == 1 and resumed.phase.last_irl_step == 3
    assert len(resumed.rollouts.groups) == 2                                             # step 4: the next phase's
    a, b = snapshot(first.model), snapshot(resumed.model)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6


def test_a_checkpoint_without_a_buffer_resumes_with_an_empty_one(model_dir, tmp_path):
    """Checkpoints written before the buffer was kept say "dropped": the phase restarts collecting."""
    extra = ["rl.max_steps=3", "rl.save_steps=1", "sps.rl_steps_per_phase=3"]
    make(model_dir, tmp_path, "sps", extra=extra).train()
    path = tmp_path / "run" / "checkpoint-2" / "sps_state.pt"
    torch.save(torch.load(path, weights_only=True) | {"buffer": "dropped"}, path)
    checkpoint = str(tmp_path / "run" / "checkpoint-2")
    killed_after(tmp_path / "run", 2)
    resumed = make(model_dir, tmp_path, "sps", extra=extra, resume=checkpoint)
    resumed.train(resume_from_checkpoint=checkpoint)
    assert resumed.phase.log[0]["groups"] == 2                                          # step 3 only


def constant_reward(completions, golds, kind="math", choices=None):
    return [1.0] * len(completions)                           # every group degenerate: refills every step


def test_dynamic_sampling_refill_draws_survive_a_resume(model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("spsbench.grading.reward", constant_reward)
    extra = ["rl.max_steps=2", "rl.save_steps=1", "dynamic_sampling.max_resample_times=1"]
    runs = []
    for resume in (None, str(tmp_path / "run" / "checkpoint-1")):
        if resume:
            killed_after(tmp_path / "run", 1)
        trainer = make(model_dir, tmp_path, "dapo", extra=extra, resume=resume)
        draws = {}
        real = trainer._fresh_inputs

        def recording(groups, trainer=trainer, real=real, draws=draws):
            rows = real(groups)
            draws.setdefault(trainer.state.global_step + 1, []).extend(r["problem_id"] for r in rows[::4])
            return rows

        trainer._fresh_inputs = recording
        trainer.train(resume_from_checkpoint=resume)
        runs.append(draws)
    assert (tmp_path / "run" / "checkpoint-1" / "dynamic_sampling_rng.json").is_file()
    assert runs[0][1] != runs[0][2]                      # a fresh RNG would repeat step 1's draws
    assert runs[1] == {2: runs[0][2]}


def test_sps_trainer_refuses_a_deepspeed_or_fsdp1_accelerator(model_dir, tmp_path, monkeypatch):
    from types import SimpleNamespace

    trainer = make(model_dir, tmp_path, "sps")
    trainer.is_deepspeed_enabled = True
    with pytest.raises(TrainingError, match="SPS does not run under DeepSpeed"):
        trainer._refuse_sharded_training()
    trainer.is_deepspeed_enabled, trainer.is_fsdp_enabled = False, True
    for version, refused in ((1, True), (2, False)):
        # the accelerator state is a process-wide singleton: monkeypatch puts it back for the other tests
        monkeypatch.setattr(trainer.accelerator.state, "fsdp_plugin", SimpleNamespace(fsdp_version=version),
                            raising=False)
        if refused:
            with pytest.raises(TrainingError, match="needs FSDP2"):
                trainer._refuse_sharded_training()
        else:
            trainer._refuse_sharded_training()


def test_l2te_logprob_mean_ranks_by_per_token_log_prob():
    from types import SimpleNamespace

    from spsbench.train.sps.config import SPSConfig
    from spsbench.train.sps.state import PhaseState
    from spsbench.train.sps.trainer import SPSTrainer

    rows = [{"logp": -10.0, "completion_ids": [5] * 10, "correct": False},     # mean -1: long, likely per token
            {"logp": -6.0, "completion_ids": [5] * 2, "correct": False},       # mean -3
            {"logp": -20.0, "completion_ids": [5] * 2, "correct": True}]       # correct: never picked here
    for how, expected in (("sum", -10.0), ("mean", -6.0)):
        fake = SimpleNamespace(sps=SPSConfig(sampling_size=1, quantile=0.0, l2te_logprob=how), phase=PhaseState())
        assert [r["logp"] for r in SPSTrainer._select(fake, [rows], first_group=0)] == [expected]


def test_irl_phase_runs_under_the_rl_steps_mixed_precision(model_dir, tmp_path):
    """`rl.bf16: true` (the 1.5B recipe): RL forwards run under accelerate's bf16 autocast, and so does the IRL
    phase (its loss replaces the model's forward, where accelerate put the autocast)."""
    from tests.test_train_irl_nll import linear_output_dtypes

    trainer = make(model_dir, tmp_path, "sps", extra=["rl.bf16=true"])
    assert trainer.accelerator.mixed_precision == "bf16"
    seen = {}
    for name in ("run_irl_phase", "training_step"):
        real = getattr(trainer, name)

        def hooked(*args, _real=real, _name=name):
            out = []
            seen.setdefault(_name, set()).update(linear_output_dtypes(trainer.model, lambda: out.append(_real(*args))))
            return out[0]

        setattr(trainer, name, hooked)
    trainer.train()
    assert seen == {"training_step": {torch.bfloat16}, "run_irl_phase": {torch.bfloat16}}
    [phase] = trainer.phase.log
    assert phase["irl_loss_after"] < phase["irl_loss_before"] and phase["dtype"] == "float32"   # fp32 weights


def test_sps_state_of_another_world_size_is_one_line_error_and_a_legacy_file_drops_its_buffer(tmp_path, caplog):
    from spsbench.train.sps.trainer import load_rank_state

    two = tmp_path / "checkpoint-2"
    two.mkdir()
    for rank in (0, 1):
        torch.save({"version": 2, "world_size": 2, "rank": rank, "phase_index": 0, "last_irl_step": 0,
                    "irl_optimizer": None, "buffer": [[{"rank": rank}]]}, two / f"sps_state-rank{rank}.pt")
    assert load_rank_state(two, 2, 1)["buffer"] == [[{"rank": 1}]]             # each rank its own
    with pytest.raises(TrainingError, match="holds the SPS state of 2 rank") as err:
        load_rank_state(two, 4, 0)
    assert "\n" not in str(err.value) and "resume with 2 process(es)" in str(err.value)

    one = tmp_path / "checkpoint-4"
    one.mkdir()
    state = {"version": 2, "world_size": 1, "rank": 0, "phase_index": 1, "last_irl_step": 3, "irl_optimizer": None,
             "buffer": [[{"row": 1}]]}
    torch.save(state, one / "sps_state.pt")
    assert load_rank_state(one, 1, 0)["buffer"] == [[{"row": 1}]]
    with pytest.raises(TrainingError, match="holds the SPS state of 1 rank"):
        load_rank_state(one, 2, 0)

    legacy = tmp_path / "checkpoint-6"          # spsbench before per-rank buffers: rank 0 wrote one file
    legacy.mkdir()
    torch.save({k: v for k, v in state.items() if k not in ("world_size", "rank")} | {"version": 1},
               legacy / "sps_state.pt")
    with caplog.at_level("WARNING", logger="spsbench.train.sps.trainer"):
        restored = load_rank_state(legacy, 2, 1)
    assert restored["phase_index"] == 1 and restored["buffer"] == "dropped"
    assert "predates per-rank rollout buffers" in caplog.text
    assert load_rank_state(legacy, 1, 0)["buffer"] == [[{"row": 1}]]           # one process: as before
    assert load_rank_state(tmp_path, 1, 0) is None                              # no SPS state at all


def test_sps_over_dapo_buffers_dropped_groups_and_its_epoch_is_one_dataloader_pass(model_dir, tmp_path, monkeypatch):
    """Dynamic sampling drops all-equal groups (here: every even-gold prompt) and refills from random prompts.
    The phase (`epoch`) is one pass of the dataloader: every training prompt reaches the trainer once from it,
    refills come on top and do not advance it; every group generated in the phase, dropped ones included,
    reaches the IRL buffer with its sequence log-prob."""
    monkeypatch.setattr("spsbench.grading.reward", degenerate_reward)
    trainer = make(model_dir, tmp_path, "sps", "dapo", extra=[
        "limit=8", "rl.per_device_train_batch_size=4", "rl.max_steps=8", "sps.rl_steps_per_phase=epoch",
        "dynamic_sampling.max_resample_times=1"])
    assert trainer.phase_length == 8 == len(trainer.get_train_dataloader())         # 8 prompts, 1 per step
    outer, refills, dropped = [], [], []
    real_fresh, real_dropped = trainer._fresh_inputs, trainer._dropped_groups
    trainer._fresh_inputs = lambda n: (lambda rows: refills.append([r["problem_id"] for r in rows[::4]]) or rows)(
        real_fresh(n))
    trainer._dropped_groups = lambda pool, pairs: dropped.append(len(pairs)) or real_dropped(pool, pairs)
    real_generate = trainer._generate_and_score_completions

    def generate(inputs):
        if trainer.model.training:
            outer.append(inputs[0]["problem_id"])
        return real_generate(inputs)

    trainer._generate_and_score_completions = generate
    groups_seen = []
    real_phase = trainer.run_irl_phase
    trainer.run_irl_phase = lambda: groups_seen.append(list(trainer.rollouts.groups)) or real_phase()
    trainer.train()
    assert sorted(outer) == sorted(row["problem_id"] for row in trainer.train_dataset)     # each prompt once
    assert refills and sum(dropped) >= 4                 # the 4 even-gold prompts never give a mixed group
    [buffer] = groups_seen
    assert len(buffer) == 8 + sum(len(r) for r in refills) == trainer.phase.log[0]["groups"]
    flagged = [g for g in buffer if g[0].get("dropped")]
    assert len(flagged) == sum(dropped) and all(r["logp"] is not None for g in buffer for r in g)


def test_dropped_groups_skip_keeps_the_buffer_to_trained_groups(model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("spsbench.grading.reward", degenerate_reward)
    trainer = make(model_dir, tmp_path, "sps", "dapo", extra=["sps.dropped_groups=skip"])
    trainer.train()
    assert trainer.phase.log[0]["groups"] == 4                  # 2 steps x 2 trained groups, nothing else


def test_each_sps_checkpoint_records_the_irl_phases_before_it(model_dir, tmp_path):
    """checkpoint-1 precedes the first IRL phase (a checkpoint of the base algorithm); the phase at step 2
    runs before checkpoint-2 is saved."""
    trainer = make(model_dir, tmp_path, "sps", extra=["rl.max_steps=3", "rl.save_steps=1"])
    trainer.train()
    records = {s: json.loads((tmp_path / "run" / f"checkpoint-{s}" / "spsbench_checkpoint.json").read_text())
               for s in (1, 2, 3)}
    assert {s: (r["step"], r["irl_phases"], r["last_irl_step"]) for s, r in records.items()} == {
        1: (1, 0, 0), 2: (2, 1, 2), 3: (3, 1, 2)}
    assert records[1]["algo"] == "sps" and records[1]["rl_steps_per_phase"] == 2


def test_log_prob_fill_runs_as_many_forwards_on_every_rank_under_fsdp(model_dir, tmp_path, monkeypatch):
    """FSDP all-gathers parameters in every forward: a rank with fewer groups to fill (here none) runs dummy
    forwards until it has run as many as the busiest rank (3, as the gathered counts say)."""
    trainer = make(model_dir, tmp_path, "sps")
    monkeypatch.setattr(trainer, "is_fsdp_enabled", True, raising=False)
    monkeypatch.setattr(type(trainer.accelerator), "num_processes", property(lambda self: 2))
    monkeypatch.setattr(trainer, "_rank_counts", lambda *values: torch.tensor([[len(values) and values[0]], [3]]))
    calls = []
    monkeypatch.setattr(trainer, "_sequence_logps", lambda rows: calls.append(rows) or [0.0] * len(rows))
    group = [{"prompt_ids": [5, 6], "completion_ids": [7], "logp": None, "prompt_pad": 0}]
    trainer._fill_missing_logps([group, [dict(group[0], logp=-1.0)]])
    assert len(calls) == 3 and calls[0] == group and group[0]["logp"] == 0.0
    assert all(c[0]["completion_ids"] == [trainer._pad_id()] for c in calls[1:])          # two dummy forwards


@pytest.mark.parametrize("setting", ["sps.irl_optimizer_state=reset", "sps.irl_objective=repel",
                                     "sps.irl_max_grad_norm=1e-12", "sps.quantile_scope=batch"])
def test_each_interpretive_setting_changes_what_the_irl_phase_does(model_dir, tmp_path, setting):
    """Two IRL phases (steps 1 and 2) per run, against the defaults' documented behaviour."""
    trainer = make(model_dir, tmp_path, "sps", extra=["sps.rl_steps_per_phase=1", setting])
    trainer.train()
    first, second = trainer.phase.log
    if setting.endswith("reset"):        # a fresh AdamW each phase: 4 steps, not 8; nothing saved to carry
        assert trainer.irl_optimizer.state_dict()["state"][0]["step"] == 4
        assert trainer.sps_state()["irl_optimizer"] is None
    elif setting.endswith("repel"):      # Eq. 4 as printed: the NLL of the selected completions goes up
        assert first["irl_loss_after"] > first["irl_loss_before"]
    elif setting.endswith("1e-12"):      # gradients clipped far below Adam's eps: the update all but vanishes
        assert first["rel_weight_change"] < 1e-6 and first["irl_loss_after"] == pytest.approx(
            first["irl_loss_before"], rel=1e-5)
    else:                                # the quantile cut per generation batch: still 3 per group
        assert first["sequences"] == second["sequences"] == 6
        assert first["irl_loss_after"] < first["irl_loss_before"]
