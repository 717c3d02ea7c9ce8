"""Checks of a published export as it is read: every record's fields and their types, and that the
samples are the ones the scores were computed from.

The export is data committed to a repository: edited by hand, merged by git, cut short, or written by
another spsbench. Nothing of it is trusted: a record that is not an object (`null`), a missing field,
a field of the wrong type, an outcome spsbench does not know, a sample stored twice, and samples
removed from (or changed in) an export are each one StoreError naming the file, the line and the field,
before anything is shown.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from spsbench.errors import StoreError
from spsbench.grading import Outcome

Check = tuple[str, Callable[[Any], bool]]


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _opt(check: Check) -> Check:
    return (f"{check[0]} or null", lambda v: v is None or check[1](v))


TEXT: Check = ("text", lambda v: isinstance(v, str))
NAME: Check = ("non-empty text", lambda v: isinstance(v, str) and bool(v.strip()))
NAT: Check = ("an integer >= 0", lambda v: _int(v) and v >= 0)
POS: Check = ("an integer >= 1", lambda v: _int(v) and v >= 1)
INT: Check = ("an integer", _int)
NUM: Check = ("a finite number", _num)
OBJ: Check = ("an object", lambda v: isinstance(v, dict))
TEXTS: Check = ("a list of text", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v))
OUTCOME: Check = (f"one of {', '.join(o.value for o in Outcome)}",
                  lambda v: isinstance(v, str) and v in {o.value for o in Outcome})

# kind -> field -> (check, required). Optional fields may be missing (older exports lack them).
FIELDS: dict[str, dict[str, tuple[Check, bool]]] = {
    "evaluation": {"format": (POS, True), "model": (OBJ, True), "task": (NAME, True), "task_version": (NAME, True),
                   "grader_policy": (NAME, True), "sampling": (OBJ, True), "sampling_key": (NAME, True),
                   "n": (POS, True), "engine": (TEXT, True), "created_at": (_opt(TEXT), False),
                   "finished_at": (_opt(TEXT), False), "scored_problems": (_opt(TEXTS), False),
                   "run_info": (_opt(OBJ), False)},
    "model": {"path": (NAME, True), "weights_hash": (TEXT, True), "run_name": (_opt(NAME), False),
              "step": (_opt(NAT), False), "algo": (_opt(TEXT), False), "base_model": (_opt(TEXT), False),
              "in_project": (TEXTS, False), "name": (_opt(NAME), False), "base_name": (_opt(NAME), False)},
    "session": {"kind_of_run": (TEXT, True), "started_at": (TEXT, True), "engine": (TEXT, True), "n": (NAT, True),
                "provenance": (OBJ, True), "samples": (NAT, True), "min_idx": (_opt(NAT), True),
                "max_idx": (_opt(NAT), True), "last_at": (_opt(TEXT), True)},
    "score": {"metric": (NAME, True), "k": (NAT, True), "value": (NUM, True), "ci_low": (_opt(NUM), True),
              "ci_high": (_opt(NUM), True), "n": (POS, True)},
    "diagnostic": {"metric": (NAME, True), "value": (NUM, True), "details": (OBJ, True), "created_at": (TEXT, True)},
    "sample": {"problem_id": (NAME, True), "sample_idx": (NAT, True), "seed": (INT, True), "prompt": (TEXT, True),
               "completion": (TEXT, True), "prompt_tokens": (_opt(NAT), True), "completion_tokens": (_opt(NAT), True),
               "finish_reason": (_opt(TEXT), True), "extracted": (_opt(TEXT), True), "outcome": (OUTCOME, True),
               "created_at": (TEXT, True)},
    "external_grade": {"problem_id": (NAME, True), "sample_idx": (NAT, True), "source": (NAME, True),
                       "extracted": (_opt(TEXT), True), "verdict": (NAME, True)},
}


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def check_record(record: Any, where: str) -> dict[str, Any]:
    """`record` if it is an object of a known kind with every field of that kind well typed."""
    if not isinstance(record, dict):
        raise StoreError(f"{where}: expected a record (a JSON object), got {_show(record)}")
    kind = record.get("kind")
    if kind not in FIELDS or kind == "model":
        raise StoreError(f"{where}: kind: unknown record kind {kind!r} (known: "
                         f"{', '.join(k for k in FIELDS if k != 'model')})")
    check_fields(record, FIELDS[kind], where, "")
    if kind == "evaluation":
        check_fields(record["model"], FIELDS["model"], where, "model.")
    return record


def check_fields(record: dict[str, Any], fields: dict[str, tuple[Check, bool]], where: str, prefix: str) -> None:
    for name, ((expected, ok), required) in fields.items():
        if name not in record:
            if required:
                raise StoreError(f"{where}: {prefix}{name}: missing")
            continue
        if not ok(record[name]):
            raise StoreError(f"{where}: {prefix}{name}: expected {expected}, got {_show(record[name])}")


def check_samples(where: str, head: dict[str, Any], scores: list[tuple[int, dict[str, Any]]],
                  samples: list[tuple[int, dict[str, Any]]]) -> None:
    """Every (problem, sample) once, and the samples the avg@n score counts all present and giving it."""
    outcome: dict[tuple[str, int], str] = {}
    first: dict[tuple[str, int], int] = {}
    for line, s in samples:
        key = (s["problem_id"], s["sample_idx"])
        if key in first:
            raise StoreError(f"{where}:{line}: sample {key[1]} of problem {key[0]!r} is stored twice (first on line "
                             f"{first[key]})")
        first[key], outcome[key] = line, s["outcome"]
    avg = next(((line, s) for line, s in scores if s["metric"] == "avg@n"), None)
    if avg is None:
        return
    line, score = avg
    n = score["n"]
    listed = head.get("scored_problems")
    problems = sorted(listed) if listed is not None else sorted({p for p, _ in outcome})
    rates = []
    for problem in problems:
        present = sum((problem, i) in outcome for i in range(n))
        if present < n:
            raise StoreError(f"{where}: problem {problem!r} has {present} of the {n} samples its scores count "
                             f"(avg@n on line {line}): samples were removed from the export")
        rates.append(sum(outcome[problem, i] == Outcome.CORRECT for i in range(n)) / n)
    if rates and abs(sum(rates) / len(rates) - score["value"]) > 1e-9:
        raise StoreError(f"{where}:{line}: value: avg@n {score['value']!r} is not what the samples give "
                         f"({sum(rates) / len(rates)!r}): samples or scores were changed")
