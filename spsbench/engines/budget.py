"""The completion token budget: how many new tokens fit after a task's prompts in a model's context.

`completion_budget` is the arithmetic (pure). `context_length` reads the context from the model's
config.json (an engine's `max_model_len` option wins), `longest_prompt` counts prompts with the model's
tokenizer and chat template exactly as the local engines encode them (engines/chat.py). Evaluation
(spsbench.evaluation.budget) and training rollouts (spsbench.train.budget) both resolve their budget
here before anything runs, so a request that does not fit is clamped once, with one warning line, and
the effective value is the one recorded: engines never cap it silently (vLLM), refuse it (OpenAI
servers) or generate past the trained positions (HF).

The context is the config's own number (`max_position_embeddings` or its older names): a model whose
rope scaling extends it is given its longer context with the engine option `max_model_len`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spsbench.engines.chat import encode_prompt
from spsbench.errors import BudgetError, EngineError

# config.json keys holding the context length, in the order transformers' model families use them.
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "max_seq_len")


@dataclass(frozen=True)
class Budget:
    """A requested completion budget and the one that fits (equal when the context is unknown)."""

    requested: int
    effective: int
    context: int | None = None
    longest_prompt: int | None = None

    @property
    def clamped(self) -> bool:
        return self.effective < self.requested

    def warning(self, what: str) -> str:
        """The one warning line for a clamped budget."""
        return (f"spsbench: warning: {what}: {self.requested} new tokens do not fit the model's "
                f"{self.context}-token context after the longest prompt ({self.longest_prompt} tokens); "
                f"using {self.effective}")


def completion_budget(requested: int, context: int | None, longest_prompt: int | None,
                      what: str = "max_tokens") -> Budget:
    """min(requested, context - longest prompt); a prompt that alone fills the context is a BudgetError."""
    if context is None or longest_prompt is None:
        return Budget(requested, requested, context, longest_prompt)
    room = context - longest_prompt
    if room < 1:
        raise BudgetError(f"{what}: the longest prompt is {longest_prompt} tokens and the model's context is "
                          f"{context}: no room for a completion (shorten the prompts or use a longer context)")
    return Budget(requested, min(requested, room), context, longest_prompt)


def config_context(config: Mapping[str, Any]) -> int | None:
    """The context length a config.json mapping declares (a multimodal model's text_config too)."""
    text = config.get("text_config")
    for source in (config, text if isinstance(text, Mapping) else {}):
        for key in CONTEXT_KEYS:
            value = source.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def context_length(model_path: str, max_model_len: int | None = None) -> int | None:
    """The model's context: `max_model_len` if given, else its config.json's; None when unknown
    (a hub model not in the local cache: the engine will fetch it)."""
    if max_model_len:
        return int(max_model_len)
    file = _config_file(model_path)
    if file is None:
        return None
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config_context(config) if isinstance(config, dict) else None


def _config_file(model_path: str) -> Path | None:
    folder = Path(model_path)
    if folder.is_dir():
        file = folder / "config.json"
        return file if file.is_file() else None
    try:   # a hub id: only what is already cached (no download here)
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(model_path, "config.json")
    except Exception:  # noqa: BLE001 - not a valid repo id, or no hub client: the context is unknown
        return None
    return Path(hit) if isinstance(hit, str) else None


def load_tokenizer(model_path: str, trust_remote_code: bool = False) -> Any:
    """The model's tokenizer (transformers, imported here); a failure is one EngineError line."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EngineError(f"cannot load the tokenizer of {model_path!r} to count prompt tokens: {first}") from None


def longest_prompt(tokenizer: Any, prompts: Iterable[str], chat_template: str) -> int:
    """Tokens of the longest prompt as the engines encode it (chat template applied per `chat_template`)."""
    return max((len(encode_prompt(tokenizer, p, chat_template)) for p in set(prompts)), default=0)
