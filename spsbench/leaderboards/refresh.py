"""Leaderboards: Markdown pages and PNG plots generated from the results store, deterministically.

`refresh(store_path, out_dir)` writes
  README.md            index of every page
  comparison.md        method × benchmark (paper Table 1): best checkpoint per run within a step budget
  runs/<run>.md        checkpoint × task scores, best checkpoint, diagnostics, plots
  tasks/<task>.md      every model ranked by a chosen metric
  models.md            every model in the store (plain `spsbench eval MODEL` ones too) and diagnostics
  plots/*.png          Pass@k vs k, Pass@K / Avg@n vs step, accuracy-bucket histograms
Same store (and same working directory) -> byte-identical files: everything is sorted, floats have fixed
formats, no clock is read, and stored paths are shown relative to the working directory (or as `~/...`)
so that no machine-specific absolute path ends up in a committed page or plot file name.
Files we generated earlier that are no longer produced are removed; other files are never touched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spsbench import paths
from spsbench.errors import ConfigError, WriteError
from spsbench.io import atomic_write_text
from spsbench.leaderboards import plots
from spsbench.leaderboards.comparison import base_groups, comparison_page, comparison_rows
from spsbench.leaderboards.external import graders_table
from spsbench.leaderboards.frontier import frontier_section
from spsbench.leaderboards.markdown import (
    BEST,
    DIAG_METRICS,
    NOT_COMPARABLE,
    Site,
    best_entry,
    pct,
    score_block,
    slug,
    table,
)
from spsbench.leaderboards.pairs import solved_change, solved_lines
from spsbench.leaderboards.run_plots import run_plots
from spsbench.leaderboards.snapshot import (
    Entry,
    Snapshot,
    diag_setting,
    majority,
    plural,
    reference_setting,
)
from spsbench.leaderboards.sources import load_sources, published_folder

PLOT_INDEX = "plots/.inputs.json"  # PNG -> hash of its inputs; unchanged inputs are not redrawn


def parse_metric(text: str) -> tuple[str, int | None]:
    """'avg@n' -> ('avg', None); 'pass@32' -> ('pass', 32)."""
    t = text.strip().lower()
    if t in ("avg@n", "avg"):
        return ("avg", None)
    if t.startswith("pass@") and t[5:].isdigit() and int(t[5:]) >= 1:
        return ("pass", int(t[5:]))
    raise ConfigError(f"--metric: expected avg@n or pass@K (e.g. pass@32), got {text!r}")


def refresh(
    store_path: str | Path | None = None,
    out_dir: str | Path | None = None,
    *,
    metric: str = "avg@n",
    budget: int | None = None,
    plots: bool = True,
    store_label: str | None = None,
    published: str | Path | bool | None = True,
    select_on: tuple[str, ...] = (),
) -> list[Path]:
    """Regenerate every leaderboard file from the store and the published export; returns every
    generated file (sorted).

    `published`: True = the default export for this store (`results/published` for the default store,
    none for another), a folder, or False for none. Paths on the pages (the store label too, unless
    `store_label` is given) are shown relative to the current working directory when they are inside it."""
    store_path = Path(store_path or paths.default_store_path())
    out = Path(out_dir or paths.default_leaderboard_dir(store_path))
    snap = load_sources(store_path, published_folder(store_path, published), store_label)
    site = build_site(snap, metric=parse_metric(metric), budget=budget, select_on=select_on)
    try:
        return _write(site, out, plots)
    except OSError as exc:     # full disk, file-size limit, read-only folder: each file is whole or untouched
        where = exc.filename or out
        raise WriteError(f"leaderboards: cannot write {where}: {exc.strerror or exc}; every file written is whole, "
                         "the rest are unchanged") from None


def build_site(
    snap: Snapshot, metric: tuple[str, int | None] = ("avg", None), budget: int | None = None,
    select_on: tuple[str, ...] = (),
) -> Site:
    """Every registered page (`PAGES`, in order), then the index linking them."""
    site = Site(snap, metric, budget, tuple(select_on))
    for page in PAGES:
        page.build(site)
    _index_page(site, [page.link for page in PAGES if page.link])
    return site


def _write(site: Site, out: Path, plots: bool) -> list[Path]:
    written = []
    for rel, text in sorted(site.pages.items()):
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text() != text:  # unchanged files keep their mtime
            atomic_write_text(path, text)
        written.append(path)
    if plots:
        written += _draw_plots(site, out)
    # With plots=False the PNGs are not redrawn, but the pages still link them: keep them.
    _remove_stale(out, set(written) | {out / rel for rel in site.plots})
    return sorted(written)


def _draw_plots(site: Site, out: Path) -> list[Path]:
    """Draw each plot unless its inputs are unchanged since the last refresh (the trainer refreshes often).

    `plots/.inputs.json` maps each PNG to a hash of (function, arguments, matplotlib version, source of
    plots.py); drawing is deterministic, so an unchanged hash means the file on disk already has the
    right bytes. The plots.py source is in the hash so a change of style redraws every plot.
    """
    import json

    import matplotlib

    index_path = out / PLOT_INDEX
    try:
        old = json.loads(index_path.read_text())
    except (OSError, ValueError):
        old = {}
    code = hashlib.sha256(Path(plots.__file__).read_bytes()).hexdigest()
    new, written = {}, []
    for rel, (kind, args) in sorted(site.plots.items()):
        key = hashlib.sha256(repr((kind, args, matplotlib.__version__, code)).encode()).hexdigest()[:16]
        path = out / rel
        if old.get(rel) != key or not path.is_file():
            try:
                getattr(plots, kind)(path, *args)
            except OSError as exc:         # the image library's error does not name the file
                raise OSError(exc.errno, exc.strerror, str(path)) from None
        new[rel], written = key, written + [path]
    if new or index_path.exists():
        index_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(index_path, json.dumps(new, indent=1, sort_keys=True) + "\n")
    return written


def _remove_stale(out: Path, keep: set[Path]) -> None:
    """Delete pages/plots we generated before that this store no longer produces (e.g. a renamed run)."""
    for path in sorted(out.rglob("*.md")):
        if path not in keep and path.read_text().startswith("<!-- generated by `spsbench leaderboard`"):
            path.unlink()
    for path in sorted((out / "plots").glob("*.png")) if (out / "plots").is_dir() else []:
        if path not in keep:
            path.unlink()


# ---------------------------------------------------------------------------- runs


def _base_entries(snap: Snapshot, base_model: str | None, task: str) -> list[Entry]:
    """Evaluations of the run's base model (a plain model whose path equals the run's base_model)."""
    return [
        e
        for e in snap.entries
        if base_model and e.task == task and e.model.run_name is None and e.model.path == base_model
    ]


def _run_page(site: Site, run: str) -> None:
    snap = site.snap
    models = [m for m in snap.models.values() if m.run_name == run]
    algo = ", ".join(sorted({m.algo or "?" for m in models}))
    bases = sorted({m.base_model for m in models if m.base_model})
    steps = sorted({m.step for m in models if m.step is not None})
    base_text = f"`{', '.join(snap.path_name(b) for b in bases)}`" if bases else "not recorded"
    trained = snap.train_task(run)
    body = [
        f"Algorithm **{algo}**, base model {base_text}, "
        f"{f'trained on `{trained}`' if trained else 'training task not recorded'}, "
        f"{plural(len(models), 'checkpoint')} (steps {', '.join(map(str, steps))}).",
        "",
        f"{BEST} = best checkpoint per task: highest Avg@n among comparable rows (the paper's rule). "
        f"Scores in %, [95% interval: Wilson score interval with the problems' design effect, docs/grading.md]. "
        f"{NOT_COMPARABLE} = different setting, see footnote.",
        "",
    ]
    for task in snap.tasks():
        entries = [e for e in snap.entries if e.task == task and e.model.run_name == run]
        if entries:
            body += _run_task_section(site, run, task, entries, bases[0] if bases else None)
    body += _run_diagnostics(snap, models, bases[0] if bases else None)
    site.page(f"runs/{slug(run)}.md", f"Run `{run}`", body)


def _run_task_section(site: Site, run: str, task: str, entries: list[Entry], base: str | None) -> list[str]:
    base_rows = _base_entries(site.snap, base, task)
    rows = base_rows + sorted(entries, key=lambda e: (e.model.step or 0, e.eval_id))
    ref = reference_setting([e.setting for e in rows])
    best = best_entry(entries, ref)
    lines = [f"## {task}", ""]
    lines += score_block(
        rows, ["step", "checkpoint"], lambda e: _step_cells(site.snap, e), best.eval_id if best else None
    )
    lines += [""] + run_plots(site, run, task, [e for e in rows if e.setting == ref], best)
    return lines + [""] + _run_solvable(base_rows, best, ref)


def _run_solvable(base_rows: list[Entry], best: Entry | None, ref) -> list[str]:
    """Problems the best checkpoint solves that the base model does not, and the reverse."""
    base = next((e for e in base_rows if e.setting == ref), None)
    change = solved_change(base, best) if base is not None and best is not None else None
    if change is None:
        return []
    return ["### Solvable set: best checkpoint vs base model", "",
            *solved_lines(change, "base", f"step {best.model.step}"), ""]


def _step_cells(snap: Snapshot, e: Entry) -> list[str]:
    """A checkpoint by step and its folder (the run is the page's); the base model by its name."""
    if e.model.run_name is None:
        return ["base", f"`{snap.name(e.model)}`"]
    return [str(e.model.step), f"`{Path(e.model.path).name or e.model.path}`"]


def _run_diagnostics(snap: Snapshot, models, base: str | None) -> list[str]:
    base_models = [m for m in snap.models.values() if base and m.run_name is None and m.path == base]
    ordered = base_models + sorted(models, key=lambda m: (m.step or 0, m.id))
    return _diag_section(snap, ordered, "step", lambda m: "base" if m.run_name is None else str(m.step))


def _diag_legend() -> list[str]:
    return [
        "Greedy log-prob: mean over problems of the per-token mean log-probability of the model's own greedy "
        "completion (paper Table 6; higher = more squeezed). Token entropy: mean entropy (nats) of the "
        "next-token distribution over sampled completions. Pairwise similarity: mean word-3-gram Jaccard "
        "similarity between the n completions of a problem (paper Table 4; lower = more diverse). "
        "[95% interval: bootstrap over the problems, where recorded.] "
        "Written by `spsbench diagnose`. Under each table: the setting of each column (the most common "
        f"one); a value with another setting is marked {NOT_COMPARABLE} and its setting is in the footnote. "
        "The store keeps one value per model, task and metric: the latest `spsbench diagnose` wins."
    ]


def _diag_section(snap: Snapshot, models, head: str, label: Callable) -> list[str]:
    """'## Diagnostics' with one table per task: a row per model, a column per metric."""
    ids = {m.id for m in models}
    tasks = sorted({d["task"] for d in snap.diagnostics if d["model_id"] in ids})
    if not tasks:
        return []
    lines = ["## Diagnostics", "", *_diag_legend(), ""]
    for task in tasks:
        shown = [m for m in models if any(snap.diag(m.id, task, metric) for metric, _, _ in DIAG_METRICS)]
        lines += _diag_table(snap, shown, task, head, label)
    return lines


def _diag_table(snap: Snapshot, models, task: str, head: str, label: Callable) -> list[str]:
    """Per column, the most common setting is the reference; other settings get †k and a footnote,
    so that e.g. a similarity from fresh samples is never read against ones from eval samples."""
    found = {(m.id, metric): snap.diag(m.id, task, metric) for m in models for metric, _, _ in DIAG_METRICS}
    settings = {key: diag_setting(key[1], d["details"]) for key, d in found.items() if d}
    refs = {metric: majority([st for (_, mt), st in settings.items() if mt == metric]) for metric, _, _ in DIAG_METRICS}
    notes, rows = [], []
    for m in models:
        row = [label(m)]
        for metric, title, fmt in DIAG_METRICS:
            d = found[m.id, metric]
            if d is None:
                row.append("—")
                continue
            text = fmt.format(d["value"]) if fmt else pct(d["value"], 2)
            ci = d["details"].get("ci")
            if fmt and isinstance(ci, list) and len(ci) == 2 and all(isinstance(v, float) and v == v for v in ci):
                text += f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]"
            if settings[m.id, metric] != refs[metric]:
                notes.append(f"{title}: {settings[m.id, metric].diff(refs[metric])}")  # only what differs
                text += f" {NOT_COMPARABLE}{len(notes)}"
            row.append(text)
        rows.append(row)
    lines = [f"### {task}", ""] + table([head] + [h for _, h, _ in DIAG_METRICS], rows, right_from=1) + [""]
    lines += [f"- {title}: {refs[metric].describe()}." for metric, title, _ in DIAG_METRICS if refs[metric]]
    if notes:
        lines += [""] + [
            f"{NOT_COMPARABLE}{i}: not comparable with its column's setting: {note}.  "
            for i, note in enumerate(notes, 1)
        ]
    return lines + [""]


# ---------------------------------------------------------------------------- tasks


def _task_page(site: Site, task: str) -> None:
    snap, (kind, k) = site.snap, site.metric
    labels = snap.labels()
    entries = [e for e in snap.entries if e.task == task]
    ref = reference_setting([e.setting for e in entries])
    name = "Avg@n" if kind == "avg" else f"Pass@{k}"

    def key(e: Entry) -> tuple:
        score = e.avg if kind == "avg" else e.passk.get(k)
        return (
            e.setting != ref,
            score is None,
            -(score.value if score else 0),
            labels[e.model.id],
            e.eval_id,
        )

    ranked = sorted(entries, key=key)
    rank = {e.eval_id: i for i, e in enumerate((r for r in ranked if r.setting == ref), 1)}
    body = [
        f"Every finished evaluation of `{task}` (checkpoints and plain models), ranked by **{name}** "
        f"(`spsbench leaderboard --metric`). Rows with another setting are listed last, unranked "
        f"({NOT_COMPARABLE}).",
        "",
    ]
    body += score_block(
        ranked,
        ["rank", "model", "run", "step", "algo"],
        lambda e: [
            str(rank.get(e.eval_id, "—")),
            labels[e.model.id],
            e.model.run_name or "—",
            "—" if e.model.step is None else str(e.model.step),
            e.model.algo or "—",
        ],
    )
    body += _graders_section(snap, ranked, labels)
    groups = [(stem, name, comparison_rows(snap, base, None)) for base, stem, name in base_groups(snap)]
    body += frontier_section(site, task, groups)
    site.page(f"tasks/{slug(task)}.md", f"Task `{task}`", body)


def _graders_section(snap: Snapshot, entries: list[Entry], labels: dict[int, str]) -> list[str]:
    """For imported runs: Pass@k under our grader and the other evaluator's, on the same samples."""

    rows = [(labels[e.model.id], snap.graders[e.eval_id]) for e in entries if e.eval_id in snap.graders]
    if not rows:
        return []
    return ["", "### Graders side by side", "",
            "Imported (or cross-checked) evaluations: Pass@k of the same samples under our grader and under "
            "the evaluator that produced them (`spsbench results --disagreements` lists the samples that differ).",
            "", *graders_table(rows)]


# ---------------------------------------------------------------------------- models/index


def _models_page(site: Site) -> None:
    snap = site.snap
    labels = snap.labels()
    rows = []
    for m in snap.models.values():
        tasks = sorted({e.task for e in snap.entries if e.model.id == m.id})
        rows.append(
            [
                labels[m.id],
                f"`{snap.show(m.path)}`",
                m.weights_hash[:12] or "—",
                m.run_name or "—",
                "—" if m.step is None else str(m.step),
                m.algo or "—",
                _base_cell(snap, m.base_model),
                ", ".join(tasks) or "—",
            ]
        )
    rows.sort(key=lambda r: (r[3] != "—", r[0]))
    body = ["Every model in the store: plain models (`spsbench eval MODEL`) first, then run checkpoints.", ""]
    body += table(
        ["model", "path", "weights", "run", "step", "algo", "base model", "tasks"], rows, right_from=99
    )
    ordered = sorted(snap.models.values(), key=lambda m: labels[m.id])
    diag = _diag_section(snap, ordered, "model", lambda m: labels[m.id])
    if diag:
        body += [""] + diag
    site.page("models.md", "Models", body)


def _base_cell(snap: Snapshot, base: str | None) -> str:
    """A checkpoint's base model by name; its path too when the base has no row of its own (provenance)."""
    if not base:
        return "—"
    if any(m.path == base for m in snap.models.values()):
        return snap.path_name(base)
    return f"{snap.path_name(base)} (`{snap.show(base)}`)"


def _index_page(site: Site, links: list[tuple[str, str]]) -> None:
    """README.md: the registered pages' links, then every run page and every task page."""
    snap = site.snap
    body = [
        f"Generated from the results store `{snap.store_label}`: {plural(len(snap.models), 'model')}, "
        f"{plural(len(snap.entries), 'finished evaluation')}, {plural(len(snap.tasks()), 'task')}. "
        "See docs/leaderboards.md for what each table shows and when two scores are comparable.",
        "",
        *(f"- [{text}]({rel})" for text, rel in links),
        "",
        "## Runs",
        "",
    ]
    for run in snap.runs():
        ms = [m for m in snap.models.values() if m.run_name == run]
        algo = ", ".join(sorted({m.algo or "?" for m in ms}))
        body.append(f"- [{run}](runs/{slug(run)}.md): {algo}, {plural(len(ms), 'checkpoint')}")
    body += ["", "## Tasks", "", "Each ranks every model on the task and, when runs were trained, ends with their frontier "
             "(Pass@1 against Pass@k along each run, and Pass@k at matched Pass@1).", ""]
    for task in snap.tasks():
        count = len({e.model.id for e in snap.entries if e.task == task})
        body.append(f"- [{task}](tasks/{slug(task)}.md): {plural(count, 'model')}")
    site.page("README.md", "spsbench leaderboards", body)


# ---------------------------------------------------------------------------- the page registry


def _run_pages(site: Site) -> None:
    for run in site.snap.runs():
        _run_page(site, run)


def _task_pages(site: Site) -> None:
    for task in site.snap.tasks():
        _task_page(site, task)


@dataclass(frozen=True)
class Page:
    """One kind of leaderboard page: `build(site)` adds its file(s) with `site.page(rel, title, body)` (and
    its plots with `site.plot`); `link` = (text, file) lists it at the top of the index."""

    build: Callable[[Site], None]
    link: tuple[str, str] | None = None


# Built in this order (a later page may reuse what an earlier one left in `site.cache`); README.md is last.
# A new page: a module in leaderboards/ with `def my_page(site: Site) -> None`, and one line here.
PAGES: list[Page] = [
    Page(_run_pages),
    Page(_task_pages),
    Page(comparison_page, ("Method comparison (paper Table 1)", "comparison.md")),
    Page(_models_page, ("All models and diagnostics", "models.md")),
]
