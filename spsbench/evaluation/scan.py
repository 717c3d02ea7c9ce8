"""Run-folder scanning: evaluate the `checkpoint-<step>/` folders of a training run (Hugging Face Trainer
layout) that the store does not hold yet, in step order, and pick the best one (highest Avg@n).

Broken checkpoints (partial saves, missing or truncated weights, weights that do not match the config,
a model the engine cannot load) are reported one line each, once, and skipped; the others still run.
`watch` keeps scanning while a trainer writes new checkpoints and says what it waits for. A checkpoint
is complete when its save marker is there (`spsbench train` writes `spsbench_checkpoint_complete`
after the last file of a save; once any checkpoint of a run has it, the others wait for theirs); else
(other trainers, older spsbench runs, a run's first save) when `trainer_state.json` (the HF Trainer
writes it after the weights) is there and nothing changed for `SETTLE_S` seconds.
Until then it is "waiting", said once per reason. A checkpoint found broken is checked again when its
files change (a copy or a save that was slower than the settle time), never reported twice unchanged.
Several sampling groups (tasks with different default n) are covered by one scan loop: each checkpoint
is evaluated for every group with one engine load.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spsbench import paths
from spsbench.config import SamplingConfig
from spsbench.errors import CheckpointError, ConfigError, EngineError
from spsbench.evaluation.evaluate import SharedEngine, effective_samplings, evaluate, load_eval_task
from spsbench.evaluation.identity import find_existing
from spsbench.evaluation.records import EvalRequest, EvalResult
from spsbench.evaluation.run_metrics import RunMetricsWriter
from spsbench.grading import GradingPolicy, policy_id
from spsbench.models import check_loadable, weights_hash
from spsbench.quiet import warn
from spsbench.store import EvalKey, EvalRow, ModelTags, Scores, Store
from spsbench.tasks import Task

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"    # written last by the HF Trainer when a checkpoint is complete
SETTLE_S = 5.0                          # files younger than this may still be growing
# A checkpoint of an spsbench run without the marker but with trainer_state.json and no change for this
# long was written by an spsbench from before the marker (or its save was killed after the weights).
UNMARKED_S = 600.0


@dataclass
class CheckpointResult:
    step: int
    path: Path
    status: str                          # evaluated | stored (already in the store, every group) | broken
    results: list[EvalResult] = field(default_factory=list)
    reason: str = ""


@dataclass
class ScanReport:
    run: Path
    checkpoints: list[CheckpointResult] = field(default_factory=list)

    def best(self, task: str) -> CheckpointResult | None:
        """Highest Avg@n on `task` (ties: the earlier step, i.e. the cheaper checkpoint)."""
        scored = [(c, r) for c in self.checkpoints for r in c.results if r.task == task]
        if not scored:
            return None
        return max(scored, key=lambda cr: (cr[1].scores.avg.value, -cr[0].step))[0]


# --------------------------------------------------------------------------- discovery


def is_run_folder(path: str | Path) -> bool:
    """True if `path` holds at least one `checkpoint-<step>/` folder."""
    path = Path(path)
    return path.is_dir() and any(CHECKPOINT_RE.match(p.name) and p.is_dir() for p in path.iterdir())


def checkpoints(run: str | Path) -> list[tuple[int, Path]]:
    """(step, folder) for every `checkpoint-<step>/` in `run`, in step order."""
    found = [(int(m.group(1)), p) for p in Path(run).iterdir()
             if p.is_dir() and (m := CHECKPOINT_RE.match(p.name))]
    return sorted(found)


def run_info(run: str | Path) -> dict[str, Any]:
    """The trainer's `spsbench_run.json` in a run folder ({} when absent or unreadable)."""
    try:
        loaded = json.loads((Path(run) / paths.RUN_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def recorded_sampling(run: str | Path) -> dict[str, Any]:
    """The setting the run's training callback evaluated (or would have) its checkpoints at: tasks, n,
    temperature, top_p, max_tokens, seed, k, limit; {} for a run folder without one."""
    recorded = run_info(run).get("eval")
    return recorded if isinstance(recorded, dict) else {}


def run_tags(run: str | Path, step: int) -> ModelTags:
    """Tags for a checkpoint: run name, step, and algo/base model from the trainer's run info file."""
    run = Path(run)
    info = run_info(run)
    return ModelTags(run_name=str(info.get("run_name") or run.resolve().name), step=step,
                     algo=info.get("algo"), base_model=info.get("base_model"))


def is_settled(folder: Path, settle_s: float | None = None) -> bool:
    """Complete as far as we can tell (`awaited` says what is missing otherwise)."""
    return awaited(folder, settle_s=settle_s) is None


def awaited(folder: Path, marked: bool = False, settle_s: float | None = None) -> str | None:
    """None when `folder` is a complete checkpoint; else what it waits for. `marked`: another checkpoint of
    the run has the save marker (its trainer writes it last), so only the marker says complete."""
    settle_s = SETTLE_S if settle_s is None else settle_s
    if (folder / paths.CHECKPOINT_COMPLETE).is_file():
        return None
    age = time.time() - _newest(folder)
    if marked and not ((folder / TRAINER_STATE).is_file() and age >= UNMARKED_S):
        return f"{paths.CHECKPOINT_COMPLETE} (spsbench train writes it after the save's last file)"
    if not (folder / TRAINER_STATE).is_file():
        return f"{TRAINER_STATE} (the Trainer writes it last)"
    if age < settle_s:
        return f"its files to stop changing (last change {max(age, 0):.0f} s ago)"
    return None


def _newest(folder: Path) -> float:
    return max((p.stat().st_mtime for p in folder.rglob("*") if p.is_file()), default=0.0)


def fingerprint(folder: Path) -> tuple:
    """(name, size, mtime) of every file: a broken checkpoint whose files change is looked at again."""
    try:
        return tuple(sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                            for p in folder.rglob("*") if p.is_file()))
    except OSError:                     # a file removed while listing: changed
        return (time.time(),)


# --------------------------------------------------------------------------- already stored?


def is_stored(store: Store, folder: Path, tasks: Sequence[Task], sampling: SamplingConfig,
              grading: GradingPolicy | None = None) -> bool:
    """True when every task has a finished evaluation of `folder` with all n samples and scores at n."""

    model_id = store.find_model(str(folder.resolve()), weights_hash(folder))
    if model_id is None:
        return False
    for task in tasks:
        ev = _stored(store, model_id, task, sampling, grading)
        if ev is None or ev.status != "done":
            return False
        done = store.done_samples(ev.id)
        if any((p.id, i) not in done for p in task.problems for i in range(sampling.n)):
            return False
        if store.scored_problems(ev.id) not in (None, {p.id for p in task.problems}):
            return False                     # scored over another problem subset (--limit): rescore
        scored = Scores.from_rows(store.scores(ev.id), 0)
        if scored.avg is None or scored.n != sampling.n:
            return False
    return True


def stored_results(store: Store, folder: Path, tasks: Sequence[Task], sampling: SamplingConfig,
                   grading: GradingPolicy | None = None) -> list[EvalResult]:
    """EvalResults rebuilt from the store's scores (for checkpoints skipped as already stored)."""

    path = str(folder.resolve())
    model_id = store.find_model(path, weights_hash(folder))
    out = []
    for task in tasks:
        ev = _stored(store, model_id, task, sampling, grading)
        scores = Scores.from_rows(store.scores(ev.id), sampling.n)
        out.append(EvalResult(task.spec.name, ev.id, path, scores.n, scores))
    return out


def _stored(store: Store, model_id: int, task: Task, sampling: SamplingConfig,
            grading: GradingPolicy | None) -> EvalRow | None:
    key = EvalKey(model_id, task.spec.name, task.spec.version, policy_id(grading), sampling.key(), task.digest)
    return find_existing(store, key, task, notify=lambda _: None)   # evaluate() says it, once


# --------------------------------------------------------------------------- scanning


def scan_run(run: str | Path, request: EvalRequest, **options: Any) -> ScanReport:
    """Evaluate the run's new checkpoints (once, or repeatedly with `watch`); return what happened.
    `request` says how (its model is replaced by each checkpoint); options as for `scan_groups`."""
    return scan_groups(run, [request], **options)


def scan_groups(run: str | Path, requests: Sequence[EvalRequest], *, watch: bool = False, interval: float = 60.0,
                until_idle: float | None = None, console: Any = None,
                engine_factory: Callable[[str, str], Any] | None = None,
                metrics: RunMetricsWriter | None = None) -> ScanReport:
    """`scan_run` for several sampling groups (one request each: tasks sharing a sampling) in one loop:
    every checkpoint once, for every group, with one engine load per checkpoint. `metrics` receives the
    scores of every checkpoint evaluated now (not of those read back from the store)."""
    if watch and not interval > 0:
        raise ConfigError(f"--interval: must be > 0 seconds, got {interval:g}")
    if until_idle is not None and until_idle < 0:
        raise ConfigError(f"--until-idle: must be >= 0 seconds, got {until_idle:g}")
    groups = [(req, [load_eval_task(t, req.data, req.limit) for t in req.tasks]) for req in requests]
    report, state = ScanReport(Path(run)), Watch()
    if watch:
        _say(console, _watching(report.run, interval, until_idle))
    last_new = time.monotonic()
    while True:
        if _scan_once(report, state, groups, watch, console, engine_factory, metrics):
            last_new = time.monotonic()
        if not watch or (until_idle is not None and time.monotonic() - last_new >= until_idle):
            _say_still_waiting(console, state, until_idle if watch else None)
            return report
        try:
            time.sleep(interval)
        except KeyboardInterrupt:     # Ctrl-C between scans ends the watch normally (with the table)
            _say(console, "stopped watching")
            _say_still_waiting(console, state, None)
            return report


@dataclass
class Watch:
    """What the scans have seen: handled checkpoints, broken ones (with their files, to notice a change)
    and what each incomplete one waits for (said once per reason)."""

    marked: bool = False                                 # a checkpoint has the save marker: it says complete
    done: set[Path] = field(default_factory=set)
    broken: dict[Path, tuple] = field(default_factory=dict)
    waiting: dict[Path, str] = field(default_factory=dict)
    said_empty: bool = False


def _watching(run: Path, interval: float, until_idle: float | None) -> str:
    complete = (f"once complete ({paths.CHECKPOINT_COMPLETE}, which spsbench train writes last; else "
                f"{TRAINER_STATE} and no change for {SETTLE_S:g} s)")
    stop = f"; stops after {until_idle:g} s without a new checkpoint" if until_idle is not None else ""
    return f"watching {run}: each checkpoint-*/ is evaluated {complete}; scanning every {interval:g} s{stop}; " \
           "Ctrl-C stops"


def _say_still_waiting(console: Any, state: Watch, idle: float | None) -> None:
    if state.waiting:
        why = "; ".join(f"{p.name} waits for {reason}" for p, reason in sorted(state.waiting.items()))
        _say(console, f"[yellow]not evaluated, incomplete when the watch ended[/] ({why}); `spsbench eval "
                      f"{Path(next(iter(state.waiting))).parent}` evaluates them later")
    elif idle is not None:
        _say(console, f"no new checkpoint for {idle:g} s: done watching")


Groups = Sequence[tuple[EvalRequest, list[Task]]]


def _scan_once(report: ScanReport, state: Watch, groups: Groups, watch: bool, console: Any,
               engine_factory: Callable[[str, str], Any] | None, metrics: RunMetricsWriter | None = None) -> int:
    """One pass over the run folder; returns how many checkpoints were handled (or changed) in it."""
    count = 0
    found = checkpoints(report.run) if report.run.is_dir() else []
    for path in [p for p in state.waiting if not p.is_dir()]:     # removed (a trainer's save_total_limit)
        del state.waiting[path]
    state.marked = state.marked or any((f / paths.CHECKPOINT_COMPLETE).is_file() for _, f in found)
    if watch and not found and not state.said_empty:
        _say(console, f"no checkpoint in {report.run} yet; waiting")
        state.said_empty = True
    for step, folder in found:
        if folder in state.done or (folder in state.broken and state.broken[folder] == fingerprint(folder)):
            continue
        if watch:
            reason = awaited(folder, state.marked)
            if reason is not None:
                if state.waiting.get(folder) != reason.split(" (last change")[0]:
                    _say(console, f"[dim]{folder.name}: waiting for {reason}")
                    state.waiting[folder] = reason.split(" (last change")[0]
                    count += 1
                continue
            state.waiting.pop(folder, None)
        count += 1
        result = _check_and_handle(report, state, folder, step, groups, console, engine_factory)
        report.checkpoints = [c for c in report.checkpoints if c.path != folder] + [result]
        if metrics is not None and result.status == "evaluated":
            metrics.write(step, folder.name, result.results)
    return count


def _check_and_handle(report: ScanReport, state: Watch, folder: Path, step: int, groups: Groups, console: Any,
                      engine_factory: Callable[[str, str], Any] | None) -> CheckpointResult:
    """Check the files, evaluate; a broken checkpoint is remembered with its files (checked again if they change)."""
    again = folder in state.broken
    if again:
        _say(console, f"{folder.name} changed since it was found broken: checking it again")
    files = fingerprint(folder)
    try:
        check_loadable(folder)
    except CheckpointError as exc:
        if not again:
            warn(f"skipping broken checkpoint {exc}")
        state.broken[folder] = files
        return CheckpointResult(step, folder, "broken", reason=str(exc))
    result = _handle(folder, step, report.run, groups, console, engine_factory)
    if result.status == "broken":
        state.broken[folder] = files
    else:
        state.broken.pop(folder, None)
        state.done.add(folder)
    return result


def _handle(folder: Path, step: int, run: Path, groups: Groups, console: Any,
            engine_factory: Callable[[str, str], Any] | None) -> CheckpointResult:
    """Every group on one checkpoint, sharing one engine load; stored groups are read back, not rerun."""
    shared = SharedEngine(groups[0][0].engine_options, engine_factory)
    results: list[EvalResult] = []
    evaluated = False
    try:
        for req, loaded in groups:
            stored = _stored_group(req, loaded, folder)
            if stored is not None:
                results += stored
                continue
            if not evaluated:
                _say(console, f"evaluating {folder.name} (step {step})")
            evaluated = True
            results += evaluate(req.replace(model=str(folder), tags=run_tags(run, step)), engine_factory=shared.get)
    except (EngineError, CheckpointError) as exc:   # passed the file checks but does not load
        warn(f"skipping checkpoint that failed to load {folder.name}: {exc}")
        return CheckpointResult(step, folder, "broken", reason=str(exc))
    finally:
        shared.close()
    if not evaluated:
        _say(console, f"[dim]{folder.name}: already in the store, skipped")
    return CheckpointResult(step, folder, "evaluated" if evaluated else "stored", results)


def _stored_group(req: EvalRequest, loaded: list[Task], folder: Path) -> list[EvalResult] | None:
    """The group's stored results for this checkpoint, under the sampling `evaluate` stores (max_tokens
    clamped to the checkpoint's context), or None when something is missing."""
    sampling = effective_samplings(req, str(folder))
    with Store(req.store or paths.default_store_path()) as db:
        if not all(is_stored(db, folder, [t], sampling[t.spec.name], req.grading) for t in loaded):
            return None
        return [r for t in loaded for r in stored_results(db, folder, [t], sampling[t.spec.name], req.grading)]


def _say(console: Any, text: str) -> None:
    if console is not None:
        console.print(text, highlight=False, soft_wrap=True)   # one line per checkpoint, even if long
