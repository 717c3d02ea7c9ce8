"""GraderPool: math-verify in worker processes, a hard watchdog, and an answer cache.

Why processes: a soft time limit needs SIGALRM in a main thread, and some inputs can spin in C code
that no signal interrupts. Each worker runs jobs in its own main thread under a soft timer
(`verify.soft_limit`), and is replaced once that timer has fired (an interrupted sympy may be left
half-initialised); the parent also kills any worker still busy `GRACE_S` after the limit and starts a
fresh one. A timed-out answer is tried once more with `RETRY_FACTOR` times
the limit (one timeout may be machine load); only the second timeout is final and cached, so one
pathological answer costs at most ~(1 + RETRY_FACTOR) * timeout_s + 2 * GRACE_S, once per pool.
Workers are plain subprocesses (`python -m spsbench.grading.worker`) speaking JSON lines, not
multiprocessing: forking a trainer that holds torch threads is unsafe, and spawn/forkserver re-import
the caller's `__main__`, which breaks unguarded scripts, code read from stdin and notebooks.

Extraction happens in the parent (cheap, linear time); only (mode, extracted answer, gold) travels to a
worker, and that triple is the cache key, so an answer repeated across samples is verified once.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from multiprocessing.connection import wait
from pathlib import Path

from spsbench.grading.core import RETRY_FACTOR, after_retry, finish, is_timeout, prepare
from spsbench.grading.types import Grade, GradeRequest, GradingPolicy, Outcome

GRACE_S = 1.0            # hard kill this long after the soft limit (C-level hangs ignore the soft timer)
CACHE_MAX = 200_000      # entries; oldest dropped first
START_LIMIT_S = 120.0    # a worker not ready by then (math-verify import stuck) is a setup error
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])    # so workers import this same spsbench


class _Worker:
    """One worker subprocess, its pipes, and the job it is on (if any)."""

    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "spsbench.grading.worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True, encoding="utf-8")
        self.conn = self.proc.stdout            # what multiprocessing.connection.wait() selects on
        self.ready = False
        self.started = time.monotonic()
        self.key: tuple | None = None
        self.retry = False                      # the job in flight is a timed-out key's second attempt
        self.limit = 0.0
        self.sent = 0.0                         # time.monotonic() when the job in flight was sent
        self.job_id = -1
        self.deadline = 0.0

    def send(self, job_id: int, key: tuple, retry: bool, limit: float) -> None:
        self.key, self.retry, self.limit, self.job_id = key, retry, limit, job_id
        self.sent = time.monotonic()
        self.deadline = self.sent + limit + GRACE_S
        self.proc.stdin.write(json.dumps([job_id, *key, limit]) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> list:
        """One reply line; EOFError when the worker has died. Called only when readable, one job in flight."""
        line = self.proc.stdout.readline()
        if not line:
            raise EOFError
        return json.loads(line)

    def end_input(self) -> None:
        """End of input: the worker finishes its current job (if any) and exits."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def stop(self, kill: bool = False) -> None:
        if not kill:
            self.end_input()
            try:
                self.proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5.0)
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass


class GraderPool:
    """Worker processes with a hard watchdog and an (kind, extracted, gold) cache. Context manager.

    pool.grade_many(requests: Sequence[GradeRequest]) -> list[Grade]   (same order)
    pool.stats -> dict(graded=, cache_hits=, timeouts=, retries=, restarts=, errors=)
    (timeouts: final ones, after the retry; retries: timed-out keys tried a second time)
    Workers start on first use; `close()` (or leaving the `with` block) stops them.
    """

    def __init__(self, workers: int = 2, policy: GradingPolicy | None = None) -> None:
        if workers < 1:
            raise ValueError(f"GraderPool needs at least one worker, got {workers}")
        self.policy = policy or GradingPolicy()
        self.num_workers = workers
        self.stats = {"graded": 0, "cache_hits": 0, "timeouts": 0, "retries": 0, "restarts": 0, "errors": 0}
        self._cache: dict[tuple, tuple[str, str | None, str]] = {}
        self._batch: dict[tuple, tuple[str, str | None, str]] = {}   # this batch's results, incl. uncached
        self._workers: list[_Worker] = []
        self._job_ids = itertools.count()

    def __enter__(self) -> GraderPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for w in self._workers:          # all at once, so closing costs one wait, not one per worker
            w.end_input()
        for w in self._workers:
            w.stop()
        self._workers = []

    def grade_many(self, requests: Sequence[GradeRequest], progress: bool = False) -> list[Grade]:
        """Grade every request (same order). Never raises for a bad answer: that is an outcome."""
        return self._grade(requests, progress, retry=False)

    def grade(self, request: GradeRequest) -> Grade:
        return self.grade_many([request])[0]

    def _grade_after_timeout(self, request: GradeRequest) -> Grade:
        """For `grade()`, whose in-process attempt timed out: run only the retry (the first is spent)."""
        return self._grade([request], False, retry=True)[0]

    def _grade(self, requests: Sequence[GradeRequest], progress: bool, retry: bool) -> list[Grade]:
        prepared = [prepare(r, self.policy) for r in requests]
        todo = list(dict.fromkeys(p.key for p in prepared if p.key is not None and p.key not in self._cache))
        self.stats["cache_hits"] += sum(p.key is not None for p in prepared) - len(todo)
        self._batch = {}
        self._run(todo, progress, retry)
        grades = [p.grade if p.key is None else finish(p, self._batch.get(p.key) or self._cache[p.key])
                  for p in prepared]
        self._batch = {}
        self.stats["graded"] += len(grades)
        return grades

    # --- dispatch and watchdog --------------------------------------------------------------------

    def _run(self, keys: list[tuple], progress: bool, retry: bool = False) -> None:
        if not keys:
            return
        self._ensure_workers()
        queue: list[tuple[tuple, bool]] = [(key, retry) for key in reversed(keys)]   # (key, is a retry); pop()
        bar = _Progress(len(keys)) if progress else None
        try:
            while queue or any(w.key is not None for w in self._workers):
                self._dispatch(queue)
                done = self._collect(queue)
                if bar:
                    bar.advance(done)
        finally:
            if bar:
                bar.close()

    def _ensure_workers(self) -> None:
        while len(self._workers) < self.num_workers:
            self._workers.append(_Worker())

    def _dispatch(self, queue: list[tuple[tuple, bool]]) -> None:
        for i, w in enumerate(self._workers):
            if w.ready and w.key is None and queue:
                key, retry = queue.pop()
                limit = self.policy.timeout_s * (RETRY_FACTOR if retry else 1)
                try:
                    w.send(next(self._job_ids), key, retry, limit)
                except OSError:                # died while idle: requeue the job on a fresh worker
                    queue.append((key, retry))
                    self._replace(i)

    def _collect(self, queue: list[tuple[tuple, bool]]) -> int:
        """Wait for one result or deadline; return how many jobs finished (incl. killed ones)."""
        busy = [w for w in self._workers if w.key is not None]
        starting = [w for w in self._workers if not w.ready]
        if any(time.monotonic() - w.started > START_LIMIT_S for w in starting):
            raise RuntimeError(f"a grader worker did not start within {START_LIMIT_S:g} s")
        timeout = max(0.0, min(w.deadline for w in busy) - time.monotonic()) if busy else 1.0
        ready = wait([w.conn for w in busy + starting], timeout=timeout)
        finished = 0
        for i, w in enumerate(self._workers):
            if w.conn in ready:
                finished += self._receive(i, w, queue)
            elif w.key is not None and time.monotonic() >= w.deadline:
                killed = ("grader_timeout", None, f"worker killed after {w.limit:g} s + {GRACE_S:g} s grace")
                finished += self._settle(w, killed, queue)
                self._replace(i)
        return finished

    def _settle(self, w: _Worker, result: tuple[str, str | None, str], queue: list[tuple[tuple, bool]]) -> int:
        """Record the result of `w`'s job, or queue its retry after a first timeout; return jobs finished.

        The retry goes to the far end of the queue: it runs after the rest of the batch, when any load
        that caused the first timeout may have passed, and it does not hold up answers still waiting."""
        key, retry = w.key, w.retry
        w.key = None
        if is_timeout(result) and not retry:
            queue.insert(0, (key, True))
            self.stats["retries"] += 1
            return 0
        self._record(key, after_retry(result, self.policy.timeout_s) if retry else result)
        return 1

    def _receive(self, i: int, w: _Worker, queue: list[tuple[tuple, bool]]) -> int:
        try:
            reply = w.receive()
        except (EOFError, OSError, ValueError):   # the worker died (out of memory, a crash in C code)
            if not w.ready:
                raise RuntimeError("a grader worker died while starting (can math-verify be imported?)") from None
            if w.key is None:
                self._replace(i)
                return 0
            self._record(w.key, ("grader_error", None, "grader worker died while verifying this answer"),
                         cache=False)
            self._replace(i)
            return 1
        if reply == ["ready"]:
            w.ready = True
            return 0
        job_id, outcome, extracted, detail = reply
        if job_id != w.job_id or w.key is None:
            raise RuntimeError(f"grader worker replied to job {job_id}, expected {w.job_id}")
        finished = self._settle(w, (outcome, extracted, detail), queue)
        if outcome == Outcome.GRADER_TIMEOUT.value:   # its timer fired: the worker exits, start a fresh one
            self._replace(i)
        return finished

    def _record(self, key: tuple, result: tuple[str, str | None, str], cache: bool = True) -> None:
        """Keep a result. Timeouts reach here only after their retry, and are cached: the same answer
        would time out again, at full cost."""
        self.stats["timeouts"] += result[0] == Outcome.GRADER_TIMEOUT.value
        self.stats["errors"] += result[0] == Outcome.GRADER_ERROR.value
        self._batch[key] = result
        if not cache:
            return
        if len(self._cache) >= CACHE_MAX:
            for old in list(self._cache)[: CACHE_MAX // 10]:
                del self._cache[old]
        self._cache[key] = result

    def _replace(self, i: int) -> None:
        self._workers[i].stop(kill=True)
        self._workers[i] = _Worker()
        self.stats["restarts"] += 1


class _Progress:
    """A rich progress bar for long batches (imported only when asked for)."""

    def __init__(self, total: int) -> None:
        from rich.progress import Progress

        self._progress = Progress(transient=True)
        self._task = self._progress.add_task("grading", total=total)
        self._progress.start()

    def advance(self, n: int) -> None:
        self._progress.advance(self._task, n)

    def close(self) -> None:
        self._progress.stop()
