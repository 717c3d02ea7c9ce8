"""Markdown building blocks for the leaderboards: the `Site` being built (pages + plot jobs), number
formatting, tables, and the score block (settings line + table + non-comparable footnotes) every page uses.

Scores are shown as percentages with one decimal and the 95% interval (`metrics.score_interval`)
in brackets; outcome counts (no_answer / grader_timeout / grader_error) sit next to every score.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from spsbench.leaderboards.snapshot import Entry, Score, Setting, Snapshot, reference_setting

DISPLAY_KS = (1, 8, 32, 128)
BEST = "★"
NOT_COMPARABLE = "†"
FLAGS_HEADER = "no_answer / timeout / error"


def slug(name: str) -> str:
    """File-name-safe version of a run or task name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "unnamed"


def cell(text: object) -> str:
    # Every line boundary (\r, \u2028, ... not only \n) would end the table row: a model id may hold any.
    return " ".join(str(text).replace("|", "\\|").splitlines())


def pct(value: float | None, digits: int = 1) -> str:
    # Rounding to 9 places first keeps float noise from splitting equal scores: Avg@n = c/n and the
    # product-form Pass@1 can differ in the 16th digit and otherwise print 43.8 vs 43.7.
    return "—" if value is None else f"{round(100 * value, 9):.{digits}f}"


def score_text(score: Score | None, ci: bool = True) -> str:
    if score is None:
        return "—"
    if not ci or score.ci_low is None or score.ci_high is None:
        return pct(score.value)
    return f"{pct(score.value)} [{pct(score.ci_low)}, {pct(score.ci_high)}]"


def flags_text(counts: dict[str, int]) -> str:
    return " / ".join(str(counts.get(o, 0)) for o in ("no_answer", "grader_timeout", "grader_error"))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right_from: int = 1) -> list[str]:
    """A pipe table; columns from `right_from` on are right-aligned (numbers)."""
    align = ["---" if i < right_from else "--:" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return lines


def display_ks(entries: Sequence[Entry]) -> list[int]:
    """k = 1, 8, 32, 128 where available, plus the largest k any entry has."""
    avail = {k for e in entries for k in e.passk}
    if not avail:
        return []
    return sorted((set(DISPLAY_KS) & avail) | {max(avail)})


def common_k(entries: Sequence[Entry]) -> int | None:
    """Largest k every entry has (the paper's Pass@128, or less when n is smaller)."""
    sets = [set(e.passk) for e in entries if e.passk]
    common = set.intersection(*sets) if sets else set()
    return max(common) if common else None


@dataclass
class Footnotes:
    """Numbered `†` markers for rows whose setting differs from the table's reference setting."""

    ref: Setting
    notes: list[str] = field(default_factory=list)

    def mark(self, setting: Setting) -> str:
        if setting == self.ref:
            return ""
        self.notes.append(setting.diff(self.ref))
        return f" {NOT_COMPARABLE}{len(self.notes)}"

    def lines(self) -> list[str]:
        if not self.notes:
            return []
        out = [""]
        out += [
            f"{NOT_COMPARABLE}{i}: not comparable with this table's setting: {note}.  "
            for i, note in enumerate(self.notes, 1)
        ]
        return out


def setting_line(ref: Setting) -> str:
    return f"Setting: {ref.describe()}."


def score_block(
    entries: Sequence[Entry],
    headers: Sequence[str],
    lead: Callable[[Entry], list[str]],
    best_eval: int | None = None,
) -> list[str]:
    """Settings line, one row per entry (lead cells, Avg@n, Pass@k, outcome counts), then footnotes."""
    ref = reference_setting([e.setting for e in entries])
    if ref is None:
        return ["(no finished evaluations)"]
    ks = display_ks([e for e in entries if e.setting == ref])
    notes = Footnotes(ref)
    rows = []
    for e in entries:
        cells = lead(e)
        cells[0] += (f" {BEST}" if e.eval_id == best_eval else "") + notes.mark(e.setting)
        rows.append(
            cells + [score_text(e.avg)] + [score_text(e.passk.get(k)) for k in ks] + [flags_text(e.counts)]
        )
    head = list(headers) + [f"Avg@{ref.n}"] + [f"Pass@{k}" for k in ks] + [FLAGS_HEADER]
    return [setting_line(ref), ""] + table(head, rows, right_from=len(headers)) + notes.lines()


def best_entry(entries: Sequence[Entry], ref: Setting | None) -> Entry | None:
    """Highest Avg@n among entries with the reference setting (the paper's rule); ties -> earliest step."""
    pool = [e for e in entries if e.setting == ref and e.avg is not None]
    if not pool:
        return None
    return max(pool, key=lambda e: (e.avg.value, -(e.model.step or 0), -e.eval_id))


HEADER = "<!-- generated by `spsbench leaderboard` from {store}; do not edit -->"
DIAG_METRICS = (
    ("greedy_logprob", "greedy log-prob / token", "{:.4f}"),
    ("token_entropy", "token entropy (nats)", "{:.4f}"),
    ("pairwise_similarity", "pairwise similarity (%)", None),
)


@dataclass
class Site:
    """Pages (relative path -> Markdown) and plot jobs (relative path -> plots function name + args)."""

    snap: Snapshot
    metric: tuple[str, int | None]
    budget: int | None
    select_on: tuple[str, ...] = ()        # comparison page: also select checkpoints on these tasks
    pages: dict[str, str] = field(default_factory=dict)
    plots: dict[str, tuple[str, tuple]] = field(default_factory=dict)
    cache: dict = field(default_factory=dict)    # statistics two pages share (frontier.matched)

    def page(self, rel: str, title: str, body: list[str]) -> None:
        head = [HEADER.format(store=self.snap.store_label), "", f"# {title}", ""]
        self.pages[rel] = "\n".join(head + body).rstrip() + "\n"

    def plot(self, rel: str, kind: str, *args: object) -> str:
        """Register `spsbench.leaderboards.plots.<kind>(out / rel, *args)`; returns `rel` for the Markdown link."""
        self.plots[rel] = (kind, args)
        return rel
