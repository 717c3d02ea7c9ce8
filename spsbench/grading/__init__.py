"""Grading: one grader for evaluation and for the RL reward. Pure Python, no torch/vLLM import.

CONTRACT (owned by the grading work; other modules rely on these names):
  Outcome, Grade, GradeRequest, GradingPolicy, grade(), GraderPool, reward(), GRADERS, policy_id().

Modules: `types` (value types), `extract` (think rule, last box, anchors, normalisation), `mc` (letter
extractor), `verify` (math-verify calls, run in workers), `pool` (worker processes, watchdog, cache),
`core` (the per-sample pipeline). The policy is documented in docs/grading.md.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Sequence

from spsbench.grading.pool import GraderPool
from spsbench.grading.types import GRADERS, Grade, GradeRequest, GradingPolicy, Outcome

__all__ = ["GRADERS", "Grade", "GradeRequest", "GraderPool", "GradingPolicy", "Outcome", "grade", "policy_id",
           "reward"]


def policy_id(policy: GradingPolicy | None = None) -> str:
    """The string stored with every evaluation, e.g. 'math-verify==0.9.0;strict;last-box;t=5;x=1'."""
    return (policy or GradingPolicy()).id()


def grade(completion: str, gold: str, kind: str = "math", choices: Sequence[str] | None = None,
          policy: GradingPolicy | None = None) -> Grade:
    """Grade one completion in this process. For many, or for untrusted output, use GraderPool.

    The soft time limit works only in the main thread, and nothing in-process can stop work stuck in C
    code (e.g. `\\boxed{9^{9^{9^{9}}}}`): GraderPool's watchdog can.
    """
    from spsbench.grading.core import finish, prepare
    from spsbench.grading.verify import run_job

    policy = policy or GradingPolicy()
    request = GradeRequest(completion, gold, kind, tuple(choices) if choices is not None else None)
    prepared = prepare(request, policy)
    if prepared.key is None:
        return prepared.grade
    return finish(prepared, run_job(prepared.key, policy.timeout_s))


_reward_pool: GraderPool | None = None
_reward_pid = 0
_reward_lock = threading.Lock()


def _shared_pool() -> GraderPool:
    """The reward's pool: created on first call, one per process (a forked child makes its own)."""
    global _reward_pool, _reward_pid
    if _reward_pool is None or _reward_pid != os.getpid():
        _reward_pool = GraderPool(workers=max(1, min(2, os.cpu_count() or 1)))
        _reward_pid = os.getpid()
        atexit.register(_reward_pool.close)
    return _reward_pool


def reward(completions: Sequence[str], golds: Sequence[str], kind: str = "math",
           choices: Sequence[Sequence[str] | None] | None = None) -> list[float]:
    """RL reward: 1.0 for correct, else 0.0, via the same grader and policy as evaluation."""
    if len(completions) != len(golds):
        raise ValueError(f"reward: {len(completions)} completions but {len(golds)} gold answers")
    if choices is not None and len(choices) != len(completions):
        raise ValueError(f"reward: {len(choices)} choice lists for {len(completions)} completions")
    options = [None if choices is None or choices[i] is None else tuple(choices[i]) for i in range(len(golds))]
    requests = [GradeRequest(str(c), str(g), kind, opts or None)
                for c, g, opts in zip(completions, golds, options, strict=True)]
    with _reward_lock:              # the pool is not thread-safe; trainers may call from several threads
        grades = _shared_pool().grade_many(requests)
    return [1.0 if g.correct else 0.0 for g in grades]
