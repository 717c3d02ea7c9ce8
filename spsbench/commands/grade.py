"""`spsbench grade`: grade one completion (or a JSONL batch) and show the extracted answer and outcome.

The tool for "why was this marked wrong?": it runs the exact grader and policy evaluation uses.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any

from spsbench.commands.selection import output
from spsbench.errors import SpsbenchError
from spsbench.grading import GRADERS, GradeRequest, GraderPool, GradingPolicy
from spsbench.validate import decode, one_line_gold, output_file, read_text
from spsbench.validate import number as check_number

HELP = "Grade one completion (FILE or stdin) against --gold, or a JSONL batch with --jsonl."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", default="-", metavar="FILE",
                        help="Text file holding one completion ('-' or nothing: stdin).")
    parser.add_argument("--gold", help="Gold answer (LaTeX for math, a letter for mc).")
    parser.add_argument("--kind", choices=tuple(GRADERS), default="math", help="Grader (default: math).")
    parser.add_argument("--choices", metavar="N|JSON",
                        help="mc: number of options (e.g. 4) or a JSON list of option texts.")
    parser.add_argument("--jsonl", metavar="FILE",
                        help="Batch mode: one JSON object per line with completion, gold, optional kind, choices.")
    parser.add_argument("--out", metavar="FILE", help="Batch mode: write results here (default: stdout).")
    parser.add_argument("--lenient", action="store_true",
                        help="Fall back to math-verify's own extraction (may take the last number).")
    parser.add_argument("--timeout", type=float, default=5,
                        help="Per-sample limit in seconds, fractions allowed (default: 5); a timed-out answer "
                             "is retried once with twice the limit before it counts as grader_timeout.")
    parser.add_argument("--workers", type=int, default=2, help="Grader worker processes (default: 2).")
    parser.add_argument("--json", action="store_true", help="Single mode: print the result as one JSON line.")


def run(args: argparse.Namespace) -> int:
    check_number("--timeout", args.timeout, low=0, low_open=True)
    policy = GradingPolicy(strict=not args.lenient, timeout_s=args.timeout)
    if args.workers < 1:
        raise SpsbenchError(f"--workers must be >= 1, got {args.workers}")
    if args.out:
        output_file(args.out, "--out")
    if args.jsonl:
        return _run_batch(args, policy)
    if args.gold is None:
        raise SpsbenchError("--gold is required to grade one completion (or use --jsonl FILE)")
    one_line_gold("--gold", args.gold, error=SpsbenchError)
    completion = _read_text(args.file)
    choices = _parse_choices(args.choices, "--choices")
    return _run_one(completion, args.gold, args.kind, choices, policy, args.json)


def _read_text(path: str) -> str:
    if path == "-":
        raw = getattr(sys.stdin, "buffer", None)          # bytes when it is a real stream: decode ourselves
        return decode(raw.read(), "<stdin>", "input", error=SpsbenchError) if raw else sys.stdin.read()
    return read_text(path, "input", error=SpsbenchError)


def _parse_choices(value: Any, where: str) -> tuple[str, ...] | None:
    """`4` -> four placeholder options (only the count matters for letters); a JSON list -> its texts."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise SpsbenchError(f"{where}: expected a number or a JSON list, got {value!r}") from exc
    if isinstance(value, int) and not isinstance(value, bool) and 2 <= value <= 26:
        return tuple(f"option {i + 1}" for i in range(value))
    if isinstance(value, list) and 2 <= len(value) <= 26:
        return tuple(str(v) for v in value)
    raise SpsbenchError(f"{where}: choices must be a count in 2..26 or a list of 2..26 options, got {value!r}")


def _run_one(completion: str, gold: str, kind: str, choices, policy, as_json: bool) -> int:
    with GraderPool(workers=1, policy=policy) as pool:    # a pool, so a pathological answer cannot hang
        result = pool.grade(GradeRequest(completion, gold, kind, choices))
    if as_json:
        print(json.dumps({"outcome": result.outcome.value, "extracted": result.extracted,
                          "detail": result.detail, "policy": policy.id()}))
        return 0
    print(f"outcome:   {result.outcome.value}")
    print(f"extracted: {result.extracted if result.extracted is not None else '(none)'}")
    print(f"gold:      {gold}")
    print(f"detail:    {result.detail}")
    print(f"policy:    {policy.id()}")
    return 0


def _load_jsonl(path: str) -> list[dict[str, Any]]:
    """Parse and validate every line first, so a typo on line 900 fails before any grading."""
    name = "<stdin>" if path == "-" else path
    rows = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SpsbenchError(f"{name}:{number}: not valid JSON ({exc.msg})") from exc
        rows.append(_check_row(row, f"{name}:{number}"))
    if not rows:
        raise SpsbenchError(f"{name}: no JSON lines to grade")
    return rows


def _check_row(row: Any, where: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise SpsbenchError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for key in ("completion", "gold"):
        if key not in row:
            raise SpsbenchError(f"{where}: missing field {key!r}")
    if not isinstance(row["completion"], str):
        raise SpsbenchError(f"{where}: field 'completion' must be a string")
    if not isinstance(row["gold"], (str, int, float)) or isinstance(row["gold"], bool):
        raise SpsbenchError(f"{where}: field 'gold' must be a string or a number")
    one_line_gold(f"{where}: field 'gold'", str(row["gold"]), error=SpsbenchError)
    if row.get("kind", "math") not in GRADERS:
        raise SpsbenchError(f"{where}: field 'kind' must be {' or '.join(map(repr, GRADERS))}, got {row['kind']!r}")
    row["_choices"] = _parse_choices(row.get("choices"), f"{where}: field 'choices'")
    return row


def _run_batch(args: argparse.Namespace, policy) -> int:
    rows = _load_jsonl(args.jsonl)
    requests = [GradeRequest(r["completion"], str(r["gold"]), r.get("kind", "math"), r["_choices"]) for r in rows]
    with GraderPool(workers=args.workers, policy=policy) as pool:
        grades = pool.grade_many(requests, progress=sys.stderr.isatty())
        stats = dict(pool.stats)
    with output(args.out) as out:          # a file-size limit or a full disk: the --out file whole or untouched
        for row, result in zip(rows, grades, strict=True):
            record = {k: v for k, v in row.items() if k not in ("completion", "_choices")}
            record.update(outcome=result.outcome.value, extracted=result.extracted, detail=result.detail)
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    counts = Counter(g.outcome.value for g in grades)
    summary = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    print(f"graded {len(grades)} ({summary}); cache hits {stats['cache_hits']}, timeouts {stats['timeouts']} "
          f"(after {stats['retries']} retries), restarts {stats['restarts']}; policy {policy.id()}", file=sys.stderr)
    return 0
