"""Task registry: loads `tasks/*.yaml` (data only, never code) and their problems.

CONTRACT (owned by the tasks work; other modules rely on these names and fields):
  Problem, TaskSpec, Task dataclasses below; list_specs(), load_spec(), load_task().
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Problem:
    id: str                              # unique within the task (string, e.g. "7" or "aime25-07")
    prompt: str                          # user-message text: the task's template already applied
    answer: str                          # gold: LaTeX-ish string for math, a letter ("C") for mc
    choices: tuple[str, ...] | None = None  # mc options in presented (deterministically shuffled) order
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    version: str
    grader: str                          # "math" | "mc" (a name in spsbench.grading.GRADERS)
    source: dict[str, Any]               # hub id/config/split/revision, or {"builtin": "arith", ...}
    columns: dict[str, str]              # our field -> dataset column
    prompt_template: str
    n: int                               # default samples per problem
    k: tuple[int, ...]                   # default k list
    description: str = ""
    path: Path | None = None             # the YAML it came from


@dataclass
class Task:
    spec: TaskSpec
    problems: list[Problem]


def list_specs() -> list[TaskSpec]:
    """All registered task specs, sorted by name."""
    raise NotImplementedError


def load_spec(name_or_path: str | Path) -> TaskSpec:
    """A registered task by name, or a user's task YAML by path. Raises TaskError."""
    raise NotImplementedError


def load_task(name_or_path: str | Path, data: str | Path | None = None, limit: int | None = None) -> Task:
    """Spec plus problems. `data` = local JSONL/Parquet with the hub's columns (offline use)."""
    raise NotImplementedError
