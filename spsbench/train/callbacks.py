"""Evaluation during training: every saved checkpoint goes through `spsbench.evaluation.evaluate.evaluate`.

The callback runs on the main process after each save (`save_steps`; paper: 100). The evaluator loads
the checkpoint folder into its own model (or engine), so the training weights are never touched; the
torch / numpy / Python RNG states are saved and restored around it, so training draws exactly the
random numbers it would have drawn without evaluation. Results go to the same store as
`spsbench eval`, tagged with the run name, step and algorithm; then the leaderboard is refreshed.
A failed evaluation or leaderboard refresh does not stop training: it is recorded in the store
(`run_failures`), in `spsbench_run.json` and in the run's summary, and `spsbench train` exits non-zero
at the end (the checkpoint can be evaluated later with `spsbench eval RUN_DIR`). With `eval.mode: watch`
the callback evaluates nothing: a second process runs `spsbench eval RUN_DIR --watch`, at the sampling
this module records in `spsbench_run.json`.

Each evaluation's Pass@k and Avg@n go through the trainer's own `log` at the checkpoint's step
(`eval_<task>/pass@k`, shown as `eval/<task>/pass@k` by every `report_to` logger), so they land beside the
reward curves and in `trainer_state.json`'s log history; the evaluated checkpoint's own
`trainer_state.json` (written before `on_save` runs) is rewritten to include them. The terminal gets a
status line while an evaluation runs and one line of scores after it; the evaluation child's own output
goes to the run's log, except its `spsbench: warning:` lines, which are shown.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import random
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from spsbench import __version__, paths
from spsbench.evaluation.records import EvalResult, ModelTags, Scores
from spsbench.evaluation.run_metrics import eval_metrics, trainer_keys
from spsbench.io import atomic_write_json, atomic_write_text
from spsbench.leaderboards.refresh import refresh as leaderboard_refresh
from spsbench.quiet import WARNING_PREFIX, say, status, warn
from spsbench.store import Store
from spsbench.train.config import TrainConfig
from spsbench.train.eval_worker import RESULT, run

logger = logging.getLogger(__name__)
TRAINER_STATE = "trainer_state.json"


def write_run_info(output_dir: str | Path, config: TrainConfig, base_model: str,
                   plan: dict[str, Any] | None = None, identity: dict[str, Any] | None = None) -> Path:
    """`spsbench_run.json` in the run folder: what the run-folder scanner needs to tag checkpoints, the
    schedule the run was planned with (`spsbench train --dry-run`'s object), and which run the folder holds
    (`identity`: recipe digest and settings, train.run_folder)."""
    path = Path(output_dir) / paths.RUN_INFO
    ev = config.eval
    info = {"run_name": config.run_name, "algo": config.label, "base": config.base, "base_model": base_model,
            "recipe": config.recipe, "task": config.task, "spsbench_version": __version__,
            "max_completion_length": (config.rl or {}).get("max_completion_length"),
            # the checkpoint evaluations' setting: `spsbench eval RUN_DIR` continues them at it
            "eval": {"mode": ev.mode if ev.enabled else "off", "engine": ev.engine, **ev.sampling()}}
    if plan is not None:
        info["plan"] = plan
    info |= identity or {}
    atomic_write_json(path, info, indent=2)
    return path


def update_run_info(output_dir: str | Path, **fields: Any) -> None:
    """Add `fields` to the run folder's `spsbench_run.json` (e.g. how many IRL phases really ran)."""
    path = Path(output_dir) / paths.RUN_INFO
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):      # missing or cut short: the fields still land
        info = {}
    atomic_write_json(path, (info if isinstance(info, dict) else {}) | fields, indent=2)


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Restore the torch (CPU + CUDA), numpy and Python RNG states on exit."""
    import numpy as np
    import torch

    states = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


class EvaluateCheckpointCallback(TrainerCallback):
    """On each save: evaluate `checkpoint-<step>` into the results store, then refresh the leaderboard."""

    def __init__(self, config: TrainConfig, base_model: str) -> None:
        self.config = config
        self.base_model = base_model
        self.results: list[tuple[int, Any]] = []          # (step, evaluate() output) for the summary
        self.base_results: Any = None                      # the base model's, when eval.base
        self.failures: list[dict[str, Any]] = []           # what failed (kind, step, model, message)
        self.trainer: Any = None                            # set by attach(): its log() takes the metrics

    def attach(self, trainer: Any) -> None:
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        ev = self.config.eval
        if not (ev.in_training and ev.base and state.is_world_process_zero) or state.global_step > 0:
            return
        with preserved_rng():
            self.evaluate_model(self.base_model, step=0, tags=None)

    def on_save(self, args, state, control, **kwargs):
        if not self.config.eval.in_training or not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        with preserved_rng():
            self.evaluate_checkpoint(folder, state.global_step)

    def evaluate_checkpoint(self, folder: Path, step: int) -> Any:
        tags = ModelTags(run_name=self.config.run_name, step=step, algo=self.config.label,
                         base_model=self.base_model)
        return self.evaluate_model(str(folder), step, tags)

    def evaluate_model(self, model: str, step: int, tags: Any) -> Any:
        """One evaluation into the store (tags None: the base model, stored as a plain model)."""
        name = "the base model" if tags is None else Path(model).name
        start = time.monotonic()
        try:
            with status(f"evaluating {name} ({self._what()})"):
                result = self._evaluate_isolated(model, tags) if self.config.eval.isolate else \
                    self._evaluate_here(model, tags)
        except Exception as exc:  # noqa: BLE001 - evaluation must never kill a training run
            later = Path(model).parent if tags is not None else model
            logger.warning("evaluation of %s failed (%s: %s); training continues, evaluate it later with "
                           "`spsbench eval %s`", model, type(exc).__name__, exc, later)
            self.record_failure("evaluation", f"{type(exc).__name__}: {exc}", step=step, model=model)
            return None
        if tags is None:
            self.base_results = result
        else:
            self.results.append((step, result))
        self._report(name, step, result, time.monotonic() - start, folder=Path(model) if tags is not None else None)
        refresh_leaderboard(self.config.eval.store, lambda msg: self.record_failure("leaderboard", msg, step=step))
        return result

    def _what(self) -> str:
        ev = self.config.eval
        problems = f"first {ev.limit} problems" if ev.limit else "all problems"
        return f"{', '.join(ev.tasks)}, n={ev.n}, {problems}; training waits"

    def _report(self, name: str, step: int, results: Any, seconds: float, folder: Path | None) -> None:
        """The scores: one line on the terminal, and through the trainer's log (report_to, log history)."""
        results = [r for r in results if isinstance(r, EvalResult)] if isinstance(results, list) else []
        for line in score_lines(name, step, results, seconds):
            say(line)
        metrics = eval_metrics(results)
        if metrics and self.trainer is not None:
            log_to_trainer(self.trainer, trainer_keys(metrics), folder)

    def record_failure(self, kind: str, message: str, step: int | None = None, model: str | None = None) -> None:
        """Keep a failure for the run's summary and record it in the store (best effort: the store may be
        what failed)."""
        self.failures.append({"kind": kind, "step": step, "model": model, "message": message})
        try:
            with Store(self.config.eval.store or paths.default_store_path()) as store:
                store.add_run_failure(self.config.run_name or "", kind, message, step=step, model_path=model)
        except Exception as exc:  # noqa: BLE001 - the summary and the exit code still report it
            logger.warning("could not record the failure in the store: %s: %s", type(exc).__name__, exc)

    def _spec(self, model: str, tags: Any) -> dict[str, Any]:
        ev = self.config.eval
        sampling = {"n": ev.n, "temperature": ev.temperature, "top_p": ev.top_p, "max_tokens": ev.max_tokens,
                    "seed": ev.seed}
        return {"model": model, "tasks": list(ev.tasks), "sampling": sampling, "engine": ev.engine,
                "store": ev.store, "data": dict(ev.data), "ks": list(ev.k), "limit": ev.limit,
                "engine_options": dict(ev.engine_options), "tags": dataclasses.asdict(tags) if tags else None}

    def _evaluate_here(self, model: str, tags: Any) -> Any:
        import torch

        with torch.no_grad():
            return run(self._spec(model, tags))

    def _evaluate_isolated(self, model: str, tags: Any) -> Any:
        import subprocess

        spec = json.dumps(self._spec(model, tags))
        # One stream (stderr into stdout: two pipes could fill while we read the other), read as it comes:
        # the result line, spsbench's warnings (shown), and everything else to our stderr (the run's log).
        with subprocess.Popen([sys.executable, "-m", "spsbench.train.eval_worker", spec], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors="replace") as proc:
            result, tail = _read_worker(proc.stdout)
        code = proc.returncode
        if code != 0 or result is None:
            raise RuntimeError(f"evaluation process failed: {tail or f'exit code {code}'}")
        return self._results(model, json.loads(result))

    def _results(self, model: str, eval_ids: list[int]) -> list[Any]:
        """EvalResults rebuilt from the store (the same shape `evaluate` returns)."""

        with Store(self.config.eval.store or paths.default_store_path()) as store:
            out = []
            for eval_id in eval_ids:
                ev = store.evaluation(eval_id)
                scores = Scores.from_rows(store.scores(eval_id), ev.n)
                out.append(EvalResult(ev.task, eval_id, model, scores.n, scores))
            return out


def _read_worker(stream: Any) -> tuple[str | None, str]:
    """(the RESULT payload, the last other line) of the evaluation child's output, read as it comes:
    spsbench's warnings are shown, everything else goes to our stderr (the run's log while quiet)."""
    result, tail = None, ""
    for line in stream:
        line = line.rstrip("\n")
        if line.startswith(RESULT):
            result = line[len(RESULT):]
        elif line.startswith(WARNING_PREFIX):
            warn(line)                                     # e.g. a clamped budget
        else:
            sys.stderr.write(line + "\n")
            tail = line.strip() or tail
    return result, tail


def score_lines(name: str, step: int, results: list[Any], seconds: float) -> list[str]:
    """'checkpoint-2 (step 2) · arith: Avg@8 3.5 [1.9, 6.5] · pass@1 3.5 · pass@8 28.1 · 152 s', one per task."""
    out = []
    for r in results:
        avg = r.scores.avg
        cells = [f"Avg@{r.n} " + ("—" if avg is None else f"{avg.value * 100:.1f} [{avg.ci_low * 100:.1f}, "
                                                         f"{avg.ci_high * 100:.1f}]")]
        cells += [f"pass@{k} {v.value * 100:.1f}" for k, v in sorted(r.scores.pass_at_k.items())]
        out.append(f"{name} (step {step}) · {r.task}: {' · '.join(cells)} · {seconds:.0f} s")
    return out


def log_to_trainer(trainer: Any, logs: dict[str, float], checkpoint: Path | None = None) -> None:
    """`logs` through `transformers.Trainer.log` at the trainer's current step (the checkpoint's: the
    evaluation runs inside `on_save`), so every `report_to` logger and the log history get them. TRL's
    `GRPOTrainer.log` is bypassed: it would fold its pending training metrics into this record. The
    checkpoint's `trainer_state.json`, written before the evaluation, is rewritten to include them."""
    from transformers import Trainer

    Trainer.log(trainer, dict(logs))
    state = None if checkpoint is None else checkpoint / TRAINER_STATE
    if state is not None and state.is_file() and trainer.args.should_save:
        # TrainerState.save_to_json's format, replaced atomically (a --watch scanner may read it)
        atomic_write_text(state, json.dumps(dataclasses.asdict(trainer.state), indent=2, sort_keys=True) + "\n")


def refresh_leaderboard(store: str | None, on_error: Callable[[str], None] | None = None) -> Path | None:
    """Regenerate the store's leaderboards; returns their folder (None on failure, told to `on_error`)."""
    try:
        store = store or paths.default_store_path()
        leaderboard_refresh(store)
    except Exception as exc:  # noqa: BLE001 - a leaderboard problem must not stop training
        logger.warning("leaderboard refresh failed: %s: %s", type(exc).__name__, exc)
        if on_error is not None:
            on_error(f"leaderboard refresh failed: {type(exc).__name__}: {exc}")
        return None
    return paths.default_leaderboard_dir(store)
