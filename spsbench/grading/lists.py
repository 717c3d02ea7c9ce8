"""Steps of the normalisation policy for answers that name several values: word lists (`2, 3, and 5`)
and ± (`\\frac{1\\pm\\sqrt5}{2}`). Each function is one named step of `normalize.STEPS` (order and
reasons there and in docs/grading.md); each is pure, linear-time and a no-op on its own output.

Measured on math-verify 0.9.0: `2,\\ 3,\\ \\text{and}\\ 5` was 5 (the spacing after the commas and the
`and` left an empty element, and only the last survived); `\\frac{1\\pm\\sqrt5}{2}` did not parse as
two values (it handles a leading `\\pm 2` and `1 \\pm \\sqrt2`, not a ± inside a fraction or a root).
"""

from __future__ import annotations

import itertools
import re

from spsbench.grading.trailing import QUALIFIERS

# --- lists written with words and spacing (class word-list) ------------------------------------------

_SPACE = r"(?:\s|\\[,;:! ]|~|\\q?quad(?![A-Za-z]))"
_COMMA_RE = re.compile(r"(?<!\{)," + _SPACE + "+")
_COMMA_WORD_RE = re.compile(r",\s*(?:and|or)" + _SPACE + r"+(?=(?P<next>[A-Za-z]+)?)")
# A qualifier after `, or` is part of the value (`1, or more`): that comma and word stay.
_QUALIFIERS = QUALIFIERS | {"fewer", "greater"}


def word_lists(s: str) -> str:
    """`2,\\ 3,\\ \\text{and}\\ 5` -> `2, 3, 5`: spacing commands after a list comma become one space
    and `, and` / `, or` one comma (after `\\text{}` is unwrapped). `2 or more` keeps its words: a
    qualifier after the word is part of the value."""
    if "," not in s:
        return s
    s = _COMMA_RE.sub(", ", s)
    return _COMMA_WORD_RE.sub(lambda m: m.group() if (m.group("next") or "").lower() in _QUALIFIERS else ", ", s)

# --- plus or minus (class plus-minus) ----------------------------------------------------------------

_PM_RE = re.compile(r"\\pm(?![A-Za-z])|\\mp(?![A-Za-z])|[±∓]")
MAX_SIGNS = 3        # 2^3 values from one element; more is not an answer form


def plus_minus(s: str) -> str:
    """`\\frac{1\\pm\\sqrt5}{2}` -> `\\{\\frac{1+\\sqrt5}{2}, \\frac{1-\\sqrt5}{2}\\}`: each element of the
    answer (its top-level commas; inside a whole `\\{...\\}` too) with ± stands for every sign choice.
    Several ± in one element are independent (`\\pm1\\pm i` is four values, the roots of x^4+4) unless
    it has a ∓, which ties them (`a \\pm b \\mp c` is two). Against a gold that names one of the values
    the answer is incorrect: it offers two."""
    if not _PM_RE.search(s):
        return s
    body = s.strip()
    if body.startswith("\\{") and body.endswith("\\}"):
        body = body[2:-2]
    values: list[str] = []
    for element in split_top_level(body):
        expanded = _expand(element.strip())
        if expanded is None:
            return s
        values += [v for v in expanded if v not in values]
    return "\\{" + ", ".join(values) + "\\}"


def _expand(element: str) -> list[str] | None:
    signs = list(_PM_RE.finditer(element))
    if not signs:
        return [element]
    if len(signs) > MAX_SIGNS:
        return None
    tied = any(m.group() in ("\\mp", "∓") for m in signs)
    choices = [(1,), (-1,)] if tied else list(itertools.product((1, -1), repeat=len(signs)))
    out = []
    for choice in choices:
        parts, pos = [], 0
        for k, m in enumerate(signs):
            sign = choice[0] if tied else choice[k]
            if m.group() in ("\\mp", "∓"):
                sign = -sign
            parts += [element[pos:m.start()], "+" if sign > 0 else "-"]
            pos = m.end()
        parts.append(element[pos:])
        out.append("".join(parts))
    return out


def split_top_level(s: str) -> list[str]:
    """`s` split at commas outside every bracket (`(`, `[`, `{`, `\\{`, `\\left(`...)."""
    parts, depth, start, j = [], 0, 0, 0
    while j < len(s):
        ch = s[j]
        if ch == "\\" and j + 1 < len(s) and s[j + 1] in "{}":
            depth += 1 if s[j + 1] == "{" else -1
            j += 2
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(s[start:j])
            start = j + 1
        j += 1
    parts.append(s[start:])
    return parts
