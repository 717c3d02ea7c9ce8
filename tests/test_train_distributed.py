"""SPS under `torchrun --nproc_per_node 2` on CPU (gloo): each rank selects and trains on its own rollouts,
and parameters stay identical across ranks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
