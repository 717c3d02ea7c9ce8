"""Answer normalisation: the grading policy's one normalisation, applied identically to the extracted
answer and to the gold.

`STEPS` is the policy: named steps in a fixed order (why each sits where it does is beside it and in
docs/grading.md, "The normalisation policy"). Each rewrites one class of forms that math-verify 0.9.0
misreads into a form it reads right, measured on math-verify itself. The steps for the x=4 classes live
here:

- math delimiters or a box around the whole answer (`$\\text{Even}$`, `\\boxed{5}` as a gold);
- thousands separators in every unambiguous form (`1\\,000`, `1{,}000`, `32,\\! 349`, `1 000`,
  `1.000.000`, unicode thin spaces); a single `.` is a decimal point and a bare `,` is left to
  math-verify (it reads `1,234` as 1234 but `(1,100)` as an interval);
- upright constants and operators (`\\mathrm{e}`, `\\text{i}`, `{\\rm e}`, `\\operatorname{lcm}`):
  math-verify turns `\\mathrm` into `\\text`, and its unit stripper then deletes everything from the
  first `\\text{` to a closing brace at the end (`3 + \\frac{2}{\\mathrm{e}}` became `3`);
- trailing units in upright text (`5\\text{ cm}^2`, `3\\,\\mathrm{m/s}`), removed here with balanced
  braces, and every other upright word unwrapped, so no `\\text{` is left for that stripper;
- `\\dfrac`, `\\$`, `\\!`, a sentence period inside the box.

The x=5 steps live in `notation.py` (how a value is written), `trailing.py` (what follows it) and
`lists.py` (several values).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from spsbench.grading import lists, notation, trailing
from spsbench.grading.trailing import QUALIFIERS

# --- delimiters around the whole answer --------------------------------------------------------------

_DELIMS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_WHOLE_BOX_RE = re.compile(r"^\\(?:boxed|fbox)\s*\{(.*)\}$", re.DOTALL)


def unwrap_whole(s: str) -> str:
    """Strip delimiters and a box that enclose the whole answer, repeatedly (`$\\boxed{5}$` -> `5`)."""
    while True:
        s = s.strip()
        before = s
        for left, right in _DELIMS:
            inner = s[len(left):-len(right)] if len(s) > len(left) + len(right) else ""
            if s.startswith(left) and s.endswith(right) and left not in inner:
                s = inner
                break
        box = _WHOLE_BOX_RE.match(s)
        if box and _balanced(box.group(1)):
            s = box.group(1)
        if s == before:
            return s


def _balanced(s: str) -> bool:
    depth = 0
    for ch in re.sub(r"\\[{}]", "", s):
        depth += (ch == "{") - (ch == "}")
        if depth < 0:
            return False
    return depth == 0


# --- thousands separators ----------------------------------------------------------------------------

# LaTeX and unicode spacing between digit groups is unambiguous: a separator whenever 3 digits follow.
# `32,\! 349` is MATH's `,\!` with a space typed after it.
_SPACED_SEP_RE = re.compile(
    r"(?<=\d)(?:,\\!\s*|\{,\}|\\,|\\;|\\:|\\!|\\ |~|\\thinspace\s*|\\nobreakspace\s*|[\u2009\u202f\u00a0'])"
    r"(?=\d{3}(?!\d))")
# A plain space is a separator only inside a whole grouped number (`1 000`, `12 345 678`): math-verify
# reads `1 000` as 1*0 and `1 234` as 1+234. The groups after the first have exactly 3 digits.
_SPACE_GROUPED_RE = re.compile(r"(?<![\d.,])[1-9]\d{0,2}(?: \d{3})+(?![\d])")
# Dots: only two or more 3-digit groups (`1.000.000`); one dot is a decimal point (`1.000` is 1).
_DOT_GROUPED_RE = re.compile(r"(?<![\d.,])[1-9]\d{0,2}(?:\.\d{3}){2,}(?![\d.])")


# A bare comma is a separator when a TeX group holds only the grouped number (`\frac{2,449}{100}`):
# a group is not a tuple (sets are `\{...\}`), but math-verify reads `{2,449}` as two numbers.
_GROUP_COMMA_RE = re.compile(r"(?<!\\)\{\s*([1-9]\d{0,2}(?:,\d{3})+)\s*\}")


# Digits after a decimal point grouped by thin spaces (`3.141\,592\,65`): the last group may be short.
_DECIMAL_GROUPS_RE = re.compile(r"\d\.\d{3}(?:(?:\\,|\\;|\\:|\\ |~|[\u2009\u202f])\d{1,3})+(?!\d)")
_GROUP_SEP_RE = re.compile(r"\\,|\\;|\\:|\\ |~|[\u2009\u202f]")


def strip_thousands(s: str) -> str:
    s = _DECIMAL_GROUPS_RE.sub(lambda m: _GROUP_SEP_RE.sub("", m.group()), s)
    s = _SPACED_SEP_RE.sub("", s)
    s = _GROUP_COMMA_RE.sub(lambda m: "{" + m.group(1).replace(",", "") + "}", s)
    s = _SPACE_GROUPED_RE.sub(lambda m: m.group().replace(" ", ""), s)
    return _DOT_GROUPED_RE.sub(lambda m: m.group().replace(".", ""), s)


# --- upright text: constants, operators, units, words ----------------------------------------------

_WRAP = r"\\(?:mathrm|textrm|textnormal|text|mathit|textit|mathbf|textbf|boldsymbol|mathsf|mbox|operatorname\*?)"
_WRAPPED_RE = re.compile(_WRAP + r"\s*\{([^{}]*)\}")
# Constants and operators only in upright wrappers: bold `\mathbf{i}`, `\mathbf{e}` are unit vectors.
_UPRIGHT_RE = re.compile(r"\\(?:mathrm|textrm|textnormal|text|mbox|operatorname\*?)\s*\{([^{}]*)\}")
_RM_GROUP_RE = re.compile(r"\{\s*\\(?:rm|mathrm)\s+([^{}]*)\}")            # `{\rm e}`
_BARE_WRAP_RE = re.compile(r"\\(?:mathrm|operatorname|text)\s+([A-Za-z])(?![A-Za-z])")  # `\mathrm e`
CONSTANTS = {"e": "e", "i": "i", "\\pi": "\\pi", "π": "\\pi", "pi": "\\pi"}
# Functions latex2sympy reads as `\name` (measured; `\lg`, `\coth` it misreads, so they stay unknown).
OPERATORS = frozenset(
    "sin cos tan cot sec csc arcsin arccos arctan arccot sinh cosh tanh arcsinh arccosh arctanh "
    "log ln exp lcm gcd max min".split())
# A trailing unit: upright text (after optional spacing) at the very end, with an optional power.
# Bounded repeats: the search tries every start, so an unbounded one is quadratic on `\,\,\,...`.
_TRAILING_UNIT_RE = re.compile(
    r"(?:\\[,;:! ]|~|\s){0,6}" + _WRAP + r"\s{0,3}\{(?P<unit>[^{}]{0,60})\}"
    r"(?:\s{0,3}\^\s{0,3}(?:\{\s?-?\d\s?\}|-?\d))?\s{0,3}$")
_UNIT_TEXT_RE = re.compile(r"[A-Za-z\s/.\-]*[A-Za-z][A-Za-z\s/.\-]*(?:\^\{?-?\d\}?)?")
# One letter is a unit only if it is an SI one (`7\,\mathrm{m}`); `2\text{x}` is 2x, not 2.
_LETTER_UNITS = frozenset("m g s K A N J W V L l h C T")
# Qualifiers (`2 \\text{ or more}` is not 2; `grading/trailing.py`) are never a unit, and beside math they are
# braced by `_protect_qualifiers` so that math-verify's unit list cannot drop them either.
_NOT_UNIT_WORDS = QUALIFIERS | {"and", "or"}
_QUALIFIER_RE = re.compile(r"(?<![\\A-Za-z{])(" + "|".join(sorted(QUALIFIERS)) + r")(?![A-Za-z}])", re.IGNORECASE)


def _resolve(content: str) -> str | None:
    """What an upright group stands for when it is a constant or an operator; None otherwise."""
    c = content.strip()
    if c in CONSTANTS:
        return CONSTANTS[c]
    if c in OPERATORS:
        return f"\\{c} "
    return None


def upright_symbols(s: str) -> str:
    """`\\mathrm{e}` -> `e`, `\\text{i}` -> `i`, `\\mathrm{\\pi}` -> `\\pi`, `\\operatorname{lcm}` -> `\\lcm`."""
    s = _BARE_WRAP_RE.sub(lambda m: "{" + m.group(1) + "}", s)
    s = _RM_GROUP_RE.sub(lambda m: "\\mathrm{" + m.group(1) + "}", s)
    return _UPRIGHT_RE.sub(lambda m: _keep_group(m, _resolve(m.group(1))), s)


def _keep_group(m: re.Match, resolved: str | None) -> str:
    if resolved is None:
        return m.group()
    return resolved if resolved.endswith(" ") else "{" + resolved + "}"    # braces keep `e^2` a power


def strip_trailing_units(s: str) -> str:
    """`5\\text{ cm}^2` -> `5`: upright words at the end after something else (a lone `\\text{Even}`
    is the answer itself). Repeated for `\\mathrm{kg}\\,\\mathrm{m}`."""
    while True:
        m = _TRAILING_UNIT_RE.search(s)
        if not m or not s[:m.start()].strip() or not _is_unit(m.group("unit").strip()):
            return s
        s = s[:m.start()].rstrip()


def _is_unit(text: str) -> bool:
    if not _UNIT_TEXT_RE.fullmatch(text):
        return False
    words = re.findall(r"[A-Za-z]+", text)
    if len(words) == 1 and len(words[0]) == 1:
        return words[0] in _LETTER_UNITS
    return not any(w.lower() in _NOT_UNIT_WORDS for w in words)


def unwrap_words(s: str) -> str:
    """Upright words left inside an expression become plain letters (`\\text{ or }` -> ` or `), as
    math-verify's own `\\text{x}` does, but with no `\\text{` left for its unit stripper to cut at."""
    return _WRAPPED_RE.sub(lambda m: " " + m.group(1).strip() + " " if m.group(1).strip() else " ", s)


def _protect_qualifiers(s: str) -> str:
    """`2 or more` -> `2 or {more}` when the answer has math besides the words (a lone word is a text
    answer and stays as it is)."""
    if not re.search(r"[\d\\^_=+\-*/(){}]", s):
        return s
    return _QUALIFIER_RE.sub(r"{\1}", s)


# --- the policy: every step, in order -------------------------------------------------------------

def _layout(s: str) -> str:
    """`\\displaystyle` and sized delimiters (`\\Big(`, `\\bigr)`) are layout, not value."""
    return notation.sized_delimiters(s.replace("\\displaystyle", ""))


def _fractions(s: str) -> str:
    """`\\dfrac`, `\\tfrac`, `\\cfrac` -> `\\frac`, then brace-less arguments braced (`\\frac3\\pi`)."""
    return notation.brace_fractions(_FRAC_RE.sub(r"\\frac", s))


def _currency(s: str) -> str:
    """`\\$5` -> 5; `\\!` (negative thin space) is layout."""
    return s.replace("\\$", "").replace("\\!", "")


def _spacing(s: str) -> str:
    return " ".join(s.split())


def _period(s: str) -> str:
    """`\\boxed{33.}`: a sentence period inside the box (not `..`, an ellipsis)."""
    return s[:-1].rstrip() if s.endswith(".") and not s.endswith("..") else s


@dataclass(frozen=True)
class Step:
    """One named normalisation step of the grading policy (docs/grading.md lists them with cases)."""

    name: str
    apply: Callable[[str], str]


# The order is part of the policy: each step sees what the steps before it left, and none may undo an
# earlier one. Why each sits where it does (docs/grading.md has the same table):
STEPS: tuple[Step, ...] = (
    Step("delimiters", unwrap_whole),                    # first: every step sees the answer itself
    Step("layout", _layout),                             # before anything reads brackets
    Step("option-label", notation.option_label),         # before `period`/`units` eat the `C.` of `C. x = 7`
    Step("fractions", _fractions),                       # before `mixed-numbers`, which reads `\frac{a}{b}`
    Step("repeating-decimals", notation.repeating_decimals),  # before `thousands` reads digits after a point
    Step("mixed-numbers", notation.mixed_numbers),       # before `thousands`: the space of `2 1/3` is no separator
    Step("thousands", strip_thousands),                  # before `primes`: `1'000` is a separator
    Step("primes", notation.primes),                     # before math-verify, which deletes quotes
    Step("empty-set", notation.empty_set),
    Step("currency", _currency),
    Step("upright-symbols", upright_symbols),            # `\operatorname{cos}` -> `\cos`, `\mathrm{i}` -> `{i}`
    Step("degrees", notation.degrees),                   # after upright: sees `\cos` however it was written
    Step("imaginary-unit", notation.imaginary_unit),     # after upright (`{i}`), before `words` hides `\mathbf{i}`
    Step("approximations", trailing.approximations),     # before `number-words`/`units`: an approximation's own
    Step("number-words", trailing.number_words),         # before `units`, which would drop `million`
    Step("units", strip_trailing_units),                 # upright units: `\text{ cm}^2`
    Step("words", unwrap_words),                         # no `\text{` left for math-verify's unit stripper
    Step("remarks", trailing.remarks),                   # after `words`: `\text{ (about 19)}` = `(\text{about 19})`
    Step("bare-units", trailing.bare_units),             # after `remarks`: `5 cm (approx.)`
    Step("word-lists", lists.word_lists),                # after `words`: `\text{and}` is `and`
    Step("plus-minus", lists.plus_minus),                # after `word-lists` and every tail: clean elements
    Step("qualifiers", _protect_qualifiers),             # last rewrite that reads words
    Step("spacing", _spacing),
    Step("period", _period),                             # last: unwrapping may expose a final period
)


def normalize(answer: str) -> str:
    """The one normalisation for answers and golds: `STEPS` in order, run to a fixed point (unwrapping a
    unit can expose a period, removing a period can expose a whole-answer `$...$`)."""
    s = answer
    for _ in range(4):
        before = s
        for step in STEPS:
            s = step.apply(s)
        if s == before:
            break
    return s


_FRAC_RE = re.compile(r"\\[dtc]frac(?![A-Za-z])")
