"""The frontier view: does a run buy its Pass@1 with Pass@k (sharpening), or keep Pass@k (exploring)?

Per task and base model, each run's checkpoints in step order, starting from the base model (step 0,
when it was evaluated with the table's setting), trace a curve of Pass@1 against Pass@K (K: the largest
k every point has). The task page shows the curves as a plot and a table; for two runs of different
methods (A before B in the comparison page's order, so GRPO is A for SPS) it reads both curves at one
Pass@1 level and reports B − A of Pass@K there with a paired bootstrap interval
(`spsbench.stats.matched_difference`); the comparison page shows the same number as a column of its
paired differences. Only evaluations with the table's setting take part, on the problems all of them
scored.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from spsbench.leaderboards.markdown import Site, common_k, pct, score_text, setting_line, slug, table
from spsbench.leaderboards.pairs import diff_text
from spsbench.leaderboards.snapshot import Entry, Setting, reference_setting
from spsbench.stats import Matched, matched_difference

if TYPE_CHECKING:                  # comparison.py builds the rows and imports this module
    from spsbench.leaderboards.comparison import Row

MATCHED_RULE = (
    "the Pass@1 level is the highest both runs reach (the lower of their best Pass@1); each run's Pass@K there "
    "is interpolated linearly between its consecutive checkpoints (base model = step 0) where it first reaches "
    "that Pass@1, never extrapolated"
)


def trajectories(rows: list[Row], task: str, ref: Setting | None) -> dict[int, list[Entry]]:
    """Row index -> its evaluations on `task` with setting `ref` in training order: the base model first
    (when the base row has one), then one checkpoint per step. Runs only (`rows`: the comparison rows of
    one base model, within the page's step budget)."""
    def usable(e: Entry) -> bool:
        return e.task == task and e.setting == ref and e.avg is not None

    base = next((e for r in rows if r.method == "base" for e in r.entries if usable(e)), None)
    out = {}
    for i, row in enumerate(rows):
        if row.method == "base":
            continue
        by_step: dict[int, Entry] = {}
        for e in sorted(row.entries, key=lambda e: (e.model.step or 0, e.eval_id)):
            if usable(e):
                by_step.setdefault(e.model.step or 0, e)
        if by_step:
            out[i] = ([base] if base else []) + [by_step[s] for s in sorted(by_step)]
    return out


def matched(site: Site, a: list[Entry], b: list[Entry], k: int | None) -> Matched | None:
    """B − A of Pass@k at matched Pass@1 on the problems every point scored; None when there are none or
    k exceeds some problem's n. Computed once per site for the same inputs (task and comparison pages)."""
    if not k:
        return None
    key = (tuple(e.eval_id for e in a), tuple(e.eval_id for e in b), k)
    if key not in site.cache:
        site.cache[key] = _matched(a, b, k)
    return site.cache[key]


def _matched(a: list[Entry], b: list[Entry], k: int) -> Matched | None:
    points = list({e.eval_id: e for e in a + b}.values())
    counts = [{p: (n, c) for p, n, c in e.problems if n} for e in points]
    common = sorted(set.intersection(*(set(c) for c in counts)))
    if not common or k > min(n for cs in counts for p, (n, _) in cs.items() if p in common):
        return None
    evals = [([cs[p][0] for p in common], [cs[p][1] for p in common]) for cs in counts]
    index = {e.eval_id: i for i, e in enumerate(points)}
    return matched_difference(evals, [index[e.eval_id] for e in a], [index[e.eval_id] for e in b], k)


def matched_diffs(site: Site, rows: list[Row], settings: list) -> dict[tuple[int, int, str], Matched | None]:
    """(A row, B row, task) -> Pass@K at matched Pass@1 for the comparison page's pairs of runs."""
    out = {}
    for task, ref, k in settings:
        trajs = trajectories(rows, task, ref)
        for i, j in run_pairs(rows):
            if i in trajs and j in trajs:
                out[i, j, task] = matched(site, trajs[i], trajs[j], k)
    return out


def matched_text(m: Matched | None, markdown: bool = True, level: bool = True) -> str:
    """'+4.1 [+1.2, +7.0] at Pass@1 31.2' (bold when the interval excludes 0), or '—' with the reason."""
    if m is None:
        return "—"
    if m.a is None or m.b is None:
        who, span = ("A", m.span_a) if m.a is None else ("B", m.span_b)
        return f"— ({who}'s Pass@1 spans {pct(span[0])}–{pct(span[1])}, never {pct(m.level)})"
    if m.shared:
        return f"— (both at their shared base model: a run never rose above its Pass@1 {pct(m.level)})"
    if math.isnan(m.diff.low):
        undefined = f"{100 * m.undefined:.0f}%"
        return f"{pct(m.diff.value)} [no interval: level outside a trajectory in {undefined} of resamples]"
    return diff_text(m.diff, markdown) + (f" at Pass@1 {pct(m.level)}" if level else "")


def reading(m: Matched | None) -> str:
    """Which side of A's frontier B is on, from the interval (never from the point value alone)."""
    if m is None or m.diff is None or m.shared or math.isnan(m.diff.low):
        return "—"
    if m.diff.significant:
        return "B above A's frontier" if m.diff.value > 0 else "B below A's frontier"
    return "not distinguishable from A's frontier"


# ---------------------------------------------------------------------------- the task page


def frontier_section(site: Site, task: str, groups: list[tuple[str, str | None, list[Row]]]) -> list[str]:
    """'## Frontier' of a task page: per base model (file stem, display name or None when not recorded,
    its comparison rows) with runs on the task, the plot, the trajectory table and the matched-Pass@1
    comparisons."""
    body = []
    for stem, name, rows in groups:
        ref = reference_setting([e.setting for r in rows for e in r.entries if e.task == task])
        trajs = trajectories(rows, task, ref)
        if ref is not None and trajs:
            body += _group(site, task, stem, name, rows, ref, trajs)
    if not body:
        return []
    return ["", "## Frontier: Pass@1 against Pass@k", "",
            "Does a run buy its Pass@1 with Pass@k? Each run's checkpoints in step order, from its base model "
            "(step 0), in the plane of Pass@1 and Pass@K (K: the largest k all of them have). At the same "
            "Pass@1, a run higher up kept more Pass@K: it explores where the other sharpens; a run on the "
            "other's curve reached the same trade-off, perhaps more slowly. Table setting only; scores in %, "
            "[95% interval].", "", *body]


def _group(site: Site, task: str, stem: str, name: str, rows: list[Row], ref: Setting,
           trajs: dict[int, list[Entry]]) -> list[str]:
    k = common_k([e for t in trajs.values() for e in t])
    lines = [f"### Base model `{name}`" if name else "### Base model not recorded", "", setting_line(ref), ""]
    if k is None:
        return lines + ["(no Pass@k that every checkpoint has)", ""]
    label = {i: f"{rows[i].method} ({rows[i].run})" for i in trajs}
    series = {label[i]: [(_p1(e), e.passk[k].value, _step(e)) for e in t] for i, t in trajs.items()}
    base = next((t[0] for t in trajs.values() if t[0].model.run_name is None), None)
    rel = site.plot(f"plots/frontier-{slug(stem)}-{slug(task)}.png", "frontier_curves",
                    f"{name or 'base model not recorded'} · {task}: Pass@{k} against Pass@1 along each run", k, series,
                    (_p1(base), base.passk[k].value) if base else None)
    lines += [f"![Pass@{k} against Pass@1 per checkpoint, one line per run, {task}](../{rel})", ""]
    cells = [["base model", "—", "0", score_text(base.avg), score_text(base.passk[k])]] if base else []
    cells += [[rows[i].run, rows[i].method, str(e.model.step), score_text(e.avg), score_text(e.passk[k])]
              for i, t in trajs.items() for e in t if e.model.run_name is not None]
    lines += table(["run", "method", "step", "Pass@1", f"Pass@{k}"], cells, right_from=2) + [""]
    return lines + _matched_table(site, rows, trajs, k)


def _matched_table(site: Site, rows: list[Row], trajs: dict[int, list[Entry]], k: int) -> list[str]:
    pairs = [(i, j) for i, j in run_pairs(rows) if i in trajs and j in trajs]
    if not pairs:
        return []
    cells = []
    for i, j in pairs:
        m = matched(site, trajs[i], trajs[j], k)
        there = [pct(v) if m and v is not None else "—" for v in ((m.a, m.b) if m else (None, None))]
        cells.append([f"{rows[j].method} ({rows[j].run})", f"{rows[i].method} ({rows[i].run})",
                      pct(m.level) if m else "—", *there, matched_text(m, level=False), reading(m)])
    head = ["B", "A", "matched Pass@1", f"A: Pass@{k} there", f"B: Pass@{k} there", f"B − A (Pass@{k}, pp)",
            "reading"]
    return [f"Pass@{k} at matched Pass@1: {MATCHED_RULE}. B − A in percentage points with the 95% interval of a "
            "paired bootstrap (the same resampled problems for both runs, samples redrawn within each problem, "
            "the level recomputed in each resample; docs/leaderboards.md#frontier); bold = it excludes 0.", "",
            *table(head, cells, right_from=2), ""]


def run_pairs(rows: list[Row]) -> list[tuple[int, int]]:
    """(A, B) for two runs of different methods trained on the same data where known (B − A reported)."""
    return [(i, j) for i in range(len(rows)) for j in range(i + 1, len(rows))
            if "base" not in (rows[i].method, rows[j].method) and rows[i].method != rows[j].method
            and rows[i].same_data(rows[j])]


def _p1(e: Entry) -> float:
    """Pass@1 of an evaluation (= Avg@n, the mean per-problem pass rate)."""
    return e.passk[1].value if 1 in e.passk else e.avg.value


def _step(e: Entry) -> str:
    return "base" if e.model.run_name is None else str(e.model.step)
