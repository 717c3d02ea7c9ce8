"""Answer extraction for math: the think-block rule, the last complete box, "answer is" anchors.

Pure Python and linear-time in the completion length (one regex pass for braces), so it runs in the
parent process before anything reaches math-verify; the extracted string is then the cache key.
See docs/grading.md for the policy these functions implement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from spsbench.grading.normalize import normalize
from spsbench.grading.sentence import named_answer

_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"
_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])[ \t]*")
_BRACE_RE = re.compile(r"\\[\\{}]|[{}]")       # escaped backslash / literal \{ \} are skipped
_BARE_BOX_RE = re.compile(r"[^\s$]+")          # `\boxed 5`: the token after the command
# "The final answer is 33", "Answer: 33", "**Answer:** 33", "ANSWER = 33". Case-insensitive anchor word.
_ANCHOR_RE = re.compile(r"(?i:\banswer\b)[ \t*_]*(?:(?i:is)\b[ \t]*:?|:|=)[ \t*_]*")
_MAX_ANCHOR_CHARS = 200
# Connectives between an anchor and its answer ("the answer is therefore 42", "Answer: simply $7$"):
# math-verify would read them as products of symbols. Only a closed list, only before something else.
_FILLER_RE = re.compile(
    r"(?i:(?:therefore|thus|hence|then|so|simply|just|exactly|indeed|clearly|also|still|now|actually|"
    r"equal\s+to|given\s+by|equals)[\s,:]+)+"
)
_TEXT_WRAPPER_RE = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_WORD = r"[A-Za-z]+(?:['’-][A-Za-z]+)*"
_PROSE_RE = re.compile(rf"{_WORD}(?:[\s,;:!?]+{_WORD})*[\s.,;:!?]*")
_MATH_WORDS = frozenset({"infinity", "inf"})      # math-verify reads these as oo (measured on 0.9.0)


@dataclass(frozen=True)
class Extraction:
    """What the completion offers as its answer. `answer` is None when there is none."""

    answer: str | None
    how: str            # "box" | "anchor" | "none" | "think" (unclosed think block) | "words" (see below)
    skipped: str | None = None   # how == "words": what followed the last anchor (only words, no answer)


def strip_think(text: str) -> str | None:
    """Text after the last `</think>`; None when a `<think>` block is still open (no final answer yet).

    Chat templates that open `<think>` in the prompt leave only `</think>` in the completion, so the
    close tag alone is enough; a completion with neither tag is graded whole.
    """
    close = text.rfind(_THINK_CLOSE)
    tail = text[close + len(_THINK_CLOSE):] if close >= 0 else text
    return None if _THINK_OPEN in tail else tail


def matching_braces(text: str, start: int = 0) -> dict[int, int]:
    """Map each `{` at or after `start` to its matching `}` (unclosed ones are absent). O(len(text))."""
    stack: list[int] = []
    pairs: dict[int, int] = {}
    for m in _BRACE_RE.finditer(text, start):
        tok = m.group()
        if tok == "{":
            stack.append(m.start())
        elif tok == "}" and stack:
            pairs[stack.pop()] = m.start()
    return pairs


def last_box(text: str) -> str | None:
    """Content of the last complete `\\boxed{...}` / `\\fbox{...}` / `\\boxed 5`; None if there is none.

    A box left unclosed (a truncated generation) or empty (an echo of the prompt's `\\boxed{}`) is
    skipped and the previous complete box is used.
    """
    found = find_last_box(text)
    return found[0] if found is not None else None


def find_last_box(text: str) -> tuple[str, int] | None:
    """(content, index of its `\\boxed`) for the box `last_box` picks.

    The index comes from the match itself: searching the text for the content instead would find the
    last `C` anywhere for `\\boxed{C}` (e.g. in a later "Correct?").
    """
    starts = list(_BOX_RE.finditer(text))
    if not starts:
        return None
    pairs = matching_braces(text, starts[0].end())
    for m in reversed(starts):
        pos = m.end()
        if pos < len(text) and text[pos] == "{":
            close = pairs.get(pos)
            content = text[pos + 1:close].strip() if close is not None else ""
            if content:                   # skip unclosed boxes and the prompt's echoed empty `\boxed{}`
                return content, m.start()
            continue
        bare = _BARE_BOX_RE.match(text, pos)
        if bare:
            return bare.group(), m.start()
    return None


def anchored_answer(text: str, words_are_answers: bool = False) -> str | None:
    """The answer after the last "answer is" / "Answer:" anchor that is followed by one.

    An anchor followed by nothing, or only by words ("the answer is not obvious", "check that the
    answer is correct"), is a sentence, not an answer: it is skipped like an empty box and the previous
    anchor is used. `words_are_answers` (the gold itself is words, e.g. `yes`, `\\text{even}`) keeps them.
    """
    return _anchored(text, words_are_answers)[0]


def _anchored(text: str, words_are_answers: bool) -> tuple[str | None, str | None]:
    """(the anchored answer or None, what followed the last anchor: shown when it was only words)."""
    anchors = list(_ANCHOR_RE.finditer(text))
    last_text = _answer_after(text, anchors[-1].end()) if anchors else None
    for anchor in reversed(anchors):
        found = last_text if anchor is anchors[-1] else _answer_after(text, anchor.end())
        if found is not None and (words_are_answers or not is_prose(found)):
            return found, last_text
    return None, last_text


def _answer_after(text: str, start: int) -> str | None:
    """The answer opening at `start`: a `$...$` span, else up to the end of the line or sentence."""
    rest = text[start:start + _MAX_ANCHOR_CHARS * 4].lstrip()   # slice first: no copy of a long tail
    filler = _FILLER_RE.match(rest)
    if filler and rest[filler.end():].strip():
        rest = rest[filler.end():]
    math = _leading_math(rest)
    if math is not None and "\n" in rest[:math[1]]:
        return math[0].strip() or None           # a display span over several lines: that span
    line = rest.split("\n", 1)[0]
    line = re.split(r"(?<=[^\s\d])\.\s|\.\s+(?=[A-Z])", line, maxsplit=1)[0]  # end of sentence, not 3.5
    line = line.strip().strip("*_").strip().rstrip(".!;")[:_MAX_ANCHOR_CHARS].strip()
    if not line or is_prose(line):
        return line or None                      # words: the caller decides whether they are an answer
    return named_answer(line)                    # a sentence: only the math it names, never its words


def is_prose(answer: str) -> bool:
    """True when `answer` is only words: ASCII letters, spaces and punctuation, no digit, no LaTeX
    command, no math sign, and at least one word of two letters or more (`x`, `B`, `a, b` are math).

    math-verify cannot tell: it reads any word as a product of one-letter symbols (`yes` is E*s*y, so
    anagrams are "equal"). The few words it does read as math (`infinity`, `inf`) are not prose.
    """
    text = unwrap_text(answer).strip().strip("*_\"'` ")
    if text in _MATH_WORDS or not _PROSE_RE.fullmatch(text):
        return False
    return any(len(word) > 1 for word in re.findall(r"[A-Za-z]+", text))


def unwrap_text(answer: str) -> str:
    """`\\text{even}` -> `even` (also `\\textbf`, `\\mathrm`, `\\mbox`, ...): for telling words apart."""
    return _TEXT_WRAPPER_RE.sub(r"\1", answer)


def same_words(answer: str, gold: str) -> bool:
    """Text answers compare as text: case, `\\text{}` wrappers, spacing and end punctuation ignored."""
    def norm(s: str) -> str:
        return " ".join(unwrap_text(s).strip().strip("*_\"'` ").rstrip(".!?,;:").split()).lower()
    return norm(answer) == norm(gold)


def _leading_math(rest: str) -> tuple[str, int] | None:
    """If `rest` opens with `$..$`, `$$..$$`, `\\(..\\)` or `\\[..\\]`: (content, index after the span)."""
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if rest.startswith(left):
            end = rest.find(right, len(left))
            if end > 0:
                return rest[len(left):end], end + len(right)
    return None


def extract_math(completion: str, words_are_answers: bool = False) -> Extraction:
    """Apply the think rule, then the last complete box, then the last anchor followed by an answer."""
    text = strip_think(completion)
    if text is None:
        return Extraction(None, "think")
    box = last_box(text)
    if box is not None:
        return Extraction(box, "box")
    anchored, last_text = _anchored(text, words_are_answers)
    if anchored is not None:
        return Extraction(anchored, "anchor")
    return Extraction(None, "words", last_text) if last_text is not None else Extraction(None, "none")


def normalize_answer(answer: str) -> str:
    """The normalisation applied to the extracted answer AND the gold (see `normalize.normalize`)."""
    return normalize(answer)
