"""The comparison page's *Paired differences* and *Solvable set* sections: for each base model, every
run against the base model and every two runs of different methods (trained on the same data where
known), on each task's best checkpoints with the table's setting; for two runs also Pass@K at matched
Pass@1 along their trajectories (`spsbench.leaderboards.frontier`)."""

from __future__ import annotations

from itertools import combinations
from typing import TYPE_CHECKING

from spsbench.leaderboards.frontier import MATCHED_RULE, matched_text
from spsbench.leaderboards.markdown import table
from spsbench.leaderboards.pairs import SIGNIFICANT, Paired, diff_text, paired, solved_change, solved_lines

if TYPE_CHECKING:                  # comparison.py builds the rows and imports this module
    from spsbench.leaderboards.comparison import Row


def compared_pairs(rows: list[Row]) -> list[tuple[int, int]]:
    """(A, B) row indices: base vs each run, and runs of different methods (B - A is reported)."""
    out = []
    for i, j in combinations(range(len(rows)), 2):
        a, b = rows[i], rows[j]
        if a.method == "base" or (a.method != b.method and a.same_data(b)):
            out.append((i, j))
    return out


def _label(row: Row) -> str:
    return "base" if row.method == "base" else f"{row.method} ({row.run})"


def pair_diffs(rows: list[Row], picks: dict, settings: list) -> dict[tuple[int, int, str], Paired]:
    """(A row, B row, task) -> the paired difference of their chosen checkpoints (table setting only)."""
    out = {}
    for i, j in compared_pairs(rows):
        for task, ref, k in settings:
            a, b = picks.get((i, task)), picks.get((j, task))
            d = paired(a, b, k) if a and b and a.setting == ref and b.setting == ref else None
            if d is not None:
                out[i, j, task] = d
    return out


def plot_rows(rows: list[Row], diffs: dict, task: str) -> dict[str, list[tuple[float, float, float]]]:
    """'B − A' -> [(ΔPass@K, low, high), (ΔAvg@n, low, high)] for the paired-difference plot."""
    out = {}
    for (i, j, t), d in sorted(diffs.items()):
        if t == task and d.passk is not None:
            out[f"{_label(rows[j])} − {_label(rows[i])}"] = [(x.value, x.low, x.high) for x in (d.passk, d.avg)]
    return out


def paired_section(rows: list[Row], picks: dict, settings: list, diffs: dict, matched: dict) -> list[str]:
    pairs = compared_pairs(rows)
    if not pairs:
        return []
    headers = ["B", "A"]
    for task, ref, k in settings:
        headers += [f"{task} ΔPass@{k or 'k'}", f"{task} ΔAvg@{ref.n}", f"{task} problems",
                    f"{task} ΔPass@{k or 'k'} at matched Pass@1"]
    cells = []
    for i, j in pairs:
        row = [_label(rows[j]), _label(rows[i])]
        for task, _, _ in settings:
            d = diffs.get((i, j, task))
            row += [diff_text(d.passk), diff_text(d.avg), str(d.problems)] if d else ["—", "—", "—"]
            row.append(matched_text(matched.get((i, j, task))))
        cells.append(row)
    lines = ["### Paired differences", "",
             f"B − A in percentage points on the problems both scored, chosen checkpoints, table setting only; "
             f"[95% interval] of a paired bootstrap over problems and samples within a problem "
             f"(docs/grading.md#intervals); {SIGNIFICANT}. *At matched Pass@1* (two runs only: B − A of Pass@K "
             f"along their whole trajectories, not at the chosen checkpoints): {MATCHED_RULE}; positive = B "
             "keeps more Pass@K for the same Pass@1 (explores), about 0 = the same trade-off (B may only be "
             "slower), negative = B sharpens more. Plot and per-checkpoint values: the task pages' *Frontier*.",
             ""]
    lines += table(headers, cells, right_from=2) + [""]
    return lines + _solvable_section(rows, picks, settings, pairs)


def _solvable_section(rows: list[Row], picks: dict, settings: list, pairs: list[tuple[int, int]]) -> list[str]:
    lines = ["### Solvable set", "",
             "Problems solved (at least one correct sample, i.e. at the largest k = n) by A only (lost) and by "
             "B only (gained), with each one's per-problem pass rate c/n, and the exact sign test of the net "
             "change (McNemar's exact test on the discordant problems).", ""]
    for i, j in pairs:
        for task, ref, _ in settings:
            a, b = picks.get((i, task)), picks.get((j, task))
            change = solved_change(a, b) if a and b and a.setting == ref and b.setting == ref else None
            if change is None:
                continue
            lines += [f"#### {_label(rows[j])} vs {_label(rows[i])} on {task}", ""]
            lines += solved_lines(change, "A", "B") + [""]
    return lines
