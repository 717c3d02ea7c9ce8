"""Leaderboard plots (PNG): Pass@k vs k, Pass@K / Avg@n vs training step, per-problem accuracy buckets.

Owned by the leaderboard work. matplotlib is imported lazily with the Agg backend (no display). PNGs
are saved without the "Software" metadata chunk and at a fixed dpi, so the same data yields the same
bytes. Every function returns a `PlotSummary` counted from the drawn axes (lines or bar groups), which
is what the tests check.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DPI = 100
# Per-problem pass rate c/n -> bucket, as in the paper's Fig. 2a/b and 5 ("accuracy interval").
BUCKET_LABELS = ("0", "(0, .25]", "(.25, .5]", "(.5, .75]", "(.75, 1)", "1")


@dataclass(frozen=True)
class PlotSummary:
    path: Path
    series: int  # lines (curves) or bar groups actually drawn
    labels: tuple[str, ...]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    # Temp file + rename: a concurrent refresh or a reader never sees a half-written PNG.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fig.savefig(tmp, dpi=DPI, format="png", metadata={"Software": None})
    _pyplot().close(fig)
    os.replace(tmp, path)


def _summary(path: Path, artists: Sequence, labels: Sequence[str]) -> PlotSummary:
    return PlotSummary(path, len(artists), tuple(labels))


def passk_curves(path: str | Path, title: str, series: Mapping[str, Mapping[int, float]]) -> PlotSummary:
    """One line per label: Pass@k (%) against k on a log2 axis."""
    plt, path = _pyplot(), Path(path)
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, points in series.items():
        ks = sorted(points)
        ax.plot(ks, [100 * points[k] for k in ks], marker="o", markersize=3, label=label)
    ax.set_xscale("log", base=2)
    ks_all = sorted({k for points in series.values() for k in points})
    ax.set_xticks(ks_all, [str(k) for k in ks_all])  # 1, 2, 4 ... reads better than 2^0, 2^1
    ax.set_xlabel("k")
    ax.set_ylabel("Pass@k (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    summary = _summary(path, ax.get_lines(), list(series))
    _save(fig, path)
    return summary


def step_curves(
    path: str | Path, title: str, steps: Sequence[int], curves: Mapping[str, Sequence[float | None]]
) -> PlotSummary:
    """Metrics (%) against training step (paper Fig. 2c); None values are gaps (not evaluated)."""
    plt, path = _pyplot(), Path(path)
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in curves.items():
        pts = [(s, 100 * v) for s, v in zip(steps, values, strict=True) if v is not None]
        ax.plot([s for s, _ in pts], [v for _, v in pts], marker="o", markersize=3, label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel("score (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    summary = _summary(path, ax.get_lines(), list(curves))
    _save(fig, path)
    return summary


def bucket_counts(rates: Sequence[float]) -> list[int]:
    """How many problems fall in each of BUCKET_LABELS, given per-problem pass rates c/n."""
    counts = [0] * len(BUCKET_LABELS)
    for r in rates:
        if r <= 0:
            idx = 0
        elif r >= 1:
            idx = 5
        else:
            idx = min(4, 1 + int((r - 1e-12) // 0.25))
        counts[idx] += 1
    return counts


def bucket_histogram(path: str | Path, title: str, groups: Mapping[str, Sequence[float]]) -> PlotSummary:
    """Grouped bars: number of problems per accuracy bucket, one bar group per label (e.g. first vs best)."""
    plt, path = _pyplot(), Path(path)
    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.8 / max(1, len(groups))
    containers = []
    for i, (label, rates) in enumerate(groups.items()):
        xs = [b + (i - (len(groups) - 1) / 2) * width for b in range(len(BUCKET_LABELS))]
        containers.append(ax.bar(xs, bucket_counts(rates), width=width, label=label))
    ax.set_xticks(range(len(BUCKET_LABELS)), BUCKET_LABELS)
    ax.yaxis.get_major_locator().set_params(integer=True)  # problem counts are whole numbers
    ax.set_xlabel("per-problem pass rate (c/n)")
    ax.set_ylabel("problems")
    ax.set_title(title)
    ax.legend(fontsize=7)
    summary = _summary(path, containers, list(groups))
    _save(fig, path)
    return summary
