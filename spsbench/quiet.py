"""A quiet terminal: while a model engine runs, its log lines and warnings go to a log file.

vLLM, torch, transformers and TRL print dozens of INFO/WARNING lines (and C-level messages straight to
file descriptor 2, also from child processes, and tqdm bars) before the first progress bar.
`engine_log(path)` points descriptor 2, hence `sys.stderr` and every handler or bar bound to it, at the
log file, and routes Python warnings and log records there too. What spsbench itself shows (progress
bars, messages about real problems) goes to `terminal()`, a copy of the original descriptor 2; stdout
(the score table) is untouched. `-v` on the command line turns it off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

# Set while quiet (and restored): vLLM then adds no handler of its own (its records reach our file
# through the root logger), and third-party tqdm bars ("Loading safetensors ...") stay off.
QUIET_ENV = {"VLLM_CONFIGURE_LOGGING": "0", "TQDM_DISABLE": "1"}


@contextlib.contextmanager
def engine_log(path: str | Path, verbose: bool = False) -> Iterator[Path | None]:
    """Send engine output to `path` (appended, one header line per command) unless `verbose`."""
    if verbose:
        yield None
        return
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        log = open(path, "a", encoding="utf-8", buffering=1)   # noqa: SIM115 - closed below
        log.write(f"==== {datetime.now(UTC).isoformat(timespec='seconds')} {' '.join(sys.argv)}\n")
    except OSError as exc:        # an unwritable results/ folder must not stop an evaluation: say so, show all
        print(f"spsbench: warning: cannot write the engine log {path} ({exc.strerror or exc}); engine messages "
              "are shown here", file=sys.stderr)
        yield None
        return
    with log, _fd2_to(log), _records_to(log), _env(QUIET_ENV):
        yield path


_terminal: TextIO | None = None      # the terminal while engine output is redirected


def terminal() -> TextIO:
    """Where spsbench's own progress and problem messages go: the terminal even while quiet."""
    return _terminal or sys.stderr


@contextlib.contextmanager
def _fd2_to(log) -> Iterator[None]:
    """Descriptor 2 -> the log; `terminal()` -> a copy of the original descriptor 2."""
    global _terminal
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(2)
    _terminal = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")
    os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        _terminal.close()
        _terminal = None
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def _records_to(log) -> Iterator[None]:
    """Log records of every library (WARNING and up) and Python warnings -> the log."""
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    logging.captureWarnings(True)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        try:
            yield
        finally:
            logging.captureWarnings(False)
            root.removeHandler(handler)


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    """Set defaults (the user's own settings win) and restore the environment afterwards."""
    before = {k: os.environ.get(k) for k in values}
    for key, value in values.items():
        os.environ.setdefault(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
