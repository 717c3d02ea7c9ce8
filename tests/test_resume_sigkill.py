"""Crash safety: `spsbench eval` killed with SIGKILL mid-run, then restarted, loses no committed sample,
duplicates none and asks the engine for exactly the missing ones; resuming a finished evaluation generates
nothing; two `spsbench eval` processes creating and filling one new store at once corrupt and duplicate
nothing.

The child processes are the real command line (`python -m spsbench.cli eval`) on the tiny random model
with the hf engine: there is no test hook in the product code."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

from spsbench.config import SamplingConfig, sample_seed
from spsbench.engines import load_engine
from spsbench.evaluation.evaluate import evaluate
from spsbench.evaluation.records import EvalRequest

N, LIMIT, MAX_TOKENS = 8, 32, 48
TOTAL = N * LIMIT


def stored(path) -> dict[tuple[str, int], tuple[str, str]]:
    """(problem, idx) -> (created_at, completion), read like any other reader would (WAL allows it)."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        rows = con.execute("SELECT problem_id, sample_idx, created_at, completion FROM samples").fetchall()
        con.close()
    except sqlite3.OperationalError:          # file or tables not created yet
        return {}
    return {(p, i): (c, t) for p, i, c, t in rows}


def kill_midway(cmd: list[str], store) -> dict:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ | {
        "HF_HUB_OFFLINE": "1"})
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            if TOTAL // 5 <= len(stored(store)) < TOTAL * 4 // 5:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    return stored(store)


class Recording:
    """A real engine that records what it is asked for and what it yields."""

    def __init__(self, inner) -> None:
        self.inner, self.name = inner, inner.name
        self.asked: list[tuple[str, int, int]] = []           # (problem, sample_idx, seed)
        self.yielded: list[tuple[str, int]] = []

    def describe(self) -> dict:
        return self.inner.describe()

    def generate(self, requests, sampling):
        requests = list(requests)
        self.asked += [(r.key, i, s) for r in requests for i, s in zip(r.sample_indices, r.seeds, strict=True)]
        for c in self.inner.generate(requests, sampling):
            self.yielded.append((c.key, c.sample_idx))
            yield c

    def close(self) -> None:
        self.inner.close()


def eval_cmd(model, store, n: int, limit: int, max_tokens: int) -> list[str]:
    return [sys.executable, "-m", "spsbench.cli", "eval", str(model), "--engine", "hf", "--n", str(n),
            "--max-tokens", str(max_tokens), "--limit", str(limit), "--store", str(store), "--quiet",
            "--no-leaderboard", "--engine-opt", "batch_size=4", "--engine-opt", "num_threads=1"]


def test_sigkill_then_resume(tiny_model_dir, store_path):
    before = kill_midway(eval_cmd(tiny_model_dir, store_path, N, LIMIT, MAX_TOKENS), store_path)
    assert 0 < len(before) < TOTAL

    sampling = SamplingConfig(n=N, max_tokens=MAX_TOKENS)     # what the command line above asked for
    engines: list[Recording] = []

    def recording(engine, model):
        engines.append(Recording(load_engine(engine, model, batch_size=4, num_threads=1)))
        return engines[-1]

    [result] = evaluate(EvalRequest(str(tiny_model_dir), ["arith"], sampling, engine="hf", store=store_path, limit=LIMIT, progress=False), engine_factory=recording)
    after = stored(store_path)
    [engine] = engines
    every = {(str(p), i) for p in range(LIMIT) for i in range(N)}
    missing = every - set(before)
    # The engine was asked for exactly the missing (problem, sample) pairs, once each, with their own seeds.
    assert sorted((p, i) for p, i, _ in engine.asked) == sorted(missing)
    assert all(seed == sample_seed(0, p, i) for p, i, seed in engine.asked)
    assert sorted(engine.yielded) == sorted(missing)
    assert result.generated == TOTAL - len(before)            # only the missing samples were generated
    assert all(after[key] == value for key, value in before.items())   # nothing committed was lost/redone
    assert len(after) == TOTAL == sum(result.scores.counts.values())
    con = sqlite3.connect(store_path)
    assert con.execute("SELECT COUNT(*), COUNT(DISTINCT problem_id || '/' || sample_idx) FROM samples"
                       ).fetchone() == (TOTAL, TOTAL)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT status FROM evaluations").fetchall() == [("done",)]
    con.close()

    def no_engine(*_):
        raise AssertionError("a finished evaluation must not load an engine")

    [again] = evaluate(EvalRequest(str(tiny_model_dir), ["arith"], sampling, engine="hf", store=store_path, limit=LIMIT, progress=False), engine_factory=no_engine)
    assert again.generated == 0 and stored(store_path) == after
    assert again.scores.avg == result.scores.avg


def test_two_evals_create_and_fill_one_new_store_at_once(tmp_path):
    from tests.openai_stub_server import StubServer, StubState

    store = tmp_path / "new" / "spsbench.db"                  # neither process finds a store: both create it
    n, limit = 8, 16
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    # The OpenAI engine against the in-process stub server: a real `spsbench eval` without torch start-up,
    # so both processes reach the store within a second of each other and then write concurrently.
    with StubServer(StubState()) as server:
        cmd = [sys.executable, "-m", "spsbench.cli", "eval", "stub-model", "--engine", "openai", "--base-url",
               server.url, "--n", str(n), "--max-tokens", "16", "--limit", str(limit), "--store", str(store),
               "--quiet", "--no-leaderboard", "--engine-opt", "concurrency=4"]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
        requests = server.state.requests
    for proc, (out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err[-2000:]
        assert "Avg@n" in out                                 # both completed and printed their table
    con = sqlite3.connect(store)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("SELECT status FROM evaluations").fetchall() == [("done",)]   # one shared identity
        assert con.execute("SELECT COUNT(*), COUNT(DISTINCT problem_id || '/' || sample_idx) FROM samples"
                           ).fetchone() == (n * limit, n * limit)
        # Each process recorded its own session, credited only with the samples it actually inserted.
        sessions = con.execute("SELECT kind, samples FROM eval_sessions").fetchall()
    finally:
        con.close()
    assert n * limit <= requests <= 2 * n * limit
    assert [k for k, _ in sessions] == ["run", "run"] and sum(c for _, c in sessions) == n * limit
