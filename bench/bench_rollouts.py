"""RL step time with transformers rollouts vs TRL's vLLM colocate rollouts, on the embedded default.

Same recipe (GRPO, CPU demo sizes: 1 prompt x 8 completions x <= 96 tokens), same seed; each variant
runs in its own process (a resident vLLM engine changes the process: see below), one after the other,
twice, interleaved. Per variant: seconds per RL step, of which rollout generation, and weight sync.

Measured (docs/training.md): on the AVX2-only EPYC here vLLM colocate made the step 1.32x slower and
even generation 1.26x slower (vLLM shares the 2 cores with the trainer); on an earlier machine it
generated ~2.6x faster, but the policy's own forward/backward ran ~20% slower beside the resident
engine, which ate the gain at these sizes. Skipped when the default model is not converted yet or vLLM is not installed.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

STEPS, ROUNDS = 4, 2

CHILD = r'''
import json, sys, time
STEPS = int(sys.argv[3])
from spsbench.train.config import load_config
from spsbench.train.run import build_trainer
import spsbench.grading as grading
use_vllm, out = sys.argv[1] == "vllm", sys.argv[2]
grading.reward = lambda completions, golds, kind="math", choices=None: [float(len(t) % 2) for t in completions]
ov = [f"rl.max_steps={STEPS}", "rl.save_steps=1000", "eval.enabled=false", f"output_dir={out}"]
if use_vllm:
    ov += ["rl.use_vllm=true", "rl.vllm_mode=colocate"]
trainer, _ = build_trainer(load_config("grpo", overrides=ov))
timers = {"gen": 0.0, "sync": 0.0}
def timed(name, fn):
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            timers[name] += time.perf_counter() - t
    return wrapper
trainer._generate_single_turn = timed("gen", trainer._generate_single_turn)
if use_vllm:
    trainer.vllm_generation.sync_weights = timed("sync", trainer.vllm_generation.sync_weights)
t = time.perf_counter(); trainer.train(); total = time.perf_counter() - t
print("RESULT " + json.dumps({"step": total / STEPS, "gen": timers["gen"] / STEPS, "sync": timers["sync"] / STEPS}))
'''


def _run(kind: str, out: Path) -> dict[str, float]:
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", CHILD, kind, str(out), str(STEPS)], capture_output=True, text=True, env=env,
                          timeout=1800)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{kind} run failed: {tail}")
    return json.loads(lines[-1][len("RESULT "):])


def run(console) -> None:
    import importlib.util

    from spsbench import paths
    from spsbench.models import DEFAULT_MODEL_NAME

    if not (paths.cache_dir() / "models" / DEFAULT_MODEL_NAME / "config.json").is_file():
        console.print("skipped: the embedded default model is not converted yet (run `spsbench eval` once)")
        return
    if importlib.util.find_spec("vllm") is None:
        console.print("skipped: vLLM is not installed (make setup-vllm)")
        return
    results: dict[str, list[dict[str, float]]] = {"hf": [], "vllm": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(ROUNDS):
            for kind in results:
                results[kind].append(_run(kind, Path(tmp) / f"{kind}{r}"))
    med = {k: {f: statistics.median(x[f] for x in v) for f in ("step", "gen", "sync")} for k, v in results.items()}
    for kind, m in med.items():
        console.print(f"{kind:>4} rollouts: {m['step']:.1f} s/step, of which generation {m['gen']:.1f} s, "
                      f"weight sync {m['sync']:.2f} s, rest {m['step'] - m['gen'] - m['sync']:.1f} s")
    console.print(f"vLLM colocate / transformers: step {med['vllm']['step'] / med['hf']['step']:.2f}x, generation "
                  f"{med['vllm']['gen'] / med['hf']['gen']:.2f}x ({STEPS} steps x {ROUNDS} rounds, SmolLM2-135M, "
                  "1 prompt x 8 x <= 96 tokens)")
