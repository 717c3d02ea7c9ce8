"""A stand-in for the `vllm` module in spawned replica processes (spsbench.engines.vllm_replicas): each
sample's text depends only on its seed; `FAKE_VLLM_FAIL` makes LLM() fail like a replica out of memory.
`install` puts a fake module where the in-process engine looks for vLLM."""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace as NS
from typing import Any


def install(monkeypatch: Any, module: Any) -> Any:
    """`module` as `vllm` for this test, and a stand-in for the engine's entropy recorder, whose base class
    (vLLM's LogitsProcessor, under vllm.v1) a fake module has not."""
    from spsbench.engines import vllm_scores

    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setattr(vllm_scores, "processor_class", lambda: type("TokenEntropies", (), {}))
    return module


def SamplingParams(**kwargs):  # noqa: N802 - the name vLLM uses
    return NS(**kwargs)


class LLM:
    def __init__(self, model, **kwargs):
        if os.environ.get("FAKE_VLLM_FAIL"):
            raise RuntimeError("no memory for the KV cache\nsecond line")
        self.model, self.kwargs = model, kwargs

    def get_tokenizer(self):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.model)

    def generate(self, prompts, params, use_tqdm=True):
        return [NS(prompt_token_ids=p["prompt_token_ids"],
                   outputs=[NS(text=f"seed {sp.seed}", token_ids=[1, 2], finish_reason="length")])
                for p, sp in zip(prompts, params, strict=True)]
