"""`spsbench results`: export the store's scores, samples or run history (provenance per session) as JSONL
or CSV (no SQL needed)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

from spsbench import paths
from spsbench.commands.compare import run_compare
from spsbench.commands.selection import MODEL_HELP, existing_store, output, require_matches, select, write
from spsbench.errors import ConfigError
from spsbench.store import EvalRow, Store

HELP = ("Export scores, samples, the run history (provenance) or the samples where another evaluator's verdict "
        "differs from ours as JSONL or CSV; compare two evaluations problem by problem (--compare, --solved-diff).")

EVAL_FIELDS = ("eval_id", "task", "task_version", "model", "name", "weights_hash", "run_name", "step", "algo",
               "base_model", "grader_policy", "engine", "status")
SCORE_FIELDS = (*EVAL_FIELDS, "metric", "k", "value", "ci_low", "ci_high", "n", "temperature", "top_p",
                "max_tokens", "seed")
SAMPLE_FIELDS = ("eval_id", "task", "model", "name", "run_name", "step", "problem_id", "sample_idx", "seed", "outcome",
                 "extracted", "finish_reason", "prompt_tokens", "completion_tokens", "prompt", "completion",
                 "created_at")
DISAGREEMENT_FIELDS = ("eval_id", "task", "model", "problem_id", "sample_idx", "ours", "ours_extracted", "source",
                      "theirs", "theirs_extracted", "finish_reason")
SESSION_FIELDS = ("eval_id", "task", "model", "session", "kind", "started_at", "engine", "n", "samples",
                  "min_idx", "max_idx", "last_at", "host", "spsbench", "provenance")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="PATH", help="Results store (default results/spsbench.db).")
    parser.add_argument("--task", help="Only this task.")
    parser.add_argument("--model", help=MODEL_HELP)
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--scores", action="store_true", help="Export scores, one row per metric (default).")
    what.add_argument("--samples", action="store_true", help="Export every sample with its grade.")
    what.add_argument("--sessions", action="store_true",
                      help="Export every run (session) of each evaluation: its provenance and the samples it "
                           "stored.")
    what.add_argument("--compare", nargs=2, metavar=("A", "B"),
                      help="Paired difference B - A of Pass@k and Avg@n per task, with its 95%% interval (A, B: a "
                           "run = its best checkpoint, run@step, or a model).")
    what.add_argument("--solved-diff", nargs=2, metavar=("A", "B"),
                      help="Problems solved (>= 1 correct sample) by only one of A and B per task, with pass rates "
                           "and the exact sign test of the net change.")
    what.add_argument("--disagreements", action="store_true",
                      help="Export the samples where an imported evaluator's verdict differs from ours, with both "
                           "extracted answers (see `spsbench import`).")
    parser.add_argument("--with", dest="with_source", metavar="SOURCE",
                        help="With --disagreements: whose verdicts to compare with (default: evalscope).")
    parser.add_argument("--all", action="store_true", help="Include unfinished (running/killed) evaluations.")
    parser.add_argument("--format", choices=("jsonl", "csv"),
                        help="Output format (default jsonl; --compare / --solved-diff: a text table unless given).")
    parser.add_argument("--out", metavar="FILE", help="Write here instead of stdout.")


def run(args: argparse.Namespace) -> int:
    if args.with_source is not None and not args.disagreements:
        raise ConfigError("--with: applies to --disagreements only")
    if args.compare or args.solved_diff:
        return run_compare(args)
    path = existing_store(args.store)
    with Store(path) as store:
        evals = select(store, args.task, args.model, None if args.all else "done")
        require_matches(store, evals, args.task, args.model, None if args.all else "done", path)
        args.with_source = args.with_source or "evalscope"
        rows, fields, noun = _export(store, evals, args)
        try:
            with output(args.out) as fh:
                count = write(rows, fields, args.format or "jsonl", fh)
        except BrokenPipeError:          # `spsbench results | head`: the reader has all it wants
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
            return 0
    if args.out:
        print(f"wrote {count} {noun} to {args.out}", file=sys.stderr)
    return 0


def _export(store: Store, evals: list[EvalRow], args: argparse.Namespace) -> tuple[Iterator[dict], tuple[str, ...], str]:
    if args.samples:
        return sample_rows(store, evals), SAMPLE_FIELDS, "samples"
    if args.sessions:
        return session_rows(store, evals), SESSION_FIELDS, "sessions"
    if args.disagreements:
        return disagreement_rows(store, evals, args.with_source), DISAGREEMENT_FIELDS, "disagreements"
    return score_rows(store, evals), SCORE_FIELDS, "score rows"


def _eval_fields(ev: EvalRow) -> dict[str, Any]:
    return {"eval_id": ev.id, "task": ev.task, "task_version": ev.task_version, "model": ev.model_path,
            "name": _name(ev), "weights_hash": ev.weights_hash, **ev.tags.to_dict(), "grader_policy": ev.grader_policy,
            "engine": ev.engine,
            "status": ev.status}


def _name(ev: EvalRow) -> str:
    """The display name pages give the model (`model` keeps its stored path)."""
    return paths.model_display_name(ev.model_path, ev.run_name, ev.step)


def score_rows(store: Store, evals: list[EvalRow]) -> Iterator[dict[str, Any]]:
    for ev in evals:
        base = _eval_fields(ev) | {key: ev.sampling.get(key) for key in ("temperature", "top_p", "max_tokens",
                                                                        "seed")}
        for s in store.scores(ev.id):
            yield base | {"metric": s.metric, "k": s.k, "value": s.value, "ci_low": s.ci_low,
                          "ci_high": s.ci_high, "n": s.n}


def sample_rows(store: Store, evals: list[EvalRow]) -> Iterator[dict[str, Any]]:
    for ev in evals:
        base = {"task": ev.task, "model": ev.model_path, "name": _name(ev), "run_name": ev.run_name, "step": ev.step}
        for s in store.samples(ev.id):
            yield base | s


def disagreement_rows(store: Store, evals: list[EvalRow], source: str) -> Iterator[dict[str, Any]]:
    from spsbench.leaderboards.external import disagreements

    for ev in evals:
        for row in disagreements(store, ev.id, source):
            yield {"eval_id": ev.id, "task": ev.task, "model": ev.model_path} | row


def session_rows(store: Store, evals: list[EvalRow]) -> Iterator[dict[str, Any]]:
    """One row per run that opened an evaluation; `provenance` is its full provenance as JSON text."""
    for ev in evals:
        for x in store.sessions(ev.id):
            yield {"eval_id": ev.id, "task": ev.task, "model": ev.model_path, "session": x.id, "kind": x.kind,
                   "started_at": x.started_at, "engine": x.engine, "n": x.n, "samples": x.samples,
                   "min_idx": x.min_idx, "max_idx": x.max_idx, "last_at": x.last_at,
                   "host": x.provenance.get("host"), "spsbench": (x.provenance.get("packages") or {}).get("spsbench"),
                   "provenance": json.dumps(x.provenance, sort_keys=True)}
