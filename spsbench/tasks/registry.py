"""The task registry: finds a task by name in `tasks/` (or a user's YAML by path) and loads its problems.

Also parse_data_args() for the CLI's repeated `--data NAME=PATH` flag.
"""

from __future__ import annotations

from pathlib import Path

from spsbench import paths
from spsbench.errors import TaskError
from spsbench.tasks.identity import task_digest
from spsbench.tasks.sources import build_problems, load_rows
from spsbench.tasks.spec import Task, TaskSpec, read_spec


def list_specs() -> list[TaskSpec]:
    """All registered task specs, sorted by name."""
    folder = paths.tasks_dir()
    if not folder.is_dir():
        return []
    specs = [read_spec(path) for path in folder.glob("*.y*ml")]
    return sorted(specs, key=lambda spec: spec.name)


def load_spec(name_or_path: str | Path) -> TaskSpec:
    """A registered task by name, or a user's task YAML by path. Raises TaskError."""
    return read_spec(_resolve(name_or_path))


def load_task(name_or_path: str | Path, data: str | Path | None = None, limit: int | None = None) -> Task:
    """Spec plus problems. `data` = local JSONL/Parquet with the hub's columns (offline use)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise TaskError(f"limit: must be a positive integer, got {limit!r}")
    spec = load_spec(name_or_path)
    rows, label = load_rows(spec, data)
    problems = build_problems(spec, rows, label)
    # The digest covers every problem, so a --limit run and a full run of one task share an evaluation.
    return Task(spec=spec, problems=problems[:limit] if limit else problems, digest=task_digest(spec, problems))


def parse_data_args(items: list[str] | None) -> dict[str, str]:
    """`["aime25=path.jsonl", ...]` (the CLI's repeated --data) -> {"aime25": "path.jsonl"}."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise TaskError(f"--data: expected NAME=PATH (e.g. aime25=data/aime25.jsonl), got {item!r}")
        if name in out:
            raise TaskError(f"--data: task {name!r} given twice")
        out[name] = path
    return out


def _resolve(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    looks_like_path = isinstance(name_or_path, Path) or text.endswith((".yaml", ".yml")) or "/" in text
    if looks_like_path:
        path = Path(text).expanduser()
        if not path.is_file():
            raise TaskError(f"task file not found: {path}")
        return path
    for suffix in (".yaml", ".yml"):
        path = paths.tasks_dir() / f"{text}{suffix}"
        if path.is_file():
            return path
    known = ", ".join(spec.name for spec in list_specs()) or "none"
    raise TaskError(f"unknown task {text!r} (registered: {known}); or pass the path of a task YAML file")


