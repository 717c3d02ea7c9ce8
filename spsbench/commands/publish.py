"""`spsbench publish`: copy chosen finished evaluations from the local store into the committed export
(`results/published/`), from which `spsbench leaderboard` rebuilds the published pages on any clone."""

from __future__ import annotations

import argparse
import os
import sys

from spsbench import paths
from spsbench.commands.selection import MODEL_HELP, existing_store, require_matches, select
from spsbench.errors import ConfigError
from spsbench.leaderboards.snapshot import current_evaluations, plural, read_run_info
from spsbench.store import Store
from spsbench.store.published import export_evaluation
from spsbench.validate import writable_dir

HELP = ("Copy chosen finished evaluations (every sample, score, provenance and diagnostic) from the local "
        "store into the committed export results/published/ (deterministic gzip JSONL).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="PATH", help="Local results store (default results/spsbench.db).")
    parser.add_argument("--out", metavar="DIR", help="Export folder (default results/published or "
                        "$SPSBENCH_PUBLISHED).")
    parser.add_argument("--task", help="Only evaluations of this task.")
    parser.add_argument("--model", help=MODEL_HELP)
    parser.add_argument("--eval", metavar="IDS", help="Only these evaluation ids (comma-separated; see "
                        "`spsbench results`).")
    parser.add_argument("--all", action="store_true", help="Every finished evaluation (no filter needed).")


def run(args: argparse.Namespace) -> int:
    store_path = existing_store(args.store)
    if not (args.all or args.task or args.model or args.eval):
        raise ConfigError("choose what to publish: --task, --model, --eval IDS, or --all")
    out = writable_dir(args.out or paths.default_published_dir() or "results/published", "--out")
    root = os.getcwd()
    with Store(store_path) as store:
        selected = select(store, args.task, args.model, "done")
        require_matches(store, selected, args.task, args.model, "done", store_path)
        evals = current_evaluations(selected)
        if args.eval:
            wanted = _ids(args.eval)
            missing = sorted(wanted - {e.id for e in evals})
            if missing:
                raise ConfigError(f"--eval: {', '.join(map(str, missing))} not among the finished evaluations "
                                  f"{'matching the other filters ' if args.task or args.model else ''}in {store_path} "
                                  "(`spsbench results` lists their ids)")
            evals = [e for e in evals if e.id in wanted]
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
