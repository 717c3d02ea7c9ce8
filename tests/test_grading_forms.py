"""The normalisation policy's steps (grading/normalize.py STEPS, notation.py, trailing.py, lists.py) and the
answer kinds compared by the gold (kinds.py): what each step writes, that the order matters where the
policy says it does, that every step is a no-op on its own output, and that each runs in linear time."""

from __future__ import annotations

import time

import pytest

from bench.grading_corpus import load_corpus
from spsbench.grading import grade
from spsbench.grading.kinds import kind_verdict, option_letter, time_of_day, unanswerable_gold
from spsbench.grading.normalize import STEPS, Step, normalize

STEP = {s.name: s.apply for s in STEPS}


@pytest.mark.parametrize("name, before, after", [
    ("layout", r"\Big(\frac12, 3\Big)", r"(\frac12, 3)"),
    ("layout", r"\bigl[0, 1\bigr)", "[0, 1)"),
    ("layout", r"\bigcup_i A_i", r"\bigcup_i A_i"),                      # not a size command
    ("option-label", "C. x = 7", "x = 7"),
    ("option-label", r"\textbf{(B) } 12", "12"),
    ("option-label", r"(E)\ 2\sqrt{2}", r"2\sqrt{2}"),
    ("option-label", "A. Smith", "A. Smith"),                              # a name, not a labelled value
    ("option-label", "(C)", "(C)"),                                        # a lone letter: kinds.py
    ("fractions", r"\frac3\pi", r"\frac{3}{\pi}"),
    ("fractions", r"\dfrac\pi3", r"\frac{\pi}{3}"),
    ("fractions", r"\frac 1 2", r"\frac{1}{2}"),
    ("fractions", r"\frac{\sqrt3}2", r"\frac{\sqrt3}{2}"),
    ("fractions", r"\frac{\frac12}3", r"\frac{\frac{1}{2}}{3}"),          # nested, both braced
    ("repeating-decimals", r"0.\overline{6}", r"{\frac{2}{3}}"),
    ("repeating-decimals", r"0.1\overline{6}", r"{\frac{1}{6}}"),
    ("repeating-decimals", r"1.\overline{27}", r"{\frac{14}{11}}"),
    ("repeating-decimals", r".\bar{3}", r"{\frac{1}{3}}"),
    ("repeating-decimals", r"0.\dot{1}4285\dot{7}", r"{\frac{1}{7}}"),
    ("repeating-decimals", r"\overline{AB}", r"\overline{AB}"),             # a segment, not a decimal
    ("mixed-numbers", "2 1/3", r"(2+\frac{1}{3})"),
    ("mixed-numbers", r"-2\frac{1}{3}", r"-(2+\frac{1}{3})"),
    ("mixed-numbers", r"2\frac{4}{3}", r"(2\cdot \frac{4}{3})"),           # improper: a product
    ("mixed-numbers", r"2\frac{1}{3}\pi", r"2\frac{1}{3}\pi"),             # before a symbol: left alone
    ("mixed-numbers", r"x^2\frac{1}{3}", r"x^2\frac{1}{3}"),
    ("mixed-numbers", "2 4/3", "2 4/3"),
    ("primes", "f'(x)", r"f^{\prime}(x)"),
    ("primes", "y''", r"y^{\prime\prime}"),
    ("primes", "A'B'", r"A^{\prime}B^{\prime}"),
    ("primes", r"\alpha'", r"\alpha^{\prime}"),
    ("primes", "(f g)'", r"(f g)^{\prime}"),
    ("primes", "don't", "don't"),
    ("primes", "A's", "A's"),
    ("primes", "5'", "5'"),
    ("empty-set", r"\varnothing", r"\emptyset "),
    ("empty-set", "∅", r"\emptyset "),
    ("empty-set", r"\{ \}", r"\emptyset "),
    ("degrees", r"\cos(60^\circ)", r"\cos(\left(\frac{60\pi}{180}\right))"),
    ("degrees", r"\sin 30^{\circ}", r"\sin \left(\frac{30\pi}{180}\right)"),
    ("degrees", r"30^\circ", "30"),
    ("degrees", r"\sin x + 30^\circ", r"\sin x + 30"),                      # not inside the argument
    ("imaginary-unit", "i(1+i)", "{I}(1+{I})"),
    ("imaginary-unit", r"\sum_{i=1}^{n} i", r"\sum_{i=1}^{n} i"),           # an index
    ("imaginary-unit", "a_i + i", "a_i + i"),
    ("imaginary-unit", r"3\mathbf{i} + 4\hat j", r"3\vec{i} + 4\vec{j}"),            # unit vectors
    ("imaginary-unit", r"2i + \text{ in}", r"2{I} + \text{ in}"),
    ("imaginary-unit", r"\pi + \infty + \sin x", r"\pi + \infty + \sin x"),
    ("approximations", r"\frac{\sqrt3}{2}\quad(\approx 0.866)", r"\frac{\sqrt3}{2}"),
    ("approximations", r"\pi\ (\approx 3.14)", r"\pi"),
    ("approximations", r"2\sqrt{3}\approx 3.46", r"2\sqrt{3}"),
    ("approximations", r"x \approx 2.65", r"x \approx 2.65"),               # only a name before it
    ("approximations", r"\sqrt{7} = 2.6457\ldots", r"\sqrt{7}"),
    ("number-words", r"3\text{ million}", r"3\times 10^{6}\text{}"),
    ("number-words", "2.5 billion", r"2.5\times 10^{9}"),
    ("number-words", r"3\text{ million dollars}", r"3\times 10^{6}\text{ dollars}"),
    ("number-words", "3 dozen", r"3\times 12"),
    ("number-words", "5 thousandths", "5 thousandths"),
    ("remarks", "19 (about 19 cards)", "19"),
    ("remarks", "2 (or more)", "2 or more"),                                # a qualifier: part of the value
    ("remarks", "x (mod 7)", "x (mod 7)"),
    ("remarks", "f(about)", "f(about)"),
    ("remarks", r"(2+\frac{1}{3})", r"(2+\frac{1}{3})"),
    ("bare-units", "10 cm^2", "10"),
    ("bare-units", "5 km/h", "5"),
    ("bare-units", "12 apples", "12"),
    ("bare-units", "2 or more", "2 or more"),
    ("bare-units", "2 abc", "2 abc"),                                       # 3 letters: maybe a product
    ("bare-units", "2 sinx", "2 sinx"),
    ("bare-units", "2 squared", "2 squared"),
    ("word-lists", r"2,\ 3,\ and \ 5", "2, 3, 5"),
    ("word-lists", r"x = 1,\; x = 2", "x = 1, x = 2"),
    ("word-lists", "1, or more", "1, or more"),
    ("plus-minus", r"\frac{1\pm\sqrt5}{2}", r"\{\frac{1+\sqrt5}{2}, \frac{1-\sqrt5}{2}\}"),
    ("plus-minus", r"\pm 1 \pm i", r"\{+ 1 + i, + 1 - i, - 1 + i, - 1 - i\}"),
    ("plus-minus", r"a \pm b \mp c", r"\{a + b - c, a - b + c\}"),
    ("plus-minus", r"\{\pm 1, 2\}", r"\{+ 1, - 1, 2\}"),
    ("plus-minus", r"(\pm 1, 0)", r"\{(+ 1, 0), (- 1, 0)\}"),
    ("plus-minus", r"\pm a \pm b \pm c \pm d", r"\pm a \pm b \pm c \pm d"),   # 16 values: no answer form
])
def test_step(name, before, after):
    assert STEP[name](before) == after


def test_every_step_is_a_no_op_on_its_own_output():
    """So running the policy to its fixed point never changes what one step decided."""
    _, cases = load_corpus()
    texts = [c.gold for c in cases] + [c.completion.rsplit("boxed{", 1)[-1][:60] for c in cases]
    for step in STEPS:
        for text in texts:
            once = step.apply(text)
            assert step.apply(once) == once, (step.name, text)


def test_the_policy_is_one_pass_on_the_corpus():
    """normalize() reaches its fixed point: a second run changes nothing on any corpus gold or answer."""
    from spsbench.grading.extract import extract_math

    _, cases = load_corpus()
    for case in cases:
        answer = extract_math(case.completion).answer
        for text in (case.gold, answer) if answer is not None else (case.gold,):
            once = normalize(text)
            assert normalize(once) == once, (case.id, text)


def _swapped(first: str, second: str) -> tuple[Step, ...]:
    """STEPS with `first` moved right after `second`: the order the policy forbids."""
    moved = [s for s in STEPS if s.name != first]
    at = [s.name for s in moved].index(second) + 1
    return (*moved[:at], next(s for s in STEPS if s.name == first), *moved[at:])


@pytest.mark.parametrize("first, second, text, right", [
    ("number-words", "units", r"3\text{ million}", r"3\times 10^{6}"),       # units would drop `million`
    ("upright-symbols", "degrees", r"\operatorname{cos}(60^\circ)",          # degrees must see `\cos`
     r"\cos (\left(\frac{60\pi}{180}\right))"),
    ("fractions", "mixed-numbers", r"2\tfrac13", r"(2+\frac{1}{3})"),         # mixed numbers read `\frac{a}{b}`
    ("words", "remarks", r"19\text{ (about 19 cards)}", "19"),              # the remark is inside `\text{}`
    ("remarks", "bare-units", "5 cm (approx.)", "5"),                       # the unit is before the remark
    ("option-label", "words", r"\textbf{(B) } 12", "12"),                   # the label is inside `\textbf{}`
    ("imaginary-unit", "words", r"3\mathbf{i} + 4\mathbf{j}", r"3\vec{i} + 4\vec{j}"),  # a unit vector
    ("mixed-numbers", "thousands", "1 234/567", r"(1+\frac{234}{567})"),    # the reading of a space before a fraction
])
def test_the_order_is_part_of_the_policy(first, second, text, right):
    """Each row: the policy runs `first` before `second` and gets `right`; the other order does not."""
    names = [s.name for s in STEPS]
    assert names.index(first) < names.index(second)
    assert normalize(text) == right
    assert _run(_swapped(first, second), text) != right


def _run(steps: tuple[Step, ...], text: str) -> str:
    for step in steps:
        text = step.apply(text)
    return text


def test_steps_are_named_once_and_documented():
    names = [s.name for s in STEPS]
    assert len(names) == len(set(names))
    doc = open("docs/grading.md", encoding="utf-8").read()
    for name in names:
        assert f"`{name}`" in doc, f"docs/grading.md does not describe step {name}"


@pytest.mark.parametrize("text, expected", [
    (r"4:30\text{ p.m.}", (16, 30)), ("16:30", (16, 30)), ("04:30 PM", (16, 30)), ("4:30", (4, 30)),
    (r"\text{9:25 AM}", (9, 25)), ("4 pm", (16, 0)), (r"12:00\text{ noon}", (12, 0)), ("12:15 a.m.", (0, 15)),
    ("$4:30$", (4, 30)), ("4:30 p.m", (16, 30)),
    ("3:2", None), ("4", None), ("25:00", None), ("13:00 pm", None), ("4:75", None), (r"\frac{4}{30}", None),
])
def test_time_of_day(text, expected):
    assert time_of_day(text) == expected


@pytest.mark.parametrize("text, labelled, expected", [
    ("C", False, "C"), ("(C)", False, "C"), (r"\text{(C)}", False, "C"), (r"\textbf{(C)}", False, "C"),
    (r"\mathcal{C}", False, "C"), ("C.", False, "C"), ("C. x = 7", False, None), ("C. x = 7", True, "C"),
    ("(C) 7", True, "C"), ("c", False, None), ("F", False, None), ("CD", False, None), ("C = 7", True, None),
])
def test_option_letter(text, labelled, expected):
    assert option_letter(text, labelled) == expected


def test_kind_verdicts():
    assert kind_verdict("4:30 a.m.", "4:30 p.m.") == (False, "times of day compared: 04:30 vs gold 16:30")
    assert kind_verdict(r"\frac{2}{15}", "2:15")[0] is False
    assert kind_verdict("4:30 p.m.", "16")[0] is False                 # a time is no number
    assert kind_verdict("16:30", r"\frac{8}{15}") is None               # a ratio: math-verify decides
    assert kind_verdict("7", "C") is None                               # not a letter: math-verify decides
    assert unanswerable_gold(r"\begin{cases} 1 & x > 0 \\ 0 & \text{else} \end{cases}")
    assert unanswerable_gold(r"\begin{dcases} 1 \end{dcases}") and unanswerable_gold("5") is None


def test_a_cases_gold_is_a_grader_error_whatever_the_completion():
    gold = r"\begin{cases} x & x \ge 0 \\ -x & x < 0 \end{cases}"
    for completion in (r"\boxed{|x|}", "no answer here", r"\boxed{" + gold + "}"):
        g = grade(completion, gold)
        assert g.outcome == "grader_error" and "cases" in g.detail


def test_new_steps_are_linear_time_on_pathological_answers():
    """They run in the calling process on whatever a model put in a box (each input below took < 1.5 s
    with every step; an unbounded scan per `\\sin(` or per `\\frac{` would be quadratic)."""
    inputs = ["\\frac{" * 20_000, "\\frac1" * 20_000, "\\sin(" * 20_000 + "30^\\circ", "1" + "\\," * 30_000 + "\\approx 2",
              "x" + " \\quad" * 20_000 + "(\\approx 2)", "1" * 50_000 + " x million", "5 " + "(" * 30_000 + "about)",
              "\\pm 1," * 10_000, "x'" * 25_000, "2 1/3 " * 10_000, "4:30 p.m. " * 5_000, ",\\ " * 30_000,
              "=" + " " * 50_000 + "1.5...", "_{" + "i" * 50_000 + "}"]
    start = time.perf_counter()
    for text in inputs:
        normalize(text)
        kind_verdict(text, "4:30 p.m.")
    assert time.perf_counter() - start < 30


def test_answer_forms_corpus_has_correct_and_incorrect_cases_for_every_class():
    """The issue's 'done when': every answer-form class is graded correct somewhere and incorrect
    somewhere (the cases-gold class is a grader_error by definition)."""
    _, cases = load_corpus()
    forms = [c for c in cases if c.source]
    classes = {c.cls for c in forms}
    for needed in ("primed-symbol", "frac-arguments", "time-of-day", "mixed-number", "plus-minus",
                   "repeating-decimal", "approximation", "remark", "number-words", "bare-units", "imaginary-unit",
                   "degrees-in-function", "sized-delimiters", "word-list", "empty-set", "option-letter",
                   "cases-gold", "depends-on-problem"):
        assert needed in classes, needed
    for cls in classes - {"cases-gold"}:
        verdicts = {c.expected for c in forms if c.cls == cls}
        assert {"correct", "incorrect"} <= verdicts, cls
    assert all(c.expected == "grader_error" for c in forms if c.cls == "cases-gold")


def test_math_verify_misreadings_canary():
    """The raw math-verify 0.9 readings the x=5 steps work around, asserted on math-verify itself, so an
    upgrade that changes one fails here (and the step can be reconsidered) rather than in the scores."""
    from math_verify import parse
    from math_verify import verify as mv_verify

    def first(tex: str) -> str:
        return str(parse(f"${tex}$", parsing_timeout=None)[0])

    assert mv_verify(parse("$f$"), parse("$f'$")) is True                 # quotes deleted: `primes`
    assert first(r"\frac3\pi") == r"\frac{3}{\}pi"                        # its own fixer: `fractions`
    assert first(r"0.\overline{6}") == "0"                                # `repeating-decimals`
    assert first("2 1/3") == "1"                                          # `mixed-numbers`
    assert first("4:30") == "2/15"                                        # a ratio: kinds.time_of_day
    assert first(r"\varnothing") == "varnothing"                          # `empty-set`
    assert first("I^2") == "I" and first("{I}^2") == "I**2"               # why `imaginary-unit` braces I
    assert first(r"\Big(\frac12, 3\Big)") == "3"                          # `layout`
    assert first(r"2 \text{ (or more)}") == "2"                           # `remarks`
