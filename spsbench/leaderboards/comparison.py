"""The method comparison page (paper Table 1): method × benchmark, best checkpoint within a step budget.

Rows are the base model itself (a plain model whose path equals the runs'
`base_model`) and every run started from it; per task, each row shows the checkpoint with the highest
Avg@n among evaluations with the column's reference setting, its Pass@K at the largest k all rows share,
its Avg@n and its outcome counts. An SPS cell (algo `sps*`) is bold when it beats every GRPO run from the
same base model on that task and metric (and from the same training task where both runs' are known)
by a paired difference whose 95% interval excludes 0 (`spsbench.leaderboards.pairs`). Below the table:
the paired differences themselves (each run vs the base model, and runs of different methods) and
the change of the solvable set between them. An SPS checkpoint saved before its run's first IRL phase
(its checkpoint record says 0 phases) is a checkpoint of its base algorithm: its cell is marked `‡` and
the chosen-checkpoint line says so.

The store records a run's base model but not its training data; the training task comes from the
trainer's `spsbench_run.json` beside the checkpoints when it is readable (`Snapshot.run_info`), and the
page says which runs were matched on what.
"""

from __future__ import annotations

from dataclasses import dataclass

from spsbench.leaderboards.frontier import matched_diffs
from spsbench.leaderboards.markdown import (
    Footnotes,
    Site,
    best_entry,
    common_k,
    flags_text,
    pct,
    setting_line,
    slug,
    table,
)
from spsbench.leaderboards.paired_section import pair_diffs, paired_section, plot_rows
from spsbench.leaderboards.pairs import paired
from spsbench.leaderboards.selection import selection_section
from spsbench.leaderboards.snapshot import Entry, Snapshot, reference_setting, unique_short_names

NO_IRL_YET = "‡"          # marks an SPS checkpoint taken before its run's first IRL phase


@dataclass(frozen=True)
class Row:
    method: str                 # "base" or the run's algo
    run: str                    # run name, "—" for the base model
    trained: str | None         # training task when known (never for the base model)
    entries: list[Entry]

    def same_data(self, other: Row) -> bool:
        """Same training task, or unknown for one of the two (then only the base model is matched)."""
        return self.trained is None or other.trained is None or self.trained == other.trained


def comparison_rows(snap: Snapshot, base: str, budget: int | None) -> list[Row]:
    """The base model itself and every run started from it."""
    rows = []
    plain = [e for e in snap.entries if e.model.run_name is None and e.model.path == base]
    if plain:
        rows.append(Row("base", "—", None, plain))
    for run in snap.runs():
        entries = [
            e
            for e in snap.entries
            if e.model.run_name == run
            and (e.model.base_model or "?") == base
            and (budget is None or (e.model.step or 0) <= budget)
        ]
        if entries:
            rows.append(Row(entries[0].model.algo or "?", run, snap.train_task(run), entries))
    return sorted(rows, key=lambda r: (r.method != "base", r.method, r.run))


def base_groups(snap: Snapshot) -> list[tuple[str, str, str | None]]:
    """(base model as stored or "?" when not recorded, plot file stem, display name or None) per base
    model some run started from."""
    bases = sorted({m.base_model or "?" for m in snap.models.values() if m.run_name})
    stems = unique_short_names([b for b in bases if b != "?"])
    return [(b, stems.get(b, "unrecorded-base"), snap.path_name(b) if b != "?" else None) for b in bases]


def comparison_page(site: Site) -> None:
    snap = site.snap
    groups = base_groups(snap)
    budget = "no step budget" if site.budget is None else f"step budget ≤ {site.budget}"
    body = [
        f"Like the paper's Table 1: for each run, the best checkpoint per task ({budget}; best = highest "
        "Avg@n among comparable evaluations), its Pass@K at the largest k all rows share (Pass@128 when "
        "n ≥ 128) and its Avg@n. **Bold** = an SPS run (algo `sps*`) beats every GRPO run from the same "
        "base model and training task on that task, each by a paired difference whose 95% interval "
        "excludes 0 (paired bootstrap over problems and samples, see *Paired differences*). Scores in %; "
        "outcome counts are no_answer / timeout / error.",
        "",
        _matching_note(snap),
        "",
    ]
    if not groups:
        body.append("(no training runs in the store)")
    for base, stem, name in groups:
        body += _comparison_group(site, base, stem, name)
    site.page("comparison.md", "Method comparison", body)


def _matching_note(snap: Snapshot) -> str:
    """What runs are matched on: the store has no training-data field, so say what is known."""
    runs = snap.runs()
    known = {run: snap.train_task(run) for run in runs if snap.train_task(run)}
    if runs and len(known) == len(runs):
        return (
            "Runs are matched on base model and training task. The training task (`trained on`) is not in "
            "the results store: it is read from each run folder's `spsbench_run.json`."
        )
    return (
        "Runs are matched on **base model only**: the results store does not record what a run was "
        "trained on. `trained on` shows the training task where the run folder's `spsbench_run.json` "
        "was readable (\"?\" otherwise); runs with two different known tasks are never compared."
    )


def _comparison_group(site: Site, base: str, stem: str, name: str | None) -> list[str]:
    snap = site.snap
    rows = comparison_rows(snap, base, site.budget)
    tasks = sorted({e.task for r in rows for e in r.entries})
    title = f"## Base model `{name}`" if name else "## Base model not recorded"
    if not tasks:
        return [title, "", "(no finished evaluations of these runs within the budget)", ""]
    picks: dict[tuple[int, str], Entry] = {}
    headers, settings, notes_out = ["method", "run", "trained on"], [], []
    for task in tasks:
        ref = reference_setting([e.setting for r in rows for e in r.entries if e.task == task])
        for i, r in enumerate(rows):
            best = best_entry([e for e in r.entries if e.task == task], ref) or _fallback(r.entries, task)
            if best is not None:
                picks[i, task] = best
        k = common_k([p for (i, t), p in picks.items() if t == task and p.setting == ref])
        settings.append((task, ref, k))
        headers += [f"{task} Pass@{k or 'k'}", f"{task} Avg@{ref.n}", f"{task} flags"]
    cells = [[r.method, r.run, "—" if r.method == "base" else (r.trained or "?")] for r in rows]
    diffs = pair_diffs(rows, picks, settings)
    for task, ref, k in settings:
        notes = Footnotes(ref)
        _fill_task_columns(rows, picks, task, k, notes, cells, diffs)
        notes_out += [f"{task}: {line.strip()}" for line in notes.lines() if line]
    before_irl = {(i, t) for (i, t), p in picks.items() if _before_first_irl(snap, rows[i], p)}
    for i, t in before_irl:                 # the task's Pass@k cell
        cells[i][3 + 3 * tasks.index(t)] += f" {NO_IRL_YET}"
    lines = [title, ""] + table(headers, cells, right_from=3) + [""]
    lines += [f"- `{task}`: {setting_line(ref)}" for task, ref, _ in settings]
    lines += [f"- {note}" for note in notes_out]
    if before_irl:
        lines.append(f"- {NO_IRL_YET}: an SPS checkpoint saved before the run's first IRL phase: its weights are "
                     "its base algorithm's (recorded in the checkpoint's spsbench_checkpoint.json).")
    chosen = [f"{rows[i].run} {t}@{p.model.step}" + (" (before any IRL phase)" if (i, t) in before_irl else "")
              for (i, t), p in sorted(picks.items()) if p.model.run_name]
    lines += ["", "Chosen checkpoints: " + ("; ".join(chosen) or "none") + "."]
    lines += [""] + paired_section(rows, picks, settings, diffs, matched_diffs(site, rows, settings))
    lines += selection_section(rows, {task: ref for task, ref, _ in settings}, site.select_on)
    plots = _comparison_plots(site, stem, name or stem, rows, picks, settings, diffs)
    return lines + ([""] if lines[-1] else []) + plots


def _before_first_irl(snap: Snapshot, row: Row, entry: Entry) -> bool:
    """An SPS checkpoint with no IRL phase before it (unknown counts as not: nothing is claimed)."""
    return row.method.startswith("sps") and snap.irl_phases(entry.model.run_name, entry.model.step) == 0


def _fallback(entries: list[Entry], task: str) -> Entry | None:
    """No evaluation with the table's setting: show the best other one (it gets a † marker)."""
    pool = [e for e in entries if e.task == task and e.avg is not None]
    return max(pool, key=lambda e: (e.avg.value, -e.eval_id)) if pool else None


def _fill_task_columns(
    rows: list[Row], picks, task: str, k: int | None, notes: Footnotes, cells: list[list[str]], diffs: dict
) -> None:
    for i, row in enumerate(rows):
        e = picks.get((i, task))
        if e is None:
            cells[i] += ["—", "—", "—"]
            continue
        # The GRPO runs this row is compared with: same base model (the group), same training task
        # where both are known, and the table's setting.
        grpo = [
            j
            for j, other in enumerate(rows)
            if other.method == "grpo" and (j, task) in picks and picks[j, task].setting == notes.ref
            and row.same_data(other)
        ]
        pk, avg = e.passk.get(k) if k else None, e.avg
        bold = row.method.startswith("sps") and grpo and e.setting == notes.ref
        # The paired differences of the section below (computed once), in this order: B = this row.
        found = [diffs.get((j, i, task)) or paired(picks[j, task], e, k) for j in grpo] if bold else []
        pk_txt = _bold(
            pct(pk.value) if pk else "—",
            bold and pk and all(d and d.passk and d.passk.significant and d.passk.value > 0 for d in found),
        )
        avg_txt = _bold(
            pct(avg.value) if avg else "—",
            bold and avg and all(d and d.avg.significant and d.avg.value > 0 for d in found),
        )
        cells[i] += [pk_txt + notes.mark(e.setting), avg_txt, flags_text(e.counts)]


def _bold(text: str, on) -> str:
    return f"**{text}**" if on else text


def _comparison_plots(site: Site, name: str, title: str, rows: list[Row], picks, settings, diffs) -> list[str]:
    """Pass@k vs k per method and task with 95% interval bands, and the paired differences; rows with
    another setting († in the table) are left out.

    File names use the base model's short folder name (`name`), titles its display name (`title`),
    never its stored path, which may be an absolute path on the machine that trained it."""
    out = []
    for task, ref, k in settings:
        shown = [(r, picks[i, task]) for i, r in enumerate(rows) if (i, task) in picks and picks[i, task].setting == ref]
        if not shown:
            continue
        label = {id(r): f"{r.method} ({r.run})" if r.run != "—" else "base" for r, _ in shown}
        curves = {label[id(r)]: {kk: s.value for kk, s in e.passk.items()} for r, e in shown}
        bands = {label[id(r)]: interval_bands(e) for r, e in shown}
        rel = f"plots/compare-{slug(name)}-{slug(task)}-passk.png"
        site.plot(rel, "passk_curves", f"{title} · {task}: Pass@k vs k by method (bands: 95% intervals)", curves,
                  bands)
        out.append(f"![Pass@k vs k by method, {task}]({rel})")
        if diff_rows := plot_rows(rows, diffs, task):
            rel = f"plots/compare-{slug(name)}-{slug(task)}-paired.png"
            site.plot(rel, "paired_differences", f"{title} · {task}: paired differences B − A",
                      diff_rows, [f"Pass@{k}", f"Avg@{ref.n}"])
            out.append(f"![Paired differences with 95% intervals, {task}]({rel})")
    return out + [""]


def interval_bands(e: Entry) -> dict[int, tuple[float, float]]:
    """k -> (low, high) of the entry's Pass@k intervals (where it has them)."""
    return {k: (s.ci_low, s.ci_high) for k, s in e.passk.items() if s.ci_low is not None and s.ci_high is not None}
