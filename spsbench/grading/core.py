"""One sample's grading pipeline, shared by in-process `grade()` and GraderPool.

prepare() does everything that needs no math-verify (think rule, extraction, normalisation, the whole
multiple-choice grade) and yields either a final Grade or a verification job whose tuple is the cache
key; finish() turns the verifier's result into a Grade.
"""

from __future__ import annotations

from dataclasses import dataclass

from spsbench.grading.extract import extract_math, normalize_answer, strip_think
from spsbench.grading.mc import grade_mc
from spsbench.grading.types import Grade, GradeRequest, GradingPolicy, Outcome

_NO_ANCHOR = "no \\boxed{} answer and no 'answer is' / 'Answer:' anchor (strict mode)"
_OPEN_THINK = "unclosed <think> block: the model never gave a final answer"


@dataclass(frozen=True)
class Prepared:
    grade: Grade | None          # final grade when no verification is needed
    key: tuple | None = None     # verification job (mode, answer, gold): also the cache key
    extracted: str | None = None  # the answer as written in the completion (shown to users)
    how: str = ""                # where it came from: box | anchor | lenient


def prepare(request: GradeRequest, policy: GradingPolicy) -> Prepared:
    """Extraction never raises: an unexpected failure grades this one sample grader_error."""
    try:
        return _prepare(request, policy)
    except Exception as exc:  # noqa: BLE001 - one odd completion must not stop an evaluation or a run
        return Prepared(Grade(Outcome.GRADER_ERROR, None, f"extraction failed: {type(exc).__name__}: {exc}"))


def _prepare(request: GradeRequest, policy: GradingPolicy) -> Prepared:
    if request.kind == "mc":
        return Prepared(grade_mc(request.completion, request.gold, request.choices, policy.strict))
    found = extract_math(request.completion)
    if found.answer is not None:
        return Prepared(None, ("math", normalize_answer(found.answer), request.gold), found.answer, found.how)
    if found.how == "think":
        return Prepared(Grade(Outcome.NO_ANSWER, None, _OPEN_THINK))
    if not policy.strict:
        return Prepared(None, ("lenient", strip_think(request.completion) or "", request.gold), None, "lenient")
    return Prepared(Grade(Outcome.NO_ANSWER, None, _NO_ANCHOR))


def finish(prepared: Prepared, result: tuple[str, str | None, str]) -> Grade:
    outcome, extracted, detail = result
    shown = prepared.extracted if prepared.extracted is not None else extracted
    return Grade(Outcome(outcome), shown, f"{prepared.how}: {detail}")
