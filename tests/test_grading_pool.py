"""GraderPool: order, cache, hard watchdog on pathological answers and stuck or dead workers, reward()."""

from __future__ import annotations

import os
import signal
import time

import pytest

from spsbench import grading
from spsbench.grading import GradeRequest, GraderPool, GradingPolicy, Outcome, grade, reward
from spsbench.grading.pool import GRACE_S

TIMEOUT = 1
TOWER = r"\boxed{9^{9^{9^{9}}}}"
DEEP = "\\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}"      # math-verify's parser never returns on this
UNCLOSED = "\\boxed{" + "{" * 50_000


@pytest.fixture(scope="module")
def pool():
    with GraderPool(workers=2, policy=GradingPolicy(timeout_s=TIMEOUT)) as p:
        p.grade(GradeRequest(r"\boxed{1}", "1"))                  # start the workers outside the timed tests
        yield p


def test_grade_many_keeps_order_and_matches_in_process(pool):
    requests = [
        GradeRequest(r"\boxed{1\,000}", "1000"), GradeRequest("The answer is 7", "8"),
        GradeRequest("no anchor 5", "5"), GradeRequest("Answer: B", "B", "mc", ("x", "y", "z")),
        GradeRequest("<think>\\boxed{2}", "2"), GradeRequest(r"\boxed{\dfrac{1}{2}}", "0.5"),
    ]
    got = pool.grade_many(requests)
    assert [g.outcome for g in got] == [Outcome.CORRECT, Outcome.INCORRECT, Outcome.NO_ANSWER,
                                        Outcome.CORRECT, Outcome.NO_ANSWER, Outcome.CORRECT]
    for request, g in zip(requests, got, strict=True):
        assert g == grade(request.completion, request.gold, request.kind, request.choices,
                          policy=pool.policy)


def test_cache_verifies_each_repeated_answer_once():
    with GraderPool(workers=1) as p:
        requests = [GradeRequest(f"\\boxed{{{i % 5}}}", "3") for i in range(50)]
        got = p.grade_many(requests)
        assert [g.correct for g in got] == [i % 5 == 3 for i in range(50)]
        assert p.stats["graded"] == 50 and p.stats["cache_hits"] == 45
        p.grade_many(requests)
        assert p.stats["graded"] == 100 and p.stats["cache_hits"] == 95


def test_pathological_answers_cost_at_most_the_timeout(pool):
    requests = [GradeRequest(r"\boxed{33}", "33"), GradeRequest(TOWER, "33"), GradeRequest(DEEP, "33"),
                GradeRequest(UNCLOSED, "33"), GradeRequest(r"\boxed{12}", "12"), GradeRequest(r"\boxed{5}", "4")]
    start = time.perf_counter()
    got = pool.grade_many(requests)
    elapsed = time.perf_counter() - start
    assert [g.outcome for g in got] == [Outcome.CORRECT, Outcome.GRADER_TIMEOUT, Outcome.GRADER_TIMEOUT,
                                        Outcome.NO_ANSWER, Outcome.CORRECT, Outcome.INCORRECT]
    assert got[1].extracted == "9^{9^{9^{9}}}"
    assert elapsed < 4 * (TIMEOUT + GRACE_S) + 5, f"pathological batch took {elapsed:.1f} s"
    timeouts = pool.stats["timeouts"]
    start = time.perf_counter()
    assert pool.grade(GradeRequest(TOWER, "33")).outcome is Outcome.GRADER_TIMEOUT      # cached: no new wait
    assert time.perf_counter() - start < 0.5 and pool.stats["timeouts"] == timeouts


def test_watchdog_kills_and_replaces_a_stuck_worker():
    with GraderPool(workers=1, policy=GradingPolicy(timeout_s=TIMEOUT)) as p:
        p.grade(GradeRequest(r"\boxed{1}", "1"))
        os.kill(p._workers[0].proc.pid, signal.SIGSTOP)             # stuck for good: ignores every signal but KILL
        start = time.perf_counter()
        got = p.grade_many([GradeRequest(r"\boxed{2}", "2"), GradeRequest(r"\boxed{3}", "3")])
        elapsed = time.perf_counter() - start
        assert got[0].outcome is Outcome.GRADER_TIMEOUT and "killed" in got[0].detail
        assert got[1].outcome is Outcome.CORRECT
        assert p.stats["restarts"] == 1 and p.stats["timeouts"] == 1
        assert elapsed < TIMEOUT + GRACE_S + 20


def test_a_dead_worker_is_replaced():
    with GraderPool(workers=1) as p:
        p.grade(GradeRequest(r"\boxed{1}", "1"))
        proc = p._workers[0].proc
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        assert p.grade(GradeRequest(r"\boxed{2}", "2")).correct
        assert p.stats["restarts"] == 1


def test_close_stops_workers():
    p = GraderPool(workers=2)
    p.grade(GradeRequest(r"\boxed{2}", "2"))
    procs = [w.proc for w in p._workers]
    p.close()
    assert procs and all(proc.poll() is not None for proc in procs)
    with pytest.raises(ValueError):
        GraderPool(workers=0)


def test_reward_uses_the_same_grader_and_is_reusable():
    completions = [r"\boxed{1\,000}", "it is 1000", r"\boxed{999}"]
    assert reward(completions, ["1000"] * 3) == [1.0, 0.0, 0.0]
    assert reward(completions, ["1000"] * 3) == [1.0, 0.0, 0.0]
    pool = grading._shared_pool()
    assert pool is grading._shared_pool() and pool.stats["cache_hits"] >= 2
    mc = reward(["Answer: B", "Answer: C"], ["B", "B"], kind="mc", choices=[("1", "2", "3"), None])
    assert mc == [1.0, 0.0]
    with pytest.raises(ValueError):
        reward(["a"], ["1", "2"])


def test_reward_from_a_worker_thread_with_array_choices():
    import threading

    import numpy as np

    out = {}
    choices = [np.array(["1", "2", "3", "4"]), None]
    thread = threading.Thread(target=lambda: out.setdefault(
        "r", reward(["Answer: D", "Answer: A"], ["D", "B"], kind="mc", choices=choices)))
    thread.start()
    thread.join(60)
    assert out["r"] == [1.0, 0.0]
    assert reward([r"\boxed{5}"], [5]) == [1.0]                       # int golds, as datasets store them


def test_unguarded_script_on_stdin_and_workers_die_with_their_owner(tmp_path):
    """No `if __name__ == "__main__"` needed (workers never re-import the caller), and a parent killed
    with SIGKILL leaves no worker behind (the worker exits at end of input)."""
    import subprocess
    import sys

    script = (
        "import os, signal\n"
        "from spsbench import grading\n"
        "print(grading.reward(['\\\\boxed{3}', 'x'], ['3', '3']))\n"
        "print(grading._shared_pool()._workers[0].proc.pid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    run = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    lines = run.stdout.split()
    assert run.stdout.startswith("[1.0, 0.0]"), run.stderr
    worker = int(lines[-1])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(worker, signal.SIGKILL)
        pytest.fail("grader worker outlived its killed parent")
