"""The records that cross the evaluation's boundaries, as named, typed values.

`EvalRequest` is what a caller asks for (built and validated once, at the edge: the CLI or the
trainer's callback); `EvalResult` wraps the `Scores` of one task. The records the store keeps
(`EvalKey`, `ModelTags`, `Scores`, `Interval`) are the store's (`spsbench.store.records`), re-exported
here for the callers that build a request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spsbench import paths
from spsbench.config import SamplingConfig
from spsbench.engines import check_engine_options
from spsbench.errors import ConfigError, StoreError
from spsbench.grading import GradingPolicy
from spsbench.metrics import report_ks
from spsbench.store import EvalKey, Interval, ModelTags, Scores
from spsbench.validate import creatable_file


def check_ks(n: int, ks: Sequence[int]) -> tuple[int, ...]:
    """The requested ks, refused (one line, before any work) when one exceeds n."""
    try:
        report_ks(n, ks)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return tuple(sorted({int(k) for k in ks}))


@dataclass(frozen=True)
class EvalRequest:
    """One model on some tasks at one sampling setting; validated when built, so nothing downstream
    re-checks it. `model` None or "default" = the embedded default model."""

    model: str | None
    tasks: tuple[str, ...]
    sampling: SamplingConfig
    engine: str = "hf"
    engine_options: Mapping[str, Any] = field(default_factory=dict)
    store: Path | None = None               # None: the default store
    data: Mapping[str, str] = field(default_factory=dict)    # task name -> local data file
    ks: tuple[int, ...] = ()
    limit: int | None = None
    tags: ModelTags | None = None
    grading: GradingPolicy = field(default_factory=GradingPolicy)
    progress: bool = True
    grader_workers: int | None = None
    check_engine: bool = True               # False when the caller supplies its own engine factory

    def __post_init__(self) -> None:
        set_ = object.__setattr__            # frozen: normalise the inputs once, here
        set_(self, "tasks", tuple(self.tasks))
        set_(self, "store", Path(self.store) if self.store is not None else None)
        set_(self, "data", dict(self.data or {}))
        set_(self, "engine_options", dict(self.engine_options or {}))
        set_(self, "grading", self.grading or GradingPolicy())
        if not self.tasks:
            raise ConfigError("--tasks: give at least one task")
        if self.store is not None and self.store.is_dir():      # before any model loads, not after
            raise StoreError(f"results store {self.store} is a folder; pass a file path (e.g. results/spsbench.db)")
        # An unwritable store (or results/ folder) is refused now, not after the model was loaded.
        creatable_file(self.store or paths.default_store_path(), "results store", error=StoreError)
        if self.limit is not None and (isinstance(self.limit, bool) or not isinstance(self.limit, int)
                                       or self.limit < 1):
            raise ConfigError(f"--limit: must be a positive integer, got {self.limit!r}")
        set_(self, "ks", check_ks(self.sampling.n, self.ks))
        if self.check_engine:
            check_engine_options(self.engine, dict(self.engine_options))

    def replace(self, **changes: Any) -> EvalRequest:
        return dataclasses.replace(self, **changes)


@dataclass
class EvalResult:
    task: str
    eval_id: int
    model: str
    n: int
    scores: Scores
    generated: int = 0            # samples generated (and stored) by this call; 0 when fully resumed
    elapsed_s: float = 0.0


__all__ = ["EvalKey", "EvalRequest", "EvalResult", "Interval", "ModelTags", "Scores", "check_ks"]
