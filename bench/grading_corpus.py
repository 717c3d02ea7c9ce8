"""The grading corpus (tests/grading_corpus/*.yaml: corpus.yaml holds the version, every other file more
cases): loading it, grading it with our policy and with
math-verify's own default policy, and the disagreements between the two by class.

Shared by tests/test_grading_corpus.py, bench/bench_grading_audit.py and bench/grading_report.py.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "grading_corpus" / "corpus.yaml"
OUTCOMES = ("correct", "incorrect", "no_answer", "grader_error")
_FIELDS = {"id", "class", "format", "grader", "gold", "expected", "why", "completion", "choices", "source"}


class CorpusError(ValueError):
    """A malformed corpus case (named by its id)."""


@dataclass(frozen=True)
class Case:
    id: str
    cls: str
    format: str
    grader: str
    gold: str
    expected: str
    why: str
    completion: str
    choices: tuple[str, ...] | None = None
    source: str = ""             # where the answer form comes from (a public grader, model outputs)


def load_corpus(path: Path = CORPUS) -> tuple[int, list[Case]]:
    """(corpus version, cases): `path` (which holds the version) and then every other `*.yaml` beside it,
    in name order; every case is checked: known fields, a verdict, a reason, an id unique across files."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    cases = [_case(raw) for raw in doc["cases"]]
    for extra in sorted(p for p in path.parent.glob("*.yaml") if p != path):
        more = yaml.safe_load(extra.read_text(encoding="utf-8"))
        if set(more) != {"cases"}:
            raise CorpusError(f"{extra.name}: holds only `cases` (the version is {path.name}'s)")
        cases += [_case(raw) for raw in more["cases"]]
    ids = Counter(c.id for c in cases)
    if dupes := [i for i, n in ids.items() if n > 1]:
        raise CorpusError(f"duplicate corpus ids: {dupes}")
    return int(doc["version"]), cases


def _case(raw: dict) -> Case:
    name = raw.get("id", "?")
    if unknown := set(raw) - _FIELDS:
        raise CorpusError(f"corpus case {name}: unknown fields {sorted(unknown)}")
    if raw.get("expected") not in OUTCOMES:
        raise CorpusError(f"corpus case {name}: expected must be one of {OUTCOMES}, got {raw.get('expected')!r}")
    if not str(raw.get("why", "")).strip():
        raise CorpusError(f"corpus case {name}: every case says why its verdict is right")
    choices = tuple(str(c) for c in raw["choices"]) if raw.get("choices") else None
    return Case(str(raw["id"]), str(raw["class"]), str(raw["format"]), str(raw.get("grader", "math")),
                str(raw["gold"]), str(raw["expected"]), str(raw["why"]), str(raw["completion"]), choices,
                str(raw.get("source", "")))


def grade_ours(cases: list[Case]) -> list[str]:
    """Our strict default policy, in this process (math-verify via `spsbench.grading.grade`)."""
    from spsbench.grading import grade

    return [grade(c.completion, c.gold, kind=c.grader, choices=c.choices).outcome.value for c in cases]


def grade_math_verify_default(cases: list[Case]) -> list[str]:
    """math-verify 0.9's own default policy: plain `parse(completion)` and `verify(parse(gold), ...)` with
    every default (its own extraction priorities and 5 s SIGALRM timeouts; main thread only). The gold is
    wrapped in `$...$` unless it has its own delimiters (math-verify needs them, see docs/grading.md)."""
    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    out = []
    for c in cases:
        gold = parse(c.gold if "$" in c.gold else f"${c.gold}$")
        pred = parse(c.completion)
        out.append("no_answer" if not pred else "correct" if verify(gold, pred) else "incorrect")
    return out


def verdict_class(expected: str, got: str) -> str:
    """How a verdict relates to the expected one (a false positive credits an answer that is not right)."""
    if got == expected:
        return "agree"
    if got == "correct":
        return "false positive"
    if expected == "correct":
        return "false negative"
    if expected == "grader_error":
        return "error not reported"
    return "no_answer vs incorrect"


def disagreements(cases: list[Case], ours: list[str], theirs: list[str]) -> dict[str, Counter]:
    """Per corpus class: how math-verify's default verdicts relate to the expected ones where ours agree."""
    table: dict[str, Counter] = {}
    for case, mine, other in zip(cases, ours, theirs, strict=True):
        if mine != other:
            table.setdefault(case.cls, Counter())[verdict_class(case.expected, other)] += 1
    return table
