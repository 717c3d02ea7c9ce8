"""GraderPool: order, cache, hard watchdog on pathological answers and stuck or dead workers, reward()."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import pytest

from spsbench import grading
from spsbench.grading import GradeRequest, GraderPool, GradingPolicy, Outcome, grade, reward
from spsbench.grading import pool as pool_module
from spsbench.grading.core import RETRY_FACTOR

TIMEOUT = 1
TOWER = r"\boxed{9^{9^{9^{9}}}}"
DEEP = "\\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}"      # math-verify's parser never returns on this
UNCLOSED = "\\boxed{" + "{" * 50_000
# Timing allowances. The soft timer and the watchdog are wall-clock, so what they take barely depends on
# load; a worker start (python + math-verify import + warm-up) does: measured 1.5-4 s on the shared
# 2-core box. So the deadlines are checked at the moment each worker is stopped (`replacements`), with
# LATE_S of scheduling slack, and worker starts are bounded separately and loosely.
LATE_S = 1.0
START_S = 10.0
PROMISED_GRACE_S = 1.0   # docs/grading.md: a stuck worker is killed 1 s after the limit (not pool.GRACE_S,
                         # so a slower watchdog fails here instead of moving the bound with it)


@pytest.fixture(scope="module")
def pool():
    with GraderPool(workers=2, policy=GradingPolicy(timeout_s=TIMEOUT)) as p:
        p.grade(GradeRequest(r"\boxed{1}", "1"))                  # start the workers outside the timed tests
        yield p


@dataclass
class Stop:
    at: float        # time.perf_counter() when the pool stopped the worker
    ran: float       # how long its job had run by then (seconds since it was sent)
    limit: float     # that job's limit (the policy's, or RETRY_FACTOR times it for a retry)


@pytest.fixture
def stops(monkeypatch) -> list[Stop]:
    """Every worker any pool stops to replace (after a soft timeout, or a watchdog kill), in order."""
    found: list[Stop] = []
    original = GraderPool._replace

    def record(self, i):
        w, now = self._workers[i], time.monotonic()
        found.append(Stop(time.perf_counter(), now - w.sent, w.limit))
        original(self, i)
    monkeypatch.setattr(GraderPool, "_replace", record)
    return found


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


def test_pathological_answers_cost_at_most_the_timeout_and_its_retry(pool, stops):
    requests = [GradeRequest(r"\boxed{33}", "33"), GradeRequest(TOWER, "33"), GradeRequest(DEEP, "33"),
                GradeRequest(UNCLOSED, "33"), GradeRequest(r"\boxed{12}", "12"), GradeRequest(r"\boxed{5}", "4")]
    before = dict(pool.stats)
    start = time.perf_counter()
    got = pool.grade_many(requests)
    elapsed = time.perf_counter() - start
    assert [g.outcome for g in got] == [Outcome.CORRECT, Outcome.GRADER_TIMEOUT, Outcome.GRADER_TIMEOUT,
                                        Outcome.NO_ANSWER, Outcome.CORRECT, Outcome.INCORRECT]
    assert got[1].extracted == "9^{9^{9^{9}}}"
    assert "second attempt" in got[1].detail and "second attempt" in got[2].detail
    assert pool.stats["retries"] - before["retries"] == 2 and pool.stats["timeouts"] - before["timeouts"] == 2
    # Each attempt is stopped by the soft timer at its limit: 1 s, then 2 s on a fresh worker.
    assert sorted(s.limit for s in stops) == [TIMEOUT, TIMEOUT, RETRY_FACTOR * TIMEOUT, RETRY_FACTOR * TIMEOUT]
    assert all(s.limit - 0.05 <= s.ran < s.limit + LATE_S for s in stops), stops
    assert stops[1].at - start < TIMEOUT + LATE_S                   # both stuck answers ran at once
    assert elapsed < stops[-1].at - start + LATE_S                  # nothing waited after the last stop
    timeouts = pool.stats["timeouts"]
    start = time.perf_counter()
    assert pool.grade(GradeRequest(TOWER, "33")).outcome is Outcome.GRADER_TIMEOUT      # cached: no new wait
    assert time.perf_counter() - start < 0.5 and pool.stats["timeouts"] == timeouts


def test_sub_second_limit_is_honoured_by_the_pool(stops):
    with GraderPool(workers=1, policy=GradingPolicy(timeout_s=0.5)) as p:
        p.grade(GradeRequest(r"\boxed{1}", "1"))
        start = time.perf_counter()
        g = p.grade(GradeRequest(TOWER, "33"))
        assert g.outcome is Outcome.GRADER_TIMEOUT
        assert "did not finish within 1 s" in g.detail and "first timed out at 0.5 s" in g.detail
        assert "killed" not in g.detail                      # the soft timer stopped it, not the watchdog
        assert [s.limit for s in stops] == [0.5, 1.0]
        assert 0.45 <= stops[0].ran < 0.5 + LATE_S / 2, stops    # not rounded to a whole second
        assert 0.95 <= stops[1].ran < 1.0 + LATE_S / 2, stops
        assert stops[0].at - start < 0.5 + LATE_S / 2


def test_a_stuck_worker_is_killed_and_its_answer_retried(stops):
    """A worker that stops running (as under heavy load, here SIGSTOP) is killed by the watchdog; the
    answer is retried on a fresh worker and graded, instead of a timeout cached for the pool's life."""
    with GraderPool(workers=1, policy=GradingPolicy(timeout_s=TIMEOUT)) as p:
        p.grade(GradeRequest(r"\boxed{1}", "1"))
        stuck = p._workers[0].proc
        os.kill(stuck.pid, signal.SIGSTOP)             # stuck for good: ignores every signal but KILL
        start = time.perf_counter()
        got = p.grade_many([GradeRequest(r"\boxed{2}", "2"), GradeRequest(r"\boxed{3}", "3")])
        elapsed = time.perf_counter() - start
        assert [g.outcome for g in got] == [Outcome.CORRECT, Outcome.CORRECT]
        assert "first timed out at 1 s" in got[0].detail
        assert stuck.poll() is not None                                # killed, not just abandoned
        assert p.stats["restarts"] == 1 and p.stats["retries"] == 1 and p.stats["timeouts"] == 0
        assert len(stops) == 1 and TIMEOUT <= stops[0].ran < TIMEOUT + PROMISED_GRACE_S + LATE_S, stops
        assert elapsed < TIMEOUT + PROMISED_GRACE_S + LATE_S + START_S   # + one worker start


def test_an_answer_stuck_twice_is_a_cached_timeout(monkeypatch, stops):
    """Both attempts stuck (each worker freezes as soon as it has the job): the second kill is final."""
    with GraderPool(workers=1, policy=GradingPolicy(timeout_s=TIMEOUT)) as p:
        p.grade(GradeRequest(r"\boxed{1}", "1"))
        send = pool_module._Worker.send

        def freeze_then_send(self, *args):
            # Frozen first: a worker that got the job before the stop could answer a fast job (a cached gold)
            # and the test would see a verdict instead of a timeout. The job waits in the pipe.
            os.kill(self.proc.pid, signal.SIGSTOP)
            send(self, *args)
        monkeypatch.setattr(pool_module._Worker, "send", freeze_then_send)
        g = p.grade(GradeRequest(r"\boxed{7}", "7"))
        assert g.outcome is Outcome.GRADER_TIMEOUT
        assert "killed after 2 s" in g.detail and "first timed out at 1 s" in g.detail
        assert [s.limit for s in stops] == [TIMEOUT, RETRY_FACTOR * TIMEOUT]
        assert all(s.limit <= s.ran < s.limit + PROMISED_GRACE_S + LATE_S for s in stops), stops
        assert p.stats["retries"] == 1 and p.stats["timeouts"] == 1 and p.stats["restarts"] == 2
        start = time.perf_counter()
        assert p.grade(GradeRequest(r"\boxed{7}", "7")).outcome is Outcome.GRADER_TIMEOUT   # cached
        assert time.perf_counter() - start < 0.5 and len(stops) == 2


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
    with grading.shared_pool() as pool:
        pass
    with grading.shared_pool() as again:
        pass
    assert pool is again and pool.stats["cache_hits"] >= 2
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
        "with grading.shared_pool() as pool: print(pool._workers[0].proc.pid, flush=True)\n"
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
