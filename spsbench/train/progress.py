"""What `spsbench train` shows on the terminal: a progress bar over optimizer steps with the few numbers a
researcher watches, one line per SPS IRL phase, and (from the checkpoint callback) one line per evaluation.

The numbers come from the trainer's own log records (TRL's `reward`, `kl`, `entropy`,
`clip_ratio/region_mean`, `completions/clipped_ratio`, `step_time`), so they are exactly what
`report_to` and `trainer_state.json` receive. On a terminal the bar is a rich live display on
`spsbench.quiet.terminal()` (warnings and other lines print above it); in a log or pipe every logged
step is one plain line. The full metric dict TRL prints per step (transformers' `PrinterCallback`)
goes to the run's log instead, unless `-v`. Only the main process draws anything.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

from rich.progress import ProgressColumn
from rich.text import Text
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from spsbench.quiet import is_hushed, live_display, say, terminal, to_log

# (log key, label, format): the watched numbers, in the order shown; absent keys are left out
# (KL is only logged with beta > 0).
WATCHED = (("reward", "reward", "{:.3f}"), ("kl", "KL", "{:.2g}"), ("entropy", "entropy", "{:.2f}"),
           ("clip_ratio/region_mean", "clipped", "{:.1%}"), ("completions/clipped_ratio", "truncated", "{:.0%}"),
           ("step_time", "", "{:.1f} s/step"))


def step_summary(logs: dict[str, Any]) -> str:
    """'reward 0.125 · KL 0.0003 · entropy 0.70 · clipped 0.0% · truncated 50% · 41.2 s/step' of a log record."""
    parts = []
    for key, label, fmt in WATCHED:
        value = logs.get(key)
        if isinstance(value, int | float):
            parts.append(f"{label} {fmt.format(value)}".strip())
    return " · ".join(parts)


def phase_line(record: dict[str, Any]) -> str:
    """One SPS IRL phase record (SPSTrainer.irl_phases) as a line."""
    return (f"SPS IRL phase {record['phase']} (step {record['step']}): {record['sequences']} sequences, "
            f"{record['from_negatives_share']:.0%} from negatives, IRL loss {record['irl_loss_before']:.4f} -> "
            f"{record['irl_loss_after']:.4f}, ||dθ||/||θ|| {record['rel_weight_change']:.1e}, "
            f"{record['irl_time_share']:.1%} of the iteration")


class TrainProgress(TrainerCallback):
    """The bar (or lines), fed by `on_log`; `attach(trainer)` drops TRL's per-step dict print (unless
    `verbose`) and reads the trainer's IRL phase records."""

    def __init__(self, verbose: bool = False, bar: bool | None = None) -> None:
        self.verbose = verbose
        self.bar = bar                     # None: a bar when the terminal is a tty and not -v
        self.phases: Callable[[], list[dict[str, Any]]] = list
        self._shown_phases = 0
        self._progress: Any = None
        self._task: Any = None
        self._stack = contextlib.ExitStack()
        self._last = ""

    def attach(self, trainer: Any) -> None:
        if not self.verbose:
            for cls in (PrinterCallback, ProgressCallback):
                trainer.remove_callback(cls)
        self.phases = getattr(trainer, "irl_phases", list)

    # ------------------------------------------------------------------ trainer events

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or is_hushed():
            return
        self._shown_phases = len(self.phases())       # a resumed run's earlier phases were shown before
        use_bar = self.bar if self.bar is not None else (not self.verbose and _is_tty(terminal()))
        if use_bar:
            self._start_bar(state)
        else:
            say(f"training: {state.max_steps} steps from step {state.global_step}")

    def on_step_end(self, args, state, control, **kwargs):
        if self._progress is not None:
            self._progress.update(self._task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if not self.verbose:       # -v: transformers' PrinterCallback prints it on the terminal instead
            to_log(f"step {state.global_step}: {json.dumps(logs, default=str)}")
        if is_hushed():
            return
        summary = step_summary(logs)
        if summary:
            self._last = summary
            if self._progress is not None:
                self._progress.update(self._task, completed=state.global_step, metrics=summary)
            else:
                say(f"step {state.global_step}/{state.max_steps} · {summary}")
        self._show_phases()

    def on_save(self, args, state, control, **kwargs):
        self._show_phases()

    def on_train_end(self, args, state, control, **kwargs):
        self._show_phases()
        self.close()

    def close(self) -> None:
        """Stop the live display (also on an exception: run.train calls it)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        self._stack.close()

    # ------------------------------------------------------------------ internals

    def _start_bar(self, state: Any) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), _FieldColumn("metrics"), console=Console(file=terminal()),
                                  redirect_stderr=False)     # library bars on sys.stderr stay in the log
        self._task = self._progress.add_task("training", total=state.max_steps, completed=state.global_step,
                                             metrics="")
        self._progress.start()
        self._stack.enter_context(live_display(self._progress))

    def _show_phases(self) -> None:
        if is_hushed():
            return
        records = self.phases()
        for record in records[self._shown_phases:]:
            say(phase_line(record))
        self._shown_phases = len(records)


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _FieldColumn(ProgressColumn):
    """A task field as text ('' for tasks without it: status spinners share the display)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def render(self, task: Any) -> Text:
        return Text(str(task.fields.get(self.name, "")))
