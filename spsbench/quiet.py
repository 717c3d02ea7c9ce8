"""The terminal vs the engine log: what spsbench says reaches the terminal; what the libraries say goes to a log.

vLLM, torch, transformers and TRL print dozens of INFO/WARNING lines (and C-level messages straight to
file descriptor 2, also from child processes, and tqdm bars) before the first progress bar.
`engine_log(path)` points descriptor 2, hence `sys.stderr` and every handler or bar bound to it, at the
log file, and routes Python warnings and log records there too. stdout (the score table) is untouched.
`-v` on the command line turns the redirection off.

What spsbench itself says goes to `terminal()`, a copy of the original descriptor 2, through four calls:

* `warn(message)`: a real problem ("200 new tokens do not fit ... using 61", a skipped checkpoint, a
  fallback from vLLM to hf): `spsbench: warning: ...` on the terminal and in the log. Records of the
  `spsbench.*` loggers at WARNING and above take the same way once `install()` ran (the CLI does).
* `status(what)`: a long one-time step (converting the default model, starting an engine): a spinner on a
  terminal, one line elsewhere, then how long it took.
* `say(line)`: one line of spsbench's own output (a training step, a checkpoint's scores); `to_log(line)`
  a line for the log only.
* `live_display(progress)`: a rich progress display registers itself, so the three above print above it
  instead of through it (rich allows one live display at a time). Such a display must be made with
  `redirect_stderr=False`: rich would otherwise show whatever a library writes to `sys.stderr` (a
  "Writing model shards" bar) on the terminal while it is live.

`-q` (`engine_log(..., quiet=True)`) hides warnings, status lines and bars from the terminal; warnings still
reach the log, so nothing is lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from spsbench.system import restored_environ

# Set while quiet (and restored): vLLM then adds no handler of its own (its records reach our file
# through the root logger), and third-party tqdm bars ("Loading safetensors ...") stay off.
QUIET_ENV = {"VLLM_CONFIGURE_LOGGING": "0", "TQDM_DISABLE": "1"}
WARNING_PREFIX = "spsbench: warning: "

_terminal: TextIO | None = None      # the terminal while engine output is redirected
_log: TextIO | None = None           # the engine log while one is open
_hushed = False                      # -q: nothing of ours on the terminal but errors
_live: list[Any] = []                # active rich progress displays, innermost last


@contextlib.contextmanager
def engine_log(path: str | Path, verbose: bool = False, quiet: bool = False) -> Iterator[Path | None]:
    """Send engine output to `path` (appended, one header line per command) unless `verbose`; with `quiet`
    spsbench's own warnings and status lines go only to the log."""
    with hushed(quiet):
        if verbose:
            yield None
            return
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            log = open(path, "a", encoding="utf-8", buffering=1)   # noqa: SIM115 - closed below
            log.write(f"==== {datetime.now(UTC).isoformat(timespec='seconds')} {' '.join(sys.argv)}\n")
        except OSError as exc:    # an unwritable results/ folder must not stop an evaluation: say so, show all
            warn(f"cannot write the engine log {path} ({exc.strerror or exc}); engine messages are shown here")
            yield None
            return
        # sys.stderr too: it is not descriptor 2 when something replaced it (pytest, a notebook)
        with log, _fd2_to(log), contextlib.redirect_stderr(log), _records_to(log), _env(QUIET_ENV), _log_is(log):
            yield path


def terminal() -> TextIO:
    """Where spsbench's own progress and problem messages go: the terminal even while quiet."""
    return _terminal or sys.stderr


def is_hushed() -> bool:
    """True under -q: progress bars and status lines are not drawn."""
    return _hushed


@contextlib.contextmanager
def hushed(enabled: bool = True) -> Iterator[None]:
    """-q: spsbench's warnings and status lines are not shown on the terminal (warnings stay in the log)."""
    global _hushed
    before, _hushed = _hushed, _hushed or enabled
    try:
        yield
    finally:
        _hushed = before


# --------------------------------------------------------------------------- what spsbench says


def warn(message: str) -> None:
    """A real problem: one `spsbench: warning: ...` line on the terminal (unless -q) and in the engine log."""
    line = message if message.startswith(WARNING_PREFIX) else WARNING_PREFIX + message
    if _log is not None:
        _log.write(line + "\n")
    if not _hushed:
        _show(line, style="yellow")


def to_log(line: str) -> None:
    """One line into the engine log only (a record for the log reader: e.g. TRL's full metric dict per step);
    nothing when no log is open."""
    if _log is not None:
        _log.write(line + "\n")


def say(line: str, style: str | None = None) -> None:
    """One line of spsbench's own output on the terminal (above any progress display; not under -q)."""
    if not _hushed:
        _show(line, style)


@contextlib.contextmanager
def status(what: str, done: str | None = None) -> Iterator[None]:
    """A long step the user would otherwise wait through in silence: `what` as a spinner (a terminal) or one
    line (a log or pipe) while it runs, then `done` with the seconds it took."""
    start = time.monotonic()
    if _hushed:
        yield
        return
    if _live and _live[-1].console.is_terminal:       # a spinner row of the display already on screen
        task = _live[-1].add_task(what, total=None)
        try:
            yield
        finally:
            _live[-1].remove_task(task)
    elif _is_tty(terminal()):
        from rich.console import Console
        from rich.live import Live
        from rich.spinner import Spinner

        # Console.status would redirect sys.stderr to the terminal while it spins (library bars included)
        with Live(Spinner("dots", text=what), console=Console(file=terminal()), transient=True,
                  redirect_stdout=False, redirect_stderr=False):
            yield
    else:
        _show(f"spsbench: {what}")
        yield
    if done:
        _show(f"spsbench: {done} ({time.monotonic() - start:.0f} s)", style="dim")


@contextlib.contextmanager
def live_display(progress: Any) -> Iterator[Any]:
    """Register a started rich Progress: warnings, lines and status spinners print through it meanwhile."""
    _live.append(progress)
    try:
        yield progress
    finally:
        _live.remove(progress)


class ProgressBars:
    """Progress bars (rich) on the terminal, even while engine output goes to the log; everything is a
    no-op when disabled. While open it is the live display: warnings and status lines print above it.

    `bar(label, total)` adds one bar and returns the function that advances it by a count."""

    def __init__(self, enabled: bool) -> None:
        self.progress: Any = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=Console(file=terminal()),
                                     redirect_stderr=False)     # library output on sys.stderr stays in the log
        self._live = contextlib.ExitStack()

    def __enter__(self) -> ProgressBars:
        if self.progress is not None:
            self.progress.start()
            self._live.enter_context(live_display(self.progress))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self._live.close()
            self.progress.stop()

    def bar(self, label: str, total: int) -> Callable[[int], None]:
        if self.progress is None:
            return lambda count: None
        task = self.progress.add_task(label, total=total)
        return lambda count: self.progress.advance(task, count)

    def note(self, text: str) -> None:
        """One line above the bars (nothing when disabled)."""
        if self.progress is not None:
            self.progress.console.print(text)


def _show(line: str, style: str | None = None) -> None:
    if _live:
        _live[-1].console.print(line, style=style, markup=False, highlight=False, soft_wrap=True)
        return
    out = terminal()
    try:
        out.write(line + "\n")
        out.flush()
    except ValueError:      # a closed stream (interpreter shutdown): nowhere left to say it
        pass


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _WarningHandler(logging.Handler):
    """`spsbench.*` log records at WARNING and above -> the terminal, as `warn` lines. They still propagate,
    so the engine log (root handler) keeps them and test fixtures (caplog) see them."""

    def emit(self, record: logging.LogRecord) -> None:
        if _hushed:
            return
        try:
            _show(WARNING_PREFIX + record.getMessage(), style="yellow")
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


def install() -> None:
    """Show the `spsbench` loggers' warnings on the terminal (idempotent; the CLI calls it once)."""
    logger = logging.getLogger("spsbench")
    if not any(isinstance(h, _WarningHandler) for h in logger.handlers):
        logger.addHandler(_WarningHandler(logging.WARNING))


# --------------------------------------------------------------------------- redirection


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
def _log_is(log) -> Iterator[None]:
    global _log
    before, _log = _log, log
    try:
        yield
    finally:
        _log = before


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
    with restored_environ(values):
        for key, value in values.items():
            os.environ.setdefault(key, value)
        yield
