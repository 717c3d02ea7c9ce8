"""`spsbench import evalscope`: EvalScope run folders -> graded, scored evaluations in the results store.

Everything is read and checked before the first write, then each (run, benchmark) becomes one
evaluation written in ONE store transaction (model, evaluation, samples, EvalScope's verdicts, scores):
an error leaves nothing half-imported. Completions are re-graded with our grader (strict by default)
and scored exactly like a native evaluation (Pass@k with bootstrap intervals); EvalScope's own
extracted answer and verdict are kept per sample in `external_grades`. Sample index = EvalScope's
generation index (index % repeats); the stored seed is the run's fixed seed (-1 when none was sent).
"""

from __future__ import annotations

import contextlib
import platform
import socket
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from spsbench import paths
from spsbench.config import SamplingConfig
from spsbench.grading import Grade, GradeRequest, GraderPool, GradingPolicy
from spsbench.interop import InteropError
from spsbench.interop.evalscope_map import (
    ImportedProblem,
    cached_ids,
    check_distinct_prompts,
    check_group,
    model_identity,
    problem_id,
    prompt_digest,
    sampling,
    split_prompt,
    task_for,
    trailing_options,
    user_prompt,
)
from spsbench.interop.evalscope_parse import Attempt, Review, Run, SubsetFile, find_runs, read_run
from spsbench.leaderboards.external import agreement
from spsbench.metrics import chance_pass_at_k, report_ks, summarize
from spsbench.store import EvalKey, SampleRow, Scores, Store
from spsbench.tasks import TaskSpec, load_spec
from spsbench.tasks import fill_template as render_prompt

FINISH = {"max_tokens": "length", "model_length": "length", "stop": "stop"}


@dataclass
class Item:
    problem: ImportedProblem
    idx: int
    attempt: Attempt
    review: Review | None


@dataclass
class Plan:
    """One (run, benchmark) as it will be stored."""

    run: Run
    bench: str
    spec: TaskSpec                     # ours
    task_version: str
    model: str
    sampling: SamplingConfig
    items: list[Item]
    warnings: list[str] = field(default_factory=list)
    grades: list[Grade] = field(default_factory=list)

    @property
    def source(self) -> str:
        return f"evalscope@{self.run.config.version}"

    def key(self, model_id: int, policy: GradingPolicy) -> EvalKey:
        """The evaluation this plan is stored as (no task digest: EvalScope's own prompts)."""
        return EvalKey(model_id, self.spec.name, self.task_version, policy.id(), self.sampling.key())


@dataclass
class ImportReport:
    run: str
    bench: str
    task: str
    task_version: str
    eval_id: int
    model: str
    problems: int
    samples: int
    new: int
    agree: int
    reviewed: int
    scores: Scores
    warnings: list[str]


def import_evalscope(work_dir: str | Path, *, model_name: str | None = None, store: str | Path | None = None,
                     grading: GradingPolicy | None = None, grader_workers: int = 1) -> list[ImportReport]:
    """Import every run under `work_dir`; all inputs are read and checked before anything is written."""

    plans = [plan for path in find_runs(work_dir) for plan in plan_run(read_run(path), model_name)]
    _check_distinct(plans)
    policy = grading or GradingPolicy()
    grade_plans(plans, policy, grader_workers)
    with Store(store or paths.default_store_path()) as db:
        return [ingest(db, plan, policy) for plan in plans]


# --------------------------------------------------------------------------- planning


def _check_distinct(plans: list[Plan]) -> None:
    """Two runs of one WORK_DIR with the same model, task and sampling would merge: refuse before writing."""
    seen: dict[tuple, Plan] = {}
    for plan in plans:
        key = (plan.model, plan.spec.name, plan.task_version, plan.sampling.key())
        if key in seen:
            raise InteropError(f"runs {seen[key].run.path.name} and {plan.run.path.name} both hold {plan.bench} for "
                               f"{plan.model} with the same sampling; import them one at a time with --model-name")
        seen[key] = plan


def plan_run(run: Run, model_name: str | None) -> list[Plan]:

    settings, warnings = sampling(run.config)
    by_bench: dict[str, list[SubsetFile]] = {}
    for sub in run.files:
        by_bench.setdefault(sub.bench, []).append(sub)
    plans = []
    for bench, subs in by_bench.items():
        spec = load_spec(task_for(bench, run.config))
        plan = Plan(run, bench, spec, spec.version, model_identity(run.config, model_name), settings, [],
                    list(warnings))
        plan.items = _items(plan, subs)
        _finish_plan(plan)
        plans.append(plan)
    return plans


def _items(plan: Plan, subs: list[SubsetFile]) -> list[Item]:
    repeats, by_text = plan.run.config.repeats, cached_ids(plan.spec)
    items: list[Item] = []
    for sub in subs:
        groups: dict[int, list[Attempt]] = {}
        for index in sorted(sub.attempts):
            groups.setdefault(index // repeats, []).append(sub.attempts[index])
        for group, attempts in groups.items():
            check_group(sub, group, attempts, repeats)
        check_distinct_prompts(sub, {g: a[0] for g, a in groups.items()}, repeats)
        for group, attempts in sorted(groups.items()):
            problem = _problem(plan, sub, group, attempts, by_text, len(subs) > 1)
            items += [Item(problem, a.index % repeats, a, (sub.reviews or {}).get(a.index)) for a in attempts]
        if sub.duplicates:
            plan.warnings.append(f"{sub.predictions_path.name}: {sub.duplicates} duplicate index row(s); the later "
                                 "row of each was kept")
    _check_unique(plan, items)
    return items


def _problem(plan: Plan, sub: SubsetFile, group: int, attempts: list[Attempt], by_text: dict[str, str],
             several: bool) -> ImportedProblem:

    first = attempts[0]
    prompt = user_prompt(first)
    parsed = split_prompt(plan.bench, prompt, plan.run.config)
    text, choices = parsed if parsed else (prompt, None)
    if plan.spec.grader == "mc" and choices is None:
        choices = trailing_options(prompt)
    gold = next((r.target for a in attempts if (r := (sub.reviews or {}).get(a.index)) and r.target), None)
    if gold is None:
        raise InteropError(f"{sub.predictions_path}: problem at index {first.index} has no review with a target: "
                           "the gold answer is unknown (its reviews/ file is missing or incomplete)")
    pid = problem_id(sub, first, group, by_text, text, several)
    system = any(role == "system" for role, _ in first.messages)
    native = parsed is not None and not system and render_prompt(plan.spec, text, choices) == prompt
    return ImportedProblem(pid, text, prompt, gold, choices, native)


def _check_unique(plan: Plan, items: list[Item]) -> None:
    """Two rows stored as one (problem id, sample) would keep one and drop the other: refuse instead."""
    seen: dict[tuple[str, int], Item] = {}
    for item in items:
        key = (item.problem.id, item.idx)
        if key in seen:
            other = seen[key].attempt
            what = ("two different problems" if seen[key].problem.prompt != item.problem.prompt else
                    "two rows with the same prompt")
            raise InteropError(f"{plan.run.path}: {what} of {plan.bench} (index {other.index} and index "
                               f"{item.attempt.index}) map to problem {item.problem.id!r}, sample {item.idx}; "
                               "cannot import them as one task (does the config's repeats match the rows?)")
        seen[key] = item


def _finish_plan(plan: Plan) -> None:
    problems = {i.problem.id: i.problem for i in plan.items}
    foreign = [p for p in problems.values() if not p.native]
    if foreign:
        plan.task_version = f"{plan.spec.version}+evalscope.{prompt_digest([(p.id, p.prompt) for p in problems.values()])}"
        plan.warnings.append(f"{len(foreign)} of {len(problems)} prompts differ from task {plan.spec.name}'s "
                             f"template: EvalScope's prompts are kept and stored as task version "
                             f"{plan.task_version}, never compared with native evaluations")
    if plan.spec.grader == "mc" and any(p.choices is None for p in problems.values()):
        plan.warnings.append("options of some questions could not be read from their prompt; graded as A-D")
    attempts: dict[str, list[bool]] = {}          # problem -> errored? per attempt (one pass: MMLU is large)
    for item in plan.items:
        attempts.setdefault(item.problem.id, []).append(bool(item.attempt.error))
    failed = [pid for pid, errors in attempts.items() if all(errors)]
    if failed:
        plan.warnings.append(f"{len(failed)} problem(s) have no successful attempt ({', '.join(failed[:5])}"
                             f"{', ...' if len(failed) > 5 else ''}): stored as no_answer, counted as wrong "
                             "(EvalScope drops them from its denominator)")
    short = [pid for pid, errors in attempts.items() if len(errors) < plan.run.config.repeats]
    if short:
        plan.warnings.append(f"{len(short)} problem(s) have fewer than repeats={plan.run.config.repeats} "
                             "attempts (an interrupted run); Pass@k uses what is there, k <= the fewest")


def completion_text(attempt: Attempt) -> str:
    """The answer text, with the server's reasoning kept before it in a think block (graded as such)."""
    if attempt.reasoning:
        return f"<think>\n{attempt.reasoning}\n</think>\n{attempt.text}"
    return attempt.text


# --------------------------------------------------------------------------- grading


def grade_plans(plans: list[Plan], policy: GradingPolicy, workers: int) -> None:

    requests = [GradeRequest(completion_text(i.attempt), i.problem.gold, p.spec.grader, i.problem.choices)
                for p in plans for i in p.items]
    if not requests:
        return
    with contextlib.closing(GraderPool(workers=max(1, workers), policy=policy)) as pool:
        grades = pool.grade_many(requests)
    start = 0
    for plan in plans:
        plan.grades, start = grades[start:start + len(plan.items)], start + len(plan.items)


# --------------------------------------------------------------------------- storing


def ingest(db: Store, plan: Plan, policy: GradingPolicy) -> ImportReport:
    """One evaluation, written in one transaction."""

    seed = int(plan.run.config.generation.get("seed") if plan.run.config.generation.get("seed") is not None else -1)
    rows = [SampleRow(i.problem.id, i.idx, seed, i.problem.prompt, completion_text(i.attempt),
                      i.attempt.prompt_tokens, i.attempt.completion_tokens,
                      "error" if i.attempt.error else FINISH.get(str(i.attempt.stop_reason), i.attempt.stop_reason),
                      g.extracted, str(g.outcome)) for i, g in zip(plan.items, plan.grades, strict=True)]
    external = [(i.problem.id, i.idx, i.review.extracted, i.review.verdict) for i in plan.items if i.review]
    with db.transaction():
        key = plan.key(db.upsert_model(plan.model, ""), policy)
        _check_identity(db, plan, key)
        eval_id = db.begin_evaluation(key, plan.sampling, plan.source, _provenance(plan))
        new = db.add_samples(eval_id, rows)
        db.add_external_grades(eval_id, plan.source, external)
        scores = score(db, eval_id, plan)
        agree, reviewed = agreement(db, eval_id)
    problems = len({r.problem_id for r in rows})
    return ImportReport(str(plan.run.path), plan.bench, plan.spec.name, plan.task_version, eval_id, plan.model,
                        problems, len(rows), new, agree, reviewed, scores, plan.warnings)


def _check_identity(db: Store, plan: Plan, key: EvalKey) -> None:
    """Refuse to merge into an evaluation that another run (native or another EvalScope run) produced."""
    existing = db.find_evaluation(key)
    if existing is None:
        return
    runs = {(s.provenance.get("evalscope") or {}).get("run") for s in db.sessions(existing.id)}
    if runs != {str(plan.run.path.resolve())}:
        other = "a native evaluation" if None in runs else f"EvalScope run {sorted(r for r in runs if r)[0]}"
        raise InteropError(f"evaluation {existing.id} ({plan.spec.name}, {plan.model}) with the same sampling "
                           f"already holds samples from {other}; pass --model-name to import this run "
                           "under another name")


def _provenance(plan: Plan) -> dict[str, Any]:
    cfg = plan.run.config
    versions = {}
    for name in ("spsbench", "math-verify"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return {"engine": {"name": plan.source}, "packages": versions, "host": socket.gethostname(),
            "python": platform.python_version(), "argv": sys.argv, "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "model": plan.model, "problems": len({i.problem.id for i in plan.items}),
            "evalscope": {"run": str(plan.run.path.resolve()), "version": cfg.version, "benchmark": plan.bench,
                          "config": str(cfg.path), "model": cfg.model, "api_url": cfg.api_url,
                          "generation_config": cfg.generation, "repeats": cfg.repeats,
                          "dataset_args": cfg.dataset_args.get(plan.bench) or {},
                          "review_layouts": sorted({i.review.layout for i in plan.items if i.review}),
                          "native_prompts": plan.task_version == plan.spec.version},
            "warnings": plan.warnings}


def score(db: Store, eval_id: int, plan: Plan) -> Scores:
    """Scores from our grades, as a native evaluation's: Pass@k (k <= the fewest attempts) with intervals."""

    counts = db.problem_counts(eval_id)
    n_min = min(c[1] for c in counts)
    ks = report_ks(n_min, [k for k in plan.spec.k if k <= n_min])
    summary = summarize([c[1] for c in counts], [c[2] for c in counts], ks)
    chance = None
    if plan.spec.grader == "mc":
        sizes = [len(p.choices or ()) or 4 for p in {i.problem.id: i.problem for i in plan.items}.values()]
        chance = {k: sum(chance_pass_at_k(m, k) for m in sizes) / len(sizes) for k in ks}
    scores = Scores.from_summary(summary, db.outcome_counts(eval_id), chance)
    db.finish_evaluation(eval_id, scores.to_rows(), problems=[c[0] for c in counts])
    return scores
