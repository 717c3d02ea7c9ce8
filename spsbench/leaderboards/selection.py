"""Checkpoint selection without peeking, beside the paper's rule (comparison page, *Checkpoint selection*).

The paper picks each run's checkpoint by Avg@n on the very task it then reports (selected on test: an
optimistic bias). Two selections that do not use the reported problems:
- a seeded half split: per task, the problems are shuffled with a fixed seed; the checkpoint with the
  best Avg@n on half A is reported on half B, next to the best checkpoint chosen on half B itself (the
  paper's rule on the same problems); the gap between the two is the selection bias;
- `--select-on TASKS`: the checkpoint with the best mean Avg@n over other tasks is reported on the whole
  task, next to the paper's choice.
Only the checkpoints with the task's reference setting take part.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from spsbench.leaderboards.markdown import pct, table
from spsbench.leaderboards.snapshot import Entry

if TYPE_CHECKING:                  # comparison.py builds the rows and imports this module
    from spsbench.leaderboards.comparison import Row

SPLIT_SEED = "spsbench-selection-split-v1"


def split_halves(problems: Sequence[str]) -> tuple[set[str], set[str]]:
    """(selection half A, report half B): a fixed pseudo-random split, the same on every machine
    (by a hash of each problem id, so adding an evaluation never reshuffles it)."""
    ranked = sorted(problems, key=lambda p: hashlib.sha256(f"{SPLIT_SEED}:{p}".encode()).hexdigest())
    half = len(ranked) // 2
    return set(ranked[:half]), set(ranked[half:])


def avg_on(e: Entry, keep: set[str]) -> float | None:
    rates = [c / n for p, n, c in e.problems if p in keep and n]
    return float(np.mean(rates)) if rates else None


def _best(entries: list[Entry], score) -> Entry | None:
    scored = [(score(e), e) for e in entries]
    scored = [(s, e) for s, e in scored if s is not None]
    if not scored:
        return None
    return max(scored, key=lambda se: (se[0], -(se[1].model.step or 0), -se[1].eval_id))[1]


def selection_rows(run: str, task: str, checkpoints: list[Entry], others: dict[str, list[Entry]],
                   select_on: Sequence[str]) -> list[list[str]]:
    """Table rows for one run and task (`others`: the run's checkpoints on every task, by task)."""
    if len(checkpoints) < 2 or not all(e.problems for e in checkpoints):
        return []
    on_test = _best(checkpoints, lambda e: e.avg.value if e.avg else None)
    a, b = split_halves([p for p, _, _ in checkpoints[0].problems])
    picked = _best(checkpoints, lambda e: avg_on(e, a))
    best_b = _best(checkpoints, lambda e: avg_on(e, b))
    rows = []
    if on_test and picked and best_b:
        rows.append([run, task, _ck(on_test), pct(on_test.avg.value), "half A of the problems",
                     _ck(picked), f"{pct(avg_on(picked, b))} (half B)", f"{pct(avg_on(best_b, b))} ({_ck(best_b)})",
                     _gap(avg_on(best_b, b), avg_on(picked, b))])
    tasks = [t for t in select_on if t != task and others.get(t)]
    if on_test and tasks:
        chosen = _best(checkpoints, lambda e: _mean_on(others, tasks, e.model.step))
        if chosen:
            rows.append([run, task, _ck(on_test), pct(on_test.avg.value), ", ".join(tasks), _ck(chosen),
                         f"{pct(chosen.avg.value)} (all)", f"{pct(on_test.avg.value)} ({_ck(on_test)})",
                         _gap(on_test.avg.value, chosen.avg.value)])
    return rows


def _mean_on(others: dict[str, list[Entry]], tasks: list[str], step: int | None) -> float | None:
    values = []
    for t in tasks:
        match = [e for e in others[t] if e.model.step == step and e.avg]
        if not match:
            return None                     # a checkpoint not evaluated on every selection task
        values.append(match[0].avg.value)
    return float(np.mean(values))


def _ck(e: Entry) -> str:
    return f"step {e.model.step}"


def _gap(best: float | None, chosen: float | None) -> str:
    return "—" if best is None or chosen is None else f"{pct(best - chosen)}"


def selection_section(rows: list[Row], picks_by_task: dict[str, Any], select_on: Sequence[str]) -> list[str]:
    """The *Checkpoint selection* section for one base model group (`rows`: comparison rows)."""
    cells = []
    for row in rows:
        if row.method == "base":
            continue
        by_task: dict[str, list[Entry]] = {}
        for e in row.entries:
            by_task.setdefault(e.task, []).append(e)
        for task, ref in sorted(picks_by_task.items()):
            mine = [e for e in by_task.get(task, []) if e.setting == ref]
            cells += selection_rows(row.run, task, mine, by_task, select_on)
    if not cells:
        return []
    headers = ["run", "task", "selected on test (paper)", "Avg@n", "selected on", "chosen", "its Avg@n",
               "selected on test, same problems", "gap (pp)"]
    return ["### Checkpoint selection", "",
            "The paper's rule picks the checkpoint by Avg@n on the task it reports (*selected on test*, "
            "optimistic). Without peeking: the checkpoint chosen on a fixed half A of the task's problems, "
            "reported on the other half B"
            + (", or chosen by mean Avg@n on other tasks (`--select-on`) and reported on the whole task" if
               select_on else "")
            + "; beside it the selected-on-test choice on the same problems. The gap (percentage points) is "
            "the selection bias.", ""] + table(headers, cells, right_from=3) + [""]
