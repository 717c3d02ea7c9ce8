"""Crash safety: `spsbench eval` killed with SIGKILL mid-run, then restarted, loses no committed sample,
duplicates none and generates only the missing ones; resuming a finished evaluation generates nothing."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

from spsbench.config import SamplingConfig
from spsbench.evaluate import evaluate

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


def test_sigkill_then_resume(tiny_model_dir, store_path):
    cmd = [sys.executable, "-m", "spsbench.cli", "eval", str(tiny_model_dir), "--engine", "hf", "--n", str(N),
           "--max-tokens", str(MAX_TOKENS), "--limit", str(LIMIT), "--store", str(store_path), "--quiet",
           "--no-leaderboard", "--engine-opt", "batch_size=4", "--engine-opt", "num_threads=1"]
    before = kill_midway(cmd, store_path)
    assert 0 < len(before) < TOTAL

    sampling = SamplingConfig(n=N, max_tokens=MAX_TOKENS)     # what the command line above asked for
    [result] = evaluate(str(tiny_model_dir), ["arith"], sampling, engine="hf", store=store_path, limit=LIMIT,
                        engine_options={"batch_size": 4, "num_threads": 1}, progress=False)
    after = stored(store_path)
    assert result.generated == TOTAL - len(before)            # only the missing samples were generated
    assert all(after[key] == value for key, value in before.items())   # nothing committed was lost/redone
    assert len(after) == TOTAL == sum(result.scores["counts"].values())
    con = sqlite3.connect(store_path)
    assert con.execute("SELECT COUNT(*), COUNT(DISTINCT problem_id || '/' || sample_idx) FROM samples"
                       ).fetchone() == (TOTAL, TOTAL)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT status FROM evaluations").fetchall() == [("done",)]
    con.close()

    def no_engine(*_):
        raise AssertionError("a finished evaluation must not load an engine")

    [again] = evaluate(str(tiny_model_dir), ["arith"], sampling, engine="hf", store=store_path, limit=LIMIT,
                       progress=False, engine_factory=no_engine)
    assert again.generated == 0 and stored(store_path) == after
    assert again.scores["avg@n"] == result.scores["avg@n"]
