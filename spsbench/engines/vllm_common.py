"""What the in-process vLLM engine (engines/vllm.py) and its data-parallel replicas (engines/vllm_replicas.py)
share: the picklable result of one vLLM request and the environment of unbound CPU threads.

Both import this module and neither imports the other's internals, so the pair has no cycle, lazy or not:
vllm.py starts the replicas through vllm_replicas.py, and vllm_replicas.py knows only this module.
"""

from __future__ import annotations

from typing import Any

# One sample's result: text, completion token count, finish reason, prompt token count, generated ids.
Result = tuple[str, int, str, int, tuple[int, ...]]


def output_fields(out: Any) -> Result:
    """The parts of a vLLM RequestOutput spsbench keeps (picklable, for replica processes too)."""
    best = out.outputs[0]
    ids = tuple(int(i) for i in best.token_ids)
    return best.text, len(ids), best.finish_reason or "length", len(out.prompt_token_ids or ()), ids


def unbound_threads_env(n: int) -> dict[str, str]:
    """Environment for n unbound OpenMP threads (vLLM's own binding pins one thread per core)."""
    return {"VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_NUM_THREADS": str(n)}
