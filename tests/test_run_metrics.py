"""Pass@k where researchers look, without a trainer: a scan of a run folder (`spsbench eval RUN [--watch]`)
appends each checkpoint it evaluates to RUN/eval_metrics.jsonl and, when `tensorboard` is installed, to
TensorBoard event files under RUN/runs/spsbench-eval/, under the names the trainer's loggers show."""

from __future__ import annotations

import sys
from types import SimpleNamespace

from spsbench.cli import main
from spsbench.config import SamplingConfig
from spsbench.evaluation.records import EvalRequest
from spsbench.evaluation.run_metrics import (
    METRICS_FILE,
    TENSORBOARD_DIR,
    RunMetricsWriter,
    eval_metrics,
    read_metrics,
    trainer_keys,
)
from spsbench.evaluation.scan import scan_groups
from spsbench.store import Interval
from tests.test_scan import make_checkpoint


def result(task, n, avg, passk):
    scores = SimpleNamespace(avg=Interval(avg, 0.0, 1.0), pass_at_k={k: Interval(v, 0.0, 1.0) for k, v in passk.items()})
    return SimpleNamespace(task=task, n=n, scores=scores)


def test_metric_names_and_the_keys_the_trainer_logs():
    metrics = eval_metrics([result("arith", 8, 0.035, {8: 0.28, 1: 0.035})])
    assert list(metrics) == ["eval/arith/avg@8", "eval/arith/pass@1", "eval/arith/pass@8"]
    assert metrics["eval/arith/pass@8"] == 0.28
    # transformers' loggers turn "eval_" into "eval/": these reach TensorBoard / W&B as eval/arith/pass@8
    assert list(trainer_keys(metrics)) == ["eval_arith/avg@8", "eval_arith/pass@1", "eval_arith/pass@8"]


def test_a_scan_writes_each_evaluated_checkpoint_once(tmp_path, tiny_model_dir, store_path, fake_factory):
    run = tmp_path / "run"
    for step in (10, 20):
        make_checkpoint(run, step, tiny_model_dir)
    request = EvalRequest(None, ("arith",), SamplingConfig(n=2, max_tokens=4), store=store_path, limit=2, progress=False)
    writer = RunMetricsWriter(run, tensorboard=False)
    scan_groups(run, [request], metrics=writer, engine_factory=fake_factory)
    lines = read_metrics(run)
    assert [(line["step"], line["checkpoint"]) for line in lines] == [(10, "checkpoint-10"), (20, "checkpoint-20")]
    assert {"eval/arith/avg@2", "eval/arith/pass@1", "eval/arith/pass@2"} <= set(lines[0])
    assert 0.0 <= lines[0]["eval/arith/pass@2"] <= 1.0
    scan_groups(run, [request], metrics=writer, engine_factory=fake_factory)      # stored now: not written again
    assert len(read_metrics(run)) == 2
    assert not (run / TENSORBOARD_DIR).exists()


def test_tensorboard_events_when_the_package_is_installed(tmp_path, monkeypatch):
    calls = []

    class SummaryWriter:
        def __init__(self, log_dir):
            calls.append(("open", log_dir))

        def add_scalar(self, tag, value, step):
            calls.append((tag, value, step))

        def flush(self):
            calls.append("flush")

        def close(self):
            calls.append("close")

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", SimpleNamespace(SummaryWriter=SummaryWriter))
    writer = RunMetricsWriter(tmp_path, tensorboard=True)
    writer.write(4, "checkpoint-4", [result("arith", 2, 0.25, {1: 0.25, 2: 0.5})])
    writer.close()
    assert calls == [("open", str(tmp_path / TENSORBOARD_DIR)), ("eval/arith/avg@2", 0.25, 4),
                     ("eval/arith/pass@1", 0.25, 4), ("eval/arith/pass@2", 0.5, 4), "flush", "close"]
    assert read_metrics(tmp_path)[0]["eval/arith/pass@2"] == 0.5          # the JSONL is written either way


def test_eval_of_a_run_folder_says_where_the_metrics_went(tmp_path, tiny_model_dir, store_path, capsys):
    run = tmp_path / "run"
    make_checkpoint(run, 5, tiny_model_dir)
    assert main(["eval", str(run), "--engine", "hf", "--n", "1", "--max-tokens", "4", "--limit", "1", "--store",
                 str(store_path), "--quiet", "--no-leaderboard"]) == 0
    assert f"checkpoint metrics (eval/<task>/pass@k by step): {run / METRICS_FILE}" in capsys.readouterr().out
    assert [line["step"] for line in read_metrics(run)] == [5]
