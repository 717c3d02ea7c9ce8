"""The dynamics sections of the lab page (filled in by the dynamics experiment)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def dynamics_sections(db: Any, out: Path) -> tuple[list[str], list[Path]]:
    return [], []
