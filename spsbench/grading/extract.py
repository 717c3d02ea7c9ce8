"""Answer extraction for math: the think-block rule, the last complete box, "answer is" anchors, normalisation.

Pure Python and linear-time in the completion length (one regex pass for braces), so it runs in the
parent process before anything reaches math-verify; the extracted string is then the cache key.
See docs/grading.md for the policy these functions implement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"
_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])[ \t]*")
_BRACE_RE = re.compile(r"\\[\\{}]|[{}]")       # escaped backslash / literal \{ \} are skipped
_BARE_BOX_RE = re.compile(r"[^\s$]+")          # `\boxed 5`: the token after the command
# "The final answer is 33", "Answer: 33", "**Answer:** 33", "ANSWER = 33". Case-insensitive anchor word.
_ANCHOR_RE = re.compile(r"(?i:\banswer\b)[ \t*_]*(?:(?i:is)\b[ \t]*:?|:|=)[ \t*_]*")
_MAX_ANCHOR_CHARS = 200


@dataclass(frozen=True)
class Extraction:
    """What the completion offers as its answer. `answer` is None when there is none."""

    answer: str | None
    how: str            # "box" | "anchor" | "none" | "think" (unclosed think block)


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
                return content
            continue
        bare = _BARE_BOX_RE.match(text, pos)
        if bare:
            return bare.group()
    return None


def anchored_answer(text: str) -> str | None:
    """The answer after the last "answer is" / "Answer:" anchor, trimmed to one line or `$...$` span."""
    anchors = list(_ANCHOR_RE.finditer(text))
    if not anchors:
        return None
    rest = text[anchors[-1].end():].lstrip()
    rest = rest[:_MAX_ANCHOR_CHARS * 4]
    math = _leading_math(rest)
    if math is not None:
        return math[0].strip() or None
    line = rest.split("\n", 1)[0]
    line = re.split(r"(?<=[^\s\d])\.\s|\.\s+(?=[A-Z])", line, maxsplit=1)[0]  # end of sentence, not 3.5
    line = line.strip().strip("*_").strip().rstrip(".!;")
    return line[:_MAX_ANCHOR_CHARS].strip() or None


def _leading_math(rest: str) -> tuple[str, int] | None:
    """If `rest` opens with `$..$`, `$$..$$`, `\\(..\\)` or `\\[..\\]`: (content, index after the span)."""
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if rest.startswith(left):
            end = rest.find(right, len(left))
            if end > 0:
                return rest[len(left):end], end + len(right)
    return None


def extract_math(completion: str) -> Extraction:
    """Apply the think rule, then the last complete box, then the last anchor."""
    text = strip_think(completion)
    if text is None:
        return Extraction(None, "think")
    box = last_box(text)
    if box is not None:
        return Extraction(box, "box")
    anchored = anchored_answer(text)
    if anchored is not None:
        return Extraction(anchored, "anchor")
    return Extraction(None, "none")


# --- normalisation: applied to the extracted answer AND the gold, before both are parsed --------------

_THOUSANDS_RE = re.compile(r"(?<=\d)(?:\\,|\{,\}|\\;|\\:|\\!|\\ |~|\\thinspace\s*)(?=\d{3}(?!\d))")
_DEGREE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree\b")


def normalize_answer(answer: str) -> str:
    """Rewrite the known math-verify traps into forms it parses correctly (see docs/grading.md)."""
    s = answer.strip()
    span = _leading_math(s)
    if span is not None and span[1] == len(s):
        s = span[0].strip()                # the whole answer is one `$...$` / `\(...\)` span
    s = _THOUSANDS_RE.sub("", s)          # math-verify reads `1\,000` as 1*0
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _DEGREE_RE.sub("", s)
    s = s.replace("\\$", "").replace("\\!", "")
    if s.endswith(".") and not s.endswith(".."):
        s = s[:-1]                        # `\boxed{33.}`: a sentence period inside the box
    return s.strip()
