"""The one way spsbench replaces a file: write a temporary file beside it, then rename over it.

Readers (a concurrent leaderboard refresh, the scanner reading a run's info, a resumed download) see a
whole old file or a whole new one, never a half-written one; an interrupted write leaves no debris.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_target(path: str | Path) -> Iterator[Path]:
    """A temporary path to write; renamed onto `path` when the block ends without an exception."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_target(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | Path, data: Any, indent: int | None = None) -> None:
    atomic_write_text(path, json.dumps(data, indent=indent) + ("\n" if indent else ""))


def atomic_write_lines(path: str | Path, lines: Iterator[str] | list[str]) -> None:
    with atomic_target(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line)
