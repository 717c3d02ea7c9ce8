"""One in-memory store holding the published export and a local store, for the leaderboards to read.

Evaluations are matched on (model path as displayed, weights hash, task, task version, grader policy,
sampling key): one present in both is copied once, the published one unless the local one has more
samples per problem, so publishing an evaluation never makes it count twice and a user's own store
can only add to the published pages. Published rows are copied first (in file order), then the local
ones (in their store order), so the same inputs give the same ids and therefore the same pages.
Only what the pages read is copied: models, finished evaluations, scores, scored problems, each
sample's outcome (not its text), other evaluators' verdicts (an EvalScope import's) and diagnostics
(per model, task and metric the latest one wins).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spsbench.paths import display_path
from spsbench.store.db import Store
from spsbench.store.published import Published, project_path, sampling_key
from spsbench.store.rows import EvalRow, ModelTags
from spsbench.store.schema import EXTERNAL_GRADES


@dataclass
class Merged:
    store: Store                                   # in memory; close it when done
    run_info: dict[str, dict[str, Any]] = field(default_factory=dict)   # run -> {"task", "source", "irl_phases"}
    names: dict[str, str] = field(default_factory=dict)   # model path as stored here -> its published name
    published: int = 0                             # evaluations copied from the export
    local: int = 0                                 # evaluations copied from the local store


@dataclass
class _Copy:
    store: Store
    root: str
    models: dict[tuple[str, str], int] = field(default_factory=dict)   # (displayed path, hash) -> id


def merged_store(published: list[Published], local: Store | None, root: str | Path,
                 label: str = "published results") -> Merged:
    """Copy `published` and `local` (either may be empty) into a new in-memory store."""
    root = str(root)
    winners = _winners(published, local, root)
    out = Merged(Store(":memory:"))
    copy = _Copy(out.store, root)
    with out.store.transaction() as con:
        con.execute(EXTERNAL_GRADES)        # imported verdicts are shown beside ours on the pages
        for origin, item in winners:
            if origin == "published":
                _copy_published(con, copy, item)
                out.published += 1
                out.names.update(_published_names(item.head["model"], root))
                info = item.head.get("run_info") or {}
                run = item.head["model"]["run_name"]
                if run and info.get("task"):
                    out.run_info.setdefault(run, {}).setdefault("task", str(info["task"]))
                    out.run_info[run].setdefault("source", label)
                if run and isinstance(info.get("irl_phases"), int):
                    out.run_info.setdefault(run, {}).setdefault("irl_phases", {})[item.head["model"]["step"]] = \
                        info["irl_phases"]
            else:
                _copy_local(con, copy, local, item)
                out.local += 1
        if local is not None:
            for m in local.models():       # models only diagnosed, and every local diagnostic
                _model(con, copy, m.path, m.weights_hash, m.tags)
            _copy_local_diagnostics(con, copy, local)
    return out


def _winners(published: list[Published], local: Store | None, root: str) -> list[tuple[str, Any]]:
    """(origin, item) per identity, published first in file order, then local in store order."""
    chosen: dict[tuple, tuple[str, int, Any]] = {}
    for pub in published:
        chosen.setdefault(pub.identity, ("published", int(pub.head["n"]), pub))
    for ev in local.evaluations(status="done") if local is not None else []:
        ident = (display_path(ev.model_path, root), ev.weights_hash, ev.task, str(ev.task_version),
                 ev.grader_policy, sampling_key(ev.sampling))
        if ident not in chosen or ev.n > chosen[ident][1]:
            chosen[ident] = ("local", int(ev.n), ev)
    return [(origin, item) for origin, _, item in sorted(chosen.values(), key=_order)]


def _order(choice: tuple[str, int, Any]) -> tuple:
    origin, _, item = choice
    return (0, item.source) if origin == "published" else (1, str(item.id).zfill(12))


def _model(con: sqlite3.Connection, copy: _Copy, path: str, weights_hash: str, tags: ModelTags) -> int:
    """Id of the model in the merged store; tags already there are kept, missing ones filled in."""
    key = (display_path(path, copy.root), weights_hash)    # as pages show it: a clone elsewhere agrees
    if key not in copy.models:
        cur = con.execute("INSERT INTO models(path, weights_hash, created_at) VALUES (?, ?, '')",
                          (path, weights_hash))
        copy.models[key] = int(cur.lastrowid)
    con.execute("UPDATE models SET run_name = COALESCE(run_name, ?), step = COALESCE(step, ?), "
                "algo = COALESCE(algo, ?), base_model = COALESCE(base_model, ?) WHERE id = ?",
                (tags.run_name, tags.step, tags.algo, tags.base_model, copy.models[key]))
    return copy.models[key]


def _published_names(model: dict[str, Any], root: str) -> dict[str, str]:
    """Path (as copied into the merged store) -> display name, for the names an export records."""
    out = {}
    for key, name_key in (("path", "name"), ("base_model", "base_name")):
        path, name = project_path(model, key, root), model.get(name_key)
        if path and name and not (key == "path" and model.get("run_name")):
            out[path] = str(name)
    return out


def _evaluation(con: sqlite3.Connection, model_id: int, head: dict[str, Any]) -> int:
    cur = con.execute(
        "INSERT INTO evaluations(model_id, task, task_version, grader_policy, sampling_key, sampling_json, n, "
        "engine, provenance_json, status, created_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '{}', 'done', ?, ?)",
        (model_id, head["task"], str(head["task_version"]), head["grader_policy"], head["sampling_key"],
         json.dumps(head["sampling"]), int(head["n"]), head["engine"], head["created_at"] or "",
         head["finished_at"]))
    return int(cur.lastrowid)


def _rows(con: sqlite3.Connection, eval_id: int, scores: Iterable[tuple], scored: Iterable[str] | None,
          samples: Iterable[tuple]) -> None:
    con.executemany("INSERT INTO scores(eval_id, metric, k, value, ci_low, ci_high, n) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(eval_id, *s) for s in scores])
    con.executemany("INSERT INTO scored_problems(eval_id, problem_id) VALUES (?, ?)",
                    [(eval_id, p) for p in scored or ()])
    con.executemany("INSERT INTO samples(eval_id, problem_id, sample_idx, seed, prompt, completion, outcome, "
                    "created_at) VALUES (?, ?, ?, ?, '', '', ?, '')", [(eval_id, *s) for s in samples])


def _copy_published(con: sqlite3.Connection, copy: _Copy, pub: Published) -> None:
    m = pub.head["model"]
    tags = ModelTags(m["run_name"], m["step"], m["algo"], project_path(m, "base_model", copy.root))
    model_id = _model(con, copy, project_path(m, "path", copy.root), m["weights_hash"], tags)
    eval_id = _evaluation(con, model_id, pub.head)
    _rows(con, eval_id,
          [(s["metric"], s["k"], s["value"], s["ci_low"], s["ci_high"], s["n"]) for s in pub.scores],
          pub.head.get("scored_problems"),
          [(s["problem_id"], s["sample_idx"], s["seed"], s["outcome"]) for s in pub.samples])
    _external(con, eval_id, [(g["problem_id"], g["sample_idx"], g["source"], g["extracted"], g["verdict"])
                             for g in pub.external])
    for d in pub.diagnostics:
        _diagnostic(con, model_id, pub.head["task"], d["metric"], d["value"], d["details"], d["created_at"])


def _copy_local(con: sqlite3.Connection, copy: _Copy, local: Store, ev: EvalRow) -> None:
    model_id = _model(con, copy, ev.model_path, ev.weights_hash, ev.tags)
    head = {"task": ev.task, "task_version": ev.task_version, "grader_policy": ev.grader_policy,
            "sampling_key": sampling_key(ev.sampling), "sampling": ev.sampling, "n": ev.n, "engine": ev.engine,
            "created_at": ev.created_at, "finished_at": ev.finished_at}
    eval_id = _evaluation(con, model_id, head)
    _rows(con, eval_id, [(s.metric, s.k, s.value, s.ci_low, s.ci_high, s.n) for s in local.scores(ev.id)],
          local.scored_problems(ev.id),
          local.sample_outcomes(ev.id))
    _external(con, eval_id, [(g["problem_id"], g["sample_idx"], g["source"], g["extracted"], g["verdict"])
                             for g in local.external_grades(ev.id)])


def _external(con: sqlite3.Connection, eval_id: int, rows: list[tuple]) -> None:
    con.executemany("INSERT OR REPLACE INTO external_grades(eval_id, problem_id, sample_idx, source, extracted, "
                    "verdict) VALUES (?, ?, ?, ?, ?, ?)", [(eval_id, *r) for r in rows])


def _copy_local_diagnostics(con: sqlite3.Connection, copy: _Copy, local: Store) -> None:
    hashes = {m.id: m.weights_hash for m in local.models()}
    for d in local.diagnostics():
        model_id = copy.models[(display_path(d["model_path"], copy.root), hashes[d["model_id"]])]
        _diagnostic(con, model_id, d["task"], d["metric"], d["value"], d["details"], d["created_at"])


def _diagnostic(con: sqlite3.Connection, model_id: int, task: str, metric: str, value: float,
                details: dict[str, Any], created_at: str) -> None:
    """Insert, or replace the stored value of the same model, task and metric if this one is newer."""
    con.execute("INSERT INTO diagnostics(model_id, task, metric, value, details_json, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(model_id, task, metric) DO UPDATE SET "
                "value = excluded.value, details_json = excluded.details_json, created_at = excluded.created_at "
                "WHERE excluded.created_at > diagnostics.created_at",
                (model_id, task, metric, float(value), json.dumps(details, default=str), created_at or ""))
