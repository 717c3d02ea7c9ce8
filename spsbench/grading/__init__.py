"""Grading: one grader for evaluation and for the RL reward. Pure Python, no torch/vLLM import.

Public names: Outcome, Grade, GradeRequest, GradingPolicy, grade(), GraderPool, shared_pool(), reward(),
GRADERS, policy_id().

Modules: `types` (value types), `extract` (think rule, last box, anchors), `sentence` (the math an
anchored sentence names), `normalize` (the one normalisation of answers and golds: the policy's ordered
steps, the later ones in `notation`, `trailing`, `lists`), `kinds` (answers compared by the kind of their
gold: times of day, option letters; golds that are no answer form), `mc` (letter
extractor), `verify` (math-verify calls, run in workers), `pool` (worker processes, watchdog, cache),
`shared` (the pools a process keeps warm), `core` (the per-sample pipeline). The policy is documented in docs/grading.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from spsbench.grading.core import finish, is_timeout, prepare
from spsbench.grading.pool import GraderPool
from spsbench.grading.shared import shared_pool
from spsbench.grading.types import GRADERS, Grade, GradeRequest, GradingPolicy, Outcome
from spsbench.grading.verify import run_job, soft_limit_available

_log = logging.getLogger(__name__)

__all__ = ["GRADERS", "Grade", "GradeRequest", "GraderPool", "GradingPolicy", "Outcome", "grade", "policy_id",
           "reward", "shared_pool"]


def policy_id(policy: GradingPolicy | None = None) -> str:
    """The string stored with every evaluation, e.g. 'math-verify==0.9.0;strict;last-box;t=5;x=2'."""
    return (policy or GradingPolicy()).id()


def grade(completion: str, gold: str, kind: str = "math", choices: Sequence[str] | None = None,
          policy: GradingPolicy | None = None) -> Grade:
    """Grade one completion, in this process when it can be time-limited here. For many, use GraderPool.

    The soft time limit is a signal, so it works only in the main thread, while the caller has no
    interval timer of its own running, and until it has fired once in this process (an interrupted
    sympy may be half-initialised). Otherwise, and for the retry of a timed-out answer, the answer goes
    to a shared worker pool for this policy (started on first use, ~2 s), which has the hard watchdog.
    """

    policy = policy or GradingPolicy()
    request = GradeRequest(completion, gold, kind, tuple(choices) if choices is not None else None)
    prepared = prepare(request, policy)
    if prepared.key is None:
        return prepared.grade
    if soft_limit_available():
        result = run_job(prepared.key, policy.timeout_s)
        if not is_timeout(result):
            return finish(prepared, result)
        with shared_pool(policy) as pool:       # the retry, in a process whose timer has not fired
            return pool._grade_after_timeout(request)
    _log.debug("grade(): no soft time limit possible here; verifying in a grader worker process")
    with shared_pool(policy) as pool:
        return pool.grade(request)


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
    with shared_pool() as pool:
        grades = pool.grade_many(requests)
    return [1.0 if g.correct else 0.0 for g in grades]
