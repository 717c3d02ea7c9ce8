"""One sample's grading pipeline, shared by in-process `grade()` and GraderPool.

prepare() does everything that needs no math-verify (think rule, extraction, normalisation, text
answers, the whole multiple-choice grade) and yields either a final Grade or a verification job whose
tuple is the cache key; finish() turns the verifier's result into a Grade. The timeout retry rule
(`RETRY_FACTOR`) lives here too, so the pool and in-process grading apply the same one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from spsbench.grading.extract import extract_math, is_prose, same_words, strip_think
from spsbench.grading.kinds import kind_verdict, unanswerable_gold
from spsbench.grading.mc import grade_mc
from spsbench.grading.normalize import normalize
from spsbench.grading.sentence import after_last_copula
from spsbench.grading.types import GRADERS, Grade, GradeRequest, GradingPolicy, Outcome
from spsbench.grading.verify import Job, Result

# A timed-out answer is verified once more with this many times the limit; only that second timeout is
# final (and cached). One timeout can be machine load; two at a doubled limit are the answer itself.
RETRY_FACTOR = 2

_NO_ANCHOR = ("no \\boxed{} answer and no 'answer is' / 'Answer:' anchor followed by an answer "
              "(strict mode; a sentence after an anchor counts only for the math after its 'is')")
_WORDS_ONLY = ("'answer is' / 'Answer:' followed only by words ({!r}), not by an answer (strict mode; "
               "words count as answers only when the gold is words)")
_OPEN_THINK = "unclosed <think> block: the model never gave a final answer"


@dataclass(frozen=True)
class Prepared:
    grade: Grade | None          # final grade when no verification is needed
    key: Job | None = None       # verification job (mode, answer, gold): also the cache key
    extracted: str | None = None  # the answer as written in the completion (shown to users)
    how: str = ""                # where it came from: box | anchor | lenient


def prepare(request: GradeRequest, policy: GradingPolicy) -> Prepared:
    """Extraction never raises: an unexpected failure grades this one sample grader_error."""
    try:
        return _prepare(request, policy)
    except Exception as exc:  # noqa: BLE001 - one odd completion must not stop an evaluation or a run
        return Prepared(Grade(Outcome.GRADER_ERROR, None, f"extraction failed: {type(exc).__name__}: {exc}"))


def _prepare(request: GradeRequest, policy: GradingPolicy) -> Prepared:
    return grader(request.kind)(request, policy)


def grader(kind: str) -> Callable[[GradeRequest, GradingPolicy], Prepared]:
    """The registered `prepare` function of grader `kind` (types.GRADERS, read at each call: a grader
    registered later is found too)."""
    return _load(GRADERS[kind])


@lru_cache(maxsize=64)
def _load(target: str) -> Callable[[GradeRequest, GradingPolicy], Prepared]:
    """`module:function` resolved once: grading calls this for every sample."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def prepare_mc(request: GradeRequest, policy: GradingPolicy) -> Prepared:
    """Multiple choice: the letter grade is final (no math-verify job)."""
    return Prepared(grade_mc(request.completion, request.gold, request.choices, policy.strict))


def prepare_math(request: GradeRequest, policy: GradingPolicy) -> Prepared:
    """Math: extraction and normalisation here; a final Grade when no verification is needed, else a job."""
    if (why := unanswerable_gold(request.gold)) is not None:
        return Prepared(Grade(Outcome.GRADER_ERROR, None, why))
    gold = _normalized_gold(request.gold)      # the gold goes through exactly the answer's normalisation
    text_gold = is_prose(gold)                 # a text-answer question (`yes`, `\text{even}`, a name)
    found = extract_math(request.completion, words_are_answers=text_gold)
    if found.answer is not None:
        if (verdict := kind_verdict(found.answer, request.gold)) is not None:
            ok, why = verdict
            return Prepared(Grade(Outcome.CORRECT if ok else Outcome.INCORRECT, found.answer, f"{found.how}: {why}"))
        if text_gold and is_prose(found.answer):
            return Prepared(_text_grade(found.answer, gold, found.how))
        return Prepared(None, ("math", normalize(found.answer), gold), found.answer, found.how)
    if found.how == "think":
        return Prepared(Grade(Outcome.NO_ANSWER, None, _OPEN_THINK))
    if not policy.strict:
        return Prepared(None, ("lenient", strip_think(request.completion) or "", gold), None, "lenient")
    if found.how == "words":
        return Prepared(Grade(Outcome.NO_ANSWER, None, _WORDS_ONLY.format(found.skipped)))
    return Prepared(Grade(Outcome.NO_ANSWER, None, _NO_ANCHOR))


@lru_cache(maxsize=4096)
def _normalized_gold(gold: str) -> str:
    """Golds repeat for every sample of a problem: normalise each once per process."""
    return normalize(gold)


def _text_grade(answer: str, gold: str, how: str) -> Grade:
    """Words against a words gold, compared as text: math-verify reads words as products of one-letter
    symbols, so it would call anagrams equal (`no` = `on`)."""
    ok = same_words(answer, gold) or same_words(after_last_copula(answer), gold)   # "The number is even."
    return Grade(Outcome.CORRECT if ok else Outcome.INCORRECT, answer,
                 f"{how}: text answer {'equals' if ok else 'differs from'} the gold (case and \\text{{}} ignored)")


def finish(prepared: Prepared, result: Result) -> Grade:
    outcome, extracted, detail = result
    shown = prepared.extracted if prepared.extracted is not None else extracted
    return Grade(Outcome(outcome), shown, f"{prepared.how}: {detail}")


def is_timeout(result: Result) -> bool:
    return result[0] == Outcome.GRADER_TIMEOUT.value


def after_retry(result: Result, first_limit: float) -> Result:
    """The second attempt's result, its detail noting that the first one timed out."""
    outcome, extracted, detail = result
    return outcome, extracted, f"{detail} (second attempt: the first timed out at {first_limit:g} s)"

