"""Run every `bench/bench_*.py` (or those named on the command line) and print their figures.

Each module exposes `run(console)`. Figures are ratios measured in the same run, because other load
on the 2 cores changes absolute numbers sharply.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

from rich.console import Console


def main(argv: list[str]) -> int:
    console = Console()
    names = argv or sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    failed = []
    for name in names:
        module = importlib.import_module(f"bench.{name if name.startswith('bench_') else 'bench_' + name}")
        console.rule(f"[bold]{module.__name__}")
        start = time.perf_counter()
        try:
            module.run(console)
        except Exception as exc:  # one broken bench must not hide the others' figures
            failed.append(name)
            console.print(f"[red]{name} failed: {type(exc).__name__}: {exc}")
        console.print(f"[dim]{name}: {time.perf_counter() - start:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
