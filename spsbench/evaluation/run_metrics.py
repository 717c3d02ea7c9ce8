"""Pass@k and Avg@n of a training run's checkpoints, where RL researchers already look.

One set of names for both routes: `eval/<task>/pass@<k>` and `eval/<task>/avg@<n>` (fractions in [0, 1]),
at the checkpoint's step.

* In training, the checkpoint callback hands them to the trainer's own `log` (train/callbacks.py) with
  the keys `eval_<task>/...`: every `report_to` integration of transformers turns the `eval_` prefix into
  `eval/` (TensorBoard, W&B), and `trainer_state.json`'s `log_history` keeps them beside the reward curves.
* `spsbench eval RUN --watch` (or any scan of a run folder) has no trainer: `RunMetricsWriter` appends one
  JSON line per evaluated checkpoint to `RUN/eval_metrics.jsonl`, always, and writes the same scalars as
  TensorBoard event files under `RUN/runs/spsbench-eval/` when the `tensorboard` package is installed
  (TensorBoard pointed at `RUN/runs` shows them beside the trainer's own run).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

METRICS_FILE = "eval_metrics.jsonl"
TENSORBOARD_DIR = "runs/spsbench-eval"      # beside the trainer's runs/<date>_<host>/ (its default logging_dir)
TRAINER_PREFIX = "eval_"                    # what transformers' loggers rewrite to "eval/"


def eval_metrics(results: Sequence[Any]) -> dict[str, float]:
    """`eval/<task>/avg@<n>` and `eval/<task>/pass@<k>` of EvalResults (tasks and ks in order)."""
    out: dict[str, float] = {}
    for r in results:
        if r.scores.avg is not None:
            out[f"eval/{r.task}/avg@{r.n}"] = float(r.scores.avg.value)
        for k, value in sorted(r.scores.pass_at_k.items()):
            out[f"eval/{r.task}/pass@{k}"] = float(value.value)
    return out


def trainer_keys(metrics: dict[str, float]) -> dict[str, float]:
    """The keys to hand `Trainer.log`: `eval_<task>/pass@k`, shown as `eval/<task>/pass@k` by its loggers
    (a key without the prefix would be filed under `train/`)."""
    return {TRAINER_PREFIX + key.removeprefix("eval/"): value for key, value in metrics.items()}


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


class RunMetricsWriter:
    """Appends evaluated checkpoints' metrics to the run folder: JSONL always, TensorBoard when installed."""

    def __init__(self, run: str | Path, tensorboard: bool | None = None) -> None:
        self.run = Path(run)
        self.tensorboard = tensorboard_available() if tensorboard is None else tensorboard
        self._writer: Any = None

    @property
    def path(self) -> Path:
        return self.run / METRICS_FILE

    def write(self, step: int, checkpoint: str, results: Sequence[Any]) -> dict[str, float]:
        """One line (and one TensorBoard scalar per metric) for a checkpoint; returns the metrics."""
        metrics = eval_metrics(results)
        if not metrics:
            return metrics
        line = {"step": step, "checkpoint": checkpoint,
                "time": datetime.now(UTC).isoformat(timespec="seconds"), **metrics}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")
        if self.tensorboard:
            writer = self._summary_writer()
            for tag, value in metrics.items():
                writer.add_scalar(tag, value, step)
            writer.flush()
        return metrics

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _summary_writer(self) -> Any:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

            self._writer = SummaryWriter(log_dir=str(self.run / TENSORBOARD_DIR))
        return self._writer


def read_metrics(run: str | Path) -> list[dict[str, Any]]:
    """The lines of a run folder's `eval_metrics.jsonl` ([] when there is none)."""
    path = Path(run) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
