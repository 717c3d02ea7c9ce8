"""The false-positive audit's pairs: sympy-generated answers rendered in several equivalent LaTeX styles
(upright constants, `\\dfrac`, thousands separators, spacing, other algebraic forms) and as near misses
(a sign flipped, a constant changed, a term dropped or added), each checked numerically to be equal or
not, then written in a real output format. Scored by grading each (completion, gold) pair.

Shared by bench/bench_grading_audit.py (>= 10,000 pairs), bench/grading_report.py and the seeded fast
test in tests/test_grading_corpus.py.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field

import sympy as sp

X = sp.Symbol("x")
_FORMATS = (
    "Therefore, the final answer is $\\boxed{{{a}}}$.",
    "<think>\nLet me verify once more.\n</think>\n\n**Final Answer**\n\\[\n\\boxed{{{a}}}\n\\]",
    "Final Answer: The final answer is ${a}$. I hope it is correct.",
    "**Answer:** ${a}$",
    "\\[ \\boxed{{{a}}} \\]",
    "Final Answer: The value is ${a}$.",
    "So the answer is {a}.",
    "Thus, the answer is \\(\\boxed{{{a}}}\\). I hope this helps.",
)


@dataclass(frozen=True)
class Pair:
    gold: str
    completion: str
    equivalent: bool
    family: str          # what was generated: integer, rational, radical, pi, e, complex, polynomial, ...
    variant: str         # the rendering style (equivalent) or the near-miss kind


@dataclass
class Score:
    positives: int = 0
    negatives: int = 0
    false_positives: list[Pair] = field(default_factory=list)
    false_negatives: list[tuple[Pair, str]] = field(default_factory=list)

    @property
    def fp_rate(self) -> float:
        return len(self.false_positives) / max(1, self.negatives)

    @property
    def fn_rate(self) -> float:
        return len(self.false_negatives) / max(1, self.positives)

    def classes(self) -> Counter:
        """Failures by (kind, family, variant): each such class becomes a corpus case."""
        out = Counter(("false positive", p.family, p.variant) for p in self.false_positives)
        out.update(("false negative", p.family, p.variant) for p, _ in self.false_negatives)
        return out


# --- expressions -------------------------------------------------------------------------------------

def _nz(rng: random.Random, lo: int, hi: int) -> int:
    return rng.choice([v for v in range(lo, hi + 1) if v != 0])


def _expression(rng: random.Random) -> tuple[str, sp.Expr]:
    family = rng.choice(("integer", "big-integer", "rational", "radical", "pi", "e", "e-term", "complex",
                         "polynomial", "decimal"))
    a, b, c = _nz(rng, -9, 9), _nz(rng, 1, 9), rng.choice((2, 3, 5, 6, 7))
    exprs = {
        "integer": lambda: sp.Integer(rng.randint(-999, 999)),
        "big-integer": lambda: sp.Integer(rng.randint(1000, 99_999_999)),
        "rational": lambda: sp.Rational(a, rng.choice((2, 3, 4, 5, 7, 8, 9, 12))),
        "radical": lambda: a + b * sp.sqrt(c),
        "pi": lambda: sp.Rational(a, rng.choice((1, 2, 3, 4, 6))) * sp.pi,
        "e": lambda: a * sp.E ** rng.choice((2, 3, -1, sp.Rational(1, 2))),
        "e-term": lambda: a + sp.Rational(b, 1) / sp.E,
        "complex": lambda: a + b * sp.I,
        "polynomial": lambda: a * X**2 + b * X + _nz(rng, -9, 9),
        "decimal": lambda: sp.Rational(rng.randint(1, 9999), 100),
    }
    return family, exprs[family]()


# --- renderings --------------------------------------------------------------------------------------

def _latex(expr: sp.Expr) -> str:
    return sp.latex(expr, imaginary_unit="i")


def _upright(tex: str) -> str:
    tex = re.sub(r"(?<![A-Za-z\\])e(?![A-Za-z])", r"\\mathrm{e}", tex)
    tex = re.sub(r"(?<![A-Za-z\\])i(?![A-Za-z])", r"\\mathrm{i}", tex)
    return tex.replace("\\pi", "\\mathrm{\\pi}")


def _separated(tex: str, sep: str) -> str:
    """Every integer of 4+ digits written with `sep` between 3-digit groups."""
    def group(m: re.Match) -> str:
        digits = m.group()
        head = len(digits) % 3 or 3
        return sep.join([digits[:head]] + [digits[i:i + 3] for i in range(head, len(digits), 3)])
    return re.sub(r"(?<![\d.])\d{4,}(?![\d.])", group, tex)


STYLES = {
    "plain": _latex,
    "dfrac": lambda e: _latex(e).replace("\\frac", "\\dfrac"),
    "upright": lambda e: _upright(_latex(e)),
    "rm-group": lambda e: re.sub(r"(?<![A-Za-z\\])e(?![A-Za-z])", r"{\\rm e}", _latex(e)),
    "operatorname": lambda e: re.sub(r"(?<![A-Za-z\\])e(?![A-Za-z])", r"\\operatorname{e}", _latex(e)),
    "spaced": lambda e: re.sub(r"([+\-=])", r" \1 ", _latex(e)).replace("\\frac", "\\, \\frac"),
    "expanded": lambda e: _latex(sp.expand(e)),
    "factored": lambda e: _latex(sp.factor(e)),
    "comma-sep": lambda e: _separated(_latex(e), ","),
    "brace-comma-sep": lambda e: _separated(_latex(e), "{,}"),
    "thin-sep": lambda e: _separated(_latex(e), "\\,"),
    "bang-sep": lambda e: _separated(_latex(e), ",\\! "),
    "space-sep": lambda e: _separated(_latex(e), " "),
    "tilde-sep": lambda e: _separated(_latex(e), "~"),
    "dot-sep": lambda e: _separated(_latex(e), ".") if e.is_Integer and abs(e) >= 10**6 else _latex(e),
    "cdot": lambda e: re.sub(r"(\d) (\\sqrt|\\pi|e|i|x)", r"\1 \\cdot \2", _latex(e)),
    "exp": lambda e: re.sub(r"(?<![A-Za-z\\])e\^\{([^{}]*)\}", r"\\exp(\1)", _latex(e)),
    "left-right": lambda e: f"\\left( {_latex(e)} \\right)",
    "unicode-minus": lambda e: _latex(e).replace("-", "\u2212"),
    "decimal": lambda e: _decimal(e),
    "unit": lambda e: f"{_latex(e)}\\text{{ cm}}" if e.is_Integer else _latex(e),
    "degrees": lambda e: f"{_latex(e)}^\\circ" if e.is_Integer else _latex(e),
    "slash": lambda e: f"{e.p}/{e.q}" if e.is_Rational and not e.is_Integer else _latex(e),
    # round 2 (x=5): the answer forms of docs/grading.md's later classes
    "mixed": lambda e: _mixed(e, slash=False),
    "mixed-slash": lambda e: _mixed(e, slash=True),
    "repeating": lambda e: _repeating(e),
    "approx": lambda e: _approx(e, "{x} \\approx {v}"),
    "approx-paren": lambda e: _approx(e, "{x}\\quad(\\approx {v})"),
    "braceless": lambda e: re.sub(r"\\frac\{(\\?[A-Za-z]+|\d)\}\{(\\?[A-Za-z]+|\d)\}", _braceless, _latex(e)),
    "sized": lambda e: f"\\bigl( {_latex(e)} \\bigr)",
}


def _mixed(e: sp.Expr, slash: bool) -> str:
    """A rational beyond 1 as a mixed number: `2\\frac{1}{3}` or `2 1/3` (sign in front)."""
    if not (e.is_Rational and not e.is_Integer and abs(e) > 1):
        return _latex(e)
    whole, rest = divmod(abs(e.p), e.q)
    sign = "-" if e < 0 else ""
    return f"{sign}{whole} {rest}/{e.q}" if slash else f"{sign}{whole}\\frac{{{rest}}}{{{e.q}}}"


def _repeating(e: sp.Expr) -> str:
    """A rational whose decimal repeats, with `\\overline` on the period (`\\frac{7}{12}` -> `0.58\\overline{3}`)."""
    if not (e.is_Rational and not e.is_Integer) or set(sp.factorint(e.q)) <= {2, 5}:
        return _latex(e)
    whole, rest = divmod(abs(e.p), e.q)
    digits: list[str] = []
    seen: dict[int, int] = {}
    while rest and rest not in seen:
        seen[rest] = len(digits)
        digits.append(str(rest * 10 // e.q))
        rest = rest * 10 % e.q
    start = seen.get(rest, len(digits))
    if len(digits) - start > 12:
        return _latex(e)
    sign = "-" if e < 0 else ""
    return f"{sign}{whole}.{''.join(digits[:start])}\\overline{{{''.join(digits[start:])}}}"


def _approx(e: sp.Expr, form: str) -> str:
    """The exact value followed by a 4-digit approximation (real values that are not integers)."""
    if e.is_Integer or e.free_symbols or not e.is_real:
        return _latex(e)
    return form.format(x=_latex(e), v=f"{float(sp.N(e)):.4g}")


def _braceless(m: re.Match) -> str:
    """`\\frac{1}{2}` -> `\\frac12`, `\\frac{\\pi}{3}` -> `\\frac\\pi3`, `\\frac{3}{\\pi}` -> `\\frac3\\pi`."""
    out = "\\frac"
    for token in m.groups():
        if token[0].isalpha() and len(token) > 1:
            return m.group()                  # a word is not one TeX token
        out += (" " if out[-1].isalpha() and token[0].isalpha() else "") + token
    return out


def _decimal(e: sp.Expr) -> str:
    """A terminating rational as a decimal (`\\frac{759}{25}` -> `30.36`); anything else unchanged."""
    if e.is_Rational and not e.is_Integer and set(sp.factorint(e.q)) <= {2, 5}:
        return str(sp.N(e, 30)).rstrip("0")
    return _latex(e)


def _style(rng: random.Random, expr: sp.Expr) -> str:
    """A style that changes how this expression is written (plain when none does)."""
    plain = _latex(expr)
    return rng.choice([name for name, render in STYLES.items() if render(expr) != plain] or ["plain"])
GOLD_STYLES = ("plain", "plain", "plain", "any")      # datasets mostly write plain golds, some not


# --- near misses -------------------------------------------------------------------------------------

def _near_misses(rng: random.Random, expr: sp.Expr) -> dict[str, sp.Expr]:
    out = {"sign": -expr, "constant": expr + rng.choice((1, -1, 2)), "scaled": expr * rng.choice((2, 3))}
    terms = sp.Add.make_args(sp.expand(expr))
    if len(terms) > 1:
        dropped = rng.randrange(len(terms))
        out["term-dropped"] = sp.Add(*[t for i, t in enumerate(terms) if i != dropped])
        out["term-sign"] = sp.Add(*[-t if i == dropped else t for i, t in enumerate(terms)])
    if expr.has(sp.E):
        out["e-to-pi"] = expr.subs(sp.E, sp.pi)
    if expr.is_Integer and abs(expr) >= 1000:
        out["digit"] = expr + 10 ** rng.randrange(len(str(abs(expr))) - 1)
    return {k: v for k, v in out.items() if _differs(v, expr)}


def _differs(a: sp.Expr, b: sp.Expr) -> bool:
    """Numerically different at several points, by far more than math-verify's 6-decimal rounding."""
    for point in (0.37, 1.9, -2.3):
        va, vb = complex(sp.N(a.subs(X, point))), complex(sp.N(b.subs(X, point)))
        if abs(va - vb) > 1e-3 * max(1.0, abs(vb)):
            return True
    return False


def audit_pairs(n: int, seed: int = 0) -> list[Pair]:
    """About n pairs, half equivalent renderings and half near misses, reproducible from the seed."""
    rng = random.Random(seed)
    pairs: list[Pair] = []
    while len(pairs) < n:
        family, expr = _expression(rng)
        gold_style = rng.choice(GOLD_STYLES)
        gold = STYLES[_style(rng, expr) if gold_style == "any" else gold_style](expr)
        wrap = rng.choice(_FORMATS)
        style = _style(rng, expr)
        pairs.append(Pair(gold, wrap.format(a=STYLES[style](expr)), True, family, style))
        misses = _near_misses(rng, expr)
        if misses:
            kind = rng.choice(sorted(misses))
            miss_style = _style(rng, misses[kind])
            answer = STYLES[miss_style](misses[kind])
            pairs.append(Pair(gold, wrap.format(a=answer), False, family, f"{kind}/{miss_style}"))
            if kind == "term-dropped":      # and the other way round: an extra term must not be cut off
                pairs.append(Pair(_latex(misses[kind]), wrap.format(a=STYLES[style](expr)), False, family,
                                  f"term-added/{style}"))
    return pairs[:n]


def score_pairs(pairs: list[Pair], grade_ours_in_process: bool = False, workers: int = 2) -> Score:
    """Grade every pair with our default policy (in this process, or in a GraderPool) and score it."""
    from spsbench.grading import GradeRequest, GraderPool, grade

    if grade_ours_in_process:
        grades = [grade(p.completion, p.gold) for p in pairs]
    else:
        with GraderPool(workers=workers) as pool:
            grades = pool.grade_many([GradeRequest(p.completion, p.gold) for p in pairs])
    score = Score()
    for pair, g in zip(pairs, grades, strict=True):
        if pair.equivalent:
            score.positives += 1
            if not g.correct:
                score.false_negatives.append((pair, f"{g.outcome.value}: {g.detail[:100]}"))
        else:
            score.negatives += 1
            if g.correct:
                score.false_positives.append(pair)
    return score
