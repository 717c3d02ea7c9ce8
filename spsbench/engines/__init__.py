"""Generation engines behind one small interface, and their registry: the one place engine names are written.

`ENGINES` maps a name to its class as a lazy "module:Class" string (importing this package imports no engine
module, hence never torch, transformers or vllm). Each class answers for itself (engines/base.py
`EngineBase`): its options, the model identity the store records, the model's context and prompt token
counts, whether it is served over HTTP. The command line's `--engine` choices are `engine_names()`.
Adding an engine is one module plus one line here (docs/architecture.md, "How to add").
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

from spsbench.engines.base import Completion, Engine, EngineBase, GenRequest
from spsbench.engines.options import check_option
from spsbench.errors import EngineError

# Explicit registry, in the order the command line lists the choices.
ENGINES: dict[str, str] = {
    "auto": "spsbench.engines.auto:AutoEngine",       # vllm if it is installed and starts, else hf
    "vllm": "spsbench.engines.vllm:VLLMEngine",
    "hf": "spsbench.engines.hf:HFEngine",
    "openai": "spsbench.engines.openai:OpenAIEngine",
}
DEFAULT_ENGINE = "auto"            # without --engine
DEFAULT_SERVED_ENGINE = "openai"   # without --engine, with a server's --base-url


def engine_class(name: str) -> type[EngineBase]:
    if name not in ENGINES:
        raise EngineError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    module_name, _, attr = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module_name), attr)


def engine_names(served: bool | None = None) -> tuple[str, ...]:
    """The registered engines in registry order; `served=False` only those that run the model in this
    process (what `spsbench diagnose` can score), `served=True` only those behind a server."""
    return tuple(name for name in ENGINES if served is None or engine_class(name).served == served)


def vllm_installed() -> bool:
    """Whether `import vllm` can work, without importing it (the import alone costs seconds)."""
    if "vllm" in sys.modules:
        return True
    return importlib.util.find_spec("vllm") is not None


def load_engine(name: str, model: str, **options: Any) -> Engine:
    """Instantiate engine `name` for `model` (a folder, hub id, or served model name)."""
    return engine_class(name).load(model, **options)


def load_stored(name: str, stored: str, **options: Any) -> Engine:
    """Engine `name` for a model as the store records it (`EngineBase.identify`)."""
    engine = engine_class(name)
    return engine.load(engine.model_to_load(stored), **options)


def check_engine_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Options checked (names and values) without loading anything: a one-line EngineError up front
    rather than after tasks load, or never when the store already holds the whole evaluation."""
    kinds = engine_class(name).option_kinds()
    unknown = sorted(set(options) - set(kinds))
    if unknown:
        raise EngineError(f"engine {name}: unknown option(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(sorted(kinds))}")
    return {k: check_option(name, k, v, kinds[k]) for k, v in options.items()}


def accepts_option(name: str, option: str) -> bool:
    """Whether engine `name` takes `option` (False for an unknown engine: that is refused where it is used)."""
    return name in ENGINES and option in engine_class(name).option_kinds()


__all__ = ["DEFAULT_ENGINE", "DEFAULT_SERVED_ENGINE", "ENGINES", "Completion", "Engine", "EngineBase", "GenRequest",
           "accepts_option", "check_engine_options", "engine_class", "engine_names", "load_engine", "load_stored",
           "vllm_installed"]
