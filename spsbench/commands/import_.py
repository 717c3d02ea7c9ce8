"""`spsbench import evalscope WORK_DIR`: bring another evaluator's run into the results store, re-graded
with our grader and scored like a native evaluation, its own verdicts kept beside ours."""

from __future__ import annotations

import argparse
import sys

from spsbench.errors import SpsbenchError
from spsbench.grading import GradingPolicy
from spsbench.interop.evalscope_ingest import ImportReport, import_evalscope

HELP = "Import an EvalScope run folder into the results store (re-graded, scored, its verdicts kept)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", choices=("evalscope",), help="Whose output to import (evalscope).")
    parser.add_argument("work_dir", metavar="WORK_DIR",
                        help="An EvalScope run folder (<WORK_DIR>/<timestamp>) or a WORK_DIR holding several.")
    parser.add_argument("--model-name", metavar="NAME",
                        help="Model name to store instead of the run's model_id (kept after '<api_url>#').")
    parser.add_argument("--store", metavar="PATH", help="Results store (default results/spsbench.db).")
    parser.add_argument("--lenient", action="store_true", help="Re-grade with the lenient policy.")
    parser.add_argument("--workers", type=int, default=1, help="Grader worker processes (default: 1).")


def run(args: argparse.Namespace) -> int:

    if args.workers < 1:
        raise SpsbenchError(f"--workers must be >= 1, got {args.workers}")
    reports = import_evalscope(args.work_dir, model_name=args.model_name, store=args.store,
                               grading=GradingPolicy(strict=not args.lenient), grader_workers=args.workers)
    for report in reports:
        for warning in report.warnings:
            print(f"spsbench import: warning: {report.task}: {warning}", file=sys.stderr)
        print(describe(report))
    return 0


def describe(report: ImportReport) -> str:
    """One line per imported evaluation: where it went, what it holds, and how the graders compare."""
    cells = " ".join(f"pass@{k}={v.value:.3f}" for k, v in sorted(report.scores.pass_at_k.items()))
    agree = (f"verdicts agree on {report.agree}/{report.reviewed}" if report.reviewed
             else "no EvalScope verdicts")
    return (f"{report.bench} -> {report.task} (task version {report.task_version}): evaluation {report.eval_id}, "
            f"{report.problems} problems, {report.samples} samples ({report.new} new); {agree}; {cells}")
