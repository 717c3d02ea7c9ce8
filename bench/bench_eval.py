"""Harness overhead and resume cost of `spsbench.evaluation.evaluate`, measured side by side in one run.

* overhead = wall time of evaluate() (task loading, grading in worker processes, SQLite commits,
  scoring) / wall time of the same warm engine generating the same prompts with the same sampling
  config and seeds directly, after a warm-up evaluate() (engine kernels, grader workers, imports). The direct run is timed before and after evaluate() and averaged, so
  drift from other load on the shared cores cancels out. Target <= 1.05.
* resume = evaluate() again on the finished evaluation (rescoring from the store, no engine load) as
  a percentage of the original evaluate() wall time. Target <= 2%.

Uses the HF engine on the embedded default model when it is already converted in the cache (otherwise
the tiny random model, whose generation is so fast that the ratio overstates the overhead).
SPSBENCH_BENCH_SCALE multiplies the number of problems.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from spsbench.config import SamplingConfig
from spsbench.evaluation.evaluate import evaluate, load_eval_task
from spsbench.evaluation.records import EvalRequest

PROBLEMS, N, MAX_TOKENS = 12, 4, 48
OVERHEAD_TARGET = 1.05       # evaluate() wall time / the engine generating the same samples directly
RESUME_TARGET_PCT = 2.0      # rescoring a finished evaluation, % of the original evaluate() wall time


class _Warm:
    """The already loaded engine, handed to evaluate() (which must not close it)."""

    def __init__(self, engine: Any) -> None:
        self.engine, self.name = engine, engine.name
        self.loads = 0

    def factory(self, *_: Any) -> _Warm:
        self.loads += 1
        return self

    def describe(self) -> dict:
        return self.engine.describe()

    def generate(self, requests: Any, sampling: Any) -> Any:
        return self.engine.generate(requests, sampling)

    def close(self) -> None:
        pass


def _model(tmp: Path) -> tuple[str, str]:
    from spsbench import paths
    from spsbench.models import DEFAULT_MODEL_NAME

    real = paths.cache_dir() / "models" / DEFAULT_MODEL_NAME
    if (real / "config.json").is_file():
        return str(real), "SmolLM2-135M-Instruct (embedded default)"
    from tests.fixtures.tiny_model import tiny_model

    return str(tiny_model(tmp / "tiny")), "tiny random model (default model not converted yet)"


def _direct(engine: Any, model: str, sampling: SamplingConfig, limit: int) -> tuple[float, int]:
    """Same requests evaluate() builds for an empty store, generated straight from the engine."""
    from spsbench.evaluation.evaluate import build_requests

    task = load_eval_task("arith", None, limit)
    requests = build_requests([(p, i) for p in task.problems for i in range(sampling.n)], sampling.seed)
    start = time.perf_counter()
    tokens = sum(c.completion_tokens for c in engine.generate(requests, sampling))
    return time.perf_counter() - start, tokens


def _timed_evaluate(model: str, store: Path, sampling: SamplingConfig, warm: _Warm, limit: int) -> tuple[float, Any]:
    start = time.perf_counter()
    [result] = evaluate(EvalRequest(model, ["arith"], sampling, store=store, limit=limit, progress=False), engine_factory=warm.factory)
    return time.perf_counter() - start, result


def run(console: Any) -> None:
    from spsbench.engines import load_engine

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    limit = PROBLEMS * int(os.environ.get("SPSBENCH_BENCH_SCALE", "1"))
    sampling = SamplingConfig(n=N, max_tokens=MAX_TOKENS)
    with tempfile.TemporaryDirectory() as tmp:
        model, label = _model(Path(tmp))
        engine = load_engine("hf", model)
        warm = _Warm(engine)
        try:
            # Warm-up of the whole harness (engine kernels, grader workers, imports), as when scanning
            # many checkpoints or evaluating from a training loop.
            _timed_evaluate(model, Path(tmp) / "warmup.db", SamplingConfig(n=2, max_tokens=8), warm, 2)
            before, tokens = _direct(engine, model, sampling, limit)
            took, result = _timed_evaluate(model, Path(tmp) / "s.db", sampling, warm, limit)
            after, _ = _direct(engine, model, sampling, limit)
            loads = warm.loads
            resume, again = _timed_evaluate(model, Path(tmp) / "s.db", sampling, warm, limit)
        finally:
            engine.close()
    direct = (before + after) / 2
    console.print(f"model: {label}; engine hf; {limit} problems x n={N}, max_tokens={MAX_TOKENS}, "
                  f"{tokens} generated tokens")
    console.print(f"engine direct: {before:.2f} s / {after:.2f} s (mean {direct:.2f} s, "
                  f"{tokens / direct:.0f} tok/s)")
    console.print(f"evaluate():    {took:.2f} s  ({result.generated} samples generated, graded, stored)")
    overhead, resume_pct = took / direct, 100 * resume / took
    console.print(f"[bold]harness overhead: {overhead:.3f}x[/] (target <= {OVERHEAD_TARGET}x) "
                  f"{verdict(overhead <= OVERHEAD_TARGET)}")
    console.print(f"[bold]resume of the finished evaluation: {resume:.3f} s = {resume_pct:.2f}% "
                  f"of the original[/] (target <= {RESUME_TARGET_PCT:g}%; generated {again.generated}, engine "
                  f"loads {warm.loads - loads}) {verdict(resume_pct <= RESUME_TARGET_PCT and again.generated == 0)}")


def verdict(ok: bool) -> str:
    """Reported, not asserted: timings on shared cores vary, and the other benchmarks must still run."""
    return "[green]PASS[/]" if ok else "[red]FAIL[/]"
