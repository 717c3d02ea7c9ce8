"""The type of every value spsbench reads from an EvalScope run folder, checked where it is read.

EvalScope's files are JSON and YAML written by another program (or edited, truncated, or copied by
hand), so any field may hold any type. Each accessor here returns the value in the type the importer
uses, or raises one InteropError naming the file, the line and the field (`metadata: expected an
object, got list [1, 2]`), so an odd value is never a traceback and never silently turned into
something else (a stop string "abc" into three one-letter stops, a score "yes" into a guess).
Files are opened only when they are regular files: a FIFO in place of a predictions file would
block the import forever, a device would never end.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from spsbench.interop import InteropError
from spsbench.validate import one_line_gold

Row = dict[str, Any]


def show(value: Any) -> str:
    """`list [1, 2]`: the JSON type and a short repr, for messages."""
    names = {dict: "object", list: "list", str: "text", bool: "boolean", int: "integer", float: "number",
             type(None): "null"}
    text = repr(value)
    return f"{names.get(type(value), type(value).__name__)} {text if len(text) <= 40 else text[:37] + '...'}"


def fail(where: str, field: str, expected: str, value: Any) -> NoReturn:
    # A field path holds the file's own keys, which may hold a newline: the message stays one line.
    shown = field if field.isprintable() else repr(field)
    raise InteropError(f"{where}: {shown}: expected {expected}, got {show(value)}")


# --------------------------------------------------------------------------- files


def regular_file(path: Path, what: str) -> Path:
    """`path` if it is a regular file (symlinks followed); refused without opening it otherwise."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise InteropError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
                "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "not a regular file")
        raise InteropError(f"{path}: {what} is {kind}, not a regular file; refused without reading it")
    return path


def lines(path: Path, what: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of a regular UTF-8 file, streamed (an MMLU run at 128 repeats is gigabytes)."""
    regular_file(path, what)
    try:
        with open(path, "rb") as fh:
            for number, raw in enumerate(fh, 1):
                try:
                    yield number, raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InteropError(f"{path}:{number}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column "
                                       f"{exc.start + 1})") from None
    except OSError as exc:
        raise InteropError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None


# --------------------------------------------------------------------------- values


def mapping(value: Any, where: str, field: str) -> Row:
    """An object (a missing / null one is empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        fail(where, field, "an object", value)
    return value


def sequence(value: Any, where: str, field: str) -> list[Any]:
    """A list (a missing / null one is empty)."""
    if value is None:
        return []
    if not isinstance(value, list):
        fail(where, field, "a list", value)
    return value


def opt_text(value: Any, where: str, field: str) -> str | None:
    if value is not None and not isinstance(value, str):
        fail(where, field, "text", value)
    return value


def scalar_text(value: Any, where: str, field: str) -> str | None:
    """Text, or a number written without quotes (an id 7, a gold 70), as text; None stays None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        fail(where, field, "text or a number", value)
    return str(value)


def opt_int(value: Any, where: str, field: str, low: int | None = 0) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        fail(where, field, "an integer", value)
    if low is not None and value < low:
        fail(where, field, f"an integer >= {low}", value)
    return value


def opt_number(value: Any, where: str, field: str, low: float | None = None, high: float | None = None,
               bools: bool = False) -> float | None:
    """A finite number in [low, high] (booleans only when `bools`: a score true/false)."""
    if value is None:
        return None
    bad_type = (isinstance(value, bool) and not bools) or not isinstance(value, (int, float))
    if bad_type or not math.isfinite(value):
        fail(where, field, "a finite number", value)
    if (low is not None and value < low) or (high is not None and value > high):
        fail(where, field, f"a number in [{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]",
             value)
    return float(value)


def index(row: Row, where: str) -> int:
    """The row's `index`: an integer >= 0 (true/false are not indices)."""
    value = row.get("index")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InteropError(f"{where}: not an EvalScope row (no integer 'index', got {show(value)})")
    if value < 0:
        fail(where, "index", "an integer >= 0", value)
    return value


def text_parts(content: Any, where: str, field: str) -> tuple[str, str]:
    """(text, reasoning) of a message content: a string, or a list of typed parts."""
    if content is None or isinstance(content, str):
        return content or "", ""
    texts, reasons = [], []
    for i, part in enumerate(sequence(content, where, f"{field}"), 0):
        part = mapping(part, where, f"{field}[{i}]")
        kind = part.get("type")
        if kind == "text":
            texts.append(opt_text(part.get("text"), where, f"{field}[{i}].text") or "")
        elif kind == "reasoning":
            reasons.append(opt_text(part.get("reasoning"), where, f"{field}[{i}].reasoning") or "")
    return "\n".join(texts), "\n".join(reasons)


def target(value: Any, where: str) -> str | None:
    """A review's gold: text, a number, or (>= 1.11) a list of them: the first non-empty one."""
    if isinstance(value, list):
        texts = [scalar_text(item, where, f"target[{i}]") for i, item in enumerate(value)]
    else:
        texts = [scalar_text(value, where, "target")]
    gold = next((t.strip() for t in texts if t is not None and t.strip()), None)
    return gold if gold is None else one_line_gold(f"{where}: target", gold, error=InteropError)
