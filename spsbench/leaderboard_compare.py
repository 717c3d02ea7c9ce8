"""The method comparison page (paper Table 1): method × benchmark, best checkpoint within a step budget.

Owned by the leaderboard work. Rows are the base model itself (a plain model whose path equals the runs'
`base_model`) and every run started from it; per task, each row shows the checkpoint with the highest
Avg@n among evaluations with the column's reference setting, its Pass@K at the largest k all rows share,
its Avg@n and its outcome counts. An SPS cell (algo `sps*`) is bold when it beats every GRPO run from the
same base model on that task and metric.
"""

from __future__ import annotations

from spsbench.leaderboard_data import Entry, Snapshot, reference_setting
from spsbench.leaderboard_md import (
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


def _comparison_rows(snap: Snapshot, base: str, budget: int | None) -> list[tuple[str, str, list[Entry]]]:
    """(method, run or model label, entries) for the base model itself and every run started from it."""
    rows = []
    plain = [e for e in snap.entries if e.model.run_name is None and e.model.path == base]
    if plain:
        rows.append(("base", "—", plain))
    for run in snap.runs():
        entries = [
            e
            for e in snap.entries
            if e.model.run_name == run
            and (e.model.base_model or "?") == base
            and (budget is None or (e.model.step or 0) <= budget)
        ]
        if entries:
            rows.append((entries[0].model.algo or "?", run, entries))
    return sorted(rows, key=lambda r: (r[0] != "base", r[0], r[1]))


def comparison_page(site: Site) -> None:
    snap = site.snap
    bases = sorted({m.base_model or "?" for m in snap.models.values() if m.run_name})
    budget = "no step budget" if site.budget is None else f"step budget ≤ {site.budget}"
    body = [
        f"Like the paper's Table 1: for each run, the best checkpoint per task ({budget}; best = highest "
        "Avg@n among comparable evaluations), its Pass@K at the largest k all rows share (Pass@128 when "
        "n ≥ 128) and its Avg@n. **Bold** = an SPS run (algo `sps*`) beats every GRPO run from the same "
        "base model on that task. Scores in %; outcome counts are no_answer / timeout / error.",
        "",
    ]
    if not bases:
        body.append("(no training runs in the store)")
    for base in bases:
        body += _comparison_group(site, base)
    site.page("comparison.md", "Method comparison", body)


def _comparison_group(site: Site, base: str) -> list[str]:
    rows = _comparison_rows(site.snap, base, site.budget)
    tasks = sorted({e.task for _, _, es in rows for e in es})
    title = f"## Base model `{base}`" if base != "?" else "## Base model not recorded"
    if not tasks:
        return [title, "", "(no finished evaluations of these runs within the budget)", ""]
    picks: dict[tuple[int, str], Entry] = {}
    headers, settings, notes_out = ["method", "run"], [], []
    for task in tasks:
        ref = reference_setting([e.setting for _, _, es in rows for e in es if e.task == task])
        for i, (_, _, es) in enumerate(rows):
            best = best_entry([e for e in es if e.task == task], ref) or _fallback(es, task)
            if best is not None:
                picks[i, task] = best
        k = common_k([p for (i, t), p in picks.items() if t == task and p.setting == ref])
        settings.append((task, ref, k))
        headers += [f"{task} Pass@{k or 'k'}", f"{task} Avg@{ref.n}", f"{task} flags"]
    cells = [[m, r] for m, r, _ in rows]
    for task, ref, k in settings:
        notes = Footnotes(ref)
        _fill_task_columns(rows, picks, task, k, notes, cells)
        notes_out += [f"{task}: {line.strip()}" for line in notes.lines() if line]
    lines = [title, ""] + table(headers, cells, right_from=2) + [""]
    lines += [f"- `{task}`: {setting_line(ref)}" for task, ref, _ in settings]
    lines += [f"- {note}" for note in notes_out]
    chosen = [f"{rows[i][1]} {t}@{p.model.step}" for (i, t), p in sorted(picks.items()) if p.model.run_name]
    lines += ["", "Chosen checkpoints: " + ("; ".join(chosen) or "none") + "."]
    return lines + [""] + _comparison_plots(site, base, rows, picks, settings)


def _fallback(entries: list[Entry], task: str) -> Entry | None:
    """No evaluation with the table's setting: show the best other one (it gets a † marker)."""
    pool = [e for e in entries if e.task == task and e.avg is not None]
    return max(pool, key=lambda e: (e.avg.value, -e.eval_id)) if pool else None


def _fill_task_columns(
    rows, picks, task: str, k: int | None, notes: Footnotes, cells: list[list[str]]
) -> None:
    grpo = [
        picks[i, task]
        for i, (m, _, _) in enumerate(rows)
        if m == "grpo" and (i, task) in picks and picks[i, task].setting == notes.ref
    ]
    for i, (method, _, _) in enumerate(rows):
        e = picks.get((i, task))
        if e is None:
            cells[i] += ["—", "—", "—"]
            continue
        pk, avg = e.passk.get(k) if k else None, e.avg
        bold = method.startswith("sps") and grpo and e.setting == notes.ref
        pk_txt = _bold(
            pct(pk.value) if pk else "—",
            bold and pk and all(g.passk.get(k) and pk.value > g.passk[k].value for g in grpo),
        )
        avg_txt = _bold(
            pct(avg.value) if avg else "—",
            bold and avg and all(g.avg and avg.value > g.avg.value for g in grpo),
        )
        cells[i] += [pk_txt + notes.mark(e.setting), avg_txt, flags_text(e.counts)]


def _bold(text: str, on) -> str:
    return f"**{text}**" if on else text


def _comparison_plots(site: Site, base: str, rows, picks, settings) -> list[str]:
    """Pass@k vs k per method and task; rows with another setting († in the table) are left out."""
    out = []
    for task, ref, _ in settings:
        curves = {
            f"{m} ({r})" if r != "—" else "base": {k: s.value for k, s in picks[i, task].passk.items()}
            for i, (m, r, _) in enumerate(rows)
            if (i, task) in picks and picks[i, task].setting == ref
        }
        rel = f"plots/compare-{slug(base)}-{slug(task)}-passk.png"
        site.plot(rel, "passk_curves", f"{base} · {task}: Pass@k vs k", curves)
        out.append(f"![Pass@k vs k by method, {task}]({rel})")
    return out + [""]
