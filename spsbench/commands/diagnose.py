"""`spsbench diagnose`: squeezing (greedy log-prob), token entropy and diversity diagnostics -> store."""

from __future__ import annotations

import argparse

from spsbench import paths
from spsbench.commands import output_console
from spsbench.commands.eval import ENGINE_LOG, engine_options
from spsbench.diagnostics.run import DiagConfig, run_diagnostics
from spsbench.engines import DEFAULT_ENGINE, check_engine_options, engine_names
from spsbench.errors import ConfigError
from spsbench.leaderboards.refresh import refresh
from spsbench.leaderboards.snapshot import diag_setting
from spsbench.quiet import engine_log
from spsbench.store import Store
from spsbench.tasks import parse_data_args

HELP = (
    "Squeezing and diversity diagnostics (paper Tables 4 and 6) for a model, a run folder or a run name "
    "in the store; results go into the store and onto the run's leaderboard page."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        metavar="MODEL_OR_RUN",
        help="Model folder or hub id, a run folder with checkpoint-*/ subfolders, or a run name "
        "already in the store.",
    )
    parser.add_argument("--tasks", default="arith", help="Comma-separated task names (default arith).")
    parser.add_argument("--n", type=int, default=4, help="Sampled completions per prompt for token entropy.")
    parser.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="Local JSONL/Parquet copy of a task's data (repeatable).",
    )
    parser.add_argument("--limit", type=int, help="Use only the first L problems of each task.")
    parser.add_argument(
        "--base",
        metavar="BASE_MODEL",
        help="Base model to diagnose alongside (default: the run's recorded base model if local).",
    )
    parser.add_argument("--max-tokens", type=int, default=256, help="Max new tokens per completion.")
    parser.add_argument("--seed", type=int, default=0, help="Sampling seed for the entropy completions.")
    parser.add_argument(
        "--similarity-from",
        choices=("auto", "eval", "sampled"),
        default="auto",
        help="Completions for pairwise similarity: the model's stored evaluation (eval), the fresh samples "
        "drawn for token entropy (sampled), or the evaluation when there is one (auto, default). Pick one "
        "source for every model to get one comparable column.",
    )
    parser.add_argument("--engine", choices=engine_names(served=False), default=DEFAULT_ENGINE,
                        help="Engine that generates the greedy and sampled completions, as in `spsbench eval` "
                        "(auto = vllm when installed). Log-probs and entropies are then scored with the "
                        "vocabulary projection in float32 (the body at the engine's precision).")
    parser.add_argument("--engine-opt", action="append", default=[], metavar="KEY=VALUE",
                        help="Engine option (repeatable), e.g. dtype=fp32, batch_size=32.")
    parser.add_argument(
        "--samples-from",
        choices=("auto", "fresh"),
        default="auto",
        help="Token-entropy samples: reuse a stored evaluation of the model sampled at the same setting "
        "(temperature 1, top_p 1, same --max-tokens, >= n samples; auto, default) or always generate (fresh).",
    )
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="Show the engine's own log lines (default: appended to engine.log beside the store).")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="No progress bars, status lines or spsbench warnings on the terminal (the warnings still "
                             "go to engine.log).")
    parser.add_argument(
        "--force",
        action="store_true",
        help="Recompute diagnostics already stored with the same setting (by default they are reused).",
    )
    parser.add_argument("--store", metavar="PATH", help="Results store (default results/spsbench.db).")
    parser.add_argument("--out", metavar="DIR", help="Leaderboard folder to refresh afterwards.")
    parser.add_argument("--no-leaderboard", action="store_true", help="Do not refresh the leaderboards.")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.table import Table

    for name in ("n", "limit", "max_tokens"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: must be >= 1, got {value}")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if not tasks:
        raise ConfigError("--tasks: give at least one task name")
    store_path = Path(args.store or paths.default_store_path())
    store_path.parent.mkdir(parents=True, exist_ok=True)
    cfg = DiagConfig(n=args.n, max_tokens=args.max_tokens, seed=args.seed, limit=args.limit,
                     similarity_from=args.similarity_from, engine=args.engine,
                     engine_options=check_engine_options(args.engine, engine_options(args)),
                     samples_from=args.samples_from)
    store = Store(store_path)
    try:
        before = _settings(store.diagnostics())
        with engine_log(store_path.parent / ENGINE_LOG, args.verbose, quiet=args.quiet):
            results = run_diagnostics(args.target, tasks, store, store.models(), cfg=cfg,
                                      data=parse_data_args(args.data), base=args.base, force=args.force,
                                      progress=not args.quiet)
    finally:
        store.close()
    table = Table(title="spsbench diagnostics", title_justify="left")
    for column in ("model", "task", "metric", "value"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for r in results:
        table.add_row(r.path, r.task, r.metric + (" (stored)" if r.reused else ""), f"{r.value:.4f}")
    console = output_console()
    console.print(table)
    for note in _replaced(before, results):
        console.print(note)
    if not args.no_leaderboard:
        refresh(store_path, args.out)
        console.print(f"leaderboards refreshed in {args.out or paths.default_leaderboard_dir(store_path)}/")
    return 0


def _settings(rows: list[dict]) -> dict[tuple[int, str, str], object]:
    """(model id, task, metric) -> the setting recorded with the stored diagnostic."""

    return {(int(r["model_id"]), r["task"], r["metric"]): diag_setting(r["metric"], r["details"]) for r in rows}


def _replaced(before: dict, results: list) -> list[str]:
    """Notes for diagnostics that replaced a stored value with another setting: the store keeps one value
    per (model, task, metric), so the earlier one is gone."""

    notes = []
    for r in results:
        old = before.get((r.model_id, r.task, r.metric))
        new = diag_setting(r.metric, r.details)
        if old is not None and old != new:
            notes.append(
                f"note: {r.metric} of {r.path} on {r.task} replaced a value with another setting "
                f"(was: {old.describe()}; now: {new.describe()})"
            )
    return notes
