"""The leaderboards' view of the results store: one in-memory snapshot of every finished evaluation.

Owned by the leaderboard work. Everything is read through `spsbench.store.Store` methods, except the
list of models (no Store method returns models that only have diagnostics), which is one read-only
query against the documented schema (`models()` below). The snapshot also decides comparability:
two scores are comparable only when n, temperature, top_p, max tokens, task version and grader
policy all match (`Setting`).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTCOME_FLAGS = ("no_answer", "grader_timeout", "grader_error")


@dataclass(frozen=True, order=True)
class Setting:
    """Everything that must match for two scores on one task to be compared."""

    task_version: str
    grader_policy: str
    n: int
    temperature: float
    top_p: float
    max_tokens: int
    problems: int = 0          # how many problems the scores cover (a --limit run covers fewer)

    def describe(self) -> str:
        return (
            f"n={self.n}, temperature={self.temperature:g}, top_p={self.top_p:g}, "
            f"max_tokens={self.max_tokens}, {self.problems} problems, task version {self.task_version}, "
            f"grader {self.grader_policy}"
        )

    def diff(self, ref: Setting) -> str:
        """'n=64 (table: 128); temperature=1 (table: 0.7)' for every field that differs from `ref`."""
        parts = []
        for name in ("n", "temperature", "top_p", "max_tokens", "problems", "task_version", "grader_policy"):
            mine, theirs = getattr(self, name), getattr(ref, name)
            if mine != theirs:
                parts.append(f"{name}={_fmt_value(mine)} (table: {_fmt_value(theirs)})")
        return "; ".join(parts)


def _fmt_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Score:
    value: float
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class Model:
    id: int
    path: str
    weights_hash: str
    run_name: str | None = None
    step: int | None = None
    algo: str | None = None
    base_model: str | None = None

    @property
    def short_name(self) -> str:
        """Last path component for folders, the hub id / served name otherwise."""
        if self.path.startswith("/") or self.path.startswith("."):
            return Path(self.path).name or self.path
        return self.path


@dataclass
class Entry:
    """One finished evaluation (model × task × setting) with its scores."""

    eval_id: int
    model: Model
    task: str
    setting: Setting
    avg: Score | None
    passk: dict[int, Score]
    counts: dict[str, int]
    problems: list[tuple[str, int, int]] = field(default_factory=list)  # (problem_id, n, correct)

    @property
    def max_k(self) -> int:
        return max(self.passk, default=0)


@dataclass
class Snapshot:
    store_label: str
    models: dict[int, Model]
    entries: list[Entry]
    diagnostics: list[dict[str, Any]]

    def labels(self) -> dict[int, str]:
        """A short, unique, deterministic display label per model id."""
        return model_labels(self.models.values())

    def runs(self) -> list[str]:
        return sorted({m.run_name for m in self.models.values() if m.run_name})

    def tasks(self) -> list[str]:
        return sorted({e.task for e in self.entries})

    def diag(self, model_id: int, task: str, metric: str) -> dict[str, Any] | None:
        for row in self.diagnostics:
            if row["model_id"] == model_id and row["task"] == task and row["metric"] == metric:
                return row
        return None


def model_labels(models) -> dict[int, str]:
    """`run@step` for checkpoints; the short name for plain models, with `#id` only on a collision."""
    base = {m.id: (f"{m.run_name}@{m.step}" if m.run_name else m.short_name) for m in models}
    seen = Counter(base.values())
    return {mid: (f"{label} #{mid}" if seen[label] > 1 else label) for mid, label in base.items()}


def reference_setting(settings: list[Setting]) -> Setting | None:
    """The majority setting; ties go to the larger n, then the sort order (deterministic)."""
    if not settings:
        return None
    counts = Counter(settings)
    return max(counts, key=lambda s: (counts[s], s.n, s))


# ----------------------------------------------------------------------------------------------------
# Loading


def load_snapshot(store: Any, store_label: str, store_path: str | Path | None = None) -> Snapshot:
    """Read every finished evaluation, its scores, outcome counts, per-problem counts and diagnostics."""
    models: dict[int, Model] = {m.id: m for m in (models_table(store_path) if store_path else [])}
    entries = []
    for ev in store.evaluations(status="done"):
        model = models.setdefault(
            ev.model_id,
            Model(ev.model_id, ev.model_path, ev.weights_hash, ev.run_name, ev.step, ev.algo, ev.base_model),
        )
        entries.append(_entry(store, ev, model))
    entries.sort(key=lambda e: (e.task, e.model.run_name or "", e.model.step or 0, e.model.id, e.eval_id))
    diagnostics = sorted(
        (_diag_row(d) for d in store.diagnostics()), key=lambda d: (d["model_id"], d["task"], d["metric"])
    )
    return Snapshot(store_label, dict(sorted(models.items())), entries, diagnostics)


def _entry(store: Any, ev: Any, model: Model) -> Entry:
    avg, passk = None, {}
    avg_n = ev.n
    for row in store.scores(ev.id):
        score = Score(float(row.value), row.ci_low, row.ci_high)
        if row.metric in ("avg@n", "avg"):
            avg, avg_n = score, int(row.n)
        elif (k := _pass_k(row.metric, row.k)) is not None:
            passk[k] = score
    sampling = ev.sampling or {}
    scored = store.scored_problems(ev.id)
    problems = sorted((str(p), int(n), int(c)) for p, n, c in store.problem_counts(ev.id, n=avg_n)
                      if scored is None or str(p) in scored)
    setting = Setting(
        str(ev.task_version),
        str(ev.grader_policy),
        int(avg_n),
        float(sampling.get("temperature", float("nan"))),
        float(sampling.get("top_p", 1.0)),
        int(sampling.get("max_tokens", 0)),
        len(problems),
    )
    counts = {str(k): int(v) for k, v in store.outcome_counts(ev.id, n=avg_n, problems=scored).items()}
    return Entry(ev.id, model, ev.task, setting, avg, dict(sorted(passk.items())), counts, problems)


def _pass_k(metric: str, k: int) -> int | None:
    """'pass@k' with k in the k column; also accepts 'pass@8' spelled out. chance_pass@k is not a score."""
    if metric == "pass@k":
        return int(k)
    m = re.fullmatch(r"pass@(\d+)", metric)
    return int(m.group(1)) if m else None


def _diag_row(row: dict[str, Any]) -> dict[str, Any]:
    details = row.get("details", row.get("details_json", {}))
    if isinstance(details, str):
        details = json.loads(details or "{}")
    return {
        "model_id": int(row["model_id"]),
        "task": str(row["task"]),
        "metric": str(row["metric"]),
        "value": float(row["value"]),
        "details": details or {},
    }


def models_table(store_path: str | Path) -> list[Model]:
    """Every row of `models` (read-only query; the Store has no method listing models)."""
    path = Path(store_path)
    if not path.is_file():
        return []
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT id, path, weights_hash, run_name, step, algo, base_model FROM models ORDER BY id"
        ).fetchall()
    finally:
        con.close()
    return [Model(*row) for row in rows]
