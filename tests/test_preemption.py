"""Preemption and crash safety of `spsbench train` and `spsbench eval`.

- eval: SIGTERM behaves like Ctrl-C: one message, exit 143, every generated sample committed, a rerun
  generates only the rest (fast, in-process, fake engine).
- train: SIGTERM saves a complete checkpoint at the next step boundary and exits 143 with a message;
  `--resume` finishes the run (slow).
- train: SIGKILL mid RL step, mid IRL phase, mid checkpoint save and mid in-training evaluation, then
  `--resume` until done, ends with the weights of an uninterrupted run (slow).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spsbench.cli import main
from spsbench.store import Store
from tests.fixtures.tiny_model import tiny_model
from tests.fixtures.train_cli import PARITY_REWARD_CLI

# ------------------------------------------------------------------ eval: SIGTERM like Ctrl-C


def test_sigterm_during_eval_keeps_committed_work(capsys, tiny_model_dir, store_path, monkeypatch):
    from spsbench.evaluation import evaluate as evaluate_module
    from tests.conftest import FakeEngine

    class Terminated(FakeEngine):
        """Sends the process SIGTERM after its 5th completion, as a scheduler would."""

        def generate(self, requests, sampling):
            for count, completion in enumerate(super().generate(requests, sampling), 1):
                yield completion
                if count == 5:
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(5)              # the handler raises long before this ends

    monkeypatch.setattr(evaluate_module, "_default_factory", lambda options: lambda engine, model: Terminated())
    argv = ["eval", str(tiny_model_dir), "--engine", "hf", "--n", "2", "--limit", "6", "--store", str(store_path),
            "--no-leaderboard", "--quiet"]
    before = signal.getsignal(signal.SIGTERM)
    assert main(argv) == 143
    err = capsys.readouterr().err
    assert "spsbench eval: terminated (SIGTERM); finished work is in the store" in err and "Traceback" not in err
    assert signal.getsignal(signal.SIGTERM) is before                  # the handler is main()'s only
    with Store(store_path) as s:
        [ev] = s.evaluations(status=None)
        assert s.count_samples(ev.id) == 5                 # everything generated before the signal
    monkeypatch.setattr(evaluate_module, "_default_factory", lambda options: lambda engine, model: FakeEngine())
    assert main(argv) == 0
    with Store(store_path) as s:
        [ev] = s.evaluations()
        assert s.count_samples(ev.id) == 12


# ------------------------------------------------------------------ train: SIGTERM and SIGKILL (slow)

STEPS = 6
SETTINGS = ["rl.num_generations=4", "rl.per_device_train_batch_size=8", "rl.gradient_accumulation_steps=1",
            "rl.max_completion_length=8", f"rl.max_steps={STEPS}", "rl.save_steps=2", "rl.learning_rate=1e-3",
            "rl.logging_steps=100", "limit=16", "sps.rl_steps_per_phase=2", "sps.irl_batch_size=6",
            "sps.irl_micro_batch_size=4", "sps.irl_learning_rate=1e-3", "eval.base=false", "eval.n=1",
            "eval.max_tokens=4", "eval.limit=2", "eval.engine=hf"]


def command(model: Path, run: Path, store: Path, *extra: str) -> list[str]:
    sets = [x for s in [*SETTINGS, f"output_dir={run}", f"eval.store={store}"] for x in ("--set", s)]
    return [sys.executable, "-c", PARITY_REWARD_CLI, "train", "--algo", "sps", "--model", str(model), *sets, *extra]


def weights(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run / f"checkpoint-{STEPS}" / "model.safetensors"))


def start(cmd: list[str]) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=Path(__file__).resolve().parent.parent)


def wait_for(proc: subprocess.Popen, condition, timeout: float = 900) -> bool:
    """Poll until `condition()` or the process ends; True when the condition came first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if condition():
            return True
        time.sleep(0.05)
    return False


def children(pid: int) -> list[str]:
    out = subprocess.run(["ps", "-o", "args=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return out.splitlines()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("ref")
    model = tiny_model(root / "model")
    run = root / "run"
    proc = start(command(model, run, root / "s.db", "--no-eval"))
    _, err = proc.communicate(timeout=1800)
    assert proc.returncode == 0, err[-2000:]
    return model, weights(run)


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_resume_finishes(reference, tmp_path):
    model, _ = reference
    run = tmp_path / "run"
    proc = start(command(model, run, tmp_path / "s.db", "--no-eval"))
    assert wait_for(proc, lambda: (run / "checkpoint-2" / "spsbench_checkpoint_complete").is_file())
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 143, err[-2000:]
    assert "stopped by SIGTERM at step" in out and "Traceback" not in err
    saved = sorted(p.name for p in run.glob("checkpoint-*") if (p / "spsbench_checkpoint_complete").is_file())
    assert len(saved) >= 2                            # checkpoint-2 and the preemption checkpoint
    proc = start(command(model, run, tmp_path / "s.db", "--no-eval", "--resume"))
    _, err = proc.communicate(timeout=1800)
    assert proc.returncode == 0, err[-2000:]
    assert (run / f"checkpoint-{STEPS}" / "spsbench_checkpoint_complete").is_file()


def kill_points(run: Path, proc: subprocess.Popen) -> dict:
    """Conditions under which to SIGKILL the trainer (each observed from outside the process)."""
    def marked(step: int) -> bool:
        return (run / f"checkpoint-{step}" / "spsbench_checkpoint_complete").is_file()

    return {
        # checkpoint-4's folder exists but its save has not finished
        "mid checkpoint save": lambda: (run / "checkpoint-4").is_dir() and not marked(4),
        # the isolated evaluation of checkpoint-2 is running in its child process
        "mid in-training evaluation": lambda: any("eval_worker" in c for c in children(proc.pid)),
        # step 3 is running: checkpoint-2 is complete and its evaluation over
        "mid RL step": lambda: marked(2) and not any("eval_worker" in c for c in children(proc.pid))
        and time.sleep(1.0) is None,
        # step 4 holds the second IRL phase (rl_steps_per_phase=2): killed after the phase log's first line
        "mid IRL phase": lambda: (run / "sps_phases.jsonl").is_file() and marked(2) and not marked(4)
        and time.sleep(2.5) is None,
    }


@pytest.mark.slow
@pytest.mark.parametrize("point", ["mid checkpoint save", "mid in-training evaluation", "mid RL step",
                                   "mid IRL phase"])
def test_sigkill_then_resume_ends_with_the_uninterrupted_weights(reference, tmp_path, point):
    import torch

    model, expected = reference
    run = tmp_path / "run"
    proc = start(command(model, run, tmp_path / "s.db"))
    hit = wait_for(proc, kill_points(run, proc)[point])
    proc.kill()
    proc.communicate()
    assert hit, f"the run ended before the kill point {point!r}"
    for _ in range(3):                                # resume until the run is complete
        proc = start(command(model, run, tmp_path / "s.db", "--resume"))
        _, err = proc.communicate(timeout=1800)
        assert proc.returncode == 0 and "Traceback" not in err, err[-2000:]
        if (run / f"checkpoint-{STEPS}" / "spsbench_checkpoint_complete").is_file():
            break
    got = weights(run)
    assert got.keys() == expected.keys()
    for name in expected:
        assert torch.allclose(got[name], expected[name], atol=1e-6, rtol=0), name
    rows = sqlite3.connect(tmp_path / "s.db").execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
    assert rows >= 1                                  # the in-training evaluations were stored
