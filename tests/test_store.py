"""The results store: round trip, no duplicates, schema version and upgrades, provenance history per run,
corrupt files, SQLite failures (lock timeout, disk full) as one-line errors, concurrent writers."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from spsbench.config import SamplingConfig
from spsbench.errors import StoreError
from spsbench.store import SCHEMA_VERSION, ModelTags, SampleRow, ScoreRow, Store
from spsbench.store import db as store_module
from tests.fixtures.store_helpers import begin


def rows(problem: str, indices, outcome: str = "correct") -> list[SampleRow]:
    return [SampleRow(problem, i, 100 + i, "prompt", f"text {i}", 3, 4, "stop", "4", outcome) for i in indices]


@pytest.fixture
def store(store_path):
    s = Store(store_path)
    yield s
    s.close()


def new_eval(store: Store, n: int = 4, path: str = "/m", **sampling) -> int:
    model = store.upsert_model(path, "hash")
    return begin(store, model, SamplingConfig(n=n, **sampling), "hf",
                                  {"host": "x"})


def test_creates_parent_folders_wal_and_version(store, store_path):
    assert store_path.is_file()
    con = sqlite3.connect(store_path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    con.close()


def test_round_trip(store):
    model = store.upsert_model("/runs/r/checkpoint-10", "abc", ModelTags("r", 10, "sps", "/base"))
    assert store.upsert_model("/runs/r/checkpoint-10", "abc") == model        # tags kept when not given
    ev = begin(store, model, SamplingConfig(n=2, max_tokens=64), "hf",
                                {"host": "h"})
    assert store.add_samples(ev, rows("p1", [0, 1]) + rows("p2", [0], "no_answer") + rows("p2", [1], "incorrect")) == 4
    assert store.done_samples(ev) == {("p1", 0), ("p1", 1), ("p2", 0), ("p2", 1)}
    assert store.problem_counts(ev) == [("p1", 2, 2), ("p2", 2, 0)]
    assert store.problem_counts(ev, n=1) == [("p1", 1, 1), ("p2", 1, 0)]
    assert store.outcome_counts(ev) == {"correct": 2, "incorrect": 1, "no_answer": 1}
    assert store.evaluations() == []                                          # still running
    store.finish_evaluation(ev, [ScoreRow("avg@n", 0, 0.5, 0.0, 1.0, 2), ScoreRow("pass@k", 2, 0.5, 0, 1, 2)])
    [row] = store.evaluations()
    assert (row.model_path, row.run_name, row.step, row.algo, row.base_model) == (
        "/runs/r/checkpoint-10", "r", 10, "sps", "/base")
    assert row.sampling["max_tokens"] == 64 and row.n == 2 and row.status == "done" and row.finished_at
    assert store.scores(ev) == [ScoreRow("avg@n", 0, 0.5, 0.0, 1.0, 2), ScoreRow("pass@k", 2, 0.5, 0, 1, 2)]
    sample = next(store.samples(ev))
    assert sample["completion"] == "text 0" and sample["seed"] == 100 and sample["created_at"]
    store.add_diagnostic(model, "arith", "greedy_logprob", -0.5, {"problems": 3})
    assert store.diagnostics()[0]["details"] == {"problems": 3}


def test_reinsert_creates_no_duplicates(store, store_path):
    ev = new_eval(store)
    assert store.add_samples(ev, rows("p", range(3))) == 3
    assert store.add_samples(ev, rows("p", range(4), outcome="incorrect")) == 1   # only idx 3 is new
    assert store.count_samples(ev) == 4
    assert store.outcome_counts(ev) == {"correct": 3, "incorrect": 1}      # first write wins
    with pytest.raises(sqlite3.IntegrityError):                              # the key itself forbids it
        sqlite3.connect(store_path).execute(
            "INSERT INTO samples VALUES (?, 'p', 0, 1, 'q', 'c', 1, 1, 'stop', NULL, 'correct', 'now')", (ev,))


def test_identity_excludes_n_and_keeps_largest(store):
    first = new_eval(store, n=4)
    assert new_eval(store, n=8) == first
    assert new_eval(store, n=2) == first
    assert store.evaluation(first).n == 8 and store.evaluation(first).sampling["n"] == 8
    assert new_eval(store, n=4, temperature=1.0) != first                  # another sampling key


def test_resume_with_another_engine_records_both(store):
    ev = new_eval(store)
    model = store.evaluation(ev).model_id
    begin(store, model, SamplingConfig(n=4), "vllm", {})
    assert store.evaluation(ev).engine == "hf,vllm"


def test_newer_schema_version_is_refused(store_path):
    Store(store_path).close()
    con = sqlite3.connect(store_path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(StoreError, match=rf"schema version {SCHEMA_VERSION + 1}, newer"):
        Store(store_path)


def test_corrupt_file_is_one_line_error_naming_it(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite at all " * 200)
    with pytest.raises(StoreError) as info:
        Store(bad)
    assert str(bad) in str(info.value) and "\n" not in str(info.value)


def test_folder_path_is_refused(tmp_path):
    with pytest.raises(StoreError, match="is a folder"):
        Store(tmp_path)


WRITER = textwrap.dedent("""
    import sys
    from spsbench.config import SamplingConfig
    from spsbench.store import EvalKey, SampleRow, Store
    path, name = sys.argv[1], sys.argv[2]
    s, sampling = Store(path), SamplingConfig(n=1)
    own = s.begin_evaluation(EvalKey(s.upsert_model("/m/" + name, "h"), "t", "1", "p", sampling.key()), sampling,
                             "x", {})
    shared = s.begin_evaluation(EvalKey(s.upsert_model("/m/shared", "h"), "t", "1", "p", sampling.key()), sampling,
                                "x", {})
    for b in range(200):
        batch = [SampleRow(f"q{b}", i, i, "p", name, 1, 1, "stop", None, "correct") for i in range(5)]
        s.add_samples(own, batch)
        s.add_samples(shared, batch)       # both processes write the same keys: one copy must survive
    s.close()
""")


def test_two_processes_writing_at_once(store_path):
    Store(store_path).close()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(store_path), name]) for name in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    con = sqlite3.connect(store_path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    per_eval = dict(con.execute("SELECT m.path, COUNT(*) FROM samples s JOIN evaluations e ON e.id = s.eval_id "
                                "JOIN models m ON m.id = e.model_id GROUP BY m.path").fetchall())
    assert per_eval == {"/m/a": 1000, "/m/b": 1000, "/m/shared": 1000}
    assert con.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0] == 3
    con.close()


def test_store_usable_from_a_second_thread(store):
    import threading

    ev = new_eval(store)
    t = threading.Thread(target=store.add_samples, args=(ev, rows("p", range(5))))
    t.start()
    t.join()
    assert store.count_samples(ev) == 5


# ------------------------------------------------------------------ provenance history (schema v3)


def test_each_run_keeps_its_own_provenance_and_what_it_stored(store, store_path):
    model = store.upsert_model("/m", "hash")
    first = begin(store, model, SamplingConfig(n=2), "hf",
                                   {"host": "first-host", "packages": {"torch": "2.0"}})
    store.add_samples(first, rows("p1", [0, 1]) + rows("p2", [0]))
    with Store(store_path) as other:                      # a later process resumes and extends to n=4
        again = begin(other, model, SamplingConfig(n=4), "vllm",
                                       {"host": "second-host", "packages": {"torch": "2.1"}})
        assert again == first
        assert other.add_samples(again, rows("p1", [1, 2, 3]) + rows("p2", [1, 2, 3])) == 5   # p1/1 was stored
    one, two = store.sessions(first)
    assert (one.kind, one.engine, one.n, one.provenance["host"], one.provenance["packages"]["torch"]) == (
        "run", "hf", 2, "first-host", "2.0")
    assert (one.samples, one.min_idx, one.max_idx) == (3, 0, 1) and one.last_at
    assert (two.kind, two.engine, two.n, two.provenance["host"]) == ("run", "vllm", 4, "second-host")
    assert (two.samples, two.min_idx, two.max_idx) == (5, 1, 3)      # credited with inserted rows only
    assert one.samples + two.samples == store.count_samples(first)
    latest = json.loads(sqlite3.connect(store_path).execute("SELECT provenance_json FROM evaluations"
                                                            ).fetchone()[0])
    assert latest["host"] == "second-host"               # the column older readers use: the latest run


def test_an_older_store_gains_the_history_with_what_it_kept(store_path):
    with Store(store_path) as s:
        ev = new_eval(s)
        s.add_samples(ev, rows("p", range(3)))
    con = sqlite3.connect(store_path)                     # make it look like a version-2 store
    con.execute("DROP TABLE eval_sessions")
    con.execute("UPDATE evaluations SET provenance_json = '{\"host\": \"old\"}'")
    con.execute("PRAGMA user_version = 2")
    con.commit()
    con.close()
    with Store(store_path) as s:
        [upgraded] = s.sessions(ev)
        assert (upgraded.kind, upgraded.provenance, upgraded.samples, upgraded.min_idx, upgraded.max_idx) == (
            "upgrade", {"host": "old"}, 3, 0, 2)
        begin(s, s.evaluation(ev).model_id, SamplingConfig(n=4), "hf",
                           {"host": "new"})
        assert [x.provenance["host"] for x in s.sessions(ev)] == ["old", "new"]
    assert sqlite3.connect(store_path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


# ------------------------------------------------------------------ SQLite failures as one line


def test_a_lock_held_past_the_timeout_is_a_one_line_store_error(store, store_path, monkeypatch):
    ev = new_eval(store)
    store.add_samples(ev, rows("p", [0]))
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 200)
    store._con.execute("PRAGMA busy_timeout = 200")
    holder = sqlite3.connect(store_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")                     # another process holding the write lock
    try:
        with pytest.raises(StoreError, match=r"is locked: another process held its write lock for more than "
                                             r"0.2 s") as info:
            store.add_samples(ev, rows("p", [1, 2]))
        assert "\n" not in str(info.value) and str(store_path) in str(info.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.done_samples(ev) == {("p", 0)}          # the committed sample is kept, nothing half-written
    assert store.add_samples(ev, rows("p", [1, 2])) == 2  # and the store works once the lock is free


def test_disk_full_is_a_one_line_store_error_and_keeps_committed_samples(store):
    ev = new_eval(store)
    store.add_samples(ev, rows("p", range(3)))
    pages = store._con.execute("PRAGMA page_count").fetchone()[0]
    store._con.execute(f"PRAGMA max_page_count = {pages}")   # the file cannot grow: SQLITE_FULL
    big = [SampleRow("q", i, i, "prompt", "x" * 5000, 1, 1, "stop", None, "correct") for i in range(20)]
    with pytest.raises(StoreError, match="disk full.*committed samples are kept") as info:
        store.add_samples(ev, big)
    assert "\n" not in str(info.value)
    assert store.count_samples(ev) == 3
