"""Grading: one grader for evaluation and for the RL reward. Pure Python, no torch/vLLM import.

CONTRACT (owned by the grading work; other modules rely on these names):
  Outcome, Grade, GradeRequest, GradingPolicy, grade(), GraderPool, reward(), GRADERS, policy_id().
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Sequence


class Outcome(str, Enum):
    CORRECT = "correct"
    INCORRECT = "incorrect"
    NO_ANSWER = "no_answer"
    GRADER_TIMEOUT = "grader_timeout"
    GRADER_ERROR = "grader_error"


@dataclass(frozen=True)
class Grade:
    outcome: Outcome
    extracted: str | None      # the answer we pulled out (None when no_answer)
    detail: str = ""           # why, for `spsbench grade` and debugging

    @property
    def correct(self) -> bool:
        return self.outcome is Outcome.CORRECT


@dataclass(frozen=True)
class GradeRequest:
    completion: str
    gold: str
    kind: str = "math"                         # "math" | "mc"
    choices: tuple[str, ...] | None = None     # mc only: options, letter set = A.. by count


@dataclass(frozen=True)
class GradingPolicy:
    strict: bool = True          # anchored answers only (boxed / "answer is"), never "last number"
    timeout_s: int = 5           # per-sample hard limit (whole seconds: math-verify uses SIGALRM)

    def id(self) -> str:
        """Recorded in the store with every evaluation, e.g. 'math-verify==0.9.0;strict;last-box;t=5'."""
        raise NotImplementedError


GRADERS = ("math", "mc")


def grade(completion: str, gold: str, kind: str = "math", choices: Sequence[str] | None = None,
          policy: GradingPolicy | None = None) -> Grade:
    """Grade one completion in this process (main thread). For many, use GraderPool."""
    raise NotImplementedError


class GraderPool:
    """Worker processes with a hard watchdog and an (extracted, gold) cache. Context manager.

    pool.grade_many(requests: Sequence[GradeRequest]) -> list[Grade]   (same order)
    pool.stats -> dict(graded=, cache_hits=, timeouts=, restarts=)
    """

    def __init__(self, workers: int = 2, policy: GradingPolicy | None = None) -> None:
        raise NotImplementedError


def reward(completions: Sequence[str], golds: Sequence[str], kind: str = "math",
           choices: Sequence[Sequence[str] | None] | None = None) -> list[float]:
    """RL reward: 1.0 for correct, else 0.0, via the same grader (used by the trainer)."""
    raise NotImplementedError
