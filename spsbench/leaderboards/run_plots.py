"""The plots of a run page: Pass@k vs k and scores vs training step (with 95% interval bands), and the
per-problem accuracy buckets of the first row against the best checkpoint."""

from __future__ import annotations

from spsbench.leaderboards.comparison import interval_bands
from spsbench.leaderboards.markdown import Site, common_k, slug
from spsbench.leaderboards.snapshot import Entry


def run_plots(site: Site, run: str, task: str, rows: list[Entry], best: Entry | None) -> list[str]:
    """Pass@k vs k, scores vs step (the base model as step 0) and accuracy buckets, for the rows with
    the table's setting (`rows`: base model rows first, then checkpoints by step)."""
    if not rows:
        return []
    stem = f"plots/run-{slug(run)}-{slug(task)}"
    labels = {e.eval_id: ("base" if e.model.run_name is None else f"step {e.model.step}") for e in rows}
    curves = {labels[e.eval_id]: {k: s.value for k, s in e.passk.items()} for e in rows}
    bands = {labels[e.eval_id]: interval_bands(e) for e in rows}
    p1 = site.plot(f"{stem}-passk.png", "passk_curves", f"{run} · {task}: Pass@k vs k (bands: 95% intervals)",
                   curves, bands)
    out = [f"![Pass@k vs k, {run} on {task}](../{p1})"]
    out += _steps_plot(site, run, task, rows, stem)
    first = rows[0]
    if best is not None and first.problems and best.problems:
        if first.eval_id == best.eval_id:  # one row only: one bar group, not the same one twice
            groups = {f"{labels[first.eval_id]} (first = best)": _rates(first)}
        else:
            groups = {
                f"{labels[first.eval_id]} (first)": _rates(first),
                f"{labels[best.eval_id]} (best)": _rates(best),
            }
        p3 = site.plot(
            f"{stem}-buckets.png", "bucket_histogram", f"{run} · {task}: per-problem accuracy", groups
        )
        out.append(f"![Per-problem accuracy buckets, first vs best, {run} on {task}](../{p3})")
    return out


def _steps_plot(site: Site, run: str, task: str, rows: list[Entry], stem: str) -> list[str]:
    """Pass@K and Avg@n against training step. The trainer evaluates the base model before training,
    so the base model (the run's base_model tag) is step 0; fewer than two points make no plot."""
    base = [e for e in rows if e.model.run_name is None][:1]  # one base point even if stored twice
    points = base + [e for e in rows if e.model.run_name is not None]
    k = common_k(points)
    if k is None or len(points) < 2:
        return []
    steps = [0 if e.model.run_name is None else (e.model.step or 0) for e in points]
    ticks = ["base" if e.model.run_name is None else str(e.model.step) for e in points]
    n = rows[0].setting.n
    series = {
        f"Pass@{k}": [e.passk[k].value for e in points],
        f"Avg@{n}": [e.avg.value if e.avg else None for e in points],
    }
    bands = {
        f"Pass@{k}": [_bounds(e.passk[k]) for e in points],
        f"Avg@{n}": [_bounds(e.avg) for e in points],
    }
    rel = site.plot(
        f"{stem}-steps.png", "step_curves", f"{run} · {task}: Pass@{k} and Avg@{n} vs step (bands: 95% intervals)",
        steps, series, ticks, bands,
    )
    what = ", base model as step 0" if base else ""
    return [f"![Pass@{k} and Avg@{n} vs training step{what}, {run} on {task}](../{rel})"]


def _bounds(score) -> tuple[float, float] | None:
    return (score.ci_low, score.ci_high) if score and score.ci_low is not None and score.ci_high is not None else None


def _rates(e: Entry) -> list[float]:
    return [c / n for _, n, c in e.problems if n]
