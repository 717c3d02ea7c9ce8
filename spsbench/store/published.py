"""Published results: the committed export of chosen evaluations, and its merge with a local store.

The export holds everything the leaderboards need to rebuild a published page on another machine: per
evaluation its model (path, weights hash, run tags), identity, sampling, provenance sessions, scores,
scored problems, every sample, the diagnostics of its model on its task and the run's training task.
Each model carries its display name (`paths.model_display_name` on the machine that published it; an
export without one is named by the same rule when read).
One gzip-compressed JSONL file per evaluation, `<dir>/<task>--<model label>--<hash>.jsonl.gz`, written
deterministically (records and keys sorted, gzip header without file name or mtime), so publishing the
same evaluation again writes the same bytes and `git diff` shows only real changes (`zcat` to read).

Model paths inside the working directory are written relative to it, so a clone elsewhere shows and
matches them the same way. `merged_store` copies the export and a local store into one in-memory store
for the leaderboards: an evaluation is identified by (model path as displayed, weights hash, task,
task version, grader policy, sampling key); one present in both is shown once (the published one,
unless the local one has more samples per problem).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spsbench.config import SamplingConfig
from spsbench.errors import StoreError
from spsbench.io import atomic_target
from spsbench.paths import display_path, model_display_name
from spsbench.store.db import Store
from spsbench.store.published_check import FIELDS, check_record, check_samples
from spsbench.store.rows import EvalRow

FORMAT = 1                       # bump when a record changes meaning
SUFFIX = ".jsonl.gz"
KINDS = tuple(k for k in FIELDS if k != "model")       # record kinds of an export file
SAMPLE_KEYS = ("problem_id", "sample_idx", "seed", "prompt", "completion", "prompt_tokens", "completion_tokens",
               "finish_reason", "extracted", "outcome", "created_at")


@dataclass
class Published:
    """One exported evaluation, as read back."""

    head: dict[str, Any]                  # the "evaluation" record (model, identity, run info ...)
    sessions: list[dict[str, Any]]
    scores: list[dict[str, Any]]
    diagnostics: list[dict[str, Any]]
    samples: list[dict[str, Any]]
    source: str = ""                      # file name, for error messages
    external: list[dict[str, Any]] = field(default_factory=list)   # another evaluator's verdicts

    def records(self) -> list[dict[str, Any]]:
        """Every record in the order `export_evaluation` writes them (what `write_records` takes back)."""
        return [self.head, *self.sessions, *self.scores, *self.diagnostics, *self.samples, *self.external]

    @property
    def identity(self) -> tuple:
        h, m = self.head, self.head["model"]
        return (m["path"], m["weights_hash"], h["task"], h["task_version"], h["grader_policy"], h["sampling_key"])


def sampling_key(sampling: dict[str, Any]) -> str:
    """The store's sampling key of a stored sampling dict (what `begin_evaluation` derives)."""
    try:
        return SamplingConfig(**sampling).key()
    except (TypeError, ValueError):      # a hand-made store: fall back to a hash of the stored fields
        blob = json.dumps({k: v for k, v in sampling.items() if k != "n"}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- writing


def export_evaluation(store: Store, ev: EvalRow, out_dir: str | Path, root: str | Path,
                      run_info: dict[str, str] | None = None) -> Path:
    """Write evaluation `ev` (an EvalRow of `store`) to `out_dir`; returns the file written."""
    head = _head(ev, root, run_info, store.scored_problems(ev.id))
    records: list[dict[str, Any]] = [head]
    records += [{"kind": "session", "kind_of_run": s.kind, "started_at": s.started_at, "engine": s.engine,
                 "n": s.n, "provenance": s.provenance, "samples": s.samples, "min_idx": s.min_idx,
                 "max_idx": s.max_idx, "last_at": s.last_at} for s in store.sessions(ev.id)]
    records += [{"kind": "score", "metric": s.metric, "k": s.k, "value": s.value, "ci_low": s.ci_low,
                 "ci_high": s.ci_high, "n": s.n} for s in store.scores(ev.id)]
    records += [{"kind": "diagnostic", "metric": d["metric"], "value": d["value"], "details": d["details"],
                 "created_at": d["created_at"]}
                for d in store.diagnostics() if d["model_id"] == ev.model_id and d["task"] == ev.task]
    records += [{"kind": "sample", **{k: s[k] for k in SAMPLE_KEYS}} for s in store.samples(ev.id)]
    # An imported evaluation's other verdicts (EvalScope's) travel with it: the pages show them beside ours.
    records += [{"kind": "external_grade", **g} for g in store.external_grades(ev.id)]
    path = Path(out_dir) / file_name(head)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_records(path, records)
    return path


def _head(ev: EvalRow, root: str | Path, run_info: dict[str, str] | None, scored: set[str] | None) -> dict[str, Any]:
    model = {"path": display_path(ev.model_path, root), "weights_hash": ev.weights_hash, "run_name": ev.run_name,
             "step": ev.step, "algo": ev.algo, "base_model": display_path(ev.base_model, root) if ev.base_model
             else None,
             # which of the two were folders inside the project (a hub id looks relative too)
             "in_project": sorted(k for k, v in (("path", ev.model_path), ("base_model", ev.base_model))
                                  if v and _in_project(v, root)),
             # display names as this machine gives them (it knows its own cache); older exports have none
             "name": model_display_name(ev.model_path, ev.run_name, ev.step),
             "base_name": model_display_name(ev.base_model) if ev.base_model else None}
    return {"kind": "evaluation", "format": FORMAT, "model": model, "task": ev.task,
            "task_version": str(ev.task_version), "grader_policy": ev.grader_policy, "sampling": ev.sampling,
            "sampling_key": sampling_key(ev.sampling), "n": ev.n, "engine": ev.engine,
            "created_at": ev.created_at, "finished_at": ev.finished_at,
            "scored_problems": sorted(scored) if scored is not None else None,
            "run_info": _run_info(run_info, ev.step)}


def _run_info(run_info: dict[str, Any] | None, step: int | None) -> dict[str, Any] | None:
    """What the export keeps of the trainer's records: the training task, and for an SPS checkpoint the IRL
    phases before it (a clone has no run folder to read them from)."""
    out: dict[str, Any] = {}
    if run_info and run_info.get("task"):
        out["task"] = run_info["task"]
    phases = (run_info or {}).get("irl_phases", {}).get(step)
    if phases is not None:
        out["irl_phases"] = phases
    return out or None


def _in_project(path: str, root: str | Path) -> bool:
    return Path(path).is_absolute() and not display_path(path, root).startswith(("/", "~"))


def project_path(model: dict[str, Any], key: str, root: str | Path) -> str | None:
    """A published model's `path` or `base_model` as this machine stores it: a folder that was inside
    the project is put back under `root` (so it is still shown and short-named as a folder)."""
    value = model.get(key)
    if value and key in model.get("in_project", ()):
        return str(Path(root) / value)
    return value


def file_name(head: dict[str, Any]) -> str:
    """`<task>--<run@step or model name>--<8 hex of the identity>.jsonl.gz`."""
    m = head["model"]
    label = f"{m['run_name']}@{m['step']}" if m["run_name"] else Path(m["path"]).name or m["path"]
    ident = json.dumps([m["path"], m["weights_hash"], head["task"], head["task_version"], head["grader_policy"],
                        head["sampling_key"]])
    digest = hashlib.sha256(ident.encode()).hexdigest()[:8]
    return f"{_slug(head['task'])}--{_slug(label)}--{digest}{SUFFIX}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@-]+", "-", text).strip("-") or "unnamed"


def write_records(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Gzip JSONL with a fixed header (no name, mtime 0): the same records give the same bytes."""
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        for record in records:
            gz.write((json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))
    data = raw.getvalue()
    if not path.is_file() or path.read_bytes() != data:     # unchanged files keep their mtime
        try:
            with atomic_target(path) as tmp:
                tmp.write_bytes(data)
        except OSError as exc:            # full disk, file-size limit, read-only folder: nothing is left half-written
            raise StoreError(f"cannot write {display_path(path)}: {exc.strerror or exc}; the export folder is "
                             "unchanged for this evaluation") from None


# ---------------------------------------------------------------------------------------------- reading


def read_published(folder: str | Path) -> list[Published]:
    """Every exported evaluation in `folder` (sorted by file name); [] when the folder does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out: list[Published] = []
    seen: dict[tuple, str] = {}
    for path in sorted(folder.glob("*" + SUFFIX)):
        pub = read_file(path)
        if pub.identity in seen:
            raise StoreError(f"published results {display_path(path)} holds the same evaluation as {seen[pub.identity]} "
                             "(model, task, version, grader and sampling); remove one of the two files")
        seen[pub.identity] = path.name
        out.append(pub)
    return out


def read_file(path: Path) -> Published:
    """One export, every record checked (`published_check`): a bad one is one line naming file and line."""
    where = f"published results {display_path(path)}"
    if not path.is_file():                # a FIFO or a device: gzip would block or never end
        raise StoreError(f"{where}: not a regular file; remove it from the export folder")
    numbered = _records(path, where)
    if not numbered or not isinstance(numbered[0][1], dict) or numbered[0][1].get("kind") != "evaluation":
        raise StoreError(f"{where}: the first record must be the evaluation")
    head = numbered[0][1]
    if isinstance(head.get("format"), int) and head["format"] > FORMAT:
        raise StoreError(f"{where} has format {head['format']}, newer than this "
                         f"spsbench understands ({FORMAT}); upgrade spsbench")
    by_kind: dict[str, list[tuple[int, dict[str, Any]]]] = {k: [] for k in KINDS}
    for line, record in numbered:
        by_kind[check_record(record, f"{where}:{line}")["kind"]].append((line, record))
    if len(by_kind["evaluation"]) != 1:
        raise StoreError(f"{where}:{by_kind['evaluation'][1][0]}: a second evaluation record (one per file)")
    check_samples(where, head, by_kind["score"], by_kind["sample"])
    records = {kind: [r for _, r in rows] for kind, rows in by_kind.items()}
    return Published(head, records["session"], records["score"], records["diagnostic"], records["sample"],
                     path.name, records["external_grade"])


def _records(path: Path, where: str) -> list[tuple[int, Any]]:
    """(line number, parsed JSON) of every non-empty line of a gzip JSONL file."""
    out = []
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        out.append((number, json.loads(line)))
                    except ValueError as exc:
                        raise StoreError(f"{where}:{number}: not a JSON line ({exc})") from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise StoreError(f"{where}: not a readable export ({exc})") from None
    return out
