"""The leaderboards' view of the results store: one in-memory snapshot of every finished evaluation.

Everything is read through `spsbench.store.Store` methods. The snapshot also decides comparability:
two scores are comparable only when n, temperature, top_p, max tokens, problems, task version and
grader policy all match (`Setting`); two diagnostics only when their `DiagSetting`s match.

One input is not in the store: the trainer's `spsbench_run.json` beside a run's checkpoints, read for
the run's training task (`read_run_info`), because the store has no column for it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spsbench.leaderboards.external import grader_view
from spsbench.metrics import pass_at_k, score_interval
from spsbench.paths import CHECKPOINT_INFO, RUN_INFO, display_path, model_display_name
from spsbench.store import EvalRow, Interval, ModelRow, Scores, Store

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
    task_digest: str = ""      # what the task was (problems, gold, prompts); legacy '' takes the task's majority

    def describe(self) -> str:
        return (
            f"n={self.n}, temperature={self.temperature:g}, top_p={self.top_p:g}, "
            f"max_tokens={self.max_tokens}, {plural(self.problems, 'problem')}, task version {self.task_version}, "
            f"grader {self.grader_policy}"
        )

    def diff(self, ref: Setting) -> str:
        """'n=64 (table: 128); temperature=1 (table: 0.7)' for every field that differs from `ref`."""
        parts = []
        for name in ("n", "temperature", "top_p", "max_tokens", "problems", "task_version", "task_digest",
                     "grader_policy"):
            mine, theirs = getattr(self, name), getattr(ref, name)
            if mine != theirs:
                parts.append(f"{name}={_fmt_value(mine)} (table: {_fmt_value(theirs)})")
        return "; ".join(parts)


def plural(count: int, noun: str) -> str:
    """'1 task', '2 tasks'."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _fmt_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


Score = Interval       # a score on a page: the store's record

@dataclass(frozen=True)
class Model(ModelRow):
    """A stored model as the pages show it (its name: `Snapshot.name`)."""


def short_path_name(path: str) -> str:
    """For plot file names: `/abs/models/smollm2` -> `smollm2`; relative paths and hub ids unchanged."""
    if path.startswith(("/", ".", "~")):
        return Path(path).name or path
    return path


def unique_short_names(paths: list[str]) -> dict[str, str]:
    """A short, file-name-friendly name per path (plot files: kept stable, so not the display name); a
    6-hex hash of the full path is appended only when two different paths would otherwise get the same
    name (so plots of two bases never collide)."""
    short = {p: Path(short_path_name(p)).name or p for p in sorted(set(paths))}
    seen = Counter(short.values())
    return {
        p: (f"{name}-{hashlib.sha256(p.encode()).hexdigest()[:6]}" if seen[name] > 1 else name)
        for p, name in short.items()
    }


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
    root: str = "."                                              # paths inside it are shown relative
    # run -> {"task", "source", "irl_phases": {step: IRL phases before that checkpoint}} (each when known)
    run_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    # eval_id -> (Pass@k per grader, (agreeing, graded)) for evaluations with another evaluator's verdicts
    graders: dict[int, tuple[dict[str, dict[int, float]], tuple[int, int]]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)     # stored path -> name the published export records

    def show(self, path: str) -> str:
        """A stored path as pages display it (relative to `root`, `~/...`, or a hub id as is)."""
        return display_path(path, self.root)

    def name(self, model: ModelRow) -> str:
        """The model's display name (`paths.model_display_name`; a plain model's recorded name wins)."""
        if not model.run_name and model.path in self.names:
            return self.names[model.path]
        return model_display_name(model.path, model.run_name, model.step)

    def path_name(self, path: str) -> str:
        """The display name of a model known by its path only (a run's base model)."""
        return self.names.get(path) or model_display_name(path)

    def labels(self) -> dict[int, str]:
        """A short, unique, deterministic display label per model id."""
        return model_labels(self.models.values(), self.name)

    def runs(self) -> list[str]:
        return sorted({m.run_name for m in self.models.values() if m.run_name})

    def tasks(self) -> list[str]:
        return sorted({e.task for e in self.entries})

    def diag(self, model_id: int, task: str, metric: str) -> dict[str, Any] | None:
        for row in self.diagnostics:
            if row["model_id"] == model_id and row["task"] == task and row["metric"] == metric:
                return row
        return None

    def train_task(self, run: str) -> str | None:
        """The run's training task when its run folder's spsbench_run.json was readable, else None."""
        return self.run_info.get(run, {}).get("task")

    def irl_phases(self, run: str | None, step: int | None) -> int | None:
        """IRL phases an SPS run had taken at checkpoint `step` (None: not recorded)."""
        return self.run_info.get(run or "", {}).get("irl_phases", {}).get(step)


def model_labels(models, name: Callable[[ModelRow], str] | None = None) -> dict[int, str]:
    """Each model's display name (`run@step` for checkpoints), with `#id` appended only on a collision."""
    name = name or (lambda m: model_display_name(m.path, m.run_name, m.step))
    base = {m.id: name(m) for m in models}
    seen = Counter(base.values())
    return {mid: (f"{label} #{mid}" if seen[label] > 1 else label) for mid, label in base.items()}


@dataclass(frozen=True, order=True)
class DiagSetting:
    """What must match for two diagnostics of one task to be compared (read from the details JSON).

    Unknown fields hold neutral values (0, -1.0, "") so settings stay sortable; they are not shown.
    The sampling seed and the evaluation id are recorded but do not make diagnostics incomparable.
    """

    source: str                 # greedy decoding | eval samples | fresh samples | not recorded
    n: int = 0                  # completions per problem (sampled metrics)
    temperature: float = -1.0
    max_tokens: int = 0
    problems: int = 0           # how many problems it covers (`--limit`)
    task_version: str = ""

    def _parts(self) -> dict[str, str]:
        parts = {}
        if self.n:
            parts["n"] = f"n={self.n}"
        if self.temperature >= 0:
            parts["temperature"] = f"temperature={self.temperature:g}"
        if self.max_tokens:
            parts["max_tokens"] = f"max_tokens={self.max_tokens}"
        if self.problems:
            parts["problems"] = plural(self.problems, "problem")
        if self.task_version:
            parts["task_version"] = f"task version {self.task_version}"
        return parts

    def describe(self) -> str:
        parts = self._parts()
        return self.source + (": " + ", ".join(parts.values()) if parts else "")

    def diff(self, ref: DiagSetting) -> str:
        """'fresh samples (column: eval samples); n=4 (column: 128)' for every field that differs."""
        if self.source == NOT_RECORDED:
            return f"{NOT_RECORDED} (written by an older `spsbench diagnose`)"
        mine, theirs = self._parts(), ref._parts()
        parts = [f"{self.source} (column: {ref.source})"] if self.source != ref.source else []
        for name in ("n", "temperature", "max_tokens", "problems", "task_version"):
            if mine.get(name) != theirs.get(name):
                parts.append(f"{mine.get(name, f'{name} ?')} (column: {theirs.get(name, '?')})")
        return "; ".join(parts)


NOT_RECORDED = "setting not recorded"


DIAG_SOURCES = {"store": "eval samples", "sampled for token_entropy": "fresh samples"}


def diag_setting(metric: str, details: dict[str, Any]) -> DiagSetting:
    """The setting `spsbench diagnose` recorded in details["setting"]; older rows are read from the
    keys they have (prompts, max_tokens, samples_per_prompt, ...), unknown ones left out."""
    st = details.get("setting")
    if isinstance(st, dict) and st.get("source"):
        return DiagSetting(
            str(st["source"]),
            int(st.get("n") or 0),
            float(st["temperature"]) if st.get("temperature") is not None else -1.0,
            int(st.get("max_tokens") or 0),
            int(st.get("problems") or 0),
            str(st.get("task_version") or ""),
        )
    if metric == "greedy_logprob" and "max_tokens" in details:
        return DiagSetting("greedy decoding", max_tokens=int(details["max_tokens"]),
                           problems=int(details.get("prompts") or 0))
    if metric == "token_entropy" and "samples_per_prompt" in details:
        return DiagSetting("fresh samples", int(details["samples_per_prompt"]),
                           float(details.get("sampling_temperature", -1.0)),
                           problems=int(details.get("prompts") or 0))
    if metric == "pairwise_similarity" and details.get("source") in DIAG_SOURCES:
        return DiagSetting(DIAG_SOURCES[details["source"]], int(details.get("completions_per_problem") or 0),
                           problems=int(details.get("problems") or 0))
    return DiagSetting(NOT_RECORDED)


def majority(settings: list) -> Any:
    """The most common setting; ties go to the sort order (deterministic). None for no settings."""
    if not settings:
        return None
    counts = Counter(settings)
    return max(counts, key=lambda s: (counts[s], s))


def reference_setting(settings: list[Setting]) -> Setting | None:
    """The majority setting; ties go to the larger n, then the sort order (deterministic)."""
    if not settings:
        return None
    counts = Counter(settings)
    return max(counts, key=lambda s: (counts[s], s.n, s))


# ----------------------------------------------------------------------------------------------------
# Loading


def load_snapshot(
    store: Store, store_label: str, store_path: str | Path | None = None, root: str | Path | None = None
) -> Snapshot:
    """Read every finished evaluation, its scores, outcome counts, per-problem counts and diagnostics.

    `root` (default: the current directory) is what displayed paths are made relative to, and what a
    relative checkpoint path in the store is relative to when looking for its run folder."""
    root = str(root if root is not None else os.getcwd())
    models: dict[int, Model] = {m.id: Model(m.id, m.path, m.weights_hash, m.tags) for m in store.models()}
    entries = []
    for ev in current_evaluations(store.evaluations(status="done")):
        model = models.setdefault(ev.model_id, Model(ev.model_id, ev.model_path, ev.weights_hash, ev.tags))
        entries.append(_entry(store, ev, model))
    _fill_legacy_digests(entries)
    entries.sort(key=lambda e: (e.task, e.model.run_name or "", e.model.step or 0, e.model.id, e.eval_id))
    diagnostics = sorted(
        (_diag_row(d) for d in store.diagnostics()), key=lambda d: (d["model_id"], d["task"], d["metric"])
    )
    models = dict(sorted(models.items()))
    snap = Snapshot(store_label, models, entries, diagnostics, root, read_run_info(models.values(), root))
    snap.graders = _grader_views(store, entries)
    return snap


def _grader_views(store: Store, entries: list[Entry]) -> dict[int, Any]:
    """Imported (or cross-checked) evaluations: Pass@k under our grader and theirs, side by side."""

    return {e.eval_id: view for e in entries if (view := grader_view(store, e.eval_id))}


def _fill_legacy_digests(entries: list[Entry]) -> None:
    """A legacy evaluation (stored before task digests, never resumed since) is assumed to be of the
    content most evaluations of its task and version have: it was compared with them before."""
    digests: dict[tuple[str, str], Counter] = {}
    for e in entries:
        if e.setting.task_digest:
            digests.setdefault((e.task, e.setting.task_version), Counter())[e.setting.task_digest] += 1
    for e in entries:
        known = digests.get((e.task, e.setting.task_version))
        if not e.setting.task_digest and known:
            e.setting = dataclasses.replace(e.setting, task_digest=max(known, key=lambda d: (known[d], d)))


def current_evaluations(evals: list[EvalRow]) -> list[EvalRow]:
    """Drop evaluations superseded by a newer grader extractor version of the same evaluation.

    A new extractor version (`x=` in the policy id) re-grades the stored completions into a new
    evaluation (same model, task version, sampling config, math-verify version and mode); showing both
    would put one model twice in a table, the older one flagged. Other policy differences (strict vs
    lenient, another math-verify or time limit) are kept and flagged as usual."""
    def key(ev: EvalRow) -> tuple[tuple, int]:
        """(the evaluation's identity without the extractor version, that version)."""
        head, sep, version = str(ev.grader_policy).rpartition(";x=")
        policy, x = (head, int(version)) if sep and version.isdigit() else (str(ev.grader_policy), 0)
        sampling = {k: v for k, v in (ev.sampling or {}).items() if k != "n"}
        return (ev.model_id, ev.task, str(ev.task_version), policy, json.dumps(sampling, sort_keys=True,
                                                                              default=str)), x

    keyed = [(ev, *key(ev)) for ev in evals]
    newest: dict[tuple, int] = {}
    for _, ident, x in keyed:
        newest[ident] = max(newest.get(ident, 0), x)
    return [ev for ev, ident, x in keyed if x == newest[ident]]


def read_run_info(models, root: str | Path) -> dict[str, dict[str, Any]]:
    """Per run: the training task from the trainer's spsbench_run.json beside its checkpoints, if readable,
    and (`irl_phases`: step -> count) the IRL phases an SPS checkpoint's own spsbench_checkpoint.json says
    ran before it.

    The store records a run's base model but not its training data, so this is the only place the
    task is known. A file whose `run_name` names another run is ignored (a reused folder).
    """
    info: dict[str, dict[str, Any]] = {}
    for m in sorted(models, key=lambda m: (m.run_name or "", m.step or 0, m.id)):
        if not m.run_name:
            continue
        folder = Path(m.path) if os.path.isabs(m.path) else Path(root) / m.path
        phases = _checkpoint_phases(folder, m.step)
        if phases is not None:
            info.setdefault(m.run_name, {}).setdefault("irl_phases", {})[m.step] = phases
        if "task" in info.get(m.run_name, {}):
            continue
        run_file = folder.parent / RUN_INFO
        try:
            data = json.loads(run_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("task") and data.get("run_name") in (None, m.run_name):
            info.setdefault(m.run_name, {}).update(task=str(data["task"]), source=display_path(run_file, root))
    return info


def _checkpoint_phases(folder: Path, step: int | None) -> int | None:
    """IRL phases before an SPS checkpoint, from its spsbench_checkpoint.json (None: unknown, or not SPS)."""
    try:
        data = json.loads((folder / CHECKPOINT_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and data.get("step") == step and isinstance(data.get("irl_phases"), int):
        return data["irl_phases"]
    return None


def _entry(store: Store, ev: EvalRow, model: Model) -> Entry:
    scores = Scores.from_rows(store.scores(ev.id), ev.n)
    avg, passk, avg_n = scores.avg, scores.pass_at_k, scores.n
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
        str(getattr(ev, "task_digest", "") or ""),
    )
    counts = {str(k): int(v) for k, v in store.outcome_counts(ev.id, n=avg_n, problems=scored).items()}
    if problems:
        avg, passk = _intervals(problems, avg, passk)
    return Entry(ev.id, model, ev.task, setting, avg, dict(sorted(passk.items())), counts, problems)


def _intervals(problems: list[tuple[str, int, int]], avg: Score | None,
               passk: dict[int, Score]) -> tuple[Score | None, dict[int, Score]]:
    """The scores with intervals recomputed from the per-problem counts by `metrics.score_interval`, so
    every page uses one interval method whatever an older spsbench stored (a bootstrap over problems,
    which collapses to [0, 0] at 0%)."""
    n = np.array([p[1] for p in problems])
    c = np.array([p[2] for p in problems])
    low = int(n.min())

    def redo(score: Score, k: int) -> Score:
        if k > low:
            return score
        return Score(score.value, *score_interval(pass_at_k(n, c, k), low, k))

    return (redo(avg, 1) if avg else None), {k: redo(s, k) for k, s in passk.items()}


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
