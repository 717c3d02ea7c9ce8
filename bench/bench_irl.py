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

Share (the IRL phase's share of an RL + IRL iteration at the 1.5B recipe's phase): per-token costs of each
pass measured on rollouts of the recipe's length (RL policy forward+backward as TRL's loss runs it, a
log-prob forward, the IRL forward+backward, generation), the optimizer step, and the per-phase overheads
of a real SPS phase (selection, IRL steps, diagnostics: light vs full) timed apart; then time = cost per
token x the phase's tokens on each side (`spsbench train --dry-run` of the recipe at 3,000 prompts), with
the generation share g of an RL step as the one parameter this machine cannot measure for a GPU. Printed:
the share at g = 0 (an upper bound), at this CPU's g, and the g above which it meets the paper's 3.2%.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

MEMORY_TARGET = 1.2
SHARE_TARGET = 2.25 / (68.10 + 2.25)           # paper Table 5: IRL 2.25 min of a 70.35 min iteration (3.2%)
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


# ---------------------------------------------------------------------------------------------- IRL share

RECIPE = "recipes/gpu/sps-qwen2.5-math-1.5b.yaml"
# Per-token costs are measured on rollouts of the recipe's length (max_completion_length 4,096) after a
# prompt of 128 tokens, on a random Llama (hidden 256, 4 layers, vocabulary 32k: LM head and backbone
# both matter, as for Qwen2.5's 152k vocabulary over hidden 1,536), fp32, one thread, gradient
# checkpointing on as the recipe has it. One row per pass (the fused LM head's CPU path scores a whole
# row in one tile); the generation batch is 8 rows.
COSTS = r"""
import json, statistics, sys, time, torch
from transformers import AutoModelForCausalLM, LlamaConfig
prompt, completion, vocab, gen_rows = map(int, sys.argv[1:5])
torch.manual_seed(0)
torch.set_num_threads(1)
config = LlamaConfig(vocab_size=vocab, hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                     num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=prompt + completion + 8)
model = AutoModelForCausalLM.from_config(config).float()
g = torch.Generator().manual_seed(1)
row = {"prompt_ids": torch.randint(8, vocab, (prompt,), generator=g).tolist(),
       "completion_ids": torch.randint(8, vocab, (completion,), generator=g).tolist()}
ids = torch.tensor([row["prompt_ids"] + row["completion_ids"]])
labels = ids.clone()
labels[:, :prompt] = -100
from trl.trainer.utils import add_fused_lm_head
from spsbench.train.sps.irl import completion_nll
add_fused_lm_head(model, temperature=1.0, outputs=("log_probs", "entropy"))     # what GRPOTrainer installs
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-9)

def timed(fn, repeats=2):
    fn()                                                        # warm-up
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return statistics.median(out)

def rl_pass():        # TRL's policy forward in its loss: fused head (log-probs + entropy), per-token objective
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, fused_lm_head=True)
    (-(out.log_probs * 0.5).sum() - 0.0 * out.entropy.sum()).backward()
    model.zero_grad(set_to_none=True)

@torch.no_grad()
def logp_pass():      # a log-prob forward: the reference model (beta > 0) or the old policy (vLLM IS correction)
    model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, fused_lm_head=True)

def irl_pass():       # spsbench's IRL loss: backbone once, LM head on completion positions in checkpointed chunks
    completion_nll(model, [row], 0).backward()
    model.zero_grad(set_to_none=True)

def optimizer_step():
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)

model.train()
model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
tokens = prompt + completion
out = {"rl_s_per_token": timed(rl_pass) / tokens, "logp_s_per_token": timed(logp_pass) / tokens,
       "irl_s_per_token": timed(irl_pass) / tokens, "optimizer_step_s": timed(optimizer_step),
       "params": sum(p.numel() for p in model.parameters())}
model.gradient_checkpointing_disable()
model.eval()
prompts = torch.randint(8, vocab, (gen_rows, prompt), generator=g)
gen = lambda n: model.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=n,
                               min_new_tokens=n, do_sample=True, pad_token_id=0)
gen(16)                                                        # warm-up (a full-length one costs minutes)
start = time.perf_counter()
gen(completion)
out["generate_s_per_token"] = (time.perf_counter() - start) / (gen_rows * completion)
print(json.dumps(out))
"""


def measure_costs(prompt: int, completion: int, vocab: int = VOCAB, gen_rows: int = 8) -> dict[str, float]:
    """Per-token seconds of each pass (and the optimizer step), in a fresh one-thread process."""
    root = str(Path(__file__).resolve().parents[1])
    env = os.environ | {"PYTHONPATH": root, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    args = [sys.executable, "-c", COSTS, str(prompt), str(completion), str(vocab), str(gen_rows)]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=3600, check=False)
    if proc.returncode:
        raise RuntimeError(f"cost measurement: {proc.stderr.strip().splitlines()[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class Phase:
    """The recipe's phase in sequences and steps (`spsbench train --dry-run` at 3,000 prompts)."""

    rl_steps: int
    rollouts_per_step: int
    irl_steps: int
    irl_sequences: int          # sequences run through the IRL steps per phase
    selected: int               # what L2TE selects (coverage = trained distinct / this)
    logp_passes: int            # log-prob forwards per rollout besides the loss: reference (beta > 0), old policy


def recipe_phase(overrides: tuple[str, ...] = ()) -> Phase:
    from spsbench.train.config import load_config
    from spsbench.train.plan import make_plan

    config = load_config(config=Path(__file__).resolve().parents[1] / RECIPE, overrides=list(overrides))
    plan = make_plan(config, prompts=3000)
    rl = config.rl
    # TRL 1.16 computes old_per_token_logps with vLLM importance-sampling correction (default on) or when
    # generation and optimizer steps are misaligned (pinned in tests/test_train_seams.py)
    old = bool(rl.get("use_vllm")) and rl.get("vllm_importance_sampling_correction", True)
    passes = int(float(rl.get("beta", 0.0)) > 0) + int(old)
    batch = plan.generation_batch
    per_step = batch["completions"] * batch["gradient_accumulation_steps"] // batch["micro_steps"]
    return Phase(plan.rl_steps_per_phase, per_step,
                 plan.irl_steps_per_phase, plan.irl_sequences_trained_per_phase, plan.irl_sequences_per_phase, passes)


def share(costs: dict[str, float], phase: Phase, generation_share: float, irl_overhead_s: float = 0.0) -> float:
    """IRL share of an iteration: per-token costs x the phase's token counts (equal rollout lengths), with
    `generation_share` of each RL step spent generating (0 = RL counted as its training passes only)."""
    rl_train = phase.rl_steps * phase.rollouts_per_step * (costs["rl_s_per_token"]
                                                            + phase.logp_passes * costs["logp_s_per_token"])
    rl_train += phase.rl_steps * costs["optimizer_step_s"]
    rl = rl_train / (1.0 - generation_share)
    irl = phase.irl_sequences * costs["irl_s_per_token"] + phase.irl_steps * costs["optimizer_step_s"] + irl_overhead_s
    return irl / (irl + rl)


# Forward-pass units per token, what a GPU's compute-bound kernels make of each pass: forward = 1, backward
# = 2, and gradient checkpointing (the recipe's) recomputes the forward: RL loss and IRL pass 4 each.
FLOP_UNITS = {"rl_s_per_token": 4.0, "logp_s_per_token": 1.0, "irl_s_per_token": 4.0, "optimizer_step_s": 0.0}


def break_even(costs: dict[str, float], phase: Phase, target: float) -> float:
    """The generation share of an RL step above which the IRL share is <= target (bisection on `share`)."""
    low, high = 0.0, 0.999
    if share(costs, phase, low) <= target:
        return 0.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if share(costs, phase, mid) > target else (low, mid)
    return high


def overhead_rows(console) -> dict[str, dict[str, float]]:
    """One real SPS phase on the bench_train model per diagnostics mode: selection, IRL steps and diagnostics
    timed apart (the phase record's irl_select_s / irl_steps_s / irl_diagnostics_s)."""
    import spsbench.grading as grading
    from bench.bench_train import HIDDEN, SIZES, _stand_in_reward
    from spsbench.train.config import load_config
    from spsbench.train.run import build_trainer, pick_cpu_threads
    from tests.fixtures.tiny_model import tiny_model

    real, grading.reward = grading.reward, _stand_in_reward
    pick_cpu_threads()
    out = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = str(tiny_model(Path(tmp) / "model", hidden=HIDDEN, layers=4))
            for mode in ("light", "full"):
                sizes = [*SIZES, "rl.max_steps=4", "sps.rl_steps_per_phase=4", f"sps.irl_diagnostics={mode}"]
                cfg = load_config("sps", overrides=[*sizes, f"output_dir={tmp}/{mode}"], model=model_dir)
                trainer, _ = build_trainer(cfg)
                trainer.train()
                out[mode] = trainer.irl_phases()[0]
    finally:
        grading.reward = real
    for mode, ph in out.items():
        console.print(f"IRL phase, diagnostics {mode} ({ph['sequences']} sequences selected, {ph['irl_steps']} steps, "
                      f"bench_train model): selection {ph['irl_select_s']:.2f} s, IRL steps {ph['irl_steps_s']:.2f} s, "
                      f"diagnostics {ph['irl_diagnostics_s']:.2f} s "
                      f"({ph['irl_diagnostics_s'] / max(ph['irl_steps_s'], 1e-9):.1%} of the steps)")
    return out


def padding_row(console, micro: int = 8, rows: int = 512, seed: int = 0) -> None:
    """Tokens an IRL step pads, its rows in random order vs length-sorted (computed, lengths uniform 1..4096)."""
    import random

    rng = random.Random(seed)
    lengths = [128 + rng.randint(1, 4096) for _ in range(rows)]

    def padded(order: list[int]) -> int:
        return sum(max(order[i:i + micro]) * len(order[i:i + micro]) for i in range(0, len(order), micro))

    real = sum(lengths)
    console.print(f"IRL micro-batches of {micro} (512 rows, completion lengths uniform on 1..4096, computed): "
                  f"{padded(lengths) / real - 1:.0%} padding in random order, "
                  f"{padded(sorted(lengths, reverse=True)) / real - 1:.1%} length-sorted (what update.irl_step does)")


def share_rows(console) -> None:
    phase, auto = recipe_phase(), recipe_phase(("sps.irl_steps=auto",))
    costs = measure_costs(128, 4096)
    console.print(f"per-token costs ({costs['params'] / 1e6:.1f}M-parameter random Llama, vocab {VOCAB}, 128 + 4,096 "
                  f"tokens, fp32, 1 thread, gradient checkpointing): RL policy forward+backward "
                  f"{costs['rl_s_per_token'] * 1e3:.3f} ms/token, log-prob forward {costs['logp_s_per_token'] * 1e3:.3f}, "
                  f"IRL forward+backward {costs['irl_s_per_token'] * 1e3:.3f} "
                  f"({costs['irl_s_per_token'] / costs['rl_s_per_token']:.2f}x RL), generation "
                  f"{costs['generate_s_per_token'] * 1e3:.3f} (transformers, 8 rows); optimizer step "
                  f"{costs['optimizer_step_s'] * 1e3:.0f} ms")
    overheads = overhead_rows(console)
    padding_row(console)
    train_s = costs["rl_s_per_token"] + phase.logp_passes * costs["logp_s_per_token"]
    cpu_g = costs["generate_s_per_token"] / (costs["generate_s_per_token"] + train_s)
    # the light diagnostics' own cost at scale: one micro-batch forward per rank (~1/(3 x micro batches) of
    # one IRL step's compute); the strided snapshot and the finiteness checks are memory passes
    console.print(f"the recipe's phase ({RECIPE}, 3,000 prompts, 8 ranks): {phase.rl_steps} RL steps x "
                  f"{phase.rollouts_per_step} rollouts ({phase.logp_passes} log-prob forwards each besides the loss), "
                  f"{phase.irl_steps} IRL steps = {phase.irl_sequences} of {phase.selected} selected sequences; "
                  f"all of length 128 + 4,096")
    console.print("extrapolation: time = per-token cost x tokens (+ per-step optimizer cost) on each side, rollouts of "
                  "equal length, RL step = its training passes / (1 - g), g = the share of an RL step spent "
                  "generating on the target hardware (not measurable without a GPU)")
    for label, ph in (("irl_steps 4 (the paper's text)", phase), ("irl_steps auto (every selected sequence)", auto)):
        for name, unit in (("measured costs", costs), ("forward-pass units", FLOP_UNITS)):
            console.print(f"IRL share, {label}, {name}: g = 0 (upper bound: generation free) "
                          f"{share(unit, ph, 0.0):.1%}; g = {cpu_g:.0%} (this CPU's transformers generate) "
                          f"{share(unit, ph, cpu_g):.1%}; <= {SHARE_TARGET:.1%} (paper Table 5: 2.25 / (68.10 + 2.25)) "
                          f"for g >= {break_even(unit, ph, SHARE_TARGET):.0%}")
    measured, units = (break_even(c, phase, SHARE_TARGET) for c in (costs, FLOP_UNITS))
    light = overheads["light"]
    console.print(f"verdict at irl_steps 4 (target <= {SHARE_TARGET:.1%}): measured per-token costs "
                  f"{'PASS whatever g' if measured == 0 else f'PASS for g >= {measured:.0%}'}; forward-pass units "
                  f"(a GPU's compute-bound ratio) {'PASS whatever g' if units == 0 else f'PASS for g >= {units:.0%}'}; "
                  f"light per-phase diagnostics measured at {light['irl_diagnostics_s'] / max(light['irl_steps_s'], 1e-9):.1%}"
                  " of the IRL steps' time on the bench_train model, not included above")


def run(console) -> None:
    memory_rows(console)
    share_rows(console)
