"""`auto`, the default engine: vLLM when the package is importable (the main engine), else hf; hf also when
vLLM cannot start on the model, with one warning line.

Both run the model in this process, so `auto` answers the pre-load questions (identity, context, prompt
counts) as they do (LocalEngine); it takes the options of either, and each gets the ones it knows.
"""

from __future__ import annotations

from typing import Any

from spsbench import engines as registry
from spsbench.engines.base import Engine
from spsbench.engines.local import LocalEngine
from spsbench.engines.options import Opt
from spsbench.errors import EngineError
from spsbench.quiet import warn

PREFERRED, FALLBACK = "vllm", "hf"


class AutoEngine(LocalEngine):
    """Never instantiated: `load` returns the engine it picked, which records itself in the store."""

    name = "auto"

    @classmethod
    def option_kinds(cls) -> dict[str, Opt]:
        return registry.engine_class(PREFERRED).option_kinds() | registry.engine_class(FALLBACK).option_kinds()

    @classmethod
    def load(cls, model: str, **options: Any) -> Engine:
        registry.check_engine_options(cls.name, options)
        if not registry.vllm_installed():
            return _load(FALLBACK, model, options)
        try:
            return _load(PREFERRED, model, options)
        except EngineError as exc:
            warn(f"vLLM could not start ({exc}); using the hf engine")
            return _load(FALLBACK, model, options)


def _load(name: str, model: str, options: dict[str, Any]) -> Engine:
    """Engine `name` with the subset of `options` it understands (auto passes one option set to either)."""
    engine = registry.engine_class(name)
    return engine(model, **{k: v for k, v in options.items() if k in engine.OPTIONS})
