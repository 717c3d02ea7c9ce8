"""Run-folder scanning: Trainer-layout checkpoints in step order, broken ones reported and skipped (also
those that pass the file checks but fail to load in the hf or vLLM engine), stored ones skipped, tags
from spsbench_run.json, best checkpoint, and --watch over several sampling groups in one loop."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time

import pytest

from spsbench.cli import main
from spsbench.config import SamplingConfig
from spsbench.evaluation.records import EvalRequest
from spsbench.evaluation.scan import checkpoints, is_run_folder, is_settled, run_tags, scan_groups, scan_run
from spsbench.store import Store

SAMPLING = SamplingConfig(n=2, max_tokens=8)


def make_checkpoint(run, step, source, state=True, age=60.0):
    folder = run / f"checkpoint-{step}"
    shutil.copytree(source, folder)
    if state:   # what HF Trainer writes beside the model files
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
        for name in ("training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth"):
            (folder / name).write_bytes(b"trainer state")
    old = time.time() - age
    for p in folder.iterdir():
        os.utime(p, (old, old))
    return folder


@pytest.fixture
def run_folder(tmp_path, tiny_model_dir):
    run = tmp_path / "my-run"
    for step in (20, 10, 100):                                  # created out of order on purpose
        make_checkpoint(run, step, tiny_model_dir)
    truncated = make_checkpoint(run, 30, tiny_model_dir)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    no_weights = make_checkpoint(run, 40, tiny_model_dir)
    (no_weights / "model.safetensors").unlink()
    (run / "spsbench_run.json").write_text(json.dumps({"run_name": "sps-tiny", "algo": "sps",
                                                       "base_model": "/models/base"}))
    return run


def test_discovery_in_step_order_and_tags(run_folder, tmp_path):
    assert is_run_folder(run_folder) and not is_run_folder(tmp_path / "missing")
    assert [s for s, _ in checkpoints(run_folder)] == [10, 20, 30, 40, 100]
    tags = run_tags(run_folder, 20)
    assert (tags.run_name, tags.step, tags.algo, tags.base_model) == ("sps-tiny", 20, "sps", "/models/base")
    (run_folder / "spsbench_run.json").unlink()
    assert run_tags(run_folder, 20).run_name == "my-run" and run_tags(run_folder, 20).algo is None


def test_scan_evaluates_good_reports_broken_then_skips_stored(run_folder, store_path):
    report = scan_run(run_folder, EvalRequest(None, ["arith"], SAMPLING, store=store_path, engine="hf", limit=2, progress=False))
    status = {c.step: c.status for c in report.checkpoints}
    assert status == {10: "evaluated", 20: "evaluated", 30: "broken", 40: "broken", 100: "evaluated"}
    reasons = {c.step: c.reason for c in report.checkpoints if c.status == "broken"}
    assert "truncated safetensors" in reasons[30] and "no model weight files" in reasons[40]
    assert [c.step for c in report.checkpoints if c.status == "evaluated"] == [10, 20, 100]
    with Store(store_path) as s:
        evals = s.evaluations()
    assert sorted((e.run_name, e.step, e.algo) for e in evals) == [
        ("sps-tiny", 10, "sps"), ("sps-tiny", 20, "sps"), ("sps-tiny", 100, "sps")]
    assert report.best("arith").step in (10, 20, 100)
    again = scan_run(run_folder, EvalRequest(None, ["arith"], SAMPLING, store=store_path, engine="hf", limit=2, progress=False))
    assert {c.step: c.status for c in again.checkpoints if c.status != "broken"} == {
        10: "stored", 20: "stored", 100: "stored"}
    assert [r.scores.avg for c in again.checkpoints for r in c.results] == [
        r.scores.avg for c in report.checkpoints for r in c.results]
    bigger = scan_run(run_folder, EvalRequest(None, ["arith"], SamplingConfig(n=3, max_tokens=8), store=store_path, engine="hf", limit=2, progress=False))
    assert all(r.generated == 2 for c in bigger.checkpoints for r in c.results)   # one more per problem


def test_best_is_highest_avg(run_folder, store_path, fake_factory):
    report = scan_run(run_folder, EvalRequest(None, ["arith"], SAMPLING, store=store_path, limit=3, progress=False), engine_factory=fake_factory)
    best = report.best("arith")
    top = max(r.scores.avg.value for c in report.checkpoints for r in c.results)
    assert next(r for r in best.results).scores.avg.value == top


def test_unsettled_checkpoint_waits_for_next_scan(tmp_path, tiny_model_dir):
    fresh = make_checkpoint(tmp_path / "run", 5, tiny_model_dir, state=False)
    assert not is_settled(fresh)
    (fresh / "trainer_state.json").write_text("{}")
    assert not is_settled(fresh)                                 # just written: may still be growing
    assert is_settled(fresh, settle_s=0.0)


def finish_writing_later(folder, delay=0.5):
    """Complete a checkpoint the way Trainer does (trainer_state.json last), from another thread."""
    def finish():
        time.sleep(delay)
        (folder / "trainer_state.json").write_text("{}")
        old = time.time() - 60
        for p in folder.iterdir():
            os.utime(p, (old, old))

    writer = threading.Thread(target=finish)
    writer.start()
    return writer


def test_watch_picks_up_checkpoints_as_they_complete(tmp_path, tiny_model_dir, store_path, fake_factory):
    run = tmp_path / "run"
    make_checkpoint(run, 10, tiny_model_dir)
    late = make_checkpoint(run, 20, tiny_model_dir, state=False)       # still being written
    writer = finish_writing_later(late)
    report = scan_run(run, EvalRequest(None, ["arith"], SAMPLING, store=store_path, limit=2, progress=False), watch=True, interval=0.2, until_idle=1.0, engine_factory=fake_factory)
    writer.join()
    assert [(c.step, c.status) for c in report.checkpoints] == [(10, "evaluated"), (20, "evaluated")]


def test_cli_run_folder(run_folder, store_path, tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("SPSBENCH_LEADERBOARDS", str(tmp_path / "lb"))
    code = main(["eval", str(run_folder), "--engine", "hf", "--n", "2", "--max-tokens", "8", "--limit", "2",
                 "--store", str(store_path), "--no-leaderboard"])
    out, err = capfd.readouterr()
    assert code == 0
    skipped = [line for line in err.splitlines() if line.startswith("spsbench: warning: skipping broken checkpoint")]
    assert len(skipped) == 2 and "checkpoint-30" in err                      # on the terminal, while quiet
    assert "truncated safetensors" in err and "no model weight files" in err
    assert "best checkpoint on arith: checkpoint-" in out and "2 broken checkpoint(s) skipped" in out


def mismatched_checkpoint(run, step, source):
    """A checkpoint whose config.json declares another hidden size than its weights have."""
    folder = make_checkpoint(run, step, source)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"hidden_size": 64, "intermediate_size": 128}))
    old = time.time() - 60
    os.utime(folder / "config.json", (old, old))
    return folder


def test_checkpoint_that_fails_to_load_in_hf_is_skipped_and_the_rest_run(tmp_path, tiny_model_dir, store_path):
    run = tmp_path / "run"
    for step in (10, 30):
        make_checkpoint(run, step, tiny_model_dir)
    mismatched_checkpoint(run, 20, tiny_model_dir)
    report = scan_run(run, EvalRequest(None, ["arith"], SAMPLING, store=store_path, engine="hf", limit=2, progress=False))
    assert [(c.step, c.status) for c in report.checkpoints] == [(10, "evaluated"), (20, "broken"), (30, "evaluated")]
    reason = report.checkpoints[1].reason
    assert "checkpoint-20" in reason and "do not match the shapes in config.json" in reason and "\n" not in reason
    with Store(store_path) as s:
        assert sorted(e.step for e in s.evaluations()) == [10, 30]


class _FakeLLM:
    """vllm.LLM stand-in that fails to start on checkpoint-20 (as vLLM does on a bad checkpoint)."""

    def __init__(self, model, **kwargs):
        if model.endswith("checkpoint-20"):
            raise RuntimeError("shape mismatch while loading weights\n(long vLLM traceback text)")

    def get_tokenizer(self):
        from tests.fixtures.tiny_model import tiny_tokenizer

        return tiny_tokenizer()

    def generate(self, prompts, params, use_tqdm=True):
        from types import SimpleNamespace as NS

        return [NS(prompt_token_ids=p["prompt_token_ids"],
                   outputs=[NS(text="\\boxed{1}", token_ids=[1, 2], finish_reason="stop")]) for p in prompts]


def test_checkpoint_that_vllm_cannot_start_on_is_skipped_and_the_rest_run(tmp_path, tiny_model_dir, store_path,
                                                                          monkeypatch):
    import types

    from spsbench.engines import vllm as vllm_engine
    from tests.fake_vllm import install

    install(monkeypatch, types.SimpleNamespace(LLM=_FakeLLM, SamplingParams=lambda **kw: types.SimpleNamespace(**kw)))
    monkeypatch.setattr(vllm_engine, "_cuda_available", lambda: False)
    run = tmp_path / "run"
    for step in (10, 20, 30):
        make_checkpoint(run, step, tiny_model_dir)
    report = scan_run(run, EvalRequest(None, ["arith"], SAMPLING, store=store_path, engine="vllm", limit=2, progress=False))
    assert [(c.step, c.status) for c in report.checkpoints] == [(10, "evaluated"), (20, "broken"), (30, "evaluated")]
    assert "engine vllm: cannot start" in report.checkpoints[1].reason
    assert "\n" not in report.checkpoints[1].reason


def task_file(tmp_path, name, n):
    """The built-in arith task under another name with its own default n."""
    from spsbench import paths

    text = (paths.tasks_dir() / "arith.yaml").read_text()
    text = text.replace("name: arith", f"name: {name}").replace("n: 8", f"n: {n}").replace("k: [1, 2, 4, 8]", "k: [1]")
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def test_watch_covers_every_sampling_group_in_one_loop(tmp_path, tiny_model_dir, store_path, fake_factory, capsys):
    import io

    from rich.console import Console

    run = tmp_path / "run"
    make_checkpoint(run, 10, tiny_model_dir)
    broken = make_checkpoint(run, 15, tiny_model_dir)
    (broken / "model.safetensors").unlink()
    late = make_checkpoint(run, 20, tiny_model_dir, state=False)
    writer = finish_writing_later(late)
    out = io.StringIO()
    groups = [(SamplingConfig(n=2, max_tokens=8), ["arith"]),
              (SamplingConfig(n=3, max_tokens=8), [str(task_file(tmp_path, "arith3", 3))])]
    report = scan_groups(run, [EvalRequest(None, tuple(tasks), sampling, store=store_path, limit=2, progress=False) for sampling, tasks in groups], watch=True, interval=0.1, until_idle=1.0, console=Console(file=out, width=300), engine_factory=fake_factory)
    writer.join()
    assert [(c.step, c.status) for c in report.checkpoints] == [(10, "evaluated"), (15, "broken"), (20, "evaluated")]
    for c in report.checkpoints[::2]:
        assert sorted((r.task, r.n) for r in c.results) == [("arith", 2), ("arith3", 3)]
    assert len(fake_factory.engines) == 2                 # one engine per checkpoint, shared by both groups
    assert capsys.readouterr().err.count("spsbench: warning: skipping broken checkpoint") == 1
    assert out.getvalue().count("evaluating checkpoint-20") == 1


def test_cli_watch_with_two_sampling_groups_ends_and_reports_broken_once(run_folder, store_path, tmp_path, capfd):
    old = time.time() - 60
    for p in run_folder.rglob("*"):            # the fixture truncated a file just now: settle it for --watch
        os.utime(p, (old, old))
    code = main(["eval", str(run_folder), "--tasks", "arith", "--task-file", str(task_file(tmp_path, "arith3", 3)),
                 "--engine", "hf", "--max-tokens", "4", "--limit", "1", "--watch", "--interval", "0.1",
                 "--until-idle", "0.3", "--store", str(store_path), "--quiet", "--no-leaderboard"])
    out, err = capfd.readouterr()
    assert code == 0 and "warning" not in err                # -q: the warnings only in the engine log
    assert out.count("checkpoint-30") == 1          # the summary line
    log = (store_path.parent / "engine.log").read_text()
    assert log.count("spsbench: warning: skipping broken checkpoint") == 2     # checkpoints 30 and 40, once each
    assert "best checkpoint on arith:" in out and "best checkpoint on arith3:" in out
    with Store(store_path) as s:
        assert sorted((e.task, e.n) for e in s.evaluations()) == [("arith", 8)] * 3 + [("arith3", 3)] * 3
