"""The evaluation pipeline: task problems -> engine -> grader pool -> store -> scores.

An evaluation is identified by (model, task, task version, grader policy, sampling key, task digest:
what the task's problems, gold answers and prompts are, see evaluation/identity.py); n is not part
of it, so raising n extends a stored evaluation and lowering it scores a subset. Only the samples the
store lacks are generated, each with `sample_seed(seed, problem_id, idx)`, so a resumed run produces
exactly what an uninterrupted one would have. The engine runs in the calling thread; a writer thread
grades its completions in batches (GraderPool worker processes) and commits them, so grading and
storage overlap with generation. A finished evaluation is rescored from the store without loading
the engine at all. Before anything is stored or loaded, each task's max_tokens is clamped to what fits
the model's context after the task's longest prompt (spsbench.evaluation.budget), and the evaluation is
stored under that effective budget.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from spsbench import paths
from spsbench.config import SamplingConfig, sample_seed
from spsbench.engines import engine_class, load_stored
from spsbench.engines.base import Completion, Engine, GenRequest
from spsbench.errors import StoreError
from spsbench.evaluation.budget import BudgetResolver
from spsbench.evaluation.identity import find_existing
from spsbench.evaluation.provenance import provenance as session_provenance
from spsbench.evaluation.records import EvalRequest, EvalResult, check_ks
from spsbench.grading import GradeRequest, GraderPool, GradingPolicy, shared_pool
from spsbench.metrics import chance_pass_at_k, report_ks, summarize
from spsbench.quiet import ProgressBars
from spsbench.store import EvalKey, ModelTags, SampleRow, Scores, Store
from spsbench.tasks import Problem, Task, load_spec, load_task

EngineFactory = Callable[[str, str], Engine]     # (engine name, model path) -> a loaded engine
GRADE_BATCH = 256            # completions graded + committed per transaction (at most)


def evaluate(request: EvalRequest, *, engine_factory: EngineFactory | None = None) -> list[EvalResult]:
    """Evaluate one model on tasks; resumes whatever the store already holds for the same identity.

    `engine_factory(engine, model)` replaces `spsbench.engines.load_engine` (tests, or callers holding a
    warm engine). The request's grading policy is part of the evaluation's identity, so strict and
    lenient results are stored as separate evaluations and never mix.
    """
    full = [load_eval_task(name, request.data, None) for name in request.tasks]
    model_path, digest = _identify(request.model, request.engine, request.engine_options)
    requests = _budgeted(full, request, model_path)       # before anything is stored or loaded
    factory = engine_factory or _default_factory(request.engine_options)
    holder = _EngineHolder(lambda: factory(request.engine, model_path))
    db = Store(request.store or paths.default_store_path())
    try:
        model_id = db.upsert_model(model_path, digest, request.tags)
        return [_evaluate_task(db, holder, model_id, model_path, _limited(task, request.limit), req)
                for task, req in zip(full, requests, strict=True)]
    finally:
        holder.close()
        db.close()


class SharedEngine:
    """An `engine_factory` that loads one engine on first use and lends it to several `evaluate` calls
    (sampling groups of one model, or of one checkpoint); `close()` unloads it."""

    def __init__(self, options: dict[str, Any], factory: EngineFactory | None = None) -> None:
        self.options, self.factory, self.engine = options, factory, None

    def get(self, name: str, model_path: str) -> Engine:
        if self.engine is None:
            self.engine = (self.factory or _default_factory(self.options))(name, model_path)
        return _KeepOpen(self.engine)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


class _KeepOpen:
    """The shared engine as `evaluate` sees it: its close() is left to SharedEngine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.name = engine.name

    def describe(self) -> dict:
        return self._engine.describe()

    def generate(self, requests: Iterable[GenRequest], sampling: SamplingConfig) -> Iterator[Completion]:
        return self._engine.generate(requests, sampling)

    def close(self) -> None:
        pass


class _EngineHolder:
    """Loads the engine on first use only: a fully stored evaluation never pays its start-up."""

    def __init__(self, load: Callable[[], Engine]) -> None:
        self._load, self.engine = load, None

    def get(self) -> Engine:
        if self.engine is None:
            self.engine = self._load()
        return self.engine

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


# --------------------------------------------------------------------------- set-up


def load_eval_task(name: str, data: Mapping[str, str] | None, limit: int | None) -> Task:
    """A task by name or YAML path, with its `--data NAME=PATH` override applied."""

    spec = load_spec(name)
    override = (data or {}).get(spec.name) or (data or {}).get(str(name))
    return load_task(name, data=override, limit=limit)


def _budgeted(tasks: list[Task], request: EvalRequest, model_path: str, warn: bool = True) -> list[EvalRequest]:
    """One request per task, its max_tokens clamped to what fits the model's context after the task's
    longest prompt (spsbench.evaluation.budget): the effective budget is the one stored."""
    resolver = BudgetResolver(request.engine, model_path, request.engine_options)
    try:
        samplings = [resolver.sampling_for(task, request.sampling, warn) for task in tasks]
    finally:
        resolver.close()
    return [request if s == request.sampling else request.replace(sampling=s) for s in samplings]


def effective_samplings(request: EvalRequest, model_path: str) -> dict[str, SamplingConfig]:
    """Task name -> the sampling `evaluate` stores the request under for this model (its max_tokens
    clamped to the context), without a warning: to look up what is stored before evaluating."""
    full = [load_eval_task(name, request.data, None) for name in request.tasks]
    return {t.spec.name: r.sampling for t, r in zip(full, _budgeted(full, request, model_path, warn=False),
                                                     strict=True)}


def _limited(task: Task, limit: int | None) -> Task:
    return dataclasses.replace(task, problems=task.problems[:limit]) if limit else task


def _identify(model: str | None, engine: str, options: Mapping[str, Any]) -> tuple[str, str]:
    """(path as stored, weights hash), as the engine identifies the model (engines.base.EngineBase)."""
    return engine_class(engine).identify(model, options)


def _default_factory(options: Mapping[str, Any]) -> EngineFactory:
    def load(engine: str, model_path: str) -> Engine:
        return load_stored(engine, model_path, **options)
    return load


# --------------------------------------------------------------------------- one task


def _evaluate_task(db: Store, holder: _EngineHolder, model_id: int, model_path: str, task: Task,
                   req: EvalRequest) -> EvalResult:
    start = time.perf_counter()
    spec, sampling, n = task.spec, req.sampling, req.sampling.n
    key = EvalKey(model_id, spec.name, spec.version, req.grading.id(), sampling.key(), task.digest)
    existing = find_existing(db, key, task)
    done = db.done_samples(existing.id) if existing else set()
    missing = [(p, i) for p in task.problems for i in range(n) if (p.id, i) not in done]
    eval_id, generated = (existing.id if existing else None), 0
    if missing:
        eval_id, missing = _regrade_siblings(db, key, task, missing, req, model_path)
    if missing or eval_id is None:
        if missing:
            _warm_grader(req.grader_workers or 1, req.grading)     # starts while the engine loads
        eng = holder.get() if missing else None
        provenance = session_provenance(eng, task, req, model_path)
        eval_id = _begin(db, key, sampling, getattr(eng, "name", "none"), provenance)
        generated = _generate_and_store(db, eng, eval_id, task, missing, req) if missing else 0
    scores = _score(db, eval_id, task, n, req.ks)
    return EvalResult(spec.name, eval_id, model_path, n, scores, generated, time.perf_counter() - start)


def _begin(db: Store, key: EvalKey, sampling: SamplingConfig, engine: str, provenance: dict[str, Any]) -> int:
    return db.begin_evaluation(key, sampling, engine, provenance)


def _regrade_siblings(db: Store, key: EvalKey, task: Task, missing: list[tuple[Problem, int]], req: EvalRequest,
                      model_path: str) -> tuple[int | None, list[tuple[Problem, int]]]:
    """Grade, under this policy, completions already stored for the same model, prompts and seeds under
    another grader policy (strict vs lenient, an older extractor version) instead of generating them again.

    Returns (the evaluation id if one was opened, else None; what is still missing)."""

    wanted = {(p.id, i): p for p, i in missing}
    found: dict[tuple[str, int], Completion] = {}
    sources: dict[int, str] = {}
    sampling = req.sampling
    for ev in db.sibling_evaluations(key):
        if ev.grader_policy == key.grader_policy and ev.task_digest == key.task_digest:
            continue            # the evaluation itself; another digest's completions are reusable by prompt
        for s in db.samples(ev.id):
            slot = (str(s["problem_id"]), int(s["sample_idx"]))
            p = wanted.get(slot)
            if slot in found or p is None or s["prompt"] != p.prompt:
                continue
            if int(s["seed"]) != sample_seed(sampling.seed, p.id, slot[1]):
                continue
            found[slot] = Completion(p.id, slot[1], int(s["seed"]), s["completion"], s["prompt_tokens"],
                                    s["completion_tokens"], s["finish_reason"])
            sources[ev.id] = ev.engine
    if not found:
        return None, missing
    provenance = session_provenance(None, task, req, model_path) | {"regraded_from": sorted(sources)}
    engine = ",".join(sorted({name for engines in sources.values() for name in engines.split(",")}))
    eval_id = _begin(db, key, sampling, engine, provenance)
    _grade_and_store(db, eval_id, task, iter(found.values()), len(found), req, regrade=True)
    return eval_id, [(p, i) for p, i in missing if (p.id, i) not in found]


def build_requests(missing: list[tuple[Problem, int]], base_seed: int) -> list[GenRequest]:
    """One GenRequest per problem with the sample indices (and their seeds) still missing."""

    by_problem: dict[str, tuple[Problem, list[int]]] = {}
    for problem, idx in missing:
        by_problem.setdefault(problem.id, (problem, []))[1].append(idx)
    return [GenRequest(pid, problem.prompt, tuple(idx), tuple(sample_seed(base_seed, pid, i) for i in idx))
            for pid, (problem, idx) in by_problem.items()]


def _generate_and_store(db: Store, eng: Engine, eval_id: int, task: Task, missing: list[tuple[Problem, int]],
                        req: EvalRequest) -> int:
    """Stream the engine's completions to the grader/writer thread; return how many were stored."""
    stream = eng.generate(build_requests(missing, req.sampling.seed), req.sampling)
    return _grade_and_store(db, eval_id, task, stream, len(missing), req)


def _grade_and_store(db: Store, eval_id: int, task: Task, stream: Iterator[Completion], total: int,
                     req: EvalRequest, regrade: bool = False) -> int:
    """Feed completions (from an engine, or stored ones to re-grade) to the grading writer thread."""
    problems = {p.id: p for p in task.problems}
    source = "re-grading stored completions" if regrade else "generating"
    with ProgressBars(req.progress) as bars:
        generated = bars.bar(f"{task.spec.name}: {source}", total)
        graded = bars.bar(f"{task.spec.name}: grading + storing", total)
        writer = _Writer(db, eval_id, problems, task.spec.grader, (req.grader_workers or 1, req.grading), graded)
        writer.start()
        try:
            for completion in stream:
                writer.put(completion)
                generated(1)
        finally:
            writer.finish()     # on error or Ctrl-C too: what was generated is graded and committed
    return writer.stored


class _Writer(threading.Thread):
    """Grades completions in batches and commits them; the only user of its GraderPool and Store calls."""

    def __init__(self, db: Store, eval_id: int, problems: dict[str, Problem], kind: str, pool: tuple[int, GradingPolicy],
                 graded: Callable[[int], None]) -> None:
        super().__init__(name="spsbench-grader", daemon=True)
        self.db, self.eval_id, self.problems, self.kind, self.graded = db, eval_id, problems, kind, graded
        self.workers, self.policy = pool
        self.queue: queue.Queue = queue.Queue()
        self.stored = 0
        self.error: BaseException | None = None

    def put(self, completion: Completion) -> None:
        if self.error is not None:          # stop generating into a writer that cannot store
            raise self.error
        self.queue.put(completion)

    def finish(self) -> None:
        self.queue.put(None)
        self.join()
        if self.error is not None:
            raise self.error

    def run(self) -> None:
        try:
            with shared_pool(self.policy, self.workers) as pool:
                while (batch := self._next_batch()) is not None:
                    self._store(pool, batch)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the generating thread by put()/finish()
            self.error = exc

    def _next_batch(self) -> list[Completion] | None:
        """Block for one completion, then take whatever else is already queued (up to GRADE_BATCH)."""
        first = self.queue.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < GRADE_BATCH:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self.queue.put(None)        # seen again by the next _next_batch call
                break
            batch.append(item)
        return batch

    def _store(self, pool: GraderPool, batch: list[Completion]) -> None:
        probs = [self.problems[c.key] for c in batch]
        grades = pool.grade_many([GradeRequest(c.text, p.answer, self.kind, p.choices)
                                  for c, p in zip(batch, probs, strict=True)])
        rows = [SampleRow(c.key, c.sample_idx, c.seed, p.prompt, c.text, c.prompt_tokens, c.completion_tokens,
                          c.finish_reason, g.extracted, str(g.outcome))
                for c, p, g in zip(batch, probs, grades, strict=True)]
        self.stored += self.db.add_samples(self.eval_id, rows)
        self.graded(len(rows))


def _warm_grader(workers: int, policy: GradingPolicy | None = None) -> None:
    """Start the grader workers now (in the background), so the first batch does not wait for them."""

    def warm() -> None:
        with contextlib.suppress(Exception), shared_pool(policy, workers) as pool:
            pool.grade_many([GradeRequest("\\boxed{1}", "1")])
    threading.Thread(target=warm, name="spsbench-grader-warmup", daemon=True).start()


# --------------------------------------------------------------------------- scores


def _score(db: Store, eval_id: int, task: Task, n: int, ks: Sequence[int]) -> Scores:
    """Scores from the first n stored samples of this task's problems; written to the store as done."""

    wanted = {p.id for p in task.problems}
    counts = [row for row in db.problem_counts(eval_id, n=n) if row[0] in wanted]
    short = len(wanted) - sum(1 for _, got, _ in counts if got == n)
    if short:
        raise StoreError(f"evaluation {eval_id} ({task.spec.name}): {short} problem(s) have fewer than "
                         f"n={n} stored samples after generation; run it again to fill them in")
    report = report_ks(n, sorted(set(ks) | {k for k in task.spec.k if k <= n}))
    summary = summarize([c[1] for c in counts], [c[2] for c in counts], report)
    chance = _chance(task, report) if task.spec.grader == "mc" else None
    scores = Scores.from_summary(summary, db.outcome_counts(eval_id, n=n, problems=wanted), chance)
    db.finish_evaluation(eval_id, scores.to_rows(), problems=wanted)
    return scores


def _chance(task: Task, ks: list[int]) -> dict[int, float]:
    """Pass@k of uniform guessing, averaged over problems (option counts may differ)."""

    sizes = [len(p.choices or ()) or 1 for p in task.problems]
    return {k: sum(chance_pass_at_k(m, k) for m in sizes) / len(sizes) for k in ks}


# --------------------------------------------------------------------------- the score table


def score_table(results: Sequence[tuple[str, EvalResult]], title: str = "spsbench scores") -> Any:
    """A rich Table: task, model, n, Avg@n [95% CI], pass@k per k, and the non-graded outcome counts."""
    from rich.table import Table

    ks = sorted({k for _, r in results for k in r.scores.pass_at_k})
    table = Table(title=title, title_justify="left")
    for name in ("task", "model", "n", "Avg@n [95% CI]", *(f"pass@{k}" for k in ks),
                 "no answer", "timeout", "error"):
        table.add_column(name, justify="left" if name in ("task", "model") else "right", no_wrap=True)
    for label, r in results:
        table.add_row(*_table_row(label, r, ks))
    return table


def _table_row(label: str, r: EvalResult, ks: list[int]) -> list[str]:
    avg, passk, counts = r.scores.avg, r.scores.pass_at_k, r.scores.counts
    cell = "—" if avg is None else f"{avg.value * 100:.1f} [{avg.ci_low * 100:.1f}, {avg.ci_high * 100:.1f}]"
    chance = r.scores.chance_pass_at_k
    pk = [f"{passk[k].value * 100:.1f}" + (f" (chance {chance[k] * 100:.0f})" if k in chance else "")
          if k in passk else "—" for k in ks]
    return [r.task, label, str(r.n), cell, *pk, str(counts.get("no_answer", 0)),
            str(counts.get("grader_timeout", 0)), str(counts.get("grader_error", 0))]


__all__ = ["EvalRequest", "EvalResult", "ModelTags", "SharedEngine", "check_ks", "evaluate", "score_table"]
