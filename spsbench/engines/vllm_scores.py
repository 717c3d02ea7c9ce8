"""Per-token entropies from inside vLLM, for `spsbench diagnose`: a vLLM (V1) logits processor that, for the
requests that ask (`SamplingParams.extra_args[SCORE_KEY]`), records the entropy of the next-token distribution
at every step, computed from the engine's own float32 logits before temperature, penalties or top-p (the
model's raw distribution, temperature 1).

Why: the entropy diagnostic needs the full distribution at every generated position. Recomputing it meant a
second forward pass of every completion through a transformers copy of the model, which costs about what
generating them did; the engine already computed those logits. The processor returns the logits unchanged,
so sampling is not affected. It is read back in-process, so it is installed only when vLLM runs its engine
core in this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`, spsbench's CPU default); elsewhere diagnose scores
the completions itself.

Alignment: vLLM hands each added request's running output-token list to the processor, so the entropy of
the token about to be sampled is stored at position `len(output_tokens)`; `take()` returns a request's
entropies only when every position 0..n-1 was recorded.
"""

from __future__ import annotations

import threading
from typing import Any

SCORE_KEY = "spsbench_scores"       # SamplingParams.extra_args key: the tag the entropies are filed under

_records: dict[str, dict[int, float]] = {}
_lock = threading.Lock()


def take(tag: str, length: int) -> tuple[float, ...] | None:
    """The recorded entropies of request `tag` for its `length` generated tokens (then forgotten); None when
    a position is missing (the request was not recorded, or the engine skipped a step we cannot place)."""
    with _lock:
        recorded = _records.pop(tag, {})
    if any(i not in recorded for i in range(length)):
        return None
    return tuple(recorded[i] for i in range(length))


def forget() -> None:
    with _lock:
        _records.clear()


def processor_class() -> type:
    """The logits processor class (vLLM imported here, when the engine starts)."""
    from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
    from vllm.v1.sample.logits_processor.builtin import process_dict_updates

    class TokenEntropies(LogitsProcessor):
        """Records entropies of the rows whose request carries SCORE_KEY; changes nothing."""

        def __init__(self, vllm_config: Any, device: Any, is_pin_memory: bool) -> None:
            self.rows: dict[int, tuple[str, list[int]]] = {}      # batch index -> (tag, running output ids)

        def is_argmax_invariant(self) -> bool:
            return False            # applied to greedy batches too: the greedy path's entropies are recorded

        def update_state(self, batch_update: BatchUpdate | None) -> None:
            # vLLM's own bookkeeping for sparse per-request state (added, removed, moved, swapped rows)
            process_dict_updates(self.rows, batch_update, _row_state)

        def apply(self, logits: Any) -> Any:
            if not self.rows:
                return logits
            import torch

            index = sorted(i for i in self.rows if i < logits.shape[0])
            logp = torch.log_softmax(logits[index].float(), dim=-1)
            entropies = (-(logp.exp() * logp).sum(-1)).tolist()
            with _lock:
                for i, h in zip(index, entropies, strict=True):
                    tag, output = self.rows[i]
                    _records.setdefault(tag, {})[len(output)] = float(h)
            return logits

    return TokenEntropies


def _row_state(params: Any, prompt: Any, output: list[int]) -> tuple[str, list[int]] | None:
    """(tag, the request's running output ids) for a request that asks for entropies, else None."""
    tag = (getattr(params, "extra_args", None) or {}).get(SCORE_KEY)
    return None if tag is None else (str(tag), output)
