"""`spsbench train`: GRPO, DAPO, GSPO or SPS (over any of them) on TRL, evaluating every checkpoint.

With no arguments beyond `--algo` it trains the embedded SmolLM2-135M on the built-in `arith` task with
the CPU demo sizes (recipes/cpu-demo.yaml). Heavy imports happen inside `run`.

The terminal shows spsbench's own output (status lines, a progress bar over steps with reward, KL,
entropy, clip ratios and step time, one line per IRL phase and per checkpoint evaluation, every
warning); the libraries' output (TRL, transformers, vLLM, the evaluation child) goes to `train.log` in
the run folder. `-v` shows everything, including TRL's per-step metric dict; `-q` shows only errors and
the summary.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from spsbench import paths
from spsbench.commands import output_console
from spsbench.errors import ConfigError, SpsbenchError
from spsbench.evaluation.evaluate import score_table
from spsbench.quiet import engine_log
from spsbench.train import algorithms
from spsbench.train.config import TrainConfig, describe_keys, load_config
from spsbench.train.preflight import Prepared, prepare
from spsbench.train.run import pick_cpu_threads, train
from spsbench.train.run_folder import discard_unstarted, missing_folders

TRAIN_LOG = paths.TRAIN_LOG

HELP = "Train a policy with GRPO, DAPO, GSPO or SPS (recipes in recipes/*.yaml) and evaluate its checkpoints."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--algo", choices=algorithms.names(), help="Algorithm (default: the "
                        f"recipe's `algo`, else {algorithms.DEFAULT}).")
    parser.add_argument("--base", choices=algorithms.bases(), help="With --algo sps: the RL algorithm "
                        "SPS is layered on (default grpo).")
    parser.add_argument("--config", metavar="RECIPE", help="Recipe YAML replacing recipes/<algo>.yaml.")
    parser.add_argument("--model", help="HF model folder or hub id (default: the embedded SmolLM2-135M).")
    parser.add_argument("--task", help="Training task (registry name or task YAML; default arith).")
    parser.add_argument("--output-dir", help="Run folder (default runs/<run name>).")
    parser.add_argument("--run-name", help="Run name used in the results store and leaderboards.")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="Override any recipe key, e.g. --set rl.max_steps=20 --set sps.irl_steps=2 "
                             "(repeatable; value parsed as YAML).")
    parser.add_argument("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                        help="Resume from the last checkpoint in the run folder, or from CHECKPOINT.")
    parser.add_argument("--no-eval", action="store_true", help="Do not evaluate checkpoints while training.")
    parser.add_argument("--list-keys", action="store_true", help="Print every spsbench recipe key and exit.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help=f"Show the libraries' output (TRL, transformers, vLLM) and TRL's per-step metric dict "
                             f"on the terminal (default: into {TRAIN_LOG} in the run folder).")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help=f"No progress bar, status lines or spsbench warnings on the terminal (the warnings "
                             f"still go to {TRAIN_LOG}); errors and the summary stay.")
    parser.add_argument("--dry-run", action="store_true", help="Make every check the run makes before loading "
                        "weights (settings, tasks, model files, run folder, --resume) and print the schedule as one "
                        "JSON object (steps per epoch, max steps, IRL phase / save / evaluation steps, IRL coverage, "
                        "resume point, warnings); loads no weights. --set world_size=N plans for N ranks.")
    parser.add_argument("--diff", metavar="RECIPE", help="With --dry-run: compare the run with another recipe "
                        "(its own algo and base; the same --set flags): print the settings and plan entries that "
                        "differ, key -> [this run, RECIPE].")


def run(args: argparse.Namespace) -> int:
    console = output_console()
    if args.list_keys:
        for key, default, help_text in describe_keys():
            console.print(f"[bold]{key}[/] = {default}  {help_text}", highlight=False)
        console.print("rl.*  any TRL GRPOConfig field (trl==1.16.0)")
        return 0
    overrides = list(args.overrides)
    for flag, key in ((args.task, "task"), (args.output_dir, "output_dir"), (args.run_name, "run_name")):
        if flag:
            overrides.append(f"{key}={flag}")
    if args.no_eval:
        overrides.append("eval.enabled=false")
    config = load_config(args.algo, args.base, args.config, overrides, model=args.model)
    if args.diff and not args.dry_run:
        raise ConfigError("--diff compares two plans: add --dry-run")
    if args.dry_run:
        from spsbench.train import plan

        if args.diff:                                       # the other recipe names its own algorithm
            other = load_config(None, None, args.diff, overrides, model=args.model)
            print(json.dumps(plan.diff(config, other)))
            return 0
        # every check the run makes before its weights load, with the same code (train.preflight.prepare)
        prepared = prepare(config, args.resume, plan_only=True)
        print(json.dumps(prepared.as_dict()))      # stdout holds only the plan (machine-readable)
        return 0
    if config.model is None:
        console.print("[dim]embedded default: SmolLM2-135M-Instruct on the built-in arith task, CPU demo sizes "
                      "(recipes/cpu-demo.yaml)[/]")

    prepared = prepare(config, args.resume)   # every check before weights load: a refusal comes before any output
    threads = pick_cpu_threads()
    console.print(f"training [bold]{config.label}[/] with recipe {config.recipe}"
                  + (f" ({threads} CPU thread{'s' * (threads > 1)}; set OMP_NUM_THREADS to choose)" if threads else ""))
    summary, log = _train_logged(config, args, prepared)
    _print_summary(console, summary)
    if log is not None:
        console.print(f"library output: {paths.display_path(log)} (-v shows it here)", highlight=False)
    if summary.preempted:
        console.print(f"stopped by {summary.preempted} at step {summary.steps}: checkpoint-{summary.steps} saved in "
                      f"{summary.output_dir}; continue with the same command plus --resume", highlight=False)
    return summary.exit_code or _report_failures(console, summary)


def _train_logged(config: TrainConfig, args: argparse.Namespace,
                  prepared: Prepared) -> tuple[object, Path | None]:
    """`train` with the libraries' output in the run folder's log and spsbench's progress on the terminal.
    A run refused before it started leaves no folder behind (the log alone would create one)."""
    from spsbench.train.progress import TrainProgress

    folder = prepared.output_dir
    made = missing_folders(folder)                      # what opening the log creates
    progress = TrainProgress(verbose=args.verbose)
    try:
        with engine_log(folder / TRAIN_LOG, args.verbose, quiet=args.quiet) as log:
            return train(config, resume=args.resume, callbacks=[progress], prepared=prepared), log
    except SpsbenchError:
        discard_unstarted(folder, made)
        raise


def _report_failures(console, summary) -> int:
    """Training is kept either way; a failed evaluation or leaderboard refresh makes the exit code 1."""
    for f in summary.failures:
        where = "base model" if f["step"] == 0 else f"step {f['step']}" if f["step"] is not None else "run"
        console.print(f"[red]failed[/] {f['kind']} ({where}): {f['message']}", highlight=False, soft_wrap=True)
    if summary.failures:
        console.print(f"{len(summary.failures)} failure(s) during training, recorded in the store and "
                      f"{summary.output_dir}/spsbench_run.json; evaluate the checkpoints again with "
                      f"`spsbench eval {summary.output_dir}`", highlight=False)
    return 1 if summary.failures else 0


def _print_summary(console, summary) -> None:
    console.print(f"done: {summary.steps} steps, run folder {summary.output_dir}")
    if summary.checkpoints:
        console.print(f"checkpoints: {', '.join(summary.checkpoints)}")
    # Each IRL phase was one line while training ran (and is in sps_phases.jsonl).
    report = summary.sps_report
    if report and report["shortfall"]:
        console.print(f"[bold yellow]warning:[/] SPS: {report['shortfall']}", highlight=False)
    elif report:
        console.print(f"SPS: {report['irl_phases_run']} of {report['planned_irl_phases']} planned IRL phases ran "
                      f"(every {report['rl_steps_per_phase']} RL steps)", highlight=False)
    if summary.evaluations:

        rows = [("base (step 0)", r) for r in summary.base_evaluations]
        rows += [(f"checkpoint-{step}", r) for step, results in summary.evaluations for r in results]
        console.print(score_table(rows))
        console.print(f"evaluated {len(summary.evaluations)} checkpoint(s) into the results store")
    elif summary.eval_mode == "watch":
        console.print(f"eval.mode watch: checkpoints are left to `spsbench eval {summary.output_dir} --watch` "
                      "(at the sampling recorded in the run folder)")
    else:
        console.print(f"no checkpoint was evaluated during training; evaluate them with "
                      f"`spsbench eval {summary.output_dir}`")
    if summary.leaderboard:
        console.print(f"leaderboard: {summary.leaderboard}/ (regenerate with `spsbench leaderboard`)")
