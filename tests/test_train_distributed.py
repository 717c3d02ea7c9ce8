"""SPS under `torchrun --nproc_per_node 2` on CPU (gloo): each rank selects and trains on its own rollouts,
and parameters stay identical across ranks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.train_cli import PARITY_REWARD_CLI

SCRIPT = r'''
import json, sys, torch
import spsbench.grading as grading
grading.reward = lambda completions, golds, kind="math", choices=None: [float(len(t) % 2) for t in completions]
from spsbench.train.config import load_config
from spsbench.train.run import build_trainer, shutdown_distributed
model_dir, out = sys.argv[1], sys.argv[2]
cfg = load_config("sps", overrides=["rl.num_generations=4", "rl.per_device_train_batch_size=4",
    "rl.gradient_accumulation_steps=1", "rl.max_completion_length=8", "rl.max_steps=2", "rl.save_steps=100",
    "eval.enabled=false", "limit=16", "sps.rl_steps_per_phase=2", "sps.irl_batch_size=5",
    "sps.irl_micro_batch_size=2", "sps.irl_learning_rate=1e-3", "sps.l2te_truncated=keep",
    f"output_dir={out}/run"], model=model_dir)
trainer, _ = build_trainer(cfg)
trainer.train()
rank = trainer.accelerator.process_index
flat = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
phase = trainer.phase.log[0]
# each rank selected from its own groups only, drawing as a single process would for those group indices
from spsbench.train.sps.l2te import Scored, select_l2te
groups = trainer.phase.last_groups
picks = select_l2te([[Scored(r["logp"], r["correct"]) for r in g] for g in groups], 3, 0.5, seed=0, phase=0,
                    first_group=rank * len(groups))
expected = [groups[g][i]["completion_ids"] for g, idx in enumerate(picks) for i in idx]
json.dump({"world": trainer.accelerator.num_processes, "sum": flat.double().sum().item(),
           "first": flat[:50].tolist(), "groups": phase["groups"], "sequences": phase["sequences"],
           "rel": phase["rel_weight_change"], "local_groups": len(groups),
           "local_selection_ok": [r["completion_ids"] for r in trainer.phase.last_selection] == expected},
          open(f"{out}/rank{rank}.json", "w"))
shutdown_distributed()
'''


@pytest.mark.slow
def test_torchrun_two_cpu_ranks_keep_identical_parameters_after_irl(tmp_path):
    from tests.fixtures.tiny_model import tiny_model

    model_dir = tiny_model(tmp_path / "model")
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    torchrun = Path(sys.executable).parent / "torchrun"
    # the script runs from tmp_path: put this checkout first on the path, not whatever spsbench is installed
    root = str(Path(__file__).resolve().parents[1])
    env = os.environ | {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": root}
    proc = subprocess.run([str(torchrun), "--nproc_per_node", "2", str(script), str(model_dir), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world"] == 2
    assert ranks[0]["first"] == ranks[1]["first"] and ranks[0]["sum"] == ranks[1]["sum"]
    assert ranks[0]["groups"] == 4 == ranks[1]["groups"]       # 2 steps x 1 group per rank, counted on both
    assert ranks[0]["sequences"] == 12 and ranks[0]["rel"] > 0
    assert all(r["local_groups"] == 2 and r["local_selection_ok"] for r in ranks)   # no rollout crossed ranks


# ------------------------------------------------------------------ resume mid-phase on 2 ranks (slow)

STEPS = 6
# one prompt group per rank per step; IRL phases at steps 3 and 6; checkpoints at 2 and 4 fall mid-phase
SETTINGS = ["rl.num_generations=4", "rl.per_device_train_batch_size=4", "rl.gradient_accumulation_steps=1",
            "rl.max_completion_length=8", f"rl.max_steps={STEPS}", "rl.save_steps=2", "rl.learning_rate=1e-3",
            "rl.logging_steps=100", "limit=16", "sps.rl_steps_per_phase=3", "sps.irl_batch_size=6",
            "sps.irl_micro_batch_size=2", "sps.irl_learning_rate=1e-3", "sps.l2te_truncated=keep"]


def torchrun(tmp_path, model_dir, run, *extra):
    import subprocess

    script = tmp_path / "cli.py"
    script.write_text(PARITY_REWARD_CLI)
    sets = [x for s in [*SETTINGS, f"output_dir={run}"] for x in ("--set", s)]
    root = str(Path(__file__).resolve().parents[1])
    env = os.environ | {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": root}
    cmd = [str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node", "2", str(script), "train", "--algo",
           "sps", "--model", str(model_dir), "--no-eval", *sets, *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)


def complete(run, step):
    return (run / f"checkpoint-{step}" / "spsbench_checkpoint_complete").is_file()


def final_weights(run):
    from safetensors.torch import load_file

    return load_file(str(run / f"checkpoint-{STEPS}" / "model.safetensors"))


def kill_workers(proc):
    """SIGKILL every rank at once (torchrun starts each in its own session), as a node failure would."""
    import signal
    import subprocess

    pids = subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True, text=True).stdout.split()
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)
    proc.communicate(timeout=120)
    return len(pids)


@pytest.mark.slow
def test_torchrun_resume_mid_phase_restores_every_ranks_buffer_and_ends_with_the_uninterrupted_weights(tmp_path):
    import time

    import torch

    from tests.fixtures.tiny_model import tiny_model

    model_dir = tiny_model(tmp_path / "model")
    reference = tmp_path / "reference"
    proc = torchrun(tmp_path, model_dir, reference)
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    expected = final_weights(reference)

    run = tmp_path / "run"
    proc = torchrun(tmp_path, model_dir, run)
    deadline = time.monotonic() + 900
    while not complete(run, 2) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before its first checkpoint could be interrupted"
    assert kill_workers(proc) == 2
    assert not complete(run, STEPS)                           # killed before the end: mid-phase (2 or 4)

    # each rank saved its own buffer: different rollouts, one group per step on each
    killed_at = max(s for s in (2, 4) if complete(run, s))
    states = [torch.load(run / f"checkpoint-{killed_at}" / f"sps_state-rank{r}.pt", weights_only=True)
              for r in (0, 1)]
    assert [s["world_size"] for s in states] == [2, 2] and [s["rank"] for s in states] == [0, 1]
    assert len(states[0]["buffer"]) == len(states[1]["buffer"]) == killed_at - 3 * (killed_at > 3)
    assert states[0]["buffer"] != states[1]["buffer"]
    assert not (run / f"checkpoint-{killed_at}" / "sps_state.pt").exists()

    proc = torchrun(tmp_path, model_dir, run, "--resume")
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    got = final_weights(run)
    assert got.keys() == expected.keys()
    for name in expected:
        assert torch.allclose(got[name], expected[name], atol=1e-6, rtol=0), name
    ran = [json.loads(line) for line in (run / "sps_phases.jsonl").read_text().splitlines()]
    whole = [json.loads(line) for line in (reference / "sps_phases.jsonl").read_text().splitlines()]
    assert [(p["step"], p["groups"], p["sequences"]) for p in ran] == [(p["step"], p["groups"], p["sequences"])
                                                                       for p in whole] == [(3, 6, 18), (6, 6, 18)]
