"""`spsbench leaderboard`: regenerate the Markdown leaderboards and plots from the results store."""

from __future__ import annotations

import argparse
from pathlib import Path

from spsbench import paths
from spsbench.commands import output_console
from spsbench.errors import ConfigError
from spsbench.leaderboards.refresh import refresh
from spsbench.validate import writable_dir

HELP = "Regenerate leaderboards/*.md and plots from the results store (deterministic; never runs a model)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", metavar="PATH", help="Results store (default results/spsbench.db or $SPSBENCH_STORE)."
    )
    parser.add_argument(
        "--out", metavar="DIR", help="Output folder (default: $SPSBENCH_LEADERBOARDS, else leaderboards/ for the default store, "
        "else leaderboards/ beside the store file)."
    )
    parser.add_argument(
        "--metric",
        default="avg@n",
        metavar="avg@n|pass@K",
        help="Ranking metric of the per-task pages (default avg@n).",
    )
    parser.add_argument(
        "--budget",
        type=int,
        metavar="STEPS",
        help="Comparison table: only checkpoints with step <= STEPS (paper: best within a budget).",
    )
    parser.add_argument(
        "--select-on",
        metavar="TASKS",
        help="Comparison page: also pick each run's checkpoint by mean Avg@n on these other tasks "
        "(comma-separated; no peeking at the reported task). A seeded half split is always shown.",
    )
    parser.add_argument("--no-plots", action="store_true", help="Write the Markdown only (no matplotlib).")


def run(args: argparse.Namespace) -> int:
    if args.budget is not None and args.budget < 0:
        raise ConfigError(f"--budget: must be >= 0, got {args.budget}")
    out = writable_dir(args.out or paths.default_leaderboard_dir(args.store), "--out")   # not a file
    select_on = tuple(t.strip() for t in (args.select_on or "").split(",") if t.strip())
    if args.select_on is not None and not select_on:
        raise ConfigError("--select-on: expected comma-separated task names")
    files = refresh(args.store, out, metric=args.metric, budget=args.budget, plots=not args.no_plots,
                    select_on=select_on)
    pages = sum(1 for f in files if f.suffix == ".md")
    where = paths.display_path(Path(out).absolute())
    # soft_wrap: a long path must stay one copy-pasteable line; markup off: paths may contain [ ].
    output_console().print(
        f"wrote {pages} pages and {len(files) - pages} plots to {where}/ (index: {where}/README.md)",
        soft_wrap=True, markup=False, highlight=False,
    )
    return 0
