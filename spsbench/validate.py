"""Input validation by class: numbers, strings, files, folders, dataclass fields, command lines.

Every input spsbench reads goes through one of these checks, so a whole class of mistakes (a non-finite
number, an empty string, a file that is a folder, unreadable or not UTF-8) fails the same way
everywhere: one `SpsbenchError` line naming the input, raised before any work. Lowest layer: imports
only `spsbench.errors`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import stat
import sys
import types
import typing
from pathlib import Path
from typing import Any

from spsbench.errors import ConfigError, SpsbenchError

MAX_TEXT_BYTES = 1 << 30          # a text input larger than 1 GiB is a mistake (a weights file, a disk image)


# ------------------------------------------------------------------------------------------ numbers


def number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, integer: bool = False, error: type[SpsbenchError] = ConfigError) -> Any:
    """`value` if it is a finite number (an int when `integer`) within [low, high] (low excluded when
    `low_open`); else one `error` line naming `name`. Booleans are not numbers."""
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        raise error(f"{name}: must be {kind}, got {type(value).__name__} {value!r:.60}")
    if not integer and not math.isfinite(value):
        raise error(f"{name}: must be a finite number, got {value}")
    if low is not None and (value <= low if low_open else value < low):
        raise error(f"{name}: must be {'>' if low_open else '>='} {low:g}, got {value}")
    if high is not None and value > high:
        raise error(f"{name}: must be <= {high:g}, got {value}")
    return value


# ------------------------------------------------------------------------------------------ strings


def text(name: str, value: Any, *, error: type[SpsbenchError] = ConfigError) -> str:
    """A non-empty (not only whitespace) string."""
    if not isinstance(value, str):
        raise error(f"{name}: must be a string, got {type(value).__name__} {value!r:.60}")
    if not value.strip():
        raise error(f"{name}: needs a value, got an empty string")
    return value


LINE_BREAKS = ("\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")


def one_line_gold(name: str, value: str, *, error: type[SpsbenchError] = ConfigError) -> str:
    """A gold answer on one line. A line break in a gold answer is two answers to the grader (`4\\n2` was
    graded as 6): refused, naming where it came from, rather than guessed at."""
    if any(br in value for br in LINE_BREAKS):
        raise error(f"{name}: the gold answer {value[:40]!r} holds a line break: one answer per problem (fix the "
                    "row, or pick the line with answer_regex)")
    return value


def no_empty_arguments(args: argparse.Namespace) -> None:
    """Refuse `--opt ""` (and an empty MODEL or list item) for every option of a parsed command line.

    An empty string never means "the default" here: `--store ""` used to write the default store and
    `--tasks ""` to run the default task. Options are checked by class, so new ones are covered too."""
    for dest, value in vars(args).items():
        if dest.startswith("_"):
            continue
        items = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and not v.strip() for v in items):
            flag = dest.upper() if dest in ("model", "file") else "--" + dest.replace("_", "-")
            raise ConfigError(f"{flag}: needs a value, got an empty string")


def locale_hint() -> str:
    """What to do when text cannot be encoded: in an ASCII locale (LC_ALL=C with UTF-8 mode off) non-ASCII
    paths arrive as undecodable bytes."""
    encoding = sys.getfilesystemencoding().lower().replace("-", "")
    return "" if encoding == "utf8" else (f"; the locale's encoding is {sys.getfilesystemencoding()}: run with a "
                                          "UTF-8 locale (LC_ALL=C.UTF-8) or PYTHONUTF8=1")


def utf8_arguments(args: argparse.Namespace) -> None:
    """Refuse an argument whose bytes are not UTF-8 text (a Latin-1 file name, or any non-ASCII path in an
    ASCII locale): it could not be stored, written into a page or compared, and would fail later as a
    traceback, perhaps after an hour of generation."""
    for dest, value in vars(args).items():
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str) or dest.startswith("_"):
                continue
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                flag = dest.upper() if dest in ("model", "file") else "--" + dest.replace("_", "-")
                raise ConfigError(f"{flag}: {os.fsencode(item)!r} holds bytes that are not UTF-8 text"
                                  f"{locale_hint()}") from None


# ------------------------------------------------------------------------------------------ files


def read_text(path: str | Path, what: str, *, error: type[SpsbenchError] = ConfigError,
              max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of a file that exists, is a file, is readable and not over `max_bytes`."""
    path = existing_file(path, what, error=error)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise error(f"{what}: {path} is {size / 2**20:.0f} MiB, more than a text input can be "
                        f"({max_bytes / 2**20:.0f} MiB): wrong file?")
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    return decode(data, path, what, error=error)


def decode(data: bytes, path: str | Path, what: str, *, error: type[SpsbenchError] = ConfigError) -> str:
    """UTF-8 text (a BOM is dropped); the first bad byte's line and offset otherwise."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(f"{what}: {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}, "
                    f"line {line}); save it as UTF-8") from None


def kind(path: Path, what: str, *, error: type[SpsbenchError] = ConfigError, verb: str = "reach") -> str:
    """'dir', 'file', 'other' or 'missing'; a folder on the way that cannot be entered is one line, not a
    PermissionError (Path.is_dir raises it: a home folder that cannot be traversed, a mode-000 folder)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "missing"
    except NotADirectoryError:
        raise error(f"{what}: cannot {verb} {path}: a part of the path is a file, not a folder") from None
    except OSError as exc:
        raise error(f"{what}: cannot {verb} {path}: {exc.strerror or exc} (a folder on the way cannot be "
                    "entered)") from None
    return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


def existing_file(path: str | Path, what: str, *, error: type[SpsbenchError] = ConfigError) -> Path:
    path = Path(text(what, str(path), error=error)).expanduser()
    found = kind(path, what, error=error)
    if found == "dir":
        raise error(f"{what}: {path} is a folder, expected a file")
    if found == "missing":
        raise error(f"{what}: cannot read {path}: file not found")
    if found == "other":                 # a FIFO would block the read forever, a device never end
        raise error(f"{what}: {path} is not a regular file (a FIFO, socket or device); refused without reading it")
    if not os.access(path, os.R_OK):
        raise error(f"{what}: {path} is not readable (permission denied)")
    return path


def existing_dir(path: str | Path, what: str, *, error: type[SpsbenchError] = ConfigError) -> Path:
    path = Path(text(what, str(path), error=error)).expanduser()
    found = kind(path, what, error=error)
    if found not in ("dir", "missing"):
        raise error(f"{what}: {path} is a file, expected a folder")
    if found == "missing":
        raise error(f"{what}: folder not found: {path}")
    if not os.access(path, os.R_OK | os.X_OK):
        raise error(f"{what}: {path} is not readable (permission denied)")
    return path


def output_file(path: str | Path, what: str, *, error: type[SpsbenchError] = ConfigError) -> Path:
    """A file path we may create or replace: not a folder, its folder creatable and writable."""
    path = Path(text(what, str(path), error=error)).expanduser()
    if kind(path, what, error=error) == "dir":
        raise error(f"{what}: {path} is a folder; give a file path")
    writable_dir(path.parent, what, error=error)
    if path.exists() and not os.access(path, os.W_OK):
        raise error(f"{what}: {path} is not writable (permission denied)")
    return path


def creatable_file(path: str | Path, what: str, *, error: type[SpsbenchError] = ConfigError) -> Path:
    """A file we will create or update, checked without creating anything: not a folder, writable if it
    exists, else its nearest existing folder writable (so a run refuses before it loads a model, not after)."""
    path = Path(path).expanduser()
    found = kind(path, what, error=error)
    if found == "dir":
        raise error(f"{what}: {path} is a folder; give a file path")
    if found != "missing":
        if not os.access(path, os.W_OK):
            raise error(f"{what}: {path} is not writable (permission denied)")
        parent = path.parent
    else:
        parent = path.parent
        while kind(parent, what, error=error) == "missing" and parent != parent.parent:
            parent = parent.parent
        if kind(parent, what, error=error) != "dir":
            raise error(f"{what}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise error(f"{what}: folder {parent} is not writable (permission denied)")
    return path


def writable_dir(path: str | Path, what: str, *, error: type[SpsbenchError] = ConfigError, hint: str = "") -> Path:
    """A folder we can write into, created if missing (`hint` ends the message when it cannot be)."""
    path = Path(path).expanduser()
    try:
        found = kind(path, what, error=error, verb="create folder")
    except SpsbenchError as exc:
        raise error(f"{exc}{hint}") from None
    if found not in ("dir", "missing"):
        raise error(f"{what}: {path} is a file, expected a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"{what}: cannot create folder {path}: {exc.strerror or exc}{hint}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise error(f"{what}: folder {path} is not writable (permission denied){hint}")
    return path


# ------------------------------------------------------------------------------------------ dataclasses


def check_fields(obj: Any, prefix: str, *, error: type[SpsbenchError] = ConfigError) -> None:
    """Type-check every field of a config dataclass against its annotation, naming `prefix.field`.

    Covers what recipes and `--set` produce: int, float (ints accepted, must be finite), bool, str,
    list/tuple, dict and `X | None`. An int where a float is expected is converted in place."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        if f.name in hints and f.init:
            value = _check_value(f"{prefix}{f.name}", getattr(obj, f.name), hints[f.name], error)
            object.__setattr__(obj, f.name, value)


def _check_value(name: str, value: Any, hint: Any, error: type[SpsbenchError]) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        return _check_value(name, value, rest[0], error) if len(rest) == 1 else value
    if hint is float:
        return float(number(name, value, error=error))
    if hint is int:
        return number(name, value, integer=True, error=error)
    if hint in (bool, str) and not isinstance(value, hint):
        raise error(f"{name}: must be {'true or false' if hint is bool else 'a string'}, "
                    f"got {type(value).__name__} {value!r:.60}")
    if origin in (list, tuple) and not isinstance(value, (list, tuple)):
        raise error(f"{name}: must be a list, got {type(value).__name__} {value!r:.60}")
    if origin is dict and not isinstance(value, dict):
        raise error(f"{name}: must be a mapping, got {type(value).__name__} {value!r:.60}")
    return value
