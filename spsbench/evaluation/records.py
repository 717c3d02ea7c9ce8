"""The records that cross the evaluation's boundaries, as named, typed values.

`EvalRequest` is what a caller asks for (built and validated once, at the edge: the CLI or the
trainer's callback); `EvalKey` is the identity under which the store keeps an evaluation; `Scores` is
what comes back, convertible to and from the store's `ScoreRow`s; `EvalResult` wraps it per task.
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
from spsbench.store import ScoreRow
from spsbench.validate import creatable_file


@dataclass(frozen=True)
class ModelTags:
    """Training provenance attached to a checkpoint in the store."""

    run_name: str | None = None
    step: int | None = None
    algo: str | None = None
    base_model: str | None = None


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


@dataclass(frozen=True)
class EvalKey:
    """The identity of a stored evaluation. n is not part of it: raising n extends an evaluation and
    lowering it scores a subset. `task_digest` is what the task is (problems, gold answers, prompts,
    grader: `spsbench.tasks.identity`), so a task changed under the same name and version is new."""

    model_id: int
    task: str
    task_version: str
    grader_policy: str
    sampling_key: str
    task_digest: str = ""


@dataclass(frozen=True)
class Interval:
    value: float
    ci_low: float | None = None
    ci_high: float | None = None


@dataclass
class Scores:
    """Avg@n and Pass@k with intervals, outcome counts and (multiple choice) the chance floor."""

    n: int
    avg: Interval | None = None
    pass_at_k: dict[int, Interval] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    chance_pass_at_k: dict[int, float] = field(default_factory=dict)
    problems: int | None = None

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any], counts: Mapping[str, int],
                     chance: Mapping[int, float] | None = None) -> Scores:
        """From `metrics.summarize` output plus the stored outcome counts."""
        return cls(n=int(summary["n"]), avg=Interval(**summary["avg@n"]),
                   pass_at_k={int(k): Interval(**v) for k, v in summary["pass@k"].items()},
                   counts=dict(counts), chance_pass_at_k=dict(chance or {}), problems=summary.get("problems"))

    @classmethod
    def from_rows(cls, rows: Sequence[ScoreRow], n: int) -> Scores:
        """From the store's score rows (a checkpoint already evaluated)."""
        out = cls(n=n)
        for r in rows:
            cell = Interval(r.value, r.ci_low, r.ci_high)
            if r.metric == "avg@n":
                out.avg, out.n = cell, r.n
            elif r.metric == "pass@k":
                out.pass_at_k[r.k] = cell
            elif r.metric.startswith("count:"):
                out.counts[r.metric.removeprefix("count:")] = int(r.value)
            elif r.metric == "chance_pass@k":
                out.chance_pass_at_k[r.k] = r.value
        return out

    def to_rows(self) -> list[ScoreRow]:
        rows = [ScoreRow("avg@n", 0, self.avg.value, self.avg.ci_low, self.avg.ci_high, self.n)] if self.avg else []
        rows += [ScoreRow("pass@k", k, v.value, v.ci_low, v.ci_high, self.n) for k, v in self.pass_at_k.items()]
        rows += [ScoreRow(f"count:{o}", 0, float(c), None, None, self.n) for o, c in self.counts.items()]
        rows += [ScoreRow("chance_pass@k", k, v, None, None, self.n) for k, v in self.chance_pass_at_k.items()]
        return rows


@dataclass
class EvalResult:
    task: str
    eval_id: int
    model: str
    n: int
    scores: Scores
    generated: int = 0            # samples generated (and stored) by this call; 0 when fully resumed
    elapsed_s: float = 0.0
