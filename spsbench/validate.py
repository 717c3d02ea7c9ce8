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


def existing_file(path: str | Path, what: str, *, error: type[SpsbenchError] = ConfigError) -> Path:
    path = Path(text(what, str(path), error=error)).expanduser()
    if path.is_dir():
        raise error(f"{what}: {path} is a folder, expected a file")
    if not path.exists():
        raise error(f"{what}: cannot read {path}: file not found")
    if not os.access(path, os.R_OK):
        raise error(f"{what}: {path} is not readable (permission denied)")
    return path


def existing_dir(path: str | Path, what: str, *, error: type[SpsbenchError] = ConfigError) -> Path:
    path = Path(text(what, str(path), error=error)).expanduser()
    if path.exists() and not path.is_dir():
        raise error(f"{what}: {path} is a file, expected a folder")
    if not path.exists():
        raise error(f"{what}: folder not found: {path}")
    if not os.access(path, os.R_OK | os.X_OK):
        raise error(f"{what}: {path} is not readable (permission denied)")
    return path


def output_file(path: str | Path, what: str, *, error: type[SpsbenchError] = ConfigError) -> Path:
    """A file path we may create or replace: not a folder, its folder creatable and writable."""
    path = Path(text(what, str(path), error=error)).expanduser()
    if path.is_dir():
        raise error(f"{what}: {path} is a folder; give a file path")
    writable_dir(path.parent, what, error=error)
    if path.exists() and not os.access(path, os.W_OK):
        raise error(f"{what}: {path} is not writable (permission denied)")
    return path


def writable_dir(path: str | Path, what: str, *, error: type[SpsbenchError] = ConfigError) -> Path:
    """A folder we can write into, created if missing."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise error(f"{what}: {path} is a file, expected a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"{what}: cannot create folder {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise error(f"{what}: folder {path} is not writable (permission denied)")
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
