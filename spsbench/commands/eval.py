"""`spsbench eval`: sample, grade, store and score a model, a training run's checkpoints, or a served model.

With no MODEL it runs the embedded default: SmolLM2-135M-Instruct on the built-in `arith` task, offline,
small enough to finish in a few minutes on 2 CPU cores. Ends with the score table and where the
results and leaderboards went.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spsbench import paths
from spsbench.commands import output_console
from spsbench.config import SamplingConfig
from spsbench.engines import DEFAULT_ENGINE, DEFAULT_SERVED_ENGINE, engine_names
from spsbench.engines.servers import DEFAULT_BASE_URL
from spsbench.errors import CheckpointError, ConfigError
from spsbench.evaluation.evaluate import SharedEngine, evaluate, score_table
from spsbench.evaluation.records import EvalRequest, EvalResult
from spsbench.evaluation.run_metrics import TENSORBOARD_DIR, RunMetricsWriter
from spsbench.evaluation.scan import ScanReport, is_run_folder, recorded_sampling, scan_groups
from spsbench.grading import GradingPolicy
from spsbench.leaderboards.refresh import refresh as leaderboard_refresh
from spsbench.quiet import engine_log, warn
from spsbench.tasks import load_spec, parse_data_args

ENGINE_LOG = "engine.log"     # beside the store: vLLM / torch / transformers output of every eval

HELP = "Evaluate a model, a run folder of checkpoints, or a served model (Pass@k, Avg@n) into the store."

# The embedded default (`spsbench eval` with no MODEL): task and length budget; n and k are the task's.
DEFAULT_TASKS = ("arith",)
DEFAULT_MAX_TOKENS = 96
MAX_TOKENS = 4096             # with a MODEL: long enough for reasoning models' answers
# Flags whose default is SamplingConfig's own (the one place the sampling defaults are written).
SAMPLING_FLAGS = ("temperature", "top_p", "seed")
# A run folder's recorded evaluation setting (spsbench_run.json) fills these flags when not given.
RECORDED = ("tasks", "n", "temperature", "top_p", "max_tokens", "seed", "k", "limit")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", metavar="MODEL",
                        help="Model folder, hub id, run folder (checkpoint-*/; sampling flags not given take "
                             "the run's recorded evaluation setting), or served model name (--engine openai). "
                             "Default: the embedded SmolLM2-135M-Instruct.")
    parser.add_argument("--tasks", help="Comma-separated task names (default: arith).")
    parser.add_argument("--task-file", action="append", default=[], metavar="YAML",
                        help="A task YAML of your own (repeatable); added to --tasks.")
    parser.add_argument("--data", action="append", default=[], metavar="NAME=PATH",
                        help="Local JSONL/Parquet copy of a task's data (repeatable).")
    parser.add_argument("--n", type=int, help="Samples per problem (default: each task's n).")
    parser.add_argument("--k", help="Comma-separated k for pass@k, each <= n (powers of two up to n are "
                                    "always reported).")
    parser.add_argument("--temperature", type=float,
                        help=f"Sampling temperature (default {SamplingConfig.temperature}).")
    parser.add_argument("--top-p", type=float, help=f"Nucleus sampling mass (default {SamplingConfig.top_p}).")
    parser.add_argument("--max-tokens", type=int,
                        help=f"Max new tokens per sample (default {MAX_TOKENS}; {DEFAULT_MAX_TOKENS} for the "
                             "embedded default).")
    parser.add_argument("--seed", type=int,
                        help=f"Base seed (per-sample seeds derive from it; default {SamplingConfig.seed}).")
    parser.add_argument("--stop", action="append", default=[], metavar="TEXT", help="Stop string (repeatable).")
    parser.add_argument("--chat-template", choices=("auto", "on", "off"), default="auto",
                        help="Apply the model's chat template: auto (if it has one), on, off.")
    parser.add_argument("--lenient", action="store_true",
                        help="Lenient grading: without a \\boxed{} or 'answer is' anchor, fall back to the last "
                             "number (stored as a separate evaluation; default strict).")
    # Without --engine: auto = vllm when installed (the main engine: ~3x the tokens/s of hf on the embedded
    # default here), falling back to hf if vLLM is missing or cannot start (spsbench.engines.auto).
    parser.add_argument("--engine", choices=engine_names(),
                        help="Generation engine (default auto: vllm if installed and it starts, else hf).")
    parser.add_argument("--base-url", help="OpenAI-compatible server for --engine openai "
                                           f"(e.g. {DEFAULT_BASE_URL}), or several serving the same "
                                           "model, comma-separated: samples are spread over them.")
    parser.add_argument("--engine-opt", action="append", default=[], metavar="KEY=VALUE",
                        help="Engine option (repeatable), e.g. dtype=fp32, batch_size=32, concurrency=16, "
                             "endpoint=completions (openai).")
    parser.add_argument("--store", metavar="PATH", help="Results store (default results/spsbench.db).")
    parser.add_argument("--limit", type=int, help="Only the first N problems of each task.")
    parser.add_argument("--watch", action="store_true",
                        help="Run folder: keep scanning for new checkpoints while training writes them.")
    parser.add_argument("--interval", type=float, default=60.0, help="--watch: seconds between scans.")
    parser.add_argument("--until-idle", type=float, metavar="S",
                        help="--watch: stop after S seconds without a new checkpoint (default: never).")
    parser.add_argument("--no-leaderboard", action="store_true", help="Do not refresh the leaderboards.")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="No progress bars, status lines or spsbench warnings on the terminal (the warnings "
                             "still go to engine.log); errors and the score table stay.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="Show the engines' own log lines and warnings (default: they go to engine.log beside "
                             "the store; spsbench's own warnings are shown either way).")


@dataclass(frozen=True)
class EvalPlan:
    """What `spsbench eval` will do, resolved and checked before anything loads."""

    tasks: list[str]
    run_folder: bool
    requests: list[EvalRequest]          # one per sampling group (tasks sharing n), every check done
    recorded: dict[str, Any] = field(default_factory=dict)   # run folder: the run's settings used


def run(args: argparse.Namespace) -> int:
    console = output_console()
    plan = make_plan(args)
    store = Path(args.store or paths.default_store_path())
    if plan.recorded:
        used = ", ".join(f"{k}={v}" for k, v in plan.recorded.items())
        console.print(f"[dim]continuing the run's evaluations at its recorded setting ({used})[/]", highlight=False)
    with engine_log(store.parent / ENGINE_LOG, args.verbose, quiet=args.quiet) as log:
        if plan.run_folder:
            metrics = RunMetricsWriter(args.model)
            try:
                report = scan_groups(args.model, plan.requests, watch=args.watch, interval=args.interval,
                                     until_idle=args.until_idle, console=console, metrics=metrics)
            finally:
                metrics.close()
            results = [(c.path.name, r) for c in report.checkpoints for r in c.results]
            _refuse_all_broken(report)
        else:
            results = [(paths.model_display_name(r.model), r) for r in _evaluate_model(plan)]
    console.print(score_table(results))
    if plan.run_folder:
        _print_best(console, report, plan.tasks)
        _print_metrics_files(console, report, metrics)
    _print_destinations(console, store, args.no_leaderboard)
    if log is not None:
        console.print(f"engine messages: {paths.display_path(log)} (-v shows them here)", highlight=False)
    return 0


# --------------------------------------------------------------------------- what to run


def make_plan(args: argparse.Namespace) -> EvalPlan:
    """Check the arguments (one-line errors before anything loads) and resolve defaults: tasks, ks,
    engine and its options, grading policy, whether MODEL is a run folder, one request per n."""
    _check_numbers(args)
    run_folder = _is_run_folder(args)
    recorded = _recorded_defaults(args) if run_folder else {}
    args = argparse.Namespace(**(vars(args) | recorded))
    data = parse_data_args(args.data)
    tasks = [t for t in (args.tasks or "").split(",") if t.strip()] + list(args.task_file)
    tasks = [t.strip() for t in tasks] or list(DEFAULT_TASKS)
    _check_data_names(tasks, data)
    engine = args.engine or (DEFAULT_SERVED_ENGINE if args.base_url else DEFAULT_ENGINE)
    template = dict(engine=engine, engine_options=engine_options(args), data=data, ks=_int_list(args.k, "--k"),
                    store=Path(args.store or paths.default_store_path()), limit=args.limit,
                    progress=not args.quiet, grading=GradingPolicy(strict=not args.lenient))
    requests = [EvalRequest(args.model, tuple(group), sampling, **template)
                for sampling, group in _sampling_groups(args, tasks)]
    return EvalPlan(tasks, run_folder, requests, recorded)


def _recorded_defaults(args: argparse.Namespace) -> dict[str, Any]:
    """The run's recorded evaluation setting for every flag the user left out, so scanning a run folder
    continues the evaluations its training callback started (same identity) instead of starting new ones."""
    recorded = recorded_sampling(args.model)
    given = {"tasks": bool(args.tasks or args.task_file), "k": args.k is not None}
    out: dict[str, Any] = {}
    for key in RECORDED:
        value = recorded.get(key)
        if value is None or value == [] or given.get(key, getattr(args, key) is not None):
            continue
        out[key] = ",".join(map(str, value)) if key in ("tasks", "k") else value
    return out


def _check_numbers(args: argparse.Namespace) -> None:
    """Counts and durations a typo could make zero or negative (0 must not mean "the default")."""

    for flag, value, low in (("--n", args.n, 1), ("--max-tokens", args.max_tokens, 1), ("--limit", args.limit, 1)):
        if value is not None and value < low:
            raise ConfigError(f"{flag}: must be >= {low}, got {value}")
    if args.interval is not None and not args.interval > 0:
        raise ConfigError(f"--interval: must be > 0 seconds, got {args.interval:g}")
    if args.until_idle is not None and args.until_idle < 0:
        raise ConfigError(f"--until-idle: must be >= 0 seconds, got {args.until_idle:g}")
    if not args.watch and args.until_idle is not None:
        raise ConfigError("--until-idle only applies with --watch")


def _is_run_folder(args: argparse.Namespace) -> bool:
    folder = Path(args.model) if args.model else None
    run_folder = bool(folder and (is_run_folder(folder) or (args.watch and folder.is_dir()
                                                              and not (folder / "config.json").is_file())))
    if args.watch and not run_folder:
        raise ConfigError("--watch needs a run folder (one that holds or will hold checkpoint-*/ folders)"
                          + ("" if folder else "; give it as MODEL"))
    return run_folder


def _check_data_names(tasks: list[str], data: dict[str, str]) -> None:
    """A --data NAME that is not a selected task would be silently ignored: refuse it instead."""

    names = set(tasks) | {load_spec(t).name for t in tasks}
    unused = sorted(set(data) - names)
    if unused:
        raise ConfigError(f"--data: {', '.join(unused)} is not among the selected tasks "
                          f"({', '.join(sorted({load_spec(t).name for t in tasks}))}); add it to --tasks or "
                          "fix the name")


def _int_list(text: str | None, flag: str) -> list[int]:
    if not text:
        return []
    parts = [x.strip() for x in text.split(",")]
    if not all(x.lstrip("-").isdigit() for x in parts):     # also refuses empty items ("1,,2", "1,")
        raise ConfigError(f"{flag}: expected comma-separated integers (e.g. 1,8,32), got {text!r}")
    values = [int(x) for x in parts]
    if any(v < 1 for v in values):
        raise ConfigError(f"{flag}: every k must be >= 1, got {text!r}")
    return values


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    import yaml

    options: dict[str, Any] = {}
    for item in args.engine_opt:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"--engine-opt: expected KEY=VALUE (e.g. dtype=fp32), got {item!r}")
        options[key.strip()] = yaml.safe_load(value)
    if getattr(args, "base_url", None):
        options["base_url"] = args.base_url
    return options


def _sampling_groups(args: argparse.Namespace, tasks: list[str]) -> list[tuple[SamplingConfig, list[str]]]:
    """(SamplingConfig, tasks) groups: with --n one group; else tasks grouped by their default n."""
    default = args.model in (None, "default")
    max_tokens = args.max_tokens if args.max_tokens is not None else (DEFAULT_MAX_TOKENS if default else MAX_TOKENS)
    by_n: dict[int, list[str]] = {}
    for task in tasks:
        n = args.n if args.n is not None else load_spec(task).n
        by_n.setdefault(n, []).append(task)
    given = {k: getattr(args, k) for k in SAMPLING_FLAGS if getattr(args, k) is not None}
    return [(SamplingConfig(n=n, max_tokens=max_tokens, stop=tuple(args.stop), chat_template=args.chat_template,
                            **given), tasks)
            for n, tasks in by_n.items()]


# --------------------------------------------------------------------------- running


def _evaluate_model(plan: EvalPlan) -> list[EvalResult]:
    """One model: every sampling group, sharing one loaded engine."""
    shared = SharedEngine(plan.requests[0].engine_options)
    try:
        return [r for req in plan.requests for r in evaluate(req, engine_factory=shared.get)]
    finally:
        shared.close()


def _refuse_all_broken(report: ScanReport) -> None:
    """A run folder whose every checkpoint is broken evaluated nothing: that is an error, not an empty table."""
    broken = [c for c in report.checkpoints if c.status == "broken"]
    if broken and len(broken) == len(report.checkpoints):
        raise CheckpointError(f"{report.run}: all {len(broken)} checkpoint(s) are broken, nothing was evaluated "
                              f"(first: {broken[0].reason})")


# --------------------------------------------------------------------------- output


def _print_best(console: Any, report: ScanReport, tasks: list[str]) -> None:
    broken = [c for c in report.checkpoints if c.status == "broken"]
    if broken:
        console.print(f"[yellow]{len(broken)} broken checkpoint(s) skipped: "
                      f"{', '.join(c.path.name for c in broken)}")
    for task in tasks:
        name = load_spec(task).name
        best = report.best(name)
        if best is None:
            continue
        result = next(r for r in best.results if r.task == name)
        passk = ", ".join(f"pass@{k} {v.value * 100:.1f}" for k, v in result.scores.pass_at_k.items())
        console.print(f"best checkpoint on {name}: [bold]{best.path.name}[/] "
                      f"(Avg@{result.n} {result.scores.avg.value * 100:.1f}; {passk})", highlight=False)


def _print_metrics_files(console: Any, report: ScanReport, metrics: RunMetricsWriter) -> None:
    """Where the checkpoints evaluated now were logged for TensorBoard / JSON readers."""
    if not any(c.status == "evaluated" for c in report.checkpoints):
        return
    where = paths.display_path(metrics.path)
    if metrics.tensorboard:
        where += f" and TensorBoard events in {paths.display_path(metrics.run / TENSORBOARD_DIR)}/"
    console.print(f"checkpoint metrics (eval/<task>/pass@k by step): {where}", highlight=False, soft_wrap=True)


def _print_destinations(console: Any, store: Path, skip_leaderboard: bool) -> None:
    console.print(f"results: {store} (export with `spsbench results --store {store}`)", highlight=False)
    if skip_leaderboard:
        return
    try:
        files = leaderboard_refresh(store)
    except Exception as exc:  # noqa: BLE001 - the evaluation itself succeeded and is stored
        warn(f"leaderboard refresh failed: {type(exc).__name__}: {exc}")
        return

    console.print(f"leaderboards: {paths.default_leaderboard_dir(store)}/ ({len(files)} files)", highlight=False)
