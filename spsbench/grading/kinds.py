"""Answer kinds decided without math-verify, by what the gold is: a time of day, a multiple-choice
option letter inside a math problem, and golds that are not an answer form at all (`\\begin{cases}`).

math-verify reads `4:30` as the ratio 4/30 and drops `p.m.` as a unit (its unit list has `p . m`),
so `4:30 a.m.` equalled `4:30 p.m.` (a false positive) and `16:30` never equalled `4:30 PM`; a
letter gold `C` (MATH's AMC problems: `\\text{(C)}`) against `C. x = 7` compared 7 with C. Here a
time gold is compared as a clock time and a letter gold as a letter; every other gold goes to
math-verify as before (an answer that is a time with a.m./p.m. against a gold that is not a time is
incorrect: it is no number).
"""

from __future__ import annotations

import re
from functools import lru_cache

from spsbench.grading.normalize import unwrap_whole

# --- time of day (class time-of-day) -----------------------------------------------------------------

_WRAPPER_RE = re.compile(r"\\(?:text|mathrm|textrm|mbox|textnormal)\s*\{([^{}]*)\}")
_TIME_RE = re.compile(
    r"(?P<h>\d{1,2})(?:\s*(?::|\\colon|\{:\})\s*(?P<m>\d{2}))?(?:\s*:\s*\d{2})?"
    r"\s*(?:(?P<mer>[ap])\s*\.?\s*m\s*\.?|(?P<noon>noon|midnight))?", re.IGNORECASE)


def time_of_day(text: str) -> tuple[int, int] | None:
    """(hour 0-23, minute) when `text` is a time of day: `4:30 p.m.`, `4:30\\text{ PM}`, `16:30`,
    `04:30`, `4 pm`, `12:00 noon`. A time without a.m./p.m. is read on the 24-hour clock, as written
    (`4:30` is 04:30, not 16:30: which half of the day depends on the problem, so the strict reading).
    An hour alone needs a.m./p.m. (`4` is a number)."""
    s = _WRAPPER_RE.sub(r" \1 ", unwrap_whole(text))
    s = re.sub(r"\\[,;:! ]|~|\\q?quad", " ", s).strip().rstrip(".").strip()
    m = _TIME_RE.fullmatch(s)
    if m is None or (m.group("m") is None and not (m.group("mer") or m.group("noon"))):
        return None
    hour, minute = int(m.group("h")), int(m.group("m") or 0)
    if minute > 59:
        return None
    if m.group("noon"):
        return (12 if m.group("noon").lower() == "noon" else 0, minute) if hour == 12 else None
    if m.group("mer"):
        if not 1 <= hour <= 12:
            return None
        return (hour % 12 + (12 if m.group("mer").lower() == "p" else 0), minute)
    return (hour, minute) if hour <= 23 else None


def _has_meridiem(text: str) -> bool:
    return bool(re.search(r"(?i)\b[ap]\s*\.?\s*m\b\.?|\bnoon\b|\bmidnight\b", text))


# --- option letters (class option-letter) ------------------------------------------------------------

_STYLE_RE = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mathcal|mathit|mathsf|mathscr|mbox|bf)"
                       r"\s*\{([^{}]*)\}")
_LONE_LETTER_RE = re.compile(r"\(?\s*([A-E])\s*\)?\s*\.?")
_LABELLED_RE = re.compile(r"\(?\s*([A-E])\s*(?:\)|[.:](?=\s))\s*\S")


def option_letter(text: str, labelled: bool = False) -> str | None:
    """The option letter `text` names: `C`, `(C)`, `\\text{(C)}`, `\\textbf{(C)}`, `\\mathcal{C}`,
    `C.`; with `labelled`, also a letter labelling a value (`C. x = 7`, `(C) 7`). Upper case A-E only."""
    s = unwrap_whole(text)
    for _ in range(3):
        s = _STYLE_RE.sub(r"\1", s)
    s = s.strip()
    m = _LONE_LETTER_RE.fullmatch(s)
    if m is None and labelled:
        m = _LABELLED_RE.match(s)
    return m.group(1) if m else None


# --- golds that are no answer form (class cases-gold) ------------------------------------------------

_CASES_RE = re.compile(r"\\begin\s*\{\s*[dr]?cases\*?\s*\}")


@lru_cache(maxsize=4096)
def unanswerable_gold(gold: str) -> str | None:
    """Why this gold cannot be graded (a grader_error), or None. A piecewise `\\begin{cases}` gold is a
    function given by cases, which math-verify does not compare (it read one branch)."""
    if _CASES_RE.search(gold):
        return ("gold answer is a piecewise \\begin{cases} expression: no answer form is compared with it "
                "(grade such a task by hand or rewrite its gold)")
    return None


# --- the verdict -------------------------------------------------------------------------------------

def kind_verdict(answer: str, gold: str) -> tuple[bool, str] | None:
    """(correct?, why) when the gold's kind decides the comparison; None: math-verify compares them."""
    gold_time, gold_letter = _gold_kind(gold)
    if gold_time is not None:
        mine = time_of_day(answer)
        if mine is None:
            return False, "gold is a time of day; the answer is not one"
        return mine == gold_time, f"times of day compared: {_clock(mine)} vs gold {_clock(gold_time)}"
    if _has_meridiem(answer) and time_of_day(answer) is not None:
        return False, "the answer is a time of day; the gold is not one"
    if gold_letter is not None and (letter := option_letter(answer, labelled=True)) is not None:
        return letter == gold_letter, f"option letters compared: {letter} vs gold {gold_letter}"
    return None


@lru_cache(maxsize=4096)
def _gold_kind(gold: str) -> tuple[tuple[int, int] | None, str | None]:
    """(time of day, option letter) of a gold; golds repeat for every sample of a problem."""
    return time_of_day(gold), option_letter(gold)


def _clock(t: tuple[int, int]) -> str:
    return f"{t[0]:02d}:{t[1]:02d}"
