"""What the engines that run the model in this process (vllm, hf, auto) answer alike, before they load.

The model's identity is its resolved folder (or hub id) and weights hash; its context is its config.json's
(an engine's `max_model_len` option wins, engines/budget.py); prompts are counted with its tokenizer and
chat template exactly as these engines encode them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from spsbench.engines.base import EngineBase, ModelIdentity, PromptCounter, local_identity
from spsbench.engines.budget import context_length, load_tokenizer, longest_prompt
from spsbench.models import resolve_model


class LocalEngine(EngineBase):
    """Base of the engines whose weights load in this process."""

    served = False

    @classmethod
    def identify(cls, model: str | None, options: Mapping[str, Any]) -> ModelIdentity:
        """The resolved folder or hub id (None or "default": the embedded default model) and its weights hash."""
        path = resolve_model(None if model in (None, "", "default") else model)
        return ModelIdentity(path, local_identity(path)["weights_hash"])

    @classmethod
    def prompt_counter(cls, model_path: str, options: Mapping[str, Any]) -> PromptCounter:
        return LocalPromptCounter(model_path, options)


class LocalPromptCounter:
    """The context and prompt lengths of a model in this process; the tokenizer loads only when the
    context is known (a hub model not in the local cache has none, and nothing is clamped)."""

    def __init__(self, model_path: str, options: Mapping[str, Any]) -> None:
        self.model_path, self.options = model_path, options

    @functools.cached_property
    def context(self) -> int | None:
        return context_length(self.model_path, self.options.get("max_model_len"))

    def longest(self, prompts: list[str], chat_template: str) -> int | None:
        return longest_prompt(self._tokenizer, prompts, chat_template)

    def close(self) -> None:
        pass

    @functools.cached_property
    def _tokenizer(self) -> Any:
        return load_tokenizer(self.model_path, bool(self.options.get("trust_remote_code", False)))
