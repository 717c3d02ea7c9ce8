"""The math an anchored sentence names: `Final Answer: The largest $n$ is 34.` -> `34`.

What follows an anchor is often a sentence, not an expression. Passed whole to math-verify, its words
become products of one-letter symbols (`i*s*34`), so a right answer is graded wrong (and words can
cancel into a wrong answer that is "right"). The rules, none of which ever parses prose as math:

- text that opens with math (`34`, `$\\frac12$`, `x = 3`, `(B)`) is that math, up to the first word of
  prose after it (`12 apples` -> `12`, `3.5 is what we get` -> `3.5`); math words (`and`, `or`,
  `times`, `plus`, `pi`, `million`, ...) never end it, because dropping them would change the value;
- text that opens with prose is a sentence: its answer is the math right after its first copula
  (`is`, `are`, `was`, `equals`, `=`) that is followed by math, read as above; `is not 34` names
  nothing. A sentence with no such copula names no answer (None), like an anchor followed by words.
"""

from __future__ import annotations

import re

_TOKEN_RE = re.compile(
    r"(?P<span>\$\$.+?\$\$|(?<!\\)\$(?:\\\$|[^$])+?\$|\\\(.+?\\\)|\\\[.+?\\\])"   # `\$` inside is a dollar
    r"|(?P<word>(?<![\\A-Za-z])[A-Za-z]+(?:['’][A-Za-z]+)*(?![A-Za-z]))"
    r"|(?P<space>\s+)"
    r"|(?P<other>\\[A-Za-z]+|.)", re.DOTALL)
# Words that are part of a value: cutting before them would change what the answer says.
MATH_WORDS = frozenset("""
and or times plus minus over divided by squared cubed root roots power sqrt cbrt pi mod modulo choose
factorial percent percentage pct point hundred hundreds thousand thousands million millions billion
billions trillion trillions dozen dozens half halves third thirds quarter quarters fourth fourths fifth
fifths sixth sixths tenth tenths hundredth hundredths thousandth thousandths infinity inf negative
positive sin cos tan cot sec csc log ln exp arcsin arccos arctan to of more less than fewer greater
smaller larger least most
""".split())
# Words that open a clause about the answer, not a part of it: a cut there is safe even when the clause
# holds numbers (`5 because 5 is prime`). At any other word, a cut with digits after it is not taken
# (`2 hours 30 minutes` is not 2), nor one followed by a qualifier (`12 apples or less`): the sentence then
# names no answer.
_CLAUSE_OPENERS = frozenset("because since as which where when whenever so if given attained achieved obtained "
                            "occurring reached that this not".split())
# Two-letter words that end an answer (longer non-math words always do; short ones may be units: cm).
_SHORT_STOPS = frozenset("is be as if so we it at in on am an are was".split())
_TAIL_QUALIFIERS = frozenset("or more less than least most fewer greater smaller larger increase decrease".split())
COPULAS = frozenset("is are was were be becomes equals equal".split())
_TRAILING_JUNK = " \t,;:([{"


def _tokens(text: str) -> list[tuple[str, str]]:
    return [(m.lastgroup or "other", m.group()) for m in _TOKEN_RE.finditer(text)]


def _is_prose_word(kind: str, tok: str) -> bool:
    if kind != "word" or tok.lower() in MATH_WORDS:
        return False
    return len(tok) >= 3 or tok.lower() in _SHORT_STOPS


def _opens_with_prose(toks: list[tuple[str, str]]) -> bool:
    """`The ...`, `It ...`, and `I think`/`A total`: a lone capital followed by another word. A word
    right before `(`, `_` or `^` is a function or a symbol (`so(3)`, `lcm(4, 6)`)."""
    words = [(k, t) for k, t in toks if k != "space"]
    if not words or words[0][0] != "word" or (len(words) > 1 and words[1][1] in "(_^"):
        return False
    first = words[0][1]
    if len(first) >= 2:
        return first.lower() not in MATH_WORDS
    return first in "IA" and len(words) > 1 and words[1][0] == "word"


def math_run(toks: list[tuple[str, str]]) -> str | None:
    """The math at the start of `toks`, up to the first prose word; spans lose their delimiters."""
    out: list[str] = []
    for i, (kind, tok) in enumerate(toks):
        if out and _is_prose_word(kind, tok):      # the first token is math already (the caller checked)
            if tok.lower() not in _CLAUSE_OPENERS and _qualified(toks[i:]):
                return None
            break
        out.append(_span_content(tok) if kind == "span" else tok)
    text = "".join(out).strip().rstrip(_TRAILING_JUNK).strip()
    return text or None


def _qualified(tail: list[tuple[str, str]]) -> bool:
    """Does the text after a cut still say something about the value (`hours 30 minutes`, `or less`)?"""
    return any(ch.isdigit() for _, t in tail for ch in t) or any(
        k == "word" and t.lower() in _TAIL_QUALIFIERS for k, t in tail)


def _span_content(span: str) -> str:
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if span.startswith(left) and span.endswith(right):
            return span[len(left):len(span) - len(right)]
    return span


def _opens_with_math(toks: list[tuple[str, str]]) -> bool:
    first = next(((k, t) for k, t in toks if k != "space"), None)
    return first is not None and not _is_prose_word(*first) and first[1] not in ".,;:!?"


def named_answer(sentence: str) -> str | None:
    """The math `sentence` names (see the module docstring); None when it names none."""
    toks = _tokens(sentence)
    if not _opens_with_prose(toks):
        return math_run(toks)
    for i, (kind, tok) in enumerate(toks):
        if (kind == "word" and tok.lower() in COPULAS) or tok == "=":
            rest = _skip_to(toks[i + 1:])
            if _opens_with_math(rest):
                return math_run(rest)
    return None


def _skip_to(toks: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """After a copula: skip spaces and `to` (`is equal to 5`)."""
    j = 0
    while j < len(toks) and (toks[j][0] == "space" or toks[j][1].lower() in {"to", "equal"}):
        j += 1
    return toks[j:]


def after_last_copula(sentence: str) -> str:
    """Words after the sentence's last copula (`The number is even.` -> `even.`), for text answers."""
    words = re.split(r"\s+", sentence.strip())
    idx = [i for i, w in enumerate(words) if w.lower() in COPULAS]
    return " ".join(words[idx[-1] + 1:]) if idx else ""
