"""Multiple-choice grading: our own letter extractor (math-verify's string mode is too loose for this).

The letter set is A.. by the number of choices (4 when the choices are unknown). Anchored forms, the
last one in the text wins: `\\boxed{C}` (also `\\boxed{\\text{C}}`, `\\boxed{(C)}`, or a box holding
the exact text of an option), `Answer: C`, `ANSWER: (C)`, `**Answer:** C`, `The answer is C`,
`the correct answer is option C`, and a final line that is only the letter (`(C)`, `C.`, `**C**`).
A bare `(C)` elsewhere counts in lenient mode only: reasoning mentions options all the time.
Pure Python and cheap, so it runs in the calling process (no worker, no cache).
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from functools import lru_cache

from spsbench.grading.extract import find_last_box, strip_think
from spsbench.grading.normalize import normalize
from spsbench.grading.types import Grade, Outcome

_WRAPPER_RE = re.compile(r"\\(?:text|textbf|mathrm|mathbf|textrm|mbox)\s*\{([^{}]*)\}")


@lru_cache(maxsize=64)
def _patterns(letters: str) -> tuple[re.Pattern, re.Pattern, re.Pattern]:
    cls = f"[{letters}]"
    letter = rf"[*_]*\(?[*_]*(?P<letter>{cls})[*_]*\)?(?![A-Za-z0-9])"
    anchor = re.compile(
        r"(?i:\banswer\b)[ \t*_]*(?:(?i:is)\b[ \t]*:?|:|=)[ \t*_$]*(?:\\boxed\{)?"
        r"(?:\\text\{)?(?:(?i:option|choice)[ \t]+)?" + letter)
    final_line = re.compile(rf"^[\s*_>#]*\(?[*_]*(?P<letter>{cls})[*_]*\)?[.\s*_]*$")
    bare = re.compile(rf"\((?P<letter>{cls})\)")
    return anchor, final_line, bare


def letters_for(choices: Sequence[str] | None) -> str:
    count = len(choices) if choices else 4
    if not 2 <= count <= 26:
        raise ValueError(f"multiple choice needs 2..26 options, got {count}")
    return string.ascii_uppercase[:count]


def _box_letter(box: str, letters: str, choices: Sequence[str] | None) -> str | None:
    """`C`, `\\text{C}`, `(C)`, `C) 42`, or an option's exact text inside the last box."""
    inner = _WRAPPER_RE.sub(r"\1", box).strip().strip("*$ ")
    m = re.match(rf"^\(?([{letters}])\)?(?:[.:)]|\s|$)", inner)
    if m:
        return m.group(1)
    for i, choice in enumerate(choices or ()):
        if inner.rstrip(".").strip() == str(choice).strip() or normalize(box) == normalize(str(choice)):
            return letters[i]
    return None


def extract_letter(completion: str, choices: Sequence[str] | None = None, strict: bool = True) -> str | None:
    """The chosen letter, or None. The last anchored form in the text wins.

    Every candidate's position is where its own match starts: never found again by searching the text
    for the letter, which would hit any later capital (`\\boxed{C} ... Correct?`).
    """
    text = strip_think(completion)
    if text is None:
        return None
    letters = letters_for(choices)
    anchor, final_line, bare = _patterns(letters)
    found: list[tuple[int, str]] = []                      # (position, letter)
    box = find_last_box(text)
    if box is not None:
        letter = _box_letter(box[0], letters, choices)
        if letter:
            found.append((box[1], letter))
    found += [(m.start(), m.group("letter")) for m in anchor.finditer(text)][-1:]
    body = text.rstrip()
    last_line_start = body.rfind("\n") + 1                 # 0 when the text is one line
    m = final_line.match(body[last_line_start:])
    if m:
        found.append((last_line_start, m.group("letter")))
    if not strict:
        found += [(m.start(), m.group("letter")) for m in bare.finditer(text)][-1:]
    return max(found)[1] if found else None


def gold_letter(gold: str, choices: Sequence[str] | None) -> str | None:
    """The gold as a letter: a letter of the set (`C`, `(c)`, `$\\text{C}$`), or an option's text; the
    gold and the options are normalised as math answers are (`$1\\,000$` is option `1000`)."""
    letters = letters_for(choices)
    g = normalize(gold).strip("()").upper()
    if len(g) == 1 and g in letters:
        return g
    for i, choice in enumerate(choices or ()):
        if gold.strip() == str(choice).strip() or normalize(gold) == normalize(str(choice)):
            return letters[i]
    return None


def grade_mc(completion: str, gold: str, choices: Sequence[str] | None, strict: bool = True) -> Grade:
    try:
        gold_l = gold_letter(gold, choices)
    except ValueError as exc:
        return Grade(Outcome.GRADER_ERROR, None, str(exc))
    if gold_l is None:
        return Grade(Outcome.GRADER_ERROR, None, f"gold {gold!r} is not one of the letters {letters_for(choices)}")
    letter = extract_letter(completion, choices, strict)
    if letter is None:
        if strip_think(completion) is None:
            return Grade(Outcome.NO_ANSWER, None, "unclosed <think> block: no final answer")
        return Grade(Outcome.NO_ANSWER, None, "no anchored letter (Answer: X, \\boxed{X}, or X alone on the last line)")
    outcome = Outcome.CORRECT if letter == gold_l else Outcome.INCORRECT
    return Grade(outcome, letter, f"letter {letter} vs gold {gold_l}")
