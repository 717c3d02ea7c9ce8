"""The grading corpus (tests/grading_corpus/*.yaml) and a small seeded false-positive audit.

Every corpus case is graded in this process with the default strict policy and must get its expected
verdict; no case whose verdict is not `correct` may ever be graded correct. The audit grades a few
hundred sympy-generated (gold, equivalent or near-miss answer) pairs: no near miss may be credited.
"""

from __future__ import annotations

import pytest

from bench.grading_audit import audit_pairs, score_pairs
from bench.grading_corpus import CorpusError, _case, grade_ours, load_corpus
from spsbench.grading import grade
from spsbench.grading.normalize import normalize

VERSION, CASES = load_corpus()


def test_corpus_is_large_and_covers_every_format_and_class():
    assert len(CASES) >= 200
    formats = {c.format for c in CASES}
    assert {"qwen", "r1", "minerva", "bold", "display", "mc"} <= formats
    classes = {c.cls for c in CASES}
    for needed in ("thousands", "fraction", "radical", "upright-constant", "complex", "interval", "set", "tuple",
                   "matrix", "degrees", "percent", "units", "text", "yes-no", "anchored-sentence", "time-of-day",
                   "mixed-number", "plus-minus", "primed-symbol", "option-letter", "cases-gold"):
        assert needed in classes, needed


@pytest.fixture(scope="module")
def ours() -> list[str]:
    return grade_ours(CASES)


def test_every_corpus_case_gets_its_expected_verdict(ours):
    wrong = [f"{c.id}: expected {c.expected}, got {g} ({c.why})" for c, g in zip(CASES, ours, strict=True)
             if g != c.expected]
    assert not wrong, "\n".join(wrong)


def test_no_false_positive_on_the_corpus(ours):
    """Stated apart from the test above so that a failure says which kind of error it is."""
    credited = [c.id for c, g in zip(CASES, ours, strict=True) if g == "correct" and c.expected != "correct"]
    assert not credited


def test_math_verify_default_priority_canary():
    """What docs/grading.md says of math-verify 0.9's own priorities, asserted on math-verify itself: a
    later "final answer is" beats a box, Minerva's "... I hope" beats a later box, a box beats "Answer:"."""
    from math_verify import parse

    def first(text: str) -> str:
        return str(parse(text, parsing_timeout=None)[0])

    assert first(r"So $\boxed{5}$. Wait, let me re-check: the final answer is $6$.") == "6"
    assert first(r"The final answer is $6$. To be safe: $\boxed{5}$.") == "5"
    assert first(r"Final Answer: The final answer is $6$. I hope it is correct. Later: $\boxed{5}$") == "6"
    assert first(r"So $\boxed{5}$. Answer: $6$") == "5"


@pytest.mark.parametrize("case", [c for c in CASES if c.grader == "math"][::7], ids=lambda c: c.id)
def test_normalisation_is_idempotent_on_golds(case):
    once = normalize(case.gold)
    assert normalize(once) == once


def test_gold_normalised_exactly_like_the_answer():
    for gold in (r"$\text{Even}$", r"\text{Even}", r"\boxed{\text{Even}}", r"\(\text{Even}\)"):
        assert grade("The answer is even.", gold).correct, gold
    assert grade(r"\boxed{1000}", r"$1\,000$").correct
    assert grade(r"\boxed{\mathrm{e}^2}", "$e^2$").correct


def test_malformed_corpus_cases_are_refused():
    base = {"id": "x", "class": "c", "format": "f", "gold": "1", "expected": "correct", "why": "w",
            "completion": r"\boxed{1}"}
    with pytest.raises(CorpusError, match="unknown fields"):
        _case(base | {"verdict": "correct"})
    with pytest.raises(CorpusError, match="expected must be"):
        _case(base | {"expected": "right"})
    with pytest.raises(CorpusError, match="why"):
        _case(base | {"why": " "})
    assert _case(base | {"source": "PRM800K grader"}).source == "PRM800K grader"


def test_extra_corpus_files_hold_only_cases(tmp_path):
    (tmp_path / "corpus.yaml").write_text("version: 3\ncases: []\n")
    (tmp_path / "more.yaml").write_text("version: 1\ncases: []\n")
    with pytest.raises(CorpusError, match="only `cases`"):
        load_corpus(tmp_path / "corpus.yaml")
    (tmp_path / "more.yaml").write_text("cases:\n- {id: a, class: c, format: f, gold: '1', expected: correct, "
                                         "why: w, completion: x}\n- {id: a, class: c, format: f, gold: '1', "
                                         "expected: correct, why: w, completion: x}\n")
    with pytest.raises(CorpusError, match="duplicate"):
        load_corpus(tmp_path / "corpus.yaml")


def test_seeded_audit_has_no_false_positive():
    pairs = audit_pairs(200, seed=12)
    assert sum(p.equivalent for p in pairs) > 80 and sum(not p.equivalent for p in pairs) > 80
    score = score_pairs(pairs, grade_ours_in_process=True)
    assert score.false_positives == [], score.false_positives[:5]
    assert score.fn_rate <= 0.01, score.false_negatives[:5]


def test_normalisation_is_linear_time_on_pathological_answers():
    """It runs in the calling process on whatever a model put in a box (measured: ~0.4 s at most here;
    an unbounded repeat in the trailing-unit pattern once took 134 s on `\\,` * 50,000)."""
    import time

    start = time.perf_counter()
    for text in ("\\," * 50_000 + "x", "5" + "\\, " * 30_000 + "\\text{cm}x", "1 " * 50_000, "\\text{a}" * 30_000,
                 "1\\," * 50_000, "{" * 50_000, "\\mathrm{e}" * 20_000):
        normalize(text)
    assert time.perf_counter() - start < 15
