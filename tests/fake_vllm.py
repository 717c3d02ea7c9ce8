"""A stand-in for the `vllm` module in spawned replica processes (spsbench.engines.vllm_replicas): each
sample's text depends only on its seed; `FAKE_VLLM_FAIL` makes LLM() fail like a replica out of memory."""

from __future__ import annotations

import os
from types import SimpleNamespace as NS


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
