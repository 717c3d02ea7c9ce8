"""The evaluation pipeline: task problems -> engine -> grader pool -> store -> scores.

CONTRACT (owned by the eval/store work; the trainer's callback and the CLI call `evaluate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from spsbench.config import SamplingConfig


@dataclass(frozen=True)
class ModelTags:
    """Training provenance attached to a checkpoint in the store."""

    run_name: str | None = None
    step: int | None = None
    algo: str | None = None
    base_model: str | None = None


@dataclass
class EvalResult:
    task: str
    eval_id: int
    model: str
    n: int
    scores: dict[str, Any] = field(default_factory=dict)   # metrics.summarize() output + outcome counts


def evaluate(model: str, tasks: Sequence[str], sampling: SamplingConfig, *, engine: str = "hf",
             store: str | Path | None = None, data: dict[str, str] | None = None, ks: Sequence[int] = (),
             tags: ModelTags | None = None, engine_options: dict[str, Any] | None = None,
             limit: int | None = None, progress: bool = True) -> list[EvalResult]:
    """Evaluate one model on tasks; resumes whatever the store already holds for the same identity."""
    raise NotImplementedError
