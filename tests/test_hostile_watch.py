"""`eval --watch` and checkpoints still being written (issue 23, class 7): a checkpoint is evaluated once it is
complete, never while its weights are still being written, and exactly once; one found broken is looked at
again when its files change; the watch says what it waits for (nothing there yet, a save marker, the
Trainer's last file) and, when it ends, what was still incomplete.

Generator: a checkpoint written file by file in a random order (weights in two halves, so a truncated file
is seen first; trainer_state.json before or after them; in a run that uses save markers, the marker last),
with random pauses, while a watch scans it.
"""

from __future__ import annotations

import io
import random
import shutil
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from spsbench import paths
from spsbench.config import SamplingConfig
from spsbench.evaluation import scan
from spsbench.evaluation.records import EvalRequest
from tests.test_scan import make_checkpoint

SAMPLING = SamplingConfig(n=2, max_tokens=8)


def test_the_watch_waits_for_the_marker_train_writes():
    import ast

    # Read, not imported (the trainer module pulls in transformers): the marker train writes is the one the
    # watch waits for, by name (train.preempt takes it from spsbench.paths, not from a copy of the string).
    tree = ast.parse((Path(scan.__file__).parent.parent / "train" / "preempt.py").read_text())
    values = {t.id: ast.unparse(n.value) for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
              if isinstance(t, ast.Name)}
    assert values["COMPLETE"] == "paths.CHECKPOINT_COMPLETE"
    assert paths.CHECKPOINT_COMPLETE == "spsbench_checkpoint_complete"


def watch(run: Path, store: Path, factory, console_out: io.StringIO, until_idle: float = 1.5):
    request = EvalRequest(None, ("arith",), SAMPLING, store=store, limit=2, progress=False)
    return scan.scan_run(run, request, watch=True, interval=0.1, until_idle=until_idle,
                         console=Console(file=console_out, width=400), engine_factory=factory)


class Guard:
    """An engine factory that fails the test if a checkpoint is evaluated before its weights are whole."""

    def __init__(self, factory, weights: bytes) -> None:
        self.factory, self.weights, self.loaded = factory, weights, []

    def __call__(self, engine: str, model_path: str):
        data = (Path(model_path) / "model.safetensors").read_bytes()
        assert data == self.weights, f"{model_path} evaluated while its weights were {len(data)} of " \
                                     f"{len(self.weights)} bytes"
        self.loaded.append(Path(model_path).name)
        return self.factory(engine, model_path)


def write_slowly(folder: Path, source: Path, order: list[str], rng: random.Random, marker: bool) -> threading.Thread:
    """Write the checkpoint `folder` from `source` in `order` (weights as two halves), pausing between steps."""
    weights = (source / "model.safetensors").read_bytes()
    others = [p for p in source.iterdir() if p.name != "model.safetensors"]

    def step(name: str) -> None:
        if name == "weights-half":
            (folder / "model.safetensors").write_bytes(weights[: len(weights) // 2])
        elif name == "weights-rest":
            (folder / "model.safetensors").write_bytes(weights)
        elif name == "config":
            for p in others:
                shutil.copy(p, folder / p.name)
        elif name == "trainer_state":
            (folder / "trainer_state.json").write_text("{}")
        elif name == "marker":
            (folder / paths.CHECKPOINT_COMPLETE).write_text("")

    def run() -> None:
        for name in order + (["marker"] if marker else []):
            time.sleep(rng.uniform(0.1, 0.5))
            step(name)

    folder.mkdir()
    writer = threading.Thread(target=run)
    writer.start()
    return writer


def orders(seed: int) -> list[str]:
    """A write order: the weights' halves in order, everything else anywhere."""
    rng = random.Random(seed)
    order = ["config", "trainer_state"]
    rng.shuffle(order)
    first = rng.randint(0, len(order))
    order.insert(first, "weights-half")
    order.insert(rng.randint(first + 1, len(order)), "weights-rest")
    return order


@pytest.mark.parametrize("marked", [False, True], ids=["other trainer", "spsbench run (save markers)"])
@pytest.mark.parametrize("seed", range(3))
def test_a_checkpoint_being_written_is_evaluated_once_when_complete(tmp_path, tiny_model_dir, store_path,
                                                                    fake_factory, monkeypatch, seed, marked):
    monkeypatch.setattr(scan, "SETTLE_S", 0.3)
    run = tmp_path / "run"
    first = make_checkpoint(run, 10, tiny_model_dir)
    if marked:
        (first / paths.CHECKPOINT_COMPLETE).write_text("")
    rng = random.Random(seed)
    guard = Guard(fake_factory, (tiny_model_dir / "model.safetensors").read_bytes())
    writer = write_slowly(run / "checkpoint-20", tiny_model_dir, orders(seed), rng, marker=marked)
    out = io.StringIO()
    report = watch(run, store_path, guard, out, until_idle=2.0)
    writer.join()
    assert [(c.step, c.status) for c in report.checkpoints] == [(10, "evaluated"), (20, "evaluated")], out.getvalue()
    assert guard.loaded == ["checkpoint-10", "checkpoint-20"]                       # each once, when whole


def test_a_broken_checkpoint_that_changes_is_checked_again(tmp_path, tiny_model_dir, store_path, fake_factory,
                                                           monkeypatch, capsys):
    monkeypatch.setattr(scan, "SETTLE_S", 0.2)
    run = tmp_path / "run"
    broken = make_checkpoint(run, 10, tiny_model_dir)
    weights = broken / "model.safetensors"
    whole = weights.read_bytes()
    weights.write_bytes(whole[: len(whole) // 3])          # trainer_state.json is there: looks complete

    def repair() -> None:
        time.sleep(1.0)
        weights.write_bytes(whole)

    fixer = threading.Thread(target=repair)
    fixer.start()
    out = io.StringIO()
    report = watch(run, store_path, fake_factory, out, until_idle=2.5)
    fixer.join()
    log = out.getvalue()
    err = capsys.readouterr().err                                       # warnings go to the terminal's stderr
    assert err.count("spsbench: warning: skipping broken checkpoint") == 1, err   # said once, not at every scan
    assert "checkpoint-10 changed since it was found broken: checking it again" in log
    assert [(c.step, c.status) for c in report.checkpoints] == [(10, "evaluated")]


def test_the_watch_says_what_it_waits_for(tmp_path, tiny_model_dir, store_path, fake_factory):
    run = tmp_path / "run"
    run.mkdir()
    out = io.StringIO()
    report = watch(run, store_path, fake_factory, out, until_idle=0.3)
    log = out.getvalue()
    assert report.checkpoints == []
    assert log.startswith(f"watching {run}: each checkpoint-*/ is evaluated once complete")
    assert f"no checkpoint in {run} yet; waiting" in log and "no new checkpoint for 0.3 s: done watching" in log
    # A run with save markers: a checkpoint without its marker waits for it, and is named when the watch ends.
    (make_checkpoint(run, 10, tiny_model_dir) / paths.CHECKPOINT_COMPLETE).write_text("")
    make_checkpoint(run, 20, tiny_model_dir)
    out = io.StringIO()
    report = watch(run, store_path, fake_factory, out, until_idle=0.5)
    log = out.getvalue()
    assert [(c.step, c.status) for c in report.checkpoints] == [(10, "evaluated")]
    assert log.count("checkpoint-20: waiting for spsbench_checkpoint_complete") == 1, log
    assert "not evaluated, incomplete when the watch ended (checkpoint-20 waits for spsbench_checkpoint_complete" \
        in log
