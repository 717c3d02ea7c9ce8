"""Evaluation beside training: a failed checkpoint evaluation is recorded (store, spsbench_run.json,
summary) and makes `spsbench train` exit 1 with training kept; the run records its evaluation setting and
`spsbench eval RUN` continues those evaluations (inline) or runs them (eval.mode watch); the in-training
engine and collective-timeout defaults."""

from __future__ import annotations

import json
import sqlite3

import pytest
import torch

from spsbench import paths
from spsbench.cli import main
from spsbench.store import SCHEMA_VERSION, Store
from spsbench.train.config import EVAL_GPU_MEMORY_UTILIZATION, EvalConfig, load_config
from tests.fixtures.tiny_model import tiny_model
from tests.test_train import SMALL, stand_in_reward

EVAL = ["eval.enabled=true", "eval.isolate=false", "eval.base=false", "eval.n=2", "eval.max_tokens=8",
        "eval.limit=2", "eval.engine=hf", "rl.save_steps=2"]


@pytest.fixture(autouse=True)
def grader(monkeypatch):
    monkeypatch.setattr("spsbench.grading.reward", stand_in_reward)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return str(tiny_model(tmp_path_factory.mktemp("tiny") / "model"))


def train(model_dir, run, store, *extra):
    sets = [*SMALL, *EVAL, f"eval.store={store}", *extra]
    return main(["train", "--model", model_dir, "--output-dir", str(run), *[a for s in sets for a in ("--set", s)]])


def evaluations(store):
    with Store(store) as db:
        return [(e.model_path, e.task, e.task_version, e.grader_policy, json.dumps(e.sampling, sort_keys=True))
                for e in db.evaluations(status=None)]


def test_failed_checkpoint_evaluation_is_recorded_and_the_run_exits_non_zero(model_dir, tmp_path, capsys):
    broken = tmp_path / "broken.jsonl"
    broken.write_text("this is not json\n")
    run, store = tmp_path / "run", tmp_path / "s.db"
    code = train(model_dir, run, store, f"eval.data.arith={broken}")
    out = capsys.readouterr().out
    assert code == 1
    assert (run / "checkpoint-2" / "config.json").is_file()              # training itself is kept
    assert "failed evaluation (step 2)" in out and "broken.jsonl" in out
    info = json.loads((run / paths.RUN_INFO).read_text())
    [failure] = info["failures"]
    assert (failure["kind"], failure["step"]) == ("evaluation", 2) and "broken.jsonl" in failure["message"]
    with Store(store) as db:
        [row] = db.run_failures()
    assert (row.run_name, row.step, row.kind) == (info["run_name"], 2, "evaluation")
    assert row.model_path.endswith("checkpoint-2")


def test_eval_of_the_run_folder_continues_the_runs_evaluations(model_dir, tmp_path, capsys):
    run, store = tmp_path / "run", tmp_path / "s.db"
    assert train(model_dir, run, store) == 0
    before = evaluations(store)
    assert len(before) == 1 and '"max_tokens": 8' in before[0][4]
    info = json.loads((run / paths.RUN_INFO).read_text())
    assert info["eval"]["mode"] == "inline" and info["failures"] == []
    capsys.readouterr()
    assert main(["eval", str(run), "--engine", "hf", "--store", str(store), "--no-leaderboard", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "continuing the run's evaluations" in out and "already in the store" in out
    assert evaluations(store) == before                                  # no new evaluation: the same EvalKey


def test_watch_mode_leaves_checkpoints_to_spsbench_eval_at_the_recorded_setting(model_dir, tmp_path, capsys):
    run, store = tmp_path / "run", tmp_path / "s.db"
    assert train(model_dir, run, store, "eval.mode=watch") == 0
    assert "eval.mode watch" in capsys.readouterr().out
    assert not store.exists() or evaluations(store) == []               # the trainer evaluated nothing
    assert json.loads((run / paths.RUN_INFO).read_text())["eval"]["mode"] == "watch"
    assert main(["eval", str(run), "--engine", "hf", "--store", str(store), "--no-leaderboard", "--quiet"]) == 0
    [(path, task, _, _, sampling)] = evaluations(store)
    assert path.endswith("checkpoint-2") and task == "arith"
    assert (json.loads(sampling)["n"], json.loads(sampling)["max_tokens"]) == (2, 8)
    with Store(store) as db:
        [ev] = db.evaluations()
        assert db.scored_problems(ev.id) is not None and len(db.scored_problems(ev.id)) == 2   # eval.limit


def test_in_training_engine_and_timeout_defaults(model_dir, tmp_path):
    assert EvalConfig(engine="vllm").engine_options == {"gpu_memory_utilization": EVAL_GPU_MEMORY_UTILIZATION}
    assert EvalConfig(engine="auto", engine_options={"gpu_memory_utilization": 0.5}).engine_options == {
        "gpu_memory_utilization": 0.5}
    assert EvalConfig(engine="hf").engine_options == {}
    with pytest.raises(Exception, match="eval.mode: must be one of inline, watch"):
        EvalConfig(mode="later")
    from spsbench.train.args import DDP_TIMEOUT_S, grpo_args

    config = load_config("grpo", overrides=SMALL, model=model_dir)
    assert grpo_args(config, tmp_path).ddp_timeout == DDP_TIMEOUT_S
    config = load_config("grpo", overrides=[*SMALL, "rl.ddp_timeout=60"], model=model_dir)
    assert grpo_args(config, tmp_path).ddp_timeout == 60


def test_an_older_store_gains_the_run_failures_table(tmp_path):
    path = tmp_path / "s.db"
    Store(path).close()
    con = sqlite3.connect(path)
    con.execute("DROP TABLE run_failures")
    con.execute("PRAGMA user_version = 3")
    con.commit()
    con.close()
    with Store(path) as db:
        db.add_run_failure("r", "leaderboard", "boom", step=4)
        assert [(f.run_name, f.step, f.kind, f.message) for f in db.run_failures("r")] == [("r", 4, "leaderboard",
                                                                                           "boom")]
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_failed_leaderboard_refresh_is_a_recorded_failure(model_dir, tmp_path, monkeypatch):
    from spsbench.train.callbacks import EvaluateCheckpointCallback

    def broken_refresh(store):
        raise OSError("disk full")

    monkeypatch.setattr("spsbench.train.eval_worker.evaluate", lambda request, **kw: ["scores"])
    monkeypatch.setattr("spsbench.train.callbacks.leaderboard_refresh", broken_refresh)
    store = tmp_path / "s.db"
    config = load_config("grpo", overrides=[*SMALL, *EVAL, f"eval.store={store}", "run_name=lb"], model=model_dir)
    callback = EvaluateCheckpointCallback(config, base_model=model_dir)
    assert callback.evaluate_model(str(tmp_path / "checkpoint-3"), 3, tags=None) == ["scores"]
    [failure] = callback.failures
    assert (failure["kind"], failure["step"]) == ("leaderboard", 3) and "OSError: disk full" in failure["message"]
    with Store(store) as db:
        assert [(f.run_name, f.kind, f.step) for f in db.run_failures("lb")] == [("lb", "leaderboard", 3)]


# --------------------------------------------------------------------------- what a researcher sees


def test_training_terminal_shows_progress_and_scores_while_libraries_go_to_the_runs_log(model_dir, tmp_path, capfd):
    """The default view of `spsbench train`: a line per logged step with the watched numbers, one per IRL phase
    and per checkpoint evaluation; no library warning, weight-loading bar or raw metric dict on the terminal;
    all of those in the run's train.log. Pass@k goes through the trainer's log into the last checkpoint's
    trainer_state.json (at the checkpoint's step) and the base model's at step 0."""
    run, store = tmp_path / "run", tmp_path / "s.db"
    sets = [*SMALL, *EVAL, "eval.base=true", "rl.logging_steps=1", f"eval.store={store}"]
    code = main(["train", "--algo", "sps", "--model", model_dir, "--output-dir", str(run),
                 *[a for s in sets for a in ("--set", s)]])
    out, err = capfd.readouterr()
    assert code == 0
    assert "{'loss'" not in out and "'reward'" not in out                 # TRL's dict per step is not printed
    for noise in ("UserWarning", "Loading weights", "Writing model shards", "{'"):
        assert noise not in err and noise not in out, noise
    assert "step 1/2 · reward" in err and "step 2/2 · reward" in err and "s/step" in err
    assert "SPS IRL phase 0 (step 2): " in err
    assert "the base model (step 0) · arith: Avg@2 " in err and "checkpoint-2 (step 2) · arith: Avg@2 " in err
    assert "spsbench: evaluating checkpoint-2 (arith, n=2, first 2 problems; training waits)" in err
    log = (run / "train.log").read_text()
    assert '"loss": ' in log and "step 2: " in log                       # the full metric dicts, in the log
    assert f"library output: {run / 'train.log'}" in out
    history = json.loads((run / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
    evals = [(e["step"], sorted(k for k in e if k.startswith("eval_"))) for e in history if "eval_arith/avg@2" in e]
    assert evals == [(0, ["eval_arith/avg@2", "eval_arith/pass@1", "eval_arith/pass@2"]),
                     (2, ["eval_arith/avg@2", "eval_arith/pass@1", "eval_arith/pass@2"])]
    with Store(store) as db:                                             # the logged value is the stored one
        [ev] = [e for e in db.evaluations() if e.model_path.endswith("checkpoint-2")]
        [avg] = [s.value for s in db.scores(ev.id) if s.metric == "avg@n"]
    [logged] = [e for e in history if e["step"] == 2 and "eval_arith/avg@2" in e]
    assert logged["eval_arith/avg@2"] == pytest.approx(avg)


def test_quiet_training_shows_only_the_summary(model_dir, tmp_path, capfd):
    sets = [*SMALL, "rl.logging_steps=1", "eval.enabled=false"]
    code = main(["train", "-q", "--model", model_dir, "--output-dir", str(tmp_path / "quiet"),
                 *[a for s in sets for a in ("--set", s)]])
    out, err = capfd.readouterr()
    assert code == 0 and "done: 2 steps" in out
    assert err == ""                     # not even the plan's warning (eval.enabled is false): it is in the log
    assert "spsbench: warning: eval.enabled is false" in (tmp_path / "quiet" / "train.log").read_text()



def test_a_refused_run_leaves_neither_its_log_nor_a_runs_folder(tmp_path, monkeypatch, capsys):
    """The run's log opens before anything is checked; a run refused afterwards removes what opening it made."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["train", "--model", "nobody/no-such-model", "--no-eval"]) == 2
    assert "not in the Hugging Face cache" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
