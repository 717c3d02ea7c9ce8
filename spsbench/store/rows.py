"""The store's rows as typed records: what `Store` methods take and return. A model's training tags are
one record, `ModelTags`, carried whole by `ModelRow` and `EvalRow` (and readable as their attributes)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelTags:
    """Training provenance attached to a checkpoint in the store (all None: a model not trained here)."""

    run_name: str | None = None
    step: int | None = None
    algo: str | None = None
    base_model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """{"run_name", "step", "algo", "base_model"}, in that order."""
        return dataclasses.asdict(self)


class Tagged:
    """`row.run_name` etc. for a row that carries its model's `tags`."""

    tags: ModelTags

    @property
    def run_name(self) -> str | None:
        return self.tags.run_name

    @property
    def step(self) -> int | None:
        return self.tags.step

    @property
    def algo(self) -> str | None:
        return self.tags.algo

    @property
    def base_model(self) -> str | None:
        return self.tags.base_model


@dataclass(frozen=True)
class SampleRow:
    problem_id: str
    sample_idx: int
    seed: int
    prompt: str
    completion: str
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None
    extracted: str | None
    outcome: str


@dataclass(frozen=True)
class ModelRow(Tagged):
    id: int
    path: str
    weights_hash: str
    tags: ModelTags = field(default_factory=ModelTags)


@dataclass(frozen=True)
class EvalRow(Tagged):
    id: int
    model_id: int
    model_path: str
    weights_hash: str
    tags: ModelTags
    task: str
    task_version: str
    grader_policy: str
    sampling: dict[str, Any]        # SamplingConfig.to_dict() (with the evaluation's n)
    n: int
    engine: str
    status: str
    created_at: str
    finished_at: str | None
    task_digest: str = ""           # '' = legacy: stored before v4, not yet resumed by a run that checked it


@dataclass(frozen=True)
class SessionRow:
    """One run that opened an evaluation: its provenance and what it stored."""

    id: int
    eval_id: int
    kind: str                       # run | upgrade
    started_at: str
    engine: str
    n: int
    provenance: dict[str, Any]
    samples: int
    min_idx: int | None
    max_idx: int | None
    last_at: str | None


@dataclass(frozen=True)
class ScoreRow:
    metric: str
    k: int
    value: float
    ci_low: float | None
    ci_high: float | None
    n: int


@dataclass(frozen=True)
class RunFailureRow:
    """Something that failed during a training run (a checkpoint evaluation, a leaderboard refresh)."""

    id: int
    run_name: str
    step: int | None
    model_path: str | None
    kind: str                       # evaluation | leaderboard
    message: str
    created_at: str
