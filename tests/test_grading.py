"""In-process grading: strict extraction, the think rule, every math-verify trap, multiple choice, policy."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from spsbench.errors import GradingError
from spsbench.grading import Grade, GradeRequest, GradingPolicy, Outcome, grade, policy_id, verify
from spsbench.grading.extract import (
    anchored_answer,
    extract_math,
    find_last_box,
    is_prose,
    last_box,
    normalize_answer,
    strip_think,
)
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
    ("answer = 3.5 is what we get", "3.5"),                 # prose after the math ends it (x=4)
    ("Final Answer: The largest $n$ is 34.", "34"),           # a sentence: the math after its copula
    ("Answer: The roots are $1$ and $2$.", "1 and 2"),
    ("Answer: The largest $n$ is not 34.", None),             # names nothing: never parsed as math
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
    words = extract_math("So the answer is not clear yet. " * 30_000)      # every anchor skipped: words only
    assert words.answer is None and words.how == "words"
    assert time.perf_counter() - start < 10.0   # ~0.5 s alone; a quadratic scan would take minutes


def test_box_position_is_the_match_not_a_search_for_its_content():
    text = r"\boxed{1} then \boxed{1} and 1 more"
    assert find_last_box(text) == ("1", text.index(r"\boxed", 1))
    assert find_last_box(r"\boxed{2} then \boxed{}") == ("2", 0)            # echoed empty box skipped
    assert find_last_box("nothing") is None


# --- anchors followed only by words ------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "The answer is not obvious. Let me think again about the residues.",
    "Hmm, the answer is unclear", "The answer is: we need more work.", "Final answer: I don't know",
    "the answer is twelve",                                   # a number in words is not an answer form
])
def test_anchor_followed_only_by_words_is_no_answer(text):
    g = grade(text, "42")
    assert g.outcome is Outcome.NO_ANSWER and g.extracted is None
    assert "only by words" in g.detail


@pytest.mark.parametrize("text, gold", [
    ("The answer is 12 apples", "12"), (r"Answer: $\frac{1}{2}$", "0.5"), ("The answer is x = 3", "3"),
    ("The answer is (B)", "B"), ("The answer is x", "x"), ("The answer is infinity", r"\infty"),
    ("Answer: yes", "yes"), ("Answer: Yes.", r"\text{yes}"), ("The answer is even.", r"\text{even}"),
    ("The answer is no solution", r"\text{No Solution}"),
    # a later sentence with "answer is" + words does not hide the answer: the previous anchor is used
    ("The answer is 42. Let me check that the answer is correct.", "42"),
])
def test_anchored_answers_that_stay_answers(text, gold):
    g = grade(text, gold)
    assert g.outcome is Outcome.CORRECT, g.detail


@pytest.mark.parametrize("text, expected", [
    ("So the answer is therefore 42.", "42"),               # was `therefore 42`, graded incorrect (x=2)
    ("The answer is thus $\\frac{1}{2}$.", "\\frac{1}{2}"),
    ("Answer: simply, 7", "7"),
    ("The final answer is then equal to 3 cm", "3 cm"),
    ("The answer is so(3)", "so(3)"),                        # a connective needs a space after it
    ("The answer is something like 4", None),                # a sentence with no copula names nothing (x=4)
    ("The answer is thus", None),                            # nothing after it: words only, no answer
])
def test_connectives_after_an_anchor_are_skipped(text, expected):
    assert anchored_answer(text) == expected


def test_a_connective_before_the_answer_grades_correct_and_words_stay_words():
    assert outcome("So the answer is therefore 42.", "42") is Outcome.CORRECT
    assert outcome("The answer is thus yes.", "yes") is Outcome.CORRECT
    assert outcome("The answer is therefore not obvious", "42") is Outcome.NO_ANSWER


def test_words_against_a_words_gold_compare_as_text():
    assert outcome("Answer: no", "yes") is Outcome.INCORRECT
    g = grade("Answer: on", "no")                           # math-verify: o*n == n*o (see the canary)
    assert g.outcome is Outcome.INCORRECT and "text answer" in g.detail
    assert outcome(r"\boxed{\text{Even}}", r"\text{even}") is Outcome.CORRECT
    assert outcome("The answer is not obvious", "yes") is Outcome.INCORRECT   # words are answers here


def test_lenient_treats_a_words_only_anchor_as_no_anchor():
    text = "so 12 + 30 = 42. The answer is not obvious"
    assert outcome(text, "42") is Outcome.NO_ANSWER
    assert outcome(text, "42", policy=LENIENT) is Outcome.CORRECT            # math-verify's own fallback


@pytest.mark.parametrize("answer, prose", [
    ("not obvious", True), ("unclear", True), ("we need more work.", True), ("Yes", True),
    (r"\text{even}", True), ("don't know", True), ("**correct**", True),
    ("x", False), ("B", False), ("(B)", False), ("a, b", False), ("12 apples", False), ("x = 3", False),
    (r"\frac12", False), ("infinity", False), ("", False), ("$yes$", False),
])
def test_is_prose(answer, prose):
    assert is_prose(answer) is prose


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
    """The raw math-verify 0.9 behaviours the grader works around, asserted on math-verify itself (no
    spsbench code in the calls), so an upgrade that changes one fails here loudly, not in the scores."""

    TOWER = r"$9^{9^{9^{9}}}$"

    def test_its_timeouts_refuse_to_run_off_the_main_thread(self):
        from math_verify import parse

        out: dict = {}

        def in_thread():
            try:
                out["timed"] = parse("$1$", parsing_timeout=1)
            except ValueError as exc:
                out["error"] = str(exc)
            out["untimed"] = parse("$1$", parsing_timeout=None)    # without a timeout it works
        thread = threading.Thread(target=in_thread)
        thread.start()
        thread.join(30)
        assert "timed" not in out and "threaded environment" in out["error"]
        assert str(out["untimed"][0]) == "1"

    def test_its_timeouts_take_whole_seconds_only(self):
        from math_verify import parse

        assert parse("$1$", parsing_timeout=0.5) == []              # silently nothing: signal.alarm(0.5) raised
        with pytest.raises(TypeError):
            parse("$1$", parsing_timeout=0.5, raise_on_error=True)

    def test_a_timeout_is_a_silent_wrong_unless_raise_on_error(self):
        from math_verify import parse
        from math_verify import verify as mv_verify
        from math_verify.errors import TimeoutException

        verify.warm_up()             # sympy's lazy imports done first: an interrupted import would break it
        gold, tower = parse("$33$"), parse(self.TOWER, parsing_timeout=None)
        start = time.perf_counter()
        assert mv_verify(gold, tower, timeout_seconds=1) is False
        assert time.perf_counter() - start >= 0.9                  # it was the timeout, not a quick "no"
        with pytest.raises(TimeoutException):
            mv_verify(gold, tower, timeout_seconds=1, raise_on_error=True)

    def test_gold_needs_dollars(self):
        from math_verify import parse

        assert parse(r"\sqrt{2}") == [] and str(parse(r"$\sqrt{2}$")[0]) == "sqrt(2)"
        assert str(parse("(3, 4)")[0]) == "4" and str(parse("$(3, 4)$")[0]) == "Interval.open(3, 4)"

    def test_without_anchors_it_takes_the_last_number(self):
        from math_verify import parse

        assert str(parse("we try 12, then 30, and it is 41 apples")[0]) == "41"

    def test_close_boxes_are_merged(self):
        from math_verify import parse

        assert str(parse(r"Either \boxed{2} or \boxed{3}")[0]) == "{2, 3}"

    def test_thin_space_thousands_is_misparsed(self):
        from math_verify import parse

        assert str(parse(r"$1\,000$")[0]) == "1*0"

    def test_words_are_products_of_letters(self):
        """Why text answers are compared as text, and why words after "answer is" are not an answer."""
        from math_verify import parse
        from math_verify import verify as mv_verify

        assert str(parse("$yes$")[0]) == "E*s*y"
        assert mv_verify(parse("$no$"), parse("$on$")) is True        # anagrams are "equal"
        assert str(parse("$infinity$")[0]) == "oo"                     # the exception we keep as math


# --- errors, timeouts, policy ----------------------------------------------------------------------

def test_unparsable_gold_is_a_grader_error():
    g = grade(r"\boxed{3}", "")
    assert g.outcome is Outcome.GRADER_ERROR and "gold" in g.detail


TOWER = r"\boxed{9^{9^{9^{9}}}}"


@pytest.fixture
def timer_unfired(monkeypatch):
    """Our timer firing marks this process as no longer trusted for in-process verification (see
    verify.py); monkeypatch puts the flag back afterwards so later tests still verify in-process."""
    verify.warm_up()
    monkeypatch.setattr(verify, "_interrupted", False)


def test_the_soft_timer_honours_half_a_second(timer_unfired):
    start = time.perf_counter()
    result = verify.run_job(("math", "9^{9^{9^{9}}}", "33"), 0.5)
    elapsed = time.perf_counter() - start
    assert result[0] == "grader_timeout" and "0.5 s" in result[2]
    assert 0.45 <= elapsed < 0.95, f"a 0.5 s limit took {elapsed:.2f} s"    # rounded to 1 s would fail
    assert not verify.soft_limit_available()                                   # and the process is marked


def test_in_process_timeout_then_retry_in_a_worker(timer_unfired):
    start = time.perf_counter()
    g = grade(TOWER, "33", policy=GradingPolicy(timeout_s=1))
    elapsed = time.perf_counter() - start
    assert g.outcome is Outcome.GRADER_TIMEOUT
    assert g.extracted == "9^{9^{9^{9}}}"
    assert "within 2 s" in g.detail and "first timed out at 1 s" in g.detail
    # 1 s here, a worker start (~1-3 s on a loaded 2-core box), 2 s for the retry: never unbounded
    assert elapsed < 1 + 2 + 8, f"took {elapsed:.1f} s"
    assert grade(r"\boxed{2}", "2", policy=GradingPolicy(timeout_s=1)).correct    # now via the worker


def test_grade_off_the_main_thread_is_still_time_limited():
    out: dict = {}

    def in_thread():
        out["available"] = verify.soft_limit_available()
        with pytest.raises(RuntimeError, match="no soft time limit"):
            with verify.soft_limit(1):                                # never a silent run without a limit
                pass
        start = time.perf_counter()
        out["tower"] = grade(TOWER, "33", policy=GradingPolicy(timeout_s=0.5))
        out["elapsed"] = time.perf_counter() - start
        out["plain"] = grade(r"\boxed{1\,000}", "1000", policy=GradingPolicy(timeout_s=0.5))
    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(60)
    assert out["available"] is False
    assert out["tower"].outcome is Outcome.GRADER_TIMEOUT and "first timed out at 0.5 s" in out["tower"].detail
    assert out["elapsed"] < 0.5 + 1 + 10, f"took {out['elapsed']:.1f} s"    # two worker starts + 1.5 s
    assert out["plain"].correct


def test_grade_leaves_the_callers_interval_timer_alone():
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(1))
    signal.setitimer(signal.ITIMER_REAL, 60)
    try:
        assert not verify.soft_limit_available()
        assert grade(r"\boxed{3}", "3").correct                      # verified in a worker instead
        remaining = signal.getitimer(signal.ITIMER_REAL)[0]
        assert 0 < remaining <= 60 and remaining > 30 and not fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_policy_id_and_validation():
    assert GradingPolicy().id() == "math-verify==0.9.0;strict;last-box;t=5;x=5"
    assert GradingPolicy(timeout_s=0.5).id().endswith(";t=0.5;x=5")
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


@pytest.mark.parametrize("text, letter", [
    (r"\boxed{C} hmm wait. Answer: D. Correct?", "D"),          # box, then a later anchor (and a later "C")
    ("\\boxed{A} wait. Answer: D\nAll done.", "D"),
    (r"Answer: D. Hmm, no: \boxed{C}. Checked it twice.", "C"),  # anchor, then a later box
    ("The answer is B.\n\\boxed{A}\nAnd that is final.", "A"),
    (r"\boxed{\text{B}} ... but the answer is C. Because B fails.", "C"),
    ("\\boxed{B}\nOn reflection:\n(C)\n\n  ", "C"),           # final letter line after a box (trailing blanks)
    ("(C)\nAnswer: B", "B"),
])
def test_mc_last_anchored_form_wins_by_position(text, letter):
    assert extract_letter(text, CHOICES4) == letter


def test_mc_lenient_bare_option_competes_by_position():
    text = r"\boxed{C}, though (A) is tempting"
    assert extract_letter(text, CHOICES4) == "C"
    assert extract_letter(text, CHOICES4, strict=False) == "A"
    assert extract_letter(r"(A) is tempting, but \boxed{C}", CHOICES4, strict=False) == "C"


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
