"""Results store: one SQLite file (WAL) holding every sample, every aggregate and their provenance.

The schema (`spsbench.store.schema`) is documented in docs/store.md; every read the leaderboards make
goes through `Store` methods.
Crash safety: samples are committed in small transactions as they are graded; (eval_id, problem_id,
sample_idx) is the primary key, so a resumed run can neither lose nor duplicate a committed sample.

Concurrency: WAL lets readers run beside one writer; writers take the lock up front (BEGIN IMMEDIATE)
and wait up to `busy_timeout` for each other, so several evaluations can share one file. One `Store`
object may be used from several threads (calls are serialised by a lock). `synchronous=NORMAL` keeps a
committed transaction through a killed process (SIGKILL); only an OS crash / power loss can drop the
last few commits, never corrupt the file. An SQLite failure (lock held past the timeout, disk full,
read-only file) rolls its transaction back and becomes a one-line StoreError; earlier commits stay.

Provenance: every run that opens an evaluation to generate (`begin_evaluation`) adds an `eval_sessions`
row with its own provenance, credited with the samples it inserts in the same transactions as the
samples; `evaluations.provenance_json` holds the latest run's. Layout and resume rules: docs/store.md.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spsbench.config import SamplingConfig
from spsbench.errors import StoreError
from spsbench.store.records import EvalKey
from spsbench.store.rows import EvalRow, ModelRow, ModelTags, RunFailureRow, SampleRow, ScoreRow, SessionRow
from spsbench.store.schema import (
    BUSY_TIMEOUT_MS,
    EVAL_COLUMNS,
    EXTERNAL_GRADES,
    REBUILD_EVALUATIONS,
    SAMPLE_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    SESSION_COLUMNS,
    UPGRADE_SESSIONS,
)


def now() -> str:
    """UTC timestamp with microseconds (ISO 8601); sorts as text."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def store_error(path: str | Path, exc: sqlite3.Error) -> StoreError:
    """One line for an SQLite failure, saying what it means for the user (committed samples are kept)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    low = text.lower()
    if "locked" in low or "busy" in low:
        return StoreError(f"results store {path} is locked: another process held its write lock for more than "
                          f"{BUSY_TIMEOUT_MS / 1000:g} s ({text}); committed samples are kept, run again "
                          "when it is free or use another --store")
    if "full" in low:
        return StoreError(f"results store {path}: disk full ({text}); committed samples are kept, free space "
                          "and run the same command again")
    if "readonly" in low or "read-only" in low:
        return StoreError(f"results store {path} is read-only ({text}): the file or its folder is not writable "
                          "(SQLite writes its -wal and -shm files beside it); use a writable --store")
    if "disk i/o" in low:
        return StoreError(f"results store {path}: disk I/O error (a full disk, a file-size limit such as `ulimit "
                          "-f`, or a failing device); committed samples are kept")
    return StoreError(f"results store {path}: {type(exc).__name__}: {text}")


def _sampling_parts(sampling: SamplingConfig | dict[str, Any]) -> tuple[str, dict[str, Any], int]:
    """(key, dict, n) from a SamplingConfig or its to_dict() form."""

    if isinstance(sampling, dict):
        sampling = SamplingConfig(**sampling)
    return sampling.key(), sampling.to_dict(), sampling.n


class Store:
    """Open (creating if needed) the store at `path`. Safe for several processes at once (WAL)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._sessions: dict[int, int] = {}          # eval_id -> the session this object opened for it
        self._grouped = False                        # inside transaction(): writes join its transaction
        if self.path.is_dir():
            raise StoreError(f"results store {self.path} is a folder; pass a file path (e.g. results/spsbench.db)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"results store {self.path}: cannot create its folder: {exc.strerror}") from None
        try:
            self._con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                        check_same_thread=False)
            self._setup()
        except sqlite3.OperationalError as exc:
            self._close_quietly()
            low = str(exc).lower()
            if not any(word in low for word in ("locked", "busy", "full", "readonly", "read-only", "disk i/o")):
                raise StoreError(f"results store {self.path} is not a readable spsbench store ({exc})") from None
            raise store_error(self.path, exc) from None
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            raise StoreError(f"results store {self.path} is not a readable spsbench store ({exc})") from None
        except BaseException:
            self._close_quietly()
            raise

    def _setup(self) -> None:
        con = self._con
        con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        version = con.execute("PRAGMA user_version").fetchone()[0]   # reads the header: fails if not SQLite
        self._check_version(version)
        if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            con.execute("PRAGMA journal_mode = WAL")                  # persistent: set once per file
        con.execute("PRAGMA synchronous = NORMAL")
        if version < SCHEMA_VERSION:
            with self._tx():        # IF NOT EXISTS + the write lock: concurrent first opens agree
                self._upgrade()     # foreign keys still off: the v4 upgrade rebuilds a parent table
        con.execute("PRAGMA foreign_keys = ON")

    def _upgrade(self) -> None:
        """Create the tables (a new store) or add what an older version lacks; runs under the write lock."""
        con = self._con
        version = con.execute("PRAGMA user_version").fetchone()[0]   # another process may have done it
        if version >= SCHEMA_VERSION:
            return
        columns = {row[1] for row in con.execute("PRAGMA table_info(evaluations)")}
        if columns and "task_digest" not in columns:        # v1-v3: rebuild with the digest in the key
            for statement in REBUILD_EVALUATIONS:
                con.execute(statement)
        for statement in SCHEMA.split(";"):    # executescript would commit our transaction
            if statement.strip():
                con.execute(statement)
        if version < 3:
            con.execute(UPGRADE_SESSIONS)
        if con.execute("PRAGMA foreign_key_check").fetchone() is not None:
            raise StoreError(f"results store {self.path}: upgrade to schema {SCHEMA_VERSION} found rows "
                             "pointing at missing ones; left unchanged")
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StoreError(f"results store {self.path} has schema version {version}, newer than this "
                             f"spsbench understands ({SCHEMA_VERSION}); upgrade spsbench or use another --store")

    def _close_quietly(self) -> None:
        con = getattr(self, "_con", None)
        if con is not None:
            con.close()
            self._con = None

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction holding the write lock from the start (no deadlock-prone upgrades).

        An SQLite failure (lock held past the timeout, disk full, read-only file) rolls back and becomes
        a one-line StoreError; earlier transactions stay committed."""
        with self._lock:
            con = self._con
            if self._grouped:           # part of an enclosing transaction(): it commits or rolls back
                yield con
                return
            try:
                con.execute("BEGIN IMMEDIATE")
                try:
                    yield con
                    con.execute("COMMIT")
                except BaseException:
                    if con.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            con.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise store_error(self.path, exc) from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Group several writes (upsert_model, begin_evaluation, add_samples, ...) into one transaction:
        all of them commit at the end, or none does (an import must never leave half an evaluation; a merge
        of stores writes through the yielded connection)."""
        sessions = dict(self._sessions)
        with self._tx() as con:
            self._grouped = True
            try:
                yield con
            except BaseException:
                self._sessions = sessions          # sessions opened inside were rolled back
                raise
            finally:
                self._grouped = False

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._con.execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as exc:
                raise store_error(self.path, exc) from None

    # -- writes -------------------------------------------------------------------------------
    def upsert_model(self, path: str, weights_hash: str, tags: ModelTags | None = None) -> int:
        """Id of the model (path, weights_hash); tags given here fill in or replace the stored ones."""
        t = tags or ModelTags()
        run_name, step, algo, base_model = t.run_name, t.step, t.algo, t.base_model
        with self._tx() as con:
            con.execute("INSERT OR IGNORE INTO models(path, weights_hash, run_name, step, algo, base_model, "
                        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (path, weights_hash, run_name, step, algo, base_model, now()))
            con.execute("UPDATE models SET run_name = COALESCE(?, run_name), step = COALESCE(?, step), "
                        "algo = COALESCE(?, algo), base_model = COALESCE(?, base_model) "
                        "WHERE path = ? AND weights_hash = ?",
                        (run_name, step, algo, base_model, path, weights_hash))
            row = con.execute("SELECT id FROM models WHERE path = ? AND weights_hash = ?",
                              (path, weights_hash)).fetchone()
        return int(row[0])

    def begin_evaluation(self, key: EvalKey, sampling: SamplingConfig | dict[str, Any], engine: str,
                         provenance: dict[str, Any]) -> int:
        """Id of the evaluation `key`, created or reopened (status 'running', n = max); `sampling` is the
        full setting stored with it (its key must be the key's).

        Also opens a session (this run's provenance) that later `add_samples` calls of this Store credit."""
        sampling_key, sampling_dict, n = _sampling_parts(sampling)
        if sampling_key != key.sampling_key:
            raise ValueError(f"begin_evaluation: sampling key {sampling_key} is not the key's {key.sampling_key}")
        prov = json.dumps(provenance, sort_keys=True, default=str)
        ident = (key.model_id, key.task, key.task_version, key.grader_policy, key.sampling_key, key.task_digest)
        with self._tx() as con:
            con.execute("INSERT OR IGNORE INTO evaluations(model_id, task, task_version, grader_policy, "
                        "sampling_key, task_digest, sampling_json, n, engine, provenance_json, status, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?)",
                        (*ident, json.dumps(sampling_dict), n, engine, prov, now()))
            eval_id, old_n, old_engine = con.execute(
                "SELECT id, n, engine FROM evaluations WHERE model_id = ? AND task = ? AND task_version = ? "
                "AND grader_policy = ? AND sampling_key = ? AND task_digest = ?", ident).fetchone()
            sampling_dict["n"] = max(n, old_n)
            # A resumed evaluation may use another engine: keep every engine that produced samples.
            engines = old_engine.split(",") + [engine] if engine not in old_engine.split(",") else [old_engine]
            con.execute("UPDATE evaluations SET n = ?, sampling_json = ?, engine = ?, provenance_json = ?, "
                        "status = 'running', finished_at = NULL WHERE id = ?",
                        (max(n, old_n), json.dumps(sampling_dict), ",".join(engines), prov, eval_id))
            # provenance_json above is the latest run's (what older readers expect); the history is here.
            cur = con.execute("INSERT INTO eval_sessions(eval_id, kind, started_at, engine, n, provenance_json) "
                              "VALUES (?, 'run', ?, ?, ?, ?)", (eval_id, now(), engine, n, prov))
            self._sessions[int(eval_id)] = int(cur.lastrowid)
        return int(eval_id)

    def add_samples(self, eval_id: int, rows: Iterable[SampleRow]) -> int:
        """Insert graded samples in one transaction; already stored (eval, problem, idx) are ignored.

        The run that opened the evaluation with this Store (begin_evaluation) is credited with the samples
        actually inserted, in the same transaction, so its counts survive a crash exactly like the samples."""
        stamp = now()
        values = [(eval_id, r.problem_id, r.sample_idx, r.seed, r.prompt, r.completion, r.prompt_tokens,
                   r.completion_tokens, r.finish_reason, r.extracted, str(r.outcome), stamp) for r in rows]
        if not values:
            return 0
        with self._tx() as con:
            inserted: list[int] = []
            for value in values:       # one by one: only rows not stored before count for the session
                before = con.total_changes
                con.execute("INSERT OR IGNORE INTO samples(eval_id, problem_id, sample_idx, seed, prompt, "
                            "completion, prompt_tokens, completion_tokens, finish_reason, extracted, outcome, "
                            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", value)
                if con.total_changes > before:
                    inserted.append(value[2])
            self._credit_session(con, eval_id, inserted, stamp)
            return len(inserted)

    def _credit_session(self, con: sqlite3.Connection, eval_id: int, indices: list[int], stamp: str) -> None:
        session = self._sessions.get(int(eval_id))
        if session is None or not indices:
            return
        con.execute("UPDATE eval_sessions SET samples = samples + ?, min_idx = MIN(COALESCE(min_idx, ?), ?), "
                    "max_idx = MAX(COALESCE(max_idx, ?), ?), last_at = ? WHERE id = ?",
                    (len(indices), min(indices), min(indices), max(indices), max(indices), stamp, session))

    def finish_evaluation(self, eval_id: int, scores: list[ScoreRow], problems: Iterable[str] = ()) -> None:
        """Replace the evaluation's scores (and the problems they cover) and mark it done, atomically."""
        with self._tx() as con:
            con.execute("DELETE FROM scores WHERE eval_id = ?", (eval_id,))
            con.executemany("INSERT INTO scores(eval_id, metric, k, value, ci_low, ci_high, n) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)",
                            [(eval_id, s.metric, s.k, s.value, s.ci_low, s.ci_high, s.n) for s in scores])
            con.execute("DELETE FROM scored_problems WHERE eval_id = ?", (eval_id,))
            con.executemany("INSERT INTO scored_problems(eval_id, problem_id) VALUES (?, ?)",
                            [(eval_id, str(p)) for p in sorted(set(problems))])
            con.execute("UPDATE evaluations SET status = 'done', finished_at = ? WHERE id = ?", (now(), eval_id))

    def add_external_grades(self, eval_id: int, source: str,
                            rows: Iterable[tuple[str, int, str | None, str]]) -> None:
        """Another evaluator's (problem_id, sample_idx, extracted, verdict) per sample, kept beside ours."""
        with self._tx() as con:
            con.execute(EXTERNAL_GRADES)            # an existing v3 store gains the table here
            con.executemany("INSERT OR REPLACE INTO external_grades(eval_id, problem_id, sample_idx, source, "
                            "extracted, verdict) VALUES (?, ?, ?, ?, ?, ?)",
                            [(eval_id, str(p), int(i), source, x, str(v)) for p, i, x, v in rows])

    def add_diagnostic(self, model_id: int, task: str, metric: str, value: float, details: dict) -> None:
        with self._tx() as con:
            con.execute("INSERT OR REPLACE INTO diagnostics(model_id, task, metric, value, details_json, "
                        "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (model_id, task, metric, float(value), json.dumps(details, default=str), now()))

    # -- reads --------------------------------------------------------------------------------
    def done_samples(self, eval_id: int) -> set[tuple[str, int]]:
        rows = self._read("SELECT problem_id, sample_idx FROM samples WHERE eval_id = ?", (eval_id,))
        return {(str(p), int(i)) for p, i in rows}

    def evaluations(self, status: str | None = "done", *, task: str | None = None,
                    model_id: int | None = None) -> list[EvalRow]:
        """Evaluations joined with their model, oldest first; None = any status."""
        where, params = [], []
        for column, value in (("e.status", status), ("e.task", task), ("e.model_id", model_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = EVAL_COLUMNS + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY e.id"
        return [self._eval_row(r) for r in self._read(sql, params)]

    def evaluation(self, eval_id: int) -> EvalRow | None:
        rows = self._read(EVAL_COLUMNS + " WHERE e.id = ?", (eval_id,))
        return self._eval_row(rows[0]) if rows else None

    def find_evaluation(self, key: EvalKey) -> EvalRow | None:
        """The evaluation `key`, if any (what begin_evaluation would reopen)."""
        rows = self._read(EVAL_COLUMNS + " WHERE e.model_id = ? AND e.task = ? AND e.task_version = ? AND "
                          "e.grader_policy = ? AND e.sampling_key = ? AND e.task_digest = ?",
                          (key.model_id, key.task, key.task_version, key.grader_policy, key.sampling_key,
                           key.task_digest))
        return self._eval_row(rows[0]) if rows else None

    def digests(self, key: EvalKey) -> list[EvalRow]:
        """Every evaluation of `key` whatever its task digest ('' = legacy), oldest first."""
        rows = self._read(EVAL_COLUMNS + " WHERE e.model_id = ? AND e.task = ? AND e.task_version = ? AND "
                          "e.grader_policy = ? AND e.sampling_key = ? ORDER BY e.id",
                          (key.model_id, key.task, key.task_version, key.grader_policy, key.sampling_key))
        return [self._eval_row(r) for r in rows]

    def claim_legacy(self, eval_id: int, task_digest: str) -> bool:
        """Give a legacy evaluation (task_digest '') this digest; False if it is not legacy any more or
        an evaluation with the digest already exists (another process claimed first)."""
        with self._tx() as con:
            cur = con.execute(
                "UPDATE OR IGNORE evaluations SET task_digest = ? WHERE id = ? AND task_digest = ''",
                (task_digest, eval_id))
            return cur.rowcount == 1

    def stored_prompts(self, eval_id: int) -> dict[str, set[str]]:
        """problem_id -> the distinct prompts stored for it (one, unless the task changed under it)."""
        out: dict[str, set[str]] = {}
        for pid, prompt in self._read("SELECT DISTINCT problem_id, prompt FROM samples WHERE eval_id = ?",
                                      (eval_id,)):
            out.setdefault(str(pid), set()).add(prompt)
        return out

    def sibling_evaluations(self, key: EvalKey) -> list[EvalRow]:
        """Evaluations of `key` under any grader policy and task digest (the key's own included): same
        model, task version and sampling key, hence the same per-sample seeds, so their completions can be
        re-graded."""
        rows = self._read(EVAL_COLUMNS + " WHERE e.model_id = ? AND e.task = ? AND e.task_version = ? AND "
                          "e.sampling_key = ? ORDER BY e.id", (key.model_id, key.task, key.task_version,
                                                              key.sampling_key))
        return [self._eval_row(r) for r in rows]

    def models(self) -> list[ModelRow]:
        """Every model, evaluated or only diagnosed, in insertion order."""
        rows = self._read("SELECT id, path, weights_hash, run_name, step, algo, base_model FROM models ORDER BY id")
        return [ModelRow(*row[:3], ModelTags(*row[3:])) for row in rows]

    def find_model(self, path: str, weights_hash: str) -> int | None:
        rows = self._read("SELECT id FROM models WHERE path = ? AND weights_hash = ?", (path, weights_hash))
        return int(rows[0][0]) if rows else None

    @staticmethod
    def _eval_row(r: tuple) -> EvalRow:
        return EvalRow(*r[:4], ModelTags(*r[4:8]), *r[8:11], json.loads(r[11]), *r[12:])

    def sessions(self, eval_id: int) -> list[SessionRow]:
        """Every run that opened the evaluation, oldest first, with its provenance and what it stored."""
        rows = self._read(f"SELECT {', '.join(SESSION_COLUMNS)} FROM eval_sessions WHERE eval_id = ? ORDER BY id",
                          (eval_id,))
        return [SessionRow(*r[:6], json.loads(r[6] or "{}"), *r[7:]) for r in rows]

    def scores(self, eval_id: int) -> list[ScoreRow]:
        rows = self._read("SELECT metric, k, value, ci_low, ci_high, n FROM scores WHERE eval_id = ? "
                          "ORDER BY metric, k", (eval_id,))
        return [ScoreRow(*r) for r in rows]

    def scored_problems(self, eval_id: int) -> set[str] | None:
        """Problems the current scores cover (a `--limit` run scores a subset); None = not recorded (v1)."""
        rows = self._read("SELECT problem_id FROM scored_problems WHERE eval_id = ?", (eval_id,))
        return {str(r[0]) for r in rows} or None

    def problem_counts(self, eval_id: int, n: int | None = None) -> list[tuple[str, int, int]]:
        """(problem_id, samples, correct) per problem, over samples with index < n (default: all)."""
        limit = n if n is not None else 2**62
        rows = self._read("SELECT problem_id, COUNT(*), SUM(outcome = 'correct') FROM samples "
                          "WHERE eval_id = ? AND sample_idx < ? GROUP BY problem_id ORDER BY problem_id",
                          (eval_id, limit))
        return [(str(p), int(c), int(k or 0)) for p, c, k in rows]

    def outcome_counts(self, eval_id: int, n: int | None = None,
                       problems: Iterable[str] | None = None) -> dict[str, int]:
        """Samples per outcome (index < n; only `problems` if given)."""
        limit = n if n is not None else 2**62
        rows = self._read("SELECT problem_id, outcome, COUNT(*) FROM samples WHERE eval_id = ? "
                          "AND sample_idx < ? GROUP BY problem_id, outcome", (eval_id, limit))
        keep = set(problems) if problems is not None else None
        out: dict[str, int] = {}
        for pid, outcome, count in rows:
            if keep is None or pid in keep:
                out[outcome] = out.get(outcome, 0) + int(count)
        return dict(sorted(out.items()))

    def samples(self, eval_id: int) -> Iterator[dict[str, Any]]:
        """Every stored sample of the evaluation as a dict, by (problem_id, sample_idx)."""
        rows = self._read(f"SELECT {', '.join(SAMPLE_COLUMNS)} FROM samples WHERE eval_id = ? "
                          "ORDER BY problem_id, sample_idx", (eval_id,))
        for row in rows:
            yield {"eval_id": eval_id, **dict(zip(SAMPLE_COLUMNS, row, strict=True))}

    def sample_outcomes(self, eval_id: int) -> list[tuple[str, int, int, str]]:
        """(problem_id, sample_idx, seed, outcome) of every stored sample: the grades without the text."""
        rows = self._read("SELECT problem_id, sample_idx, seed, outcome FROM samples WHERE eval_id = ? "
                          "ORDER BY problem_id, sample_idx", (eval_id,))
        return [(str(p), int(i), int(seed), str(o)) for p, i, seed, o in rows]

    def external_grades(self, eval_id: int) -> list[dict[str, Any]]:
        """Other evaluators' verdicts on the evaluation's samples (empty when none were imported)."""
        if not self._read("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'external_grades'"):
            return []
        rows = self._read("SELECT problem_id, sample_idx, source, extracted, verdict FROM external_grades "
                          "WHERE eval_id = ? ORDER BY source, problem_id, sample_idx", (eval_id,))
        keys = ("problem_id", "sample_idx", "source", "extracted", "verdict")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def count_samples(self, eval_id: int) -> int:
        return int(self._read("SELECT COUNT(*) FROM samples WHERE eval_id = ?", (eval_id,))[0][0])

    def diagnostics(self) -> list[dict[str, Any]]:
        rows = self._read("SELECT d.model_id, m.path, d.task, d.metric, d.value, d.details_json, d.created_at "
                          "FROM diagnostics d JOIN models m ON m.id = d.model_id ORDER BY d.model_id, d.task, "
                          "d.metric")
        keys = ("model_id", "model_path", "task", "metric", "value", "details", "created_at")
        return [dict(zip(keys, (*r[:5], json.loads(r[5] or "{}"), r[6]), strict=True)) for r in rows]

    def add_run_failure(self, run_name: str, kind: str, message: str, *, step: int | None = None,
                        model_path: str | None = None) -> int:
        with self._tx() as con:
            cur = con.execute("INSERT INTO run_failures(run_name, step, model_path, kind, message, created_at) "
                              "VALUES (?, ?, ?, ?, ?, ?)", (run_name, step, model_path, kind, message, now()))
            return int(cur.lastrowid)

    def run_failures(self, run_name: str | None = None) -> list[RunFailureRow]:
        where, params = ("WHERE run_name = ?", (run_name,)) if run_name is not None else ("", ())
        rows = self._read("SELECT id, run_name, step, model_path, kind, message, created_at FROM run_failures "
                          f"{where} ORDER BY id", params)
        return [RunFailureRow(*r) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._close_quietly()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
