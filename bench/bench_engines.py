"""Generation speed per engine on the embedded default (SmolLM2-135M-Instruct), side by side in one run.

Same prompts, same SamplingConfig, same per-sample seeds for: hf bf16, hf fp32, vllm (eager, bf16) and,
when SPSBENCH_BENCH_OPENAI_URL (+ SPSBENCH_BENCH_OPENAI_MODEL) names a server, the openai engine.
Figures: generated tokens/s (real completion-token counts), start-up time, and ratios to hf bf16.
An engine that fails (cannot start, crashes mid-run) is a row with its one-line error; the others still
run and the table is always printed. SPSBENCH_BENCH_SCALE (default 1) multiplies the number of prompts.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from spsbench.config import SamplingConfig, sample_seed
from spsbench.engines import load_engine
from spsbench.engines.base import GenRequest

N_PROMPTS, N_SAMPLES, MAX_TOKENS = 4, 8, 64
BASE = "hf bf16"             # the row the other rows' speeds are compared to
QUESTIONS = ["What is {a} + {b}? Answer with a number.", "Compute {a} * {b}.",
             "If I have {a} apples and eat {b}, how many are left?",
             "Is {a} larger than {b}? Explain briefly."]


def requests(scale: int) -> list[GenRequest]:
    out = []
    for i in range(N_PROMPTS * scale):
        prompt = QUESTIONS[i % len(QUESTIONS)].format(a=17 + 3 * i, b=5 + i)
        key = f"q{i}"
        out.append(GenRequest(key, prompt, tuple(range(N_SAMPLES)),
                              tuple(sample_seed(0, key, j) for j in range(N_SAMPLES))))
    return out


def measure(name: str, model: str, options: dict[str, Any], reqs: list[GenRequest],
            sampling: SamplingConfig) -> dict[str, Any]:
    start = time.perf_counter()
    engine = load_engine(name, model, **options)
    startup = time.perf_counter() - start
    try:
        start = time.perf_counter()
        completions = list(engine.generate(reqs, sampling))
        wall = time.perf_counter() - start
    finally:
        engine.close()
    tokens = sum(c.completion_tokens for c in completions)
    return {"startup": startup, "wall": wall, "tokens": tokens, "tok_s": tokens / wall}


def sampling_config() -> SamplingConfig:
    return SamplingConfig(n=N_SAMPLES, temperature=0.7, max_tokens=MAX_TOKENS, seed=0)


def measure_in_subprocess(name: str, model: str, options: dict[str, Any], scale: int) -> dict[str, Any]:
    args = [sys.executable, "-m", "bench.bench_engines", "--one", name, model, json.dumps(options),
            str(scale)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=900,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        raise RuntimeError(f"{name} subprocess failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def configs() -> list[tuple[str, str, dict[str, Any]]]:
    rows = [("hf bf16", "hf", {"dtype": "bf16", "batch_size": N_SAMPLES * 4}),
            ("hf fp32", "hf", {"dtype": "fp32", "batch_size": N_SAMPLES * 4}),
            # 1 thread: under competing load, 2 OpenMP threads on 2 cores spin-wait (measured ~8x slower).
            ("hf bf16 1 thread", "hf", {"dtype": "bf16", "batch_size": N_SAMPLES * 4, "num_threads": 1}),
            ("hf fp32 1 thread", "hf", {"dtype": "fp32", "batch_size": N_SAMPLES * 4, "num_threads": 1})]
    if importlib.util.find_spec("vllm") is not None:   # no import here: vLLM runs in child processes
        rows.append(("vllm eager bf16", "vllm", {"dtype": "bf16", "enforce_eager": True}))   # 1 thread
        rows.append(("vllm eager bf16 bound", "vllm", {"dtype": "bf16", "enforce_eager": True,
                                                       "cpu_threads": 0}))
        # Without AVX-512 (bf16) oneDNN has no bf16 matmul and vLLM falls back to slow torch linears.
        rows.append(("vllm eager fp32", "vllm", {"dtype": "fp32", "enforce_eager": True}))
        rows.append(("vllm eager fp32 bound", "vllm", {"dtype": "fp32", "enforce_eager": True,
                                                       "cpu_threads": 0}))
    if os.environ.get("SPSBENCH_BENCH_OPENAI_URL"):
        rows.append(("openai", "openai", {"base_url": os.environ["SPSBENCH_BENCH_OPENAI_URL"]}))
    return rows


def run(console: Console) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from spsbench.models import default_model_path

    start = time.perf_counter()
    model = str(default_model_path())
    ready = time.perf_counter() - start
    console.print(f"default model ready in {ready:.1f} s (conversion only on first use)")
    scale = int(os.environ.get("SPSBENCH_BENCH_SCALE", "1"))
    reqs = requests(scale)
    sampling = sampling_config()
    table = Table(title=f"{len(reqs)} prompts x {N_SAMPLES} samples x <= {MAX_TOKENS} tokens, SmolLM2-135M")
    for col in ("engine", "start-up s", "gen wall s", "tokens", "tok/s", f"vs {BASE}"):
        table.add_column(col, justify="left" if col == "engine" else "right")
    base = None
    for label, name, options in configs():
        served = os.environ.get("SPSBENCH_BENCH_OPENAI_MODEL", model) if name == "openai" else model
        console.print(f"running {label} ...")
        try:
            # vLLM runs in a fresh process per row: it caches its env settings and pins threads process-wide.
            r = measure_in_subprocess(name, served, options, scale) if name == "vllm" else \
                measure(name, served, options, reqs, sampling)
        except Exception as exc:  # noqa: BLE001 - one engine failing must not lose the other rows
            table.add_row(label, *["—"] * 4, f"[red]failed: {_one_line(exc)}[/]")
            continue
        if label == BASE:
            base = r["tok_s"]
        table.add_row(label, f"{r['startup']:.1f}", f"{r['wall']:.1f}", str(r["tokens"]), f"{r['tok_s']:.0f}",
                      f"{r['tok_s'] / base:.2f}x" if base else "—")      # no ratio if the base row failed
    console.print(table)


def _one_line(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:160]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:     # child mode of measure_in_subprocess: print one JSON line
        engine, model_arg, opts, scale_arg = sys.argv[2:6]
        result = measure(engine, model_arg, json.loads(opts), requests(int(scale_arg)), sampling_config())
        print(json.dumps(result))
    else:
        run(Console())
