"""Generation engines behind one small interface; heavy backends are lazy "module:object" strings."""

from __future__ import annotations

import importlib
from typing import Any

from spsbench.engines.base import Completion, Engine, GenRequest
from spsbench.errors import EngineError

# Explicit registry. Importing this module must not import torch, transformers or vllm.
ENGINES: dict[str, str] = {
    "vllm": "spsbench.engines.vllm_engine:VLLMEngine",
    "hf": "spsbench.engines.hf:HFEngine",
    "openai": "spsbench.engines.openai_engine:OpenAIEngine",
}


def engine_class(name: str) -> type:
    if name not in ENGINES:
        raise EngineError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    module_name, _, attr = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module_name), attr)


def load_engine(name: str, model: str, **options: Any) -> Engine:
    """Instantiate engine `name` for `model` (a folder, hub id, or served model name)."""
    return engine_class(name)(model, **options)


__all__ = ["ENGINES", "Completion", "Engine", "GenRequest", "engine_class", "load_engine"]
