"""`spsbench publish`: copy chosen finished evaluations from the local store into the committed export
(`results/published/`), from which `spsbench leaderboard` rebuilds the published pages on any clone."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from spsbench import paths
from spsbench.commands.results import select
from spsbench.errors import ConfigError, StoreError
from spsbench.leaderboards.snapshot import current_evaluations, plural, read_run_info
from spsbench.store import Store
from spsbench.store.published import export_evaluation

HELP = ("Copy chosen finished evaluations (every sample, score, provenance and diagnostic) from the local "
        "store into the committed export results/published/ (deterministic gzip JSONL).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="PATH", help="Local results store (default results/spsbench.db).")
    parser.add_argument("--out", metavar="DIR", help="Export folder (default results/published or "
                        "$SPSBENCH_PUBLISHED).")
    parser.add_argument("--task", help="Only evaluations of this task.")
    parser.add_argument("--model", help="Only models whose path (or run name) contains this text.")
    parser.add_argument("--eval", metavar="IDS", help="Only these evaluation ids (comma-separated; see "
                        "`spsbench results`).")
    parser.add_argument("--all", action="store_true", help="Every finished evaluation (no filter needed).")


def run(args: argparse.Namespace) -> int:
    store_path = Path(args.store or paths.default_store_path())
    if not store_path.is_file():
        raise StoreError(f"results store {store_path} does not exist; run `spsbench eval` first")
    if not (args.all or args.task or args.model or args.eval):
        raise ConfigError("choose what to publish: --task, --model, --eval IDS, or --all")
    out = Path(args.out or paths.default_published_dir() or "results/published")
    root = os.getcwd()
    with Store(store_path) as store:
        evals = current_evaluations(select(store, args.task, args.model, "done"))
        evals = [e for e in evals if not args.eval or e.id in _ids(args.eval)]
        if not evals:
            raise ConfigError(f"no finished evaluation in {store_path} matches the filters")
        info = read_run_info(store.models(), root)
        written = [export_evaluation(store, ev, out, root, info.get(ev.run_name or "")) for ev in evals]
    for path in written:
        print(f"published {paths.display_path(path)}", file=sys.stderr)
    print(f"{plural(len(written), 'evaluation')} in {paths.display_path(out)}/; commit them and run `spsbench "
          "leaderboard` (the local copies stay and are shown once)", file=sys.stderr)
    return 0


def _ids(text: str) -> set[int]:
    try:
        return {int(part) for part in text.split(",") if part.strip()}
    except ValueError:
        raise ConfigError(f"--eval: expected comma-separated evaluation ids, got {text!r}") from None
