"""What `spsbench results`, `publish`, `crosscheck` and the comparisons share: the store they read (a folder
given as the store is named as such), which evaluations a `--task` / `--model` filter selects (names by
`spsbench.store.names`; a filter that selects nothing is an error listing what exists), and the output
(stdout, or `--out FILE` written whole or not at all) as JSONL or CSV rows."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from spsbench import paths
from spsbench.errors import ConfigError, StoreError
from spsbench.io import atomic_target
from spsbench.leaderboards.snapshot import short_path_name
from spsbench.store import EvalRow, Store
from spsbench.store.names import Candidate, matches
from spsbench.validate import output_file

MODEL_HELP = ("Only this model: its path, short name, run name or run@step; if none is named exactly that, "
              "models whose path ends with it, else whose path (or run name) contains it.")

def select(store: Store, task: str | None, model: str | None, status: str | None) -> list[EvalRow]:
    """Evaluations matching the filters: task exact; model by `spsbench.store.names` (an exact name wins,
    then a path tail, then any part of the path or run name)."""
    evals = store.evaluations(status=status, task=task)
    if model:
        chosen = {c.key for c in matches(model, [_candidate(e) for e in evals], loose=True)}
        evals = [e for e in evals if e.id in chosen]
    return evals


def _candidate(ev: EvalRow) -> Candidate:
    step = f"{ev.run_name}@{ev.step}" if ev.run_name else None
    return Candidate.of(ev.id, step or paths.display_path(ev.model_path), ev.model_path,
                        paths.display_path(ev.model_path), ev.run_name, short_path_name(ev.model_path))


def require_matches(store: Store, evals: list[EvalRow], task: str | None, model: str | None, status: str | None,
                    path: Path) -> None:
    """Filters that select nothing are a mistake (a typo prints nothing and exits 0 otherwise): say what exists."""
    if evals or not (task or model):
        return
    given = " ".join(f"{flag} {value}" for flag, value in (("--task", task), ("--model", model)) if value)
    if task and not store.evaluations(task=task):
        tasks = sorted({e.task for e in store.evaluations()})
        raise ConfigError(f"--task: no evaluation of {task!r} in {path}; its tasks: {', '.join(tasks) or 'none'}")
    unfinished = select(store, task, model, None) if status else []
    hint = (f"; {len(unfinished)} unfinished one(s) do (--all includes them)" if unfinished else
            "; `spsbench results` lists what is stored")
    raise ConfigError(f"no {'finished ' if status else ''}evaluation in {path} matches {given}{hint}")


def existing_store(store: str | None) -> Path:
    """The results store to read: it must exist and be a file (a folder in $SPSBENCH_STORE or --store is named
    as such, not reported missing)."""
    path = Path(store or paths.default_store_path())
    origin = "--store" if store else ("$SPSBENCH_STORE" if os.environ.get("SPSBENCH_STORE") else "results store")
    if path.is_dir():
        raise StoreError(f"{origin}: {path} is a folder; name the store file in it (e.g. {path / 'spsbench.db'})")
    if not path.is_file():
        raise StoreError(f"results store {path} does not exist; run `spsbench eval` first")
    return path


def write(rows: Iterator[dict[str, Any]], fields: tuple[str, ...], fmt: str, fh: TextIO) -> int:
    """Write rows (only `fields`, in that order); returns how many."""
    count = 0
    writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore") if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    for row in rows:
        if writer is not None:
            writer.writerow(row)
        else:
            fh.write(json.dumps({f: row.get(f) for f in fields}, ensure_ascii=False) + "\n")
        count += 1
    return count


@contextlib.contextmanager
def output(out: str | None) -> Iterator[TextIO]:
    """stdout, or `--out FILE` written whole or not at all (a full disk or a file-size limit leaves the
    previous file, or none, never a cut one)."""
    if not out:
        yield sys.stdout
        return
    path = output_file(out, "--out")                 # a folder, an unwritable folder: one line
    stream = path.exists() and not path.is_file()    # /dev/stdout, /dev/null, a FIFO: written into, never replaced
    try:
        with contextlib.ExitStack() as stack:
            # a symlink to a file: the file it points at is replaced, not the link
            target = path if stream else stack.enter_context(atomic_target(Path(os.path.realpath(path))))
            yield stack.enter_context(open(target, "w", encoding="utf-8", newline=""))
    except OSError as exc:
        raise ConfigError(f"--out: cannot write {path}: {exc.strerror or exc}"
                          f"{'' if stream else '; nothing was written'}") from None
