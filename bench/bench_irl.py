"""SPS's IRL phase at scale: peak memory of an IRL micro-batch against an RL micro-batch, and the IRL phase's
share of an iteration at the recipe's real phase length.

Memory: each variant runs in a fresh process on one random model (vocabulary 32k, so the LM head
dominates as it does for Qwen2.5's 152k) and the same rows (8 x 128 prompt + 512 completion tokens):
one warm-up forward+backward, then the peak resident set of a second one above the resident set just
before it (Linux VmHWM, reset through /proc/self/clear_refs; MALLOC_MMAP_THRESHOLD_ makes large blocks
go back to the OS when freed, so the resident set follows live tensors). Variants: `irl` (spsbench's
completion NLL: LM head on completion positions, checkpointed chunks), `rl` (TRL 1.16's policy forward
in its loss: the fused LM head with log-probs and entropies, backward of a per-token objective), and
`irl-full-logits` (the former IRL loss, full fp32 logits over prompt + completion) and `backbone` (the
model without its LM head: the memory floor of any micro-batch on these rows) for scale. Without Triton
(CPU), TRL's fused head scores every position in one 32,768-token tile, so the RL figure here is its CPU
path; on GPUs its Triton kernel tiles only the completion positions, so compare IRL against `backbone` too.

Share: one SPS run on the bench_train model measures the RL step time per completion and the IRL
phase time per trained sequence; the recipe's phase (recipes/gpu/sps-qwen2.5-math-1.5b.yaml, 3,000
prompts, 8 GPUs: `spsbench train --dry-run`) then weighs them: 4 IRL steps x 512 sequences against
187 RL steps x 128 completions.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

MEMORY_TARGET, SHARE_TARGET = 1.2, 0.03
ROWS, PROMPT, COMPLETION, VOCAB = 8, 128, 512, 32000

MEASURE = r'''
import gc, json, sys, torch
from transformers import AutoModelForCausalLM, LlamaConfig
kind, rows, prompt, completion, vocab = sys.argv[1], *map(int, sys.argv[2:6])
torch.manual_seed(0)
torch.set_num_threads(1)
config = LlamaConfig(vocab_size=vocab, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024)
model = AutoModelForCausalLM.from_config(config).float()
g = torch.Generator().manual_seed(1)
data = [{"prompt_ids": torch.randint(8, vocab, (prompt,), generator=g).tolist(),
         "completion_ids": torch.randint(8, vocab, (completion,), generator=g).tolist()} for _ in range(rows)]
ids = torch.tensor([r["prompt_ids"] + r["completion_ids"] for r in data])
labels = ids.clone()
labels[:, :prompt] = -100

def step():
    if kind == "irl":
        from spsbench.train.sps.irl import completion_nll
        loss = completion_nll(model, data, 0)
    elif kind == "backbone":     # the floor of any micro-batch on these rows: no LM head at all
        loss = model.base_model(input_ids=ids).last_hidden_state.float().square().mean()
    elif kind == "irl-full-logits":
        logits = model(input_ids=ids).logits[:, :-1].float()
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), labels[:, 1:].reshape(-1), reduction="sum")
    else:
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, fused_lm_head=True)
        loss = -(out.log_probs * 0.5).sum() - 0.0 * out.entropy.sum()
    loss.backward()
    model.zero_grad(set_to_none=True)

if kind == "rl":
    from trl.trainer.utils import add_fused_lm_head
    add_fused_lm_head(model, temperature=1.0, outputs=("log_probs", "entropy"))   # what GRPOTrainer installs
step()
gc.collect()
def kb(field):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(field))
before = kb("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")
step()
print(json.dumps({"peak_mib": (kb("VmHWM:") - before) / 1024}))
'''


def peak_mib(kind: str) -> float:
    """Peak resident memory (MiB) of one forward+backward of `kind` above the process's resident set before it."""
    root = str(Path(__file__).resolve().parents[1])
    env = os.environ | {"PYTHONPATH": root, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1",
                        "HF_HUB_OFFLINE": "1"}
    args = [sys.executable, "-c", MEASURE, kind, str(ROWS), str(PROMPT), str(COMPLETION), str(VOCAB)]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode:
        raise RuntimeError(f"{kind}: {proc.stderr.strip().splitlines()[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_mib"]


def memory_rows(console) -> None:
    peak = {kind: peak_mib(kind) for kind in ("backbone", "rl", "irl", "irl-full-logits")}
    ratio = peak["irl"] / peak["rl"]
    console.print(f"peak memory of one forward+backward ({ROWS} x {PROMPT}+{COMPLETION} tokens, vocab {VOCAB}, "
                  f"fp32, CPU): RL micro-batch (TRL 1.16 fused LM head + entropy) {peak['rl']:.0f} MiB, IRL "
                  f"{peak['irl']:.0f} MiB = {ratio:.2f}x RL ({'PASS' if ratio <= MEMORY_TARGET else 'FAIL'}: target "
                  f"<= {MEMORY_TARGET}x)")
    console.print(f"... the same rows without any LM head (backbone only, the floor of any RL step) "
                  f"{peak['backbone']:.0f} MiB: IRL = {peak['irl'] / peak['backbone']:.2f}x it; the former "
                  f"full-logits IRL loss {peak['irl-full-logits']:.0f} MiB = {peak['irl-full-logits'] / peak['rl']:.2f}x RL")


def recipe_phase() -> tuple[int, int, int]:
    """(RL steps per phase, completions per RL step, IRL sequences per phase) of the 1.5B recipe at 3k prompts."""
    from spsbench.train.config import load_config
    from spsbench.train.plan import make_plan

    config = load_config(config=Path(__file__).resolve().parents[1] / "recipes/gpu/sps-qwen2.5-math-1.5b.yaml")
    plan = make_plan(config, prompts=3000)
    return plan.rl_steps_per_phase, plan.generation_batch["completions"], plan.irl_sequences_trained_per_phase


def share_rows(console) -> None:
    import spsbench.grading as grading
    from bench.bench_train import HIDDEN, SIZES, _stand_in_reward, _step_timer
    from spsbench.train.config import load_config
    from spsbench.train.run import build_trainer, pick_cpu_threads
    from tests.fixtures.tiny_model import tiny_model

    real, grading.reward = grading.reward, _stand_in_reward
    pick_cpu_threads()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = str(tiny_model(Path(tmp) / "model", hidden=HIDDEN, layers=4))
            cfg = load_config("sps", overrides=[*SIZES, f"output_dir={tmp}/run"], model=model_dir)
            trainer, _ = build_trainer(cfg)
            timer = _step_timer()
            trainer.add_callback(timer)
            trainer.train()
    finally:
        grading.reward = real
    phase = trainer.irl_phases()[0]
    step = statistics.median(timer.durations[1:-1])          # the last step holds the IRL phase
    per_completion = step / trainer.args.per_device_train_batch_size
    trained = cfg.sps.irl_steps * min(cfg.sps.irl_batch_size, phase["sequences"])
    per_sequence = phase["irl_time_s"] / trained
    steps, completions, sequences = recipe_phase()
    share = sequences * per_sequence / (sequences * per_sequence + steps * completions * per_completion)
    console.print(f"IRL phase: {phase['irl_time_s']:.1f} s for {trained} sequences ({per_sequence * 1e3:.0f} ms each); "
                  f"RL step {step:.2f} s for {trainer.args.per_device_train_batch_size} completions")
    console.print(f"IRL share at the 1.5B recipe's phase ({steps} RL steps x {completions} completions, {sequences} "
                  f"IRL sequences): {share:.1%} ({'PASS' if share <= SHARE_TARGET else 'FAIL'}: target <= "
                  f"{SHARE_TARGET:.0%}; paper Table 5 ~3%)")


def run(console) -> None:
    memory_rows(console)
    share_rows(console)
