"""Prompts as the model sees them: the chat template (auto | on | off), token ids, stop strings, EOS ids.

Every local engine renders prompts to token ids with `encode_prompt`, so the HF and vLLM engines see
exactly the same prompt tokens for the same SamplingConfig.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from spsbench.errors import EngineError


def uses_chat_template(tokenizer: Any, mode: str) -> bool:
    """auto: the model's template if it has one; on: required; off: raw prompt text."""
    has = bool(getattr(tokenizer, "chat_template", None))
    if mode == "on" and not has:
        raise EngineError("chat_template=on but the model's tokenizer has no chat template")
    return has and mode != "off"


def chat_text(tokenizer: Any, prompt: str, mode: str) -> str:
    """The prompt as text the model sees (chat template applied with a generation prompt, or raw)."""
    if not uses_chat_template(tokenizer, mode):
        return prompt
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                         add_generation_prompt=True, tokenize=False)


def encode_prompt(tokenizer: Any, prompt: str, mode: str) -> list[int]:
    """Token ids of the rendered prompt. A chat template already holds its own special tokens."""
    templated = uses_chat_template(tokenizer, mode)
    text = chat_text(tokenizer, prompt, mode)
    return list(tokenizer(text, add_special_tokens=not templated)["input_ids"])


def trim_at_stop(text: str, stops: Iterable[str]) -> tuple[str, bool]:
    """Cut `text` before the earliest stop string; report whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def eos_token_ids(*sources: Any) -> set[int]:
    """Union of eos ids declared by model config, generation config and tokenizer (ints or lists)."""
    ids: set[int] = set()
    for src in sources:
        value = getattr(src, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids
