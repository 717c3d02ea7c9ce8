"""`spsbench crosscheck evalscope`: have EvalScope review our stored samples and compare verdicts and Pass@k."""

from __future__ import annotations

import argparse

from spsbench.commands.selection import MODEL_HELP, existing_store, require_matches, select
from spsbench.errors import ConfigError
from spsbench.interop.evalscope_crosscheck import CrossReport, crosscheck, evalscope_python
from spsbench.store import Store
from spsbench.tasks import parse_data_args

HELP = ("Review stored samples with EvalScope itself (its own venv, offline) and report verdict agreement and "
        "Pass@k from both estimators for every k.")
TOLERANCE = 1e-9
SHOWN = 10                    # disagreements printed per evaluation (all are in `results --disagreements`)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("tool", choices=("evalscope",), help="Whose review to compare with (evalscope).")
    parser.add_argument("--store", metavar="PATH", help="Results store (default results/spsbench.db).")
    parser.add_argument("--task", help="Only this task.")
    parser.add_argument("--model", help=MODEL_HELP)
    parser.add_argument("--eval-id", type=int, help="Only this evaluation.")
    parser.add_argument("--data", action="append", metavar="NAME=PATH",
                        help="Local rows for a task (repeatable), as for `spsbench eval`.")
    parser.add_argument("--python", metavar="PATH",
                        help="EvalScope's interpreter (default: .venv-evalscope/bin/python; `make setup-evalscope`).")
    parser.add_argument("--work", metavar="DIR", help="Where to write the EvalScope trees (default: a temp folder).")


def run(args: argparse.Namespace) -> int:
    evalscope_python(args.python)               # before any work: one line if the venv is missing
    path = existing_store(args.store)
    with Store(path) as db:
        evals = [e for e in select(db, args.task, args.model, "done")
                 if (args.eval_id is None and not e.engine.startswith("evalscope@")) or e.id == args.eval_id]
        require_matches(db, evals, args.task, args.model, "done", path)
        if not evals:
            raise ConfigError(f"no finished native evaluation in {path} matches"
                              + (f" --eval-id {args.eval_id}" if args.eval_id is not None else "")
                              + "; `spsbench results` lists what is stored")
        reports = crosscheck(db, evals, data=parse_data_args(args.data), python=args.python, work=args.work)
    worst = 0.0
    for report in reports:
        lines, diff = describe(report)
        print("\n".join(lines))
        worst = max(worst, diff)
    return 0 if worst <= TOLERANCE else 1


def describe(report: CrossReport) -> tuple[list[str], float]:
    """Lines for one evaluation and the largest gap between the two estimators on EvalScope's verdicts."""
    lines = [f"evaluation {report.eval_id} ({report.task}, {report.model}) reviewed by evalscope@"
             f"{report.evalscope_version} as {report.bench}: verdicts agree on {report.agree}/{report.samples}",
             f"  {'k':>4}  {'ours':>10}  {'ours on EvalScope verdicts':>26}  {'EvalScope estimator':>19}  "
             f"{'|estimators|':>12}"]
    worst = 0.0
    for k, row in sorted(report.passk.items()):
        gap = (abs(row["ours_on_theirs"] - row["theirs"])
               if row["ours_on_theirs"] is not None and row["theirs"] is not None else None)
        worst = max(worst, gap or 0.0)
        lines.append(f"  {k:>4}  {_num(row['ours']):>10}  {_num(row['ours_on_theirs']):>26}  "
                     f"{_num(row['theirs']):>19}  {'—' if gap is None else f'{gap:.1e}':>12}")
    for d in report.disagreements[:SHOWN]:
        lines.append(f"  differs: problem {d['problem_id']} sample {d['sample_idx']}: ours {d['ours']} "
                     f"({d['ours_extracted']!r}), EvalScope {d['theirs']} ({d['theirs_extracted']!r})")
    if len(report.disagreements) > SHOWN:
        lines.append(f"  ... {len(report.disagreements) - SHOWN} more: spsbench results --disagreements "
                     f"--with evalscope")
    if worst > TOLERANCE:
        lines.append(f"  estimators differ by {worst:.2e} on the same verdicts (tolerance {TOLERANCE:g})")
    return lines, worst


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.6f}"
