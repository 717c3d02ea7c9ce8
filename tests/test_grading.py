"""In-process grading: strict extraction, the think rule, every math-verify trap, multiple choice, policy."""

from __future__ import annotations

import time

import pytest

from spsbench.errors import GradingError
from spsbench.grading import Grade, GradeRequest, GradingPolicy, Outcome, grade, policy_id
from spsbench.grading.extract import anchored_answer, extract_math, last_box, normalize_answer, strip_think
from spsbench.grading.mc import extract_letter

LENIENT = GradingPolicy(strict=False)


def outcome(completion: str, gold: str, **kw) -> Outcome:
    return grade(completion, gold, **kw).outcome


# --- extraction --------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    (r"so \boxed{42}.", "42"),
    (r"\boxed{\frac{1}{\sqrt{2}}}", r"\frac{1}{\sqrt{2}}"),            # nested braces
    (r"\boxed{1} then \boxed{2}", "2"),                                  # last box wins
    (r"\boxed{\boxed{7}}", "7"),
    (r"\fbox{7}", "7"),
    (r"$\boxed 7$", "7"),                                                # brace-less box
    (r"\boxed{12} and later \boxed{1", "12"),                           # unclosed (truncated) box skipped
    (r"put it in \boxed{} ... \boxed{5} ... \boxed{}", "5"),            # echoed empty boxes skipped
    (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),                                  # literal braces are not groups
    ("no box here", None),
])
def test_last_box(text, expected):
    assert last_box(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("The answer is 33.", "33"),
    ("The final answer is $\\frac{1}{2}$. Done", "\\frac{1}{2}"),
    ("**Answer:** 33", "33"),
    ("ANSWER: 1,000", "1,000"),
    ("Final Answer:\n\n17", "17"),
    ("answer = 3.5 is what we get", "3.5 is what we get"),
    ("The answer is 5 cm. That is all.", "5 cm"),
    ("I computed 33", None),
])
def test_anchored_answer(text, expected):
    assert anchored_answer(text) == expected


def test_think_rule():
    assert strip_think("<think>reasoning \\boxed{3}") is None                 # still thinking
    assert strip_think("<think>a</think> final") == " final"
    assert strip_think("reasoning</think>\\boxed{4}") == "\\boxed{4}"        # template opened <think>
    assert strip_think("<think>a</think> b <think> c") is None                # a second open block
    assert extract_math("<think>\\boxed{3}").how == "think"


def test_extraction_is_linear_on_huge_inputs():
    text = "\\boxed{" * 20_000 + "{" * 50_000
    start = time.perf_counter()
    assert last_box(text) is None
    assert extract_math("x" * 1_000_000).answer is None
    assert time.perf_counter() - start < 2.0


# --- strict policy -----------------------------------------------------------------------------------

def test_strict_never_takes_the_last_number():
    text = "Let me compute: 12 + 30 = 42. So it is 42"
    assert outcome(text, "42") is Outcome.NO_ANSWER
    assert outcome(text, "42", policy=LENIENT) is Outcome.CORRECT     # lenient falls back to math-verify


def test_lenient_prefers_anchors_and_reports_what_math_verify_found():
    assert grade("\\boxed{7} and then 8", "7", policy=LENIENT).correct
    g = grade("so 12 + 30 = 41", "41", policy=LENIENT)
    assert g.correct and g.extracted is not None and "lenient" in g.detail
    assert outcome("nothing numeric", "41", policy=LENIENT) is Outcome.NO_ANSWER


def test_think_block_outcomes():
    assert outcome("<think>so \\boxed{3}", "3") is Outcome.NO_ANSWER
    assert outcome("<think>\\boxed{1}</think> The answer is \\boxed{2}", "2") is Outcome.CORRECT
    assert outcome("<think>\\boxed{1}</think> The answer is \\boxed{2}", "1") is Outcome.INCORRECT
    assert outcome("<think>\\boxed{1}</think> I am unsure.", "1") is Outcome.NO_ANSWER


def test_close_boxes_last_wins_not_a_set():
    text = r"Either \boxed{2} or \boxed{3}"
    assert outcome(text, "3") is Outcome.CORRECT
    assert outcome(text, "2") is Outcome.INCORRECT


def test_gold_is_parsed_as_latex():
    assert outcome(r"\boxed{0.5}", r"\frac{1}{2}") is Outcome.CORRECT
    assert outcome(r"\boxed{\frac{\sqrt{2}}{2}}", r"\frac{1}{\sqrt{2}}") is Outcome.CORRECT
    assert outcome(r"\boxed{(3, \frac{\pi}{2})}", r"\left( 3, \frac{\pi}{2} \right)") is Outcome.CORRECT
    assert outcome(r"\boxed{1000}", r"1\,000") is Outcome.CORRECT                   # gold normalised too


# --- every measured math-verify trap --------------------------------------------------------------

@pytest.mark.parametrize("answer, gold", [
    (r"1\,000", "1000"), (r"1{,}000", "1000"), ("1,000", "1000"), (r"1\,000\,000", "1000000"),
    ("33.", "33"), ("033", "33"), ("33.0", "33"),
    (r"\dfrac{1}{2}", r"\frac{1}{2}"), (r"\tfrac12", r"\frac{1}{2}"),
    (r"5\text{ cm}", "5"), (r"5 \mbox{cm}", "5"),
    (r"30^\circ", "30"), (r"30^{\circ}", "30"), ("30°", "30"),
    (r"50\%", "50"), (r"\$5", "5"), (r"$\frac{1}{2}$", "0.5"),
])
def test_trap_is_graded_correct(answer, gold):
    g = grade(f"Thus \\boxed{{{answer}}}", gold)
    assert g.outcome is Outcome.CORRECT, g.detail
    assert g.extracted == answer


@pytest.mark.parametrize("answer, gold", [(r"1\,001", "1000"), ("34.", "33"), ("30^\\circ", "31"), ("1", "1000")])
def test_near_misses_stay_incorrect(answer, gold):
    assert outcome(f"\\boxed{{{answer}}}", gold) is Outcome.INCORRECT


def test_normalize_answer():
    assert normalize_answer(r"1\,234\,567") == "1234567"
    assert normalize_answer(r"$\dfrac{3}{4}$") == r"\frac{3}{4}"
    assert normalize_answer(r"45^{\circ}.") == "45"
    assert normalize_answer(r"3.14") == "3.14"          # a decimal point is not a sentence period


class TestMathVerifyCanary:
    """The raw math-verify behaviours our normalisation exists for (fails if an upgrade changes them)."""

    def test_thin_space_thousands_is_misparsed(self):
        from math_verify import parse

        assert str(parse(r"$1\,000$")[0]) == "1*0"

    def test_close_boxes_are_merged(self):
        from math_verify import parse

        assert str(parse(r"Either \boxed{2} or \boxed{3}")[0]) == "{2, 3}"


# --- errors, timeouts, policy ----------------------------------------------------------------------

def test_unparsable_gold_is_a_grader_error():
    g = grade(r"\boxed{3}", "")
    assert g.outcome is Outcome.GRADER_ERROR and "gold" in g.detail


def test_in_process_soft_timeout_on_a_pathological_answer():
    start = time.perf_counter()
    g = grade(r"\boxed{9^{9^{9^{9}}}}", "33", policy=GradingPolicy(timeout_s=1))
    assert g.outcome is Outcome.GRADER_TIMEOUT
    assert g.extracted == "9^{9^{9^{9}}}"
    assert time.perf_counter() - start < 5


def test_policy_id_and_validation():
    assert GradingPolicy().id().startswith("math-verify==0.9.0;strict;last-box;t=5")
    assert ";lenient;" in GradingPolicy(strict=False, timeout_s=2).id()
    assert policy_id() == GradingPolicy().id()
    for bad in ({"timeout_s": 0}, {"timeout_s": "5"}, {"strict": "yes"}, {"timeout_s": True}):
        with pytest.raises(GradingError):
            GradingPolicy(**bad)
    with pytest.raises(GradingError, match="unknown grader"):
        GradeRequest("x", "1", kind="code")


def test_grade_is_a_frozen_value():
    g = grade(r"\boxed{2}", "2")
    assert isinstance(g, Grade) and g.correct and g.outcome == "correct"


# --- multiple choice -------------------------------------------------------------------------------

CHOICES4 = ("12", "15", "18", "21")


@pytest.mark.parametrize("text", [
    r"so \boxed{C}", r"\boxed{\text{C}}", r"\boxed{(C)}", r"\boxed{C) 18}", "Answer: C", "ANSWER: C",
    "Answer: (C)", "**Answer:** C", "The answer is C.", "The correct answer is **(C)**",
    "the answer is option C", "Reasoning...\n(C)", "Reasoning...\n**C**", r"\boxed{18}",
    "Answer: A\nWait, that is wrong.\nThe answer is C",
])
def test_mc_letter_forms(text):
    assert extract_letter(text, CHOICES4) == "C"
    assert grade(text, "C", kind="mc", choices=CHOICES4).correct


@pytest.mark.parametrize("text", [
    "Option (C) looks right but I am not sure about it.", "the answer is a mystery", "Answer: E",
    "<think>Answer: C", "I choose C because",
])
def test_mc_strict_refuses_unanchored(text):
    assert grade(text, "C", kind="mc", choices=CHOICES4).outcome is Outcome.NO_ANSWER


def test_mc_letter_set_comes_from_the_choices():
    five = CHOICES4 + ("24",)
    assert extract_letter("Answer: E", five) == "E"
    assert extract_letter("Answer: E", CHOICES4) is None
    assert extract_letter("Answer: E") is None                       # unknown choices: A..D


def test_mc_lenient_takes_the_last_bare_option():
    text = "Option (C) looks right but I am not sure about it."
    assert extract_letter(text, CHOICES4, strict=False) == "C"
    assert grade(text, "C", kind="mc", choices=CHOICES4, policy=LENIENT).correct


def test_mc_outcomes_and_gold_forms():
    assert grade("Answer: B", "C", kind="mc", choices=CHOICES4).outcome is Outcome.INCORRECT
    assert grade("Answer: C", "18", kind="mc", choices=CHOICES4).correct     # gold given as option text
    assert grade("Answer: C", "(c)", kind="mc", choices=CHOICES4).correct
    bad = grade("Answer: C", "Z", kind="mc", choices=CHOICES4)
    assert bad.outcome is Outcome.GRADER_ERROR and "gold" in bad.detail
