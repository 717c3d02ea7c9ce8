"""The grading contract's value types: Outcome, Grade, GradeRequest, GradingPolicy (no heavy imports)."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from importlib import metadata

from spsbench.errors import GradingError

# The grader registry: name -> "module:function", a `prepare(request, policy) -> core.Prepared` (a final Grade, or a
# math-verify job). Lazy strings: naming a grader imports nothing. A task's `grader:`, `spsbench grade --kind`
# and the trainer's reward all take their names from here; adding a grader is its module plus one line.
GRADERS: dict[str, str] = {
    "math": "spsbench.grading.core:prepare_math",
    "mc": "spsbench.grading.core:prepare_mc",
}
# Bump when extraction, normalisation or timeout rules change: stored outcomes graded under another
# version differ. 2: MC box position from its match; anchors followed only by words are skipped; text
# answers compared as text; a timeout is retried once with a doubled limit. 3: connectives after an
# anchor are skipped ("the answer is therefore 42" -> 42). 4: one normalisation for answer and gold
# (`grading/normalize.py`: upright constants and operators, every thousands-separator form, trailing
# units), and an anchored sentence yields only the math it names (`grading/sentence.py`). 5: the policy as
# named steps (`normalize.STEPS`) with the answer forms of real competitions and models: primes, brace-less
# fraction arguments, mixed numbers, ±, repeating decimals, approximations, remarks, number words, bare
# units, the imaginary unit, degrees inside functions, sized delimiters, word lists, option labels; times
# of day and option letters compared by the gold's kind, a `\begin{cases}` gold a grader_error.
EXTRACTOR_VERSION = 5


class Outcome(StrEnum):
    """A sample's grade; a str, so it compares equal to and serialises as its value ("correct")."""

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

    def __post_init__(self) -> None:
        if not isinstance(self.completion, str):
            raise GradingError(f"completion must be a string, got {type(self.completion).__name__}")
        if not isinstance(self.gold, str):
            object.__setattr__(self, "gold", str(self.gold))       # datasets store AIME answers as ints
        if self.kind not in GRADERS:
            raise GradingError(f"unknown grader kind {self.kind!r} (known: {', '.join(GRADERS)})")
        if self.choices is not None and not isinstance(self.choices, tuple):
            object.__setattr__(self, "choices", tuple(self.choices))


@dataclass(frozen=True)
class GradingPolicy:
    strict: bool = field(default=True, metadata={
        "help": "Anchored answers only (last \\boxed{}, or 'answer is'/'Answer:'); never the last number."})
    timeout_s: float = field(default=5, metadata={
        "help": "Per-sample limit in seconds (fractions allowed); a timed-out answer is retried once with "
                "twice the limit, then it is grader_timeout."})

    def __post_init__(self) -> None:
        if not isinstance(self.strict, bool):
            raise GradingError(f"grading policy: strict must be true or false, got {self.strict!r}")
        ok = isinstance(self.timeout_s, numbers.Real) and not isinstance(self.timeout_s, bool)
        if not ok or not 0 < self.timeout_s <= 3600:
            raise GradingError(f"grading policy: timeout_s must be a number of seconds in (0, 3600], "
                               f"got {self.timeout_s!r}")

    def id(self) -> str:
        """Recorded in the store with every evaluation, e.g. 'math-verify==0.9.0;strict;last-box;t=5;x=2'."""
        mode = "strict" if self.strict else "lenient"
        return f"math-verify=={math_verify_version()};{mode};last-box;t={self.timeout_s:g};x={EXTRACTOR_VERSION}"


@lru_cache(maxsize=1)
def math_verify_version() -> str:
    """Installed math-verify version, read from package metadata (does not import math-verify)."""
    try:
        return metadata.version("math-verify")
    except metadata.PackageNotFoundError:
        return "missing"
