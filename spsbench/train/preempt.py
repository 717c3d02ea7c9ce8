"""Preemption: SIGTERM (what a cluster scheduler sends before it kills a job) and SIGINT (Ctrl-C) during
training ask for a checkpoint at the next safe point instead of killing the run mid-step.

The signal handler only sets a flag. `PreemptCallback` reads it at the end of each optimizer step
(an SPS IRL phase runs inside the RL step that triggers it, so it has finished by then): it sets
`should_save` and `should_training_stop`, so the Trainer writes a complete checkpoint (weights,
optimizer, scheduler, RNG states, the SPS phase state) and leaves its loop. With several ranks the flag is
all-reduced at each step end, so every rank stops at the same step even when the launcher's forwarded
signals reach them a step apart. `spsbench train --resume`
continues from that checkpoint.

Checkpoint saves are not atomic (the Trainer writes several files into `checkpoint-N/`), so a SIGKILL
during one leaves a partial folder. `on_save` (called after every file of the save, the SPS and
dynamic-sampling state included) writes COMPLETE into it, and `resume_point` resumes from the newest
checkpoint that has it, skipping a partial one. A second signal while the first is pending restores the default
behaviour and interrupts at once (a user who presses Ctrl-C twice means it).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from spsbench import paths
from spsbench.quiet import warn
from spsbench.train.run_folder import FolderVerdict, resume_checkpoint

SIGNALS = (signal.SIGTERM, signal.SIGINT)
COMPLETE = paths.CHECKPOINT_COMPLETE           # written last into a checkpoint folder


class Preemption:
    """The signal received (None until one arrives), set from the handler."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def handle(self, signum: int, frame: Any) -> None:  # noqa: ARG002 - signal handler signature
        if self.signum is not None:          # the second signal: stop now
            signal.signal(signum, signal.SIG_DFL)
            raise KeyboardInterrupt
        self.signum = signum


@contextlib.contextmanager
def catching(preemption: Preemption) -> Iterator[Preemption]:
    """Route SIGTERM and SIGINT to `preemption` (main thread only: elsewhere signals cannot be caught)."""
    if threading.current_thread() is not threading.main_thread():
        yield preemption
        return
    previous = {s: signal.signal(s, preemption.handle) for s in SIGNALS}
    try:
        yield preemption
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class PreemptCallback(TrainerCallback):
    """Save and stop at the end of the optimizer step during which a signal arrived."""

    def __init__(self, preemption: Preemption, on_stop: Any = None) -> None:
        self.preemption, self.on_stop = preemption, on_stop
        self.stopped_at: int | None = None

    def on_step_end(self, args, state, control, **kwargs):
        if self.stopped_at is None and agreed(self.preemption.requested, args.device):
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step
            if self.on_stop is not None:
                self.on_stop()
        return control

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            (Path(args.output_dir) / f"checkpoint-{state.global_step}" / COMPLETE).write_text("")
        return control


def agreed(requested: bool, device: Any) -> bool:
    """Whether any rank got the signal. A launcher forwards it to every rank, but not at the same instant: a
    rank that saw it one step later would save and stop alone while the others wait in the next step's
    collectives. One tiny all-reduce per step makes every rank stop at the same step."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return requested
    flag = torch.tensor([1.0 if requested else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item() > 0)


def resume_point(output_dir: str | Path, resume: str | bool | None) -> str | None:
    """What to resume from: an explicit CHECKPOINT as given; for `--resume` alone, the newest complete
    checkpoint (one a SIGKILL cut short during its save is skipped, with a warning). The run folder's own
    choice (train.run_folder.resume_checkpoint, which `spsbench train` makes with the folder's other checks),
    for callers that drive a trainer themselves."""
    if resume is not True:
        return resume or None
    verdict = FolderVerdict()
    _, path = resume_checkpoint(Path(output_dir), True, verdict)
    for note in verdict.warnings:
        warn(note)
    return str(path)
