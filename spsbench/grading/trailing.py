"""Steps of the normalisation policy for what models write after the value: an approximation, a
remark in parentheses, a number word, a unit without `\\text{}`. Each function is one named step of
`normalize.STEPS` (order and reasons there and in docs/grading.md); each is pure, linear-time and a
no-op on its own output.

Measured on math-verify 0.9.0: `\\frac{\\sqrt3}{2}\\quad(\\approx 0.866)` was graded as 0.866 (so it
equalled a gold 0.866: a false positive); `19\\text{ (about 19 cards)}` became `19*a*b*o*u*t*19*...`;
`3\\text{ million}` lost `million` as a unit and equalled 3 (a false positive); `10 cm^2` was
`10*c*m**2` and `3 weeks` a product of letters.
"""

from __future__ import annotations

import re

from spsbench.grading.sentence import MATH_WORDS

# Words that qualify the value (`2 \\text{ or more}` is not 2): never a unit, never a remark. math-verify's own
# unit list drops some of them at the end (`more`, `less`, `increase`, `loss`, ...).
QUALIFIERS = frozenset("not no more less than least most only if when for except all none any every each at "
                       "increase decrease loss gain profit rise excess".split())
_SPACING = r"(?:\s|\\[,;:! ]|~|\\q?quad(?![A-Za-z]))"

# --- an exact value followed by an approximation (class approximation) -------------------------------

_APPROX_RE = re.compile(r"\\approx(?![A-Za-z])|\u2248|\\thickapprox(?![A-Za-z])|\\simeq(?![A-Za-z])")
_OPENERS = ("\\left(", "(", "\\text{(", "\\text{ (", ",", ";")
_SPACING_TOKENS = ("\\qquad", "\\quad", "\\,", "\\;", "\\:", "\\!", "\\ ", "~")
# What only names the quantity (`x`, `A =`, `P(X)=`): the approximation is then the value itself.
_NAME_ONLY_RE = re.compile(r"\s*(?:[A-Za-z](?:_\{?\w+\}?)?(?:\([^()]*\))?\s*=?|.*=)\s*")
_ELLIPSIS_TAIL_RE = re.compile(r"=\s*-?\d*\.\d+\s*(?:\\ldots|\\dots|\\cdots|\.\.\.|…)\s*$")


def approximations(s: str) -> str:
    """`\\frac{\\sqrt3}{2} \\approx 0.866`, `\\frac{\\sqrt3}{2}\\quad(\\approx 0.866)`, `\\sqrt2 = 1.414\\ldots`
    -> the exact value. The approximation is kept only when nothing but a name precedes it
    (`x \\approx 0.33` is 0.33). A decimal gold therefore meets the exact value, never its rounding
    (rounding depends on the problem: the strict reading, docs/grading.md)."""
    if "\\" not in s and "\u2248" not in s and "..." not in s:
        return s
    s = _ELLIPSIS_TAIL_RE.sub("", s).rstrip() if "=" in s else s
    m = _APPROX_RE.search(s)
    if m is None:
        return s
    value = rstrip_spacing(s[:m.start()])
    opener = next((o for o in _OPENERS if value.endswith(o)), "")
    value = rstrip_spacing(value[:len(value) - len(opener)])
    if not value.strip() or _NAME_ONLY_RE.fullmatch(value):
        return s
    return value.rstrip()


def rstrip_spacing(s: str) -> str:
    """`s` without trailing spaces and spacing commands (`\\quad`, `\\,`, `\\ `, `~`, ...). Linear: a regex
    anchored at `$` would be tried from every position of a long run of spacing."""
    while True:
        s = s.rstrip()
        if s.endswith("\\") and not s.endswith("\\\\"):
            s = s[:-1]                              # `\ `: rstrip took its space
            continue
        token = next((t for t in _SPACING_TOKENS if s.endswith(t) and not s.endswith("\\" + t)), None)
        if token is None:
            return s
        s = s[:-len(token)]


# --- number words (class number-words) ---------------------------------------------------------------

_SCALE = {"hundred": "10^{2}", "thousand": "10^{3}", "million": "10^{6}", "billion": "10^{9}",
          "trillion": "10^{12}", "dozen": "12"}
_NUMBER_WORD_RE = re.compile(
    r"(?<![\d.])(?P<num>\d+(?:\.\d+)?)(?P<sp>" + _SPACING + r"*)(?P<open>\\(?:text|mathrm|textrm|mbox)\s*\{\s*)?"
    r"(?P<word>hundred|thousand|million|billion|trillion|dozen)s?(?![A-Za-z])", re.IGNORECASE)


def number_words(s: str) -> str:
    """`3\\text{ million}`, `2.5 billion`, `3 dozen` -> `3\\times 10^{6}`, ...: a number word scales
    the number. The unit stripper (ours and math-verify's) used to drop `million` and credit 3."""
    if not re.search(r"(?i)hundred|thousand|million|billion|trillion|dozen", s):
        return s
    return _NUMBER_WORD_RE.sub(_scaled, s)


def _scaled(m: re.Match) -> str:
    rest = m.group("open") or ""            # `\text{ million dollars}`: the rest of the group stays open
    return f"{m.group('num')}\\times {_SCALE[m.group('word').lower()]}" + (rest and "\\text{")


# --- a remark in parentheses after the value (class remark) ------------------------------------------

# Words that make a parenthesis part of the value (`5 (or 6)`, `2 (or more)`): never a remark.
_VALUE_WORDS = QUALIFIERS | frozenset("or and fewer greater smaller larger".split())
_KEEPS = _VALUE_WORDS | frozenset("plus minus times mod modulo".split())
_WORD_RE = re.compile(r"[A-Za-z]+")
_COMMAND_RE = re.compile(r"\\[A-Za-z]+")


def remarks(s: str) -> str:
    """`19 (about 19 cards)`, `\\frac{1}{2} (simplified)` -> the value: a parenthesis at the end that
    holds prose (a word of 3+ letters that is not a math word) is a remark about the value. When it
    holds `or`, `and` or a qualifier (`more`, `less`, `at`, ...), it is part of the value: its brackets
    go and its words stay (`2 (or more)` -> `2 or more`, which is not 2: math-verify read `2 (or more)`
    as 2). With `mod`, `plus`, `times`, ... it is math and stays as written (`x (mod 7)`). Not after a letter (`f(about)` is an argument; `5 cm (approx.)` is a remark). Runs after `\\text{}` is unwrapped, so both `19\\text{ (about 19 cards)}`
    and `19 (\\text{about 19 cards})` are seen as `19 (about 19 cards)`."""
    s = s.rstrip()
    if not s.endswith(")"):
        return s
    open_at = _opening_paren(s)
    if open_at is None:
        return s
    head = rstrip_spacing(s[:open_at])
    words = [w.lower() for w in _WORD_RE.findall(_COMMAND_RE.sub(" ", s[open_at + 1:-1]))]
    prose = any(len(w) >= 3 and w not in MATH_WORDS for w in words)
    if not head or s[open_at - 1].isalpha():
        return s                                        # `f(about)`: an argument, not a remark
    if any(w in _VALUE_WORDS for w in words):
        return f"{head} {s[open_at + 1:-1].strip()}"    # `2 (or more)` -> `2 or more`: the qualifier stays
    return head if prose and not any(w in _KEEPS for w in words) else s


def _opening_paren(s: str) -> int | None:
    depth = 0
    for j in range(len(s) - 1, -1, -1):
        depth += (s[j] == ")") - (s[j] == "(")
        if depth == 0:
            return j
    return None


# --- units written without \text{} (class bare-units) ------------------------------------------------

UNIT_WORDS = frozenset("""
cm mm km m2 kg mg ml mL ft yd hr hrs mph kph kmh min mins sec secs sq cu oz lb lbs mi
inch inches foot feet yard yards mile miles meter meters metre metres centimeter centimeters
millimeter millimeters kilometer kilometers gram grams kilogram kilograms pound pounds ounce ounces
liter liters litre litres gallon gallons second seconds minute minutes hour hours day days week weeks
month months year years degree degrees radian radians dollar dollars cent cents unit units square
cubic men cup cups
""".split())
_LETTER_UNITS = frozenset("m s g h L".split())     # a single letter only as the second half of `km/h`
_BARE_TAIL_RE = re.compile(
    r"(?<=[\d})])(?P<tail>(?:\s+[A-Za-z]{1,14}(?:\s*/\s*[A-Za-z]{1,6})?){1,3})"
    r"(?:\s*\^\s*(?:\{\s*-?\d\s*\}|-?\d))?\s*$")


def bare_units(s: str) -> str:
    """`10 cm^2`, `3 weeks`, `5 km/h`, `12 apples` -> the number: words after a number at the end of
    the answer, each a unit (`cm`, `hours`, ...) or a word of 4+ letters that is not a math word,
    qualifier or function name (`12 or more`, `2 pi`, `3 sin` are kept). Units are dropped, never
    converted: `3 weeks` against 21 is incorrect (the unit the gold means is the problem's)."""
    m = _BARE_TAIL_RE.search(s)
    if m is None or not _all_unit_words(m.group("tail")):
        return s
    return s[:m.start()].rstrip()


def _all_unit_words(tail: str) -> bool:
    for part in tail.split():
        for i, word in enumerate(part.split("/")):
            w = word.strip()
            if not w or not (w in UNIT_WORDS or (i and w in _LETTER_UNITS) or _noun(w)):
                return False
    return True


def _noun(word: str) -> bool:
    """A word of 4+ letters that is no math word, qualifier, or function name (`sinx` is sin x)."""
    w = word.lower()
    return (len(w) >= 4 and w not in MATH_WORDS and w not in _KEEPS and w not in _NOT_NOUNS
            and not w.startswith(_FUNCTION_PREFIXES))


_FUNCTION_PREFIXES = ("sin", "cos", "tan", "cot", "sec", "csc", "log", "exp", "sqrt", "arc", "lim", "det")


# Words a trailing run must not drop: qualifiers and function names without their backslash.
_NOT_NOUNS = frozenset("only none each every except sqrt frac sinh cosh tanh arcsin arccos arctan "
                       "exact exactly approximately about roughly nearly".split())
