"""Two evaluations of the same problems compared problem by problem: the paired difference of Pass@k and
Avg@n (`spsbench.stats.paired_difference`) and the change of the solvable set (problems gained and lost
at the largest k, with the exact sign test of the net change). Used by the comparison and run pages and
by `spsbench results --compare / --solved-diff`.

Only the problems both evaluations scored are paired; the number is always shown with the result.
"""

from __future__ import annotations

from dataclasses import dataclass

from spsbench.leaderboards.markdown import pct
from spsbench.leaderboards.snapshot import Entry
from spsbench.stats import Difference, paired_difference, sign_test

SIGNIFICANT = "bold = the 95% paired-bootstrap interval of the difference excludes 0; n.s. = it does not"


@dataclass(frozen=True)
class Paired:
    problems: int
    k: int | None
    avg: Difference
    passk: Difference | None


@dataclass(frozen=True)
class SolvedChange:
    """Problems solved (at least one correct sample) by A only (`lost`) and by B only (`gained`)."""

    problems: int
    solved_a: int
    solved_b: int
    gained: list[tuple[str, float, float]]      # (problem, pass rate in A, pass rate in B)
    lost: list[tuple[str, float, float]]
    p_value: float


def _common(a: Entry, b: Entry) -> list[tuple[str, int, int, int, int]]:
    """(problem, n_a, c_a, n_b, c_b) for the problems both scored, sorted."""
    theirs = {p: (n, c) for p, n, c in b.problems}
    return [(p, n, c, *theirs[p]) for p, n, c in a.problems if p in theirs and n and theirs[p][0]]


def paired(a: Entry, b: Entry, k: int | None) -> Paired | None:
    """B - A on the common problems; Pass@k only when k <= every n. None without common problems."""
    rows = _common(a, b)
    if not rows:
        return None
    cols = list(zip(*rows, strict=True))
    usable = k if k and k <= min(min(cols[1]), min(cols[3])) else None
    diff = paired_difference(cols[1], cols[2], cols[3], cols[4], [usable] if usable else [])
    return Paired(len(rows), usable, diff["avg"], diff["pass"].get(usable) if usable else None)


def diff_text(d: Difference | None, markdown: bool = True) -> str:
    """'**+9.4 [2.1, 16.0]**' when significant, '+9.4 [-3.1, 21.9] n.s.' otherwise (percentage points)."""
    if d is None:
        return "—"
    text = f"{_signed(d.value)} [{_signed(d.low)}, {_signed(d.high)}]"
    if d.significant:
        return f"**{text}**" if markdown else f"{text} *"
    return f"{text} n.s."


def _signed(value: float) -> str:
    text = pct(value)
    return text if text.startswith("-") or text == "0.0" else f"+{text}"


def solved_change(a: Entry, b: Entry) -> SolvedChange | None:
    """Gained / lost problems at the largest k (k = n: solved = at least one of the n samples correct)."""
    rows = _common(a, b)
    if not rows:
        return None
    gained = [(p, ca / na, cb / nb) for p, na, ca, nb, cb in rows if ca == 0 < cb]
    lost = [(p, ca / na, cb / nb) for p, na, ca, nb, cb in rows if cb == 0 < ca]
    return SolvedChange(len(rows), sum(r[2] > 0 for r in rows), sum(r[4] > 0 for r in rows), gained, lost,
                        sign_test(len(gained), len(lost)))


def solved_lines(change: SolvedChange, label_a: str, label_b: str, limit: int = 20) -> list[str]:
    """A summary line and a table of the gained and lost problems with their pass rates (Markdown)."""
    net = len(change.gained) - len(change.lost)
    lines = [
        f"Solved (≥ 1 correct sample) by {label_a}: {change.solved_a}/{change.problems}; by {label_b}: "
        f"{change.solved_b}/{change.problems}. Gained {len(change.gained)}, lost {len(change.lost)}, net "
        f"{net:+d}; exact sign test (McNemar) p = {change.p_value:.3g}"
        f"{'' if change.p_value < 0.05 else ' (n.s.)'}.",
    ]
    rows = [["gained", p, pct(ra), pct(rb)] for p, ra, rb in change.gained[:limit]]
    rows += [["lost", p, pct(ra), pct(rb)] for p, ra, rb in change.lost[:limit]]
    if rows:
        lines += ["", f"| change | problem | pass rate {label_a} (%) | pass rate {label_b} (%) |",
                  "| --- | --- | --: | --: |"] + [f"| {' | '.join(r)} |" for r in rows]
    hidden = max(0, len(change.gained) - limit) + max(0, len(change.lost) - limit)
    if hidden:
        lines.append(f"\n({hidden} more not listed; `spsbench results --solved-diff` lists all.)")
    return lines
