"""Generation engines behind one small interface; heavy backends are lazy "module:object" strings.

`auto` is not an engine of its own: it picks vLLM when the package is importable (the main engine) and
falls back to hf, with one warning line, when vLLM is missing or cannot start on the model.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

from spsbench.engines.base import Completion, Engine, GenRequest
from spsbench.engines.options import check_option
from spsbench.errors import EngineError
from spsbench.quiet import warn

# Explicit registry. Importing this module must not import torch, transformers or vllm.
ENGINES: dict[str, str] = {
    "vllm": "spsbench.engines.vllm:VLLMEngine",
    "hf": "spsbench.engines.hf:HFEngine",
    "openai": "spsbench.engines.openai:OpenAIEngine",
}
CHOICES = ("auto", *ENGINES)


def engine_class(name: str) -> type:
    if name not in ENGINES:
        raise EngineError(f"unknown engine {name!r}; choose one of {', '.join(CHOICES)}")
    module_name, _, attr = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module_name), attr)


def vllm_installed() -> bool:
    """Whether `import vllm` can work, without importing it (the import alone costs seconds)."""
    if "vllm" in sys.modules:
        return True
    return importlib.util.find_spec("vllm") is not None


def load_engine(name: str, model: str, **options: Any) -> Engine:
    """Instantiate engine `name` (or `auto`) for `model` (a folder, hub id, or served model name)."""
    if name != "auto":
        return engine_class(name)(model, **options)
    check_engine_options("auto", options)
    if not vllm_installed():
        return engine_class("hf")(model, **_options_for("hf", options))
    try:
        return engine_class("vllm")(model, **_options_for("vllm", options))
    except EngineError as exc:
        warn(f"vLLM could not start ({exc}); using the hf engine")
        return engine_class("hf")(model, **_options_for("hf", options))


def check_engine_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Options checked (names and values) without loading anything: a one-line EngineError up front
    rather than after tasks load, or never when the store already holds the whole evaluation."""

    if name not in CHOICES:
        raise EngineError(f"unknown engine {name!r}; choose one of {', '.join(CHOICES)}")
    kinds = _kinds("vllm") | _kinds("hf") if name == "auto" else _kinds(name)
    unknown = sorted(set(options) - set(kinds))
    if unknown:
        raise EngineError(f"engine {name}: unknown option(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(sorted(kinds))}")
    return {k: check_option(name, k, v, kinds[k]) for k, v in options.items()}


def _module(name: str) -> Any:
    return importlib.import_module(ENGINES[name].partition(":")[0])


def _allowed(name: str) -> dict[str, Any]:
    return _module(name).OPTIONS


def _kinds(name: str) -> dict[str, Any]:
    return _module(name).KINDS


def _options_for(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The subset of `options` engine `name` understands (auto passes one option set to either engine)."""
    return {k: v for k, v in options.items() if k in _allowed(name)}


__all__ = ["CHOICES", "ENGINES", "Completion", "Engine", "GenRequest", "check_engine_options", "engine_class",
           "load_engine", "vllm_installed"]
