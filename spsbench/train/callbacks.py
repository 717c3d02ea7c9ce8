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
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from spsbench import __version__, paths
from spsbench.evaluation.records import EvalResult, ModelTags, Scores
from spsbench.io import atomic_write_json
from spsbench.leaderboards.refresh import refresh as leaderboard_refresh
from spsbench.store import Store
from spsbench.train.config import TrainConfig
from spsbench.train.eval_worker import RESULT, run

logger = logging.getLogger(__name__)


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
        try:
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
        refresh_leaderboard(self.config.eval.store, lambda msg: self.record_failure("leaderboard", msg, step=step))
        return result

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
        import sys

        spec = json.dumps(self._spec(model, tags))
        proc = subprocess.run([sys.executable, "-m", "spsbench.train.eval_worker", spec], capture_output=True,
                              text=True)
        for warning in (ln for ln in proc.stderr.splitlines() if ln.startswith("spsbench: warning:")):
            logger.warning("%s", warning.removeprefix("spsbench: warning: "))   # e.g. a clamped budget
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT)]
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
            raise RuntimeError(f"evaluation process failed: {tail}")
        return self._results(model, json.loads(lines[-1][len(RESULT):]))

    def _results(self, model: str, eval_ids: list[int]) -> list[Any]:
        """EvalResults rebuilt from the store (the same shape `evaluate` returns)."""

        with Store(self.config.eval.store or paths.default_store_path()) as store:
            out = []
            for eval_id in eval_ids:
                ev = store.evaluation(eval_id)
                scores = Scores.from_rows(store.scores(eval_id), ev.n)
                out.append(EvalResult(ev.task, eval_id, model, scores.n, scores))
            return out


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
