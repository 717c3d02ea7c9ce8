"""Leaderboard plots (PNG): Pass@k vs k and Pass@K / Avg@n vs training step (with 95% interval bands),
per-problem accuracy buckets, the paired differences of a method comparison, and the frontier (Pass@1
against Pass@K along each run's checkpoints).

matplotlib is imported lazily with the Agg backend (no display). PNGs
are saved without the "Software" metadata chunk and at a fixed dpi (Agg writes no timestamp), so the
same data yields the same bytes, in any process. Every function returns a `PlotSummary` counted from
the drawn axes (lines or bar groups, their styles, x values and y range), which is what the tests check.

Readability choices: scores use a fixed 0–100 % y axis (plots of different runs compare at a glance;
the frontier plot is the exception: runs differ there by a few points, so both axes fit the data);
each line series has its own colour, marker and line style, and earlier series are drawn wider and with
bigger markers underneath later ones, so series that coincide (e.g. two checkpoints both at Pass@32 =
100 %) stay visible as a ring around a dot; legends sit outside the axes so they never hide data.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from spsbench.io import atomic_target

DPI = 100
# Per-problem pass rate c/n -> bucket, as in the paper's Fig. 2a/b and 5 ("accuracy interval").
BUCKET_LABELS = ("0", "(0, .25]", "(.25, .5]", "(.5, .75]", "(.75, 1)", "1")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":")
SCORE_YLIM = (-3.0, 103.0)  # 0–100 % with room for markers at 0 and 100
MAX_STEP_TICKS = 12         # more evaluated steps than this: matplotlib picks the ticks
TITLE_WIDTH = 60            # characters per title line (long run names wrap instead of overflowing)


@dataclass(frozen=True)
class PlotSummary:
    path: Path
    series: int  # lines (curves) or bar groups actually drawn
    labels: tuple[str, ...]
    styles: tuple[tuple[str, str], ...] = ()  # (marker, line style) per line series
    xs: tuple[float, ...] = ()                 # every x value drawn (sorted, unique)
    ylim: tuple[float, float] = (0.0, 0.0)


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _figure(title: str, height: float = 4):
    fig, ax = pyplot().subplots(figsize=(7, height))
    ax.set_title(textwrap.fill(title, TITLE_WIDTH), fontsize=11)
    return fig, ax


def save_png(fig, path: Path) -> None:
    # Temp file + rename: a concurrent refresh or a reader never sees a half-written PNG.
    with atomic_target(path) as tmp:
        # bbox_inches="tight" keeps the outside legend in the image (tight_layout ignores it).
        fig.savefig(tmp, dpi=DPI, format="png", metadata={"Software": None}, bbox_inches="tight", pad_inches=0.1)
    pyplot().close(fig)


def line_style(i: int, count: int) -> dict:
    """Series i of count: its own colour/marker/dash; earlier = wider and bigger, drawn underneath."""
    shrink = i / max(1, count - 1)
    return {
        "color": f"C{i % 10}",
        "marker": MARKERS[i % len(MARKERS)],
        "linestyle": LINESTYLES[i % len(LINESTYLES)],
        "markersize": 8.0 - 4.0 * shrink,
        "linewidth": 2.6 - 1.3 * shrink,
        "zorder": 2 + i,
    }


def legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False, borderaxespad=0)


def _score_axis(ax, ylabel: str) -> None:
    ax.set_ylim(*SCORE_YLIM)
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def _line_summary(path: Path, ax, labels: Sequence[str]) -> PlotSummary:
    lines = ax.get_lines()
    xs = sorted({float(x) for line in lines for x in line.get_xdata()})
    styles = tuple((str(line.get_marker()), str(line.get_linestyle())) for line in lines)
    return PlotSummary(path, len(lines), tuple(labels), styles, tuple(xs), tuple(ax.get_ylim()))


def _band(ax, xs: Sequence[float], bounds: Sequence[tuple[float, float] | None], i: int) -> None:
    """The 95% interval around series i as a translucent band in its colour (points without one skipped)."""
    pts = [(x, b) for x, b in zip(xs, bounds, strict=True) if b is not None]
    if len(pts) >= 2:
        ax.fill_between([x for x, _ in pts], [100 * b[0] for _, b in pts], [100 * b[1] for _, b in pts],
                        color=f"C{i % 10}", alpha=0.15, linewidth=0, zorder=1)
    elif pts:
        x, (low, high) = pts[0]
        ax.vlines([x], [100 * low], [100 * high], color=f"C{i % 10}", alpha=0.4, linewidth=6, zorder=1)


def passk_curves(path: str | Path, title: str, series: Mapping[str, Mapping[int, float]],
                 bands: Mapping[str, Mapping[int, tuple[float, float]]] | None = None) -> PlotSummary:
    """One line per label: Pass@k (%) against k on a log2 axis, y fixed to 0–100 %; `bands`: the 95%
    interval per label and k, drawn as a translucent band."""
    path = Path(path)
    fig, ax = _figure(title)
    for i, (label, points) in enumerate(series.items()):
        ks = sorted(points)
        ax.plot(ks, [100 * points[k] for k in ks], label=label, **line_style(i, len(series)))
        if bands and label in bands:
            _band(ax, ks, [bands[label].get(k) for k in ks], i)
    ks_all = sorted({k for points in series.values() for k in points})
    if ks_all:
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks_all, [str(k) for k in ks_all])  # 1, 2, 4 ... reads better than 2^0, 2^1
        ax.minorticks_off()
    else:
        _empty(ax, "no scores with the table's setting")
    ax.set_xlabel("k (samples per problem)")
    return _finish_lines(fig, ax, path, "Pass@k (%)", list(series))


def step_curves(
    path: str | Path,
    title: str,
    steps: Sequence[int],
    curves: Mapping[str, Sequence[float | None]],
    tick_labels: Sequence[str] | None = None,
    bands: Mapping[str, Sequence[tuple[float, float] | None]] | None = None,
) -> PlotSummary:
    """Metrics (%) against training step (paper Fig. 2c); None values are gaps (not evaluated).

    `tick_labels` names the evaluated steps on the x axis (e.g. "base" for step 0) when there are at
    most MAX_STEP_TICKS of them; `bands` the 95% interval per curve and step (a translucent band)."""
    path = Path(path)
    fig, ax = _figure(title)
    for i, (label, values) in enumerate(curves.items()):
        pts = [(s, 100 * v) for s, v in zip(steps, values, strict=True) if v is not None]
        ax.plot([s for s, _ in pts], [v for _, v in pts], label=label, **line_style(i, len(curves)))
        if bands and label in bands:
            _band(ax, list(steps), list(bands[label]), i)
    if 0 < len(steps) <= MAX_STEP_TICKS:
        ax.set_xticks(list(steps), list(tick_labels) if tick_labels else [str(s) for s in steps])
    ax.set_xlabel("training step")
    return _finish_lines(fig, ax, path, "score (%)", list(curves))


def _finish_lines(fig, ax, path: Path, ylabel: str, names: list[str]) -> PlotSummary:
    """Score axis, legend, the summary counted from the drawn axes, then the PNG."""
    _score_axis(ax, ylabel)
    legend(ax)
    summary = _line_summary(path, ax, names)
    save_png(fig, path)
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
    """Grouped bars: number of problems per accuracy bucket, one bar group per label (e.g. first vs best).

    Every bar is labelled with its count, so an empty bucket reads as "0" rather than as a missing bar."""
    path = Path(path)
    fig, ax = _figure(title)
    width = 0.8 / max(1, len(groups))
    containers, top = [], 0
    for i, (label, rates) in enumerate(groups.items()):
        xs = [b + (i - (len(groups) - 1) / 2) * width for b in range(len(BUCKET_LABELS))]
        counts = bucket_counts(rates)
        top = max(top, *counts)
        bars = ax.bar(xs, counts, width=width, label=label, color=f"C{i % 10}", hatch=("", "//", "..")[i % 3],
                      edgecolor="white")
        ax.bar_label(bars, fontsize=8, padding=1)
        containers.append(bars)
    ax.set_xticks(range(len(BUCKET_LABELS)), BUCKET_LABELS)
    ax.set_ylim(0, max(1, top) * 1.15)  # headroom for the count labels
    ax.yaxis.get_major_locator().set_params(integer=True)  # problem counts are whole numbers
    ax.set_xlabel("per-problem pass rate (c/n)")
    ax.set_ylabel("problems")
    legend(ax)
    summary = PlotSummary(path, len(containers), tuple(groups), ylim=tuple(ax.get_ylim()))
    save_png(fig, path)
    return summary


def paired_differences(path: str | Path, title: str,
                       rows: Mapping[str, Sequence[tuple[float, float, float]]], metrics: Sequence[str]) -> PlotSummary:
    """Method comparison: per pair (a row label 'B − A'), each metric's paired difference in percentage
    points with its 95% interval as a horizontal error bar; a dashed line at 0. A bar that crosses the
    line is not significant (drawn hollow)."""
    path = Path(path)
    labels = list(rows)
    wrapped = [textwrap.fill(label, 40) for label in labels]
    # Each row gets room for its wrapped label (~0.2 in a line), so long run names never overlap.
    fig, ax = _figure(title, max(4.0, 1.2 + 0.2 * sum(max(2, w.count("\n") + 1.5) for w in wrapped)))
    height = 0.8 / max(1, len(metrics))
    for m, metric in enumerate(metrics):
        for r, label in enumerate(labels):
            value, low, high = rows[label][m]
            y = r + (m - (len(metrics) - 1) / 2) * height
            significant = low > 0 or high < 0
            # The bar spans [low, high] and the marker sits on the observed difference: a bias-shifted
            # percentile interval of very skewed replicates can leave its own point outside (matplotlib
            # refuses a negative error length), so the two are drawn separately.
            ax.errorbar([50 * (low + high)], [y], xerr=[[50 * (high - low)]], fmt="none", color=f"C{m % 10}",
                        capsize=4)
            ax.plot([100 * value], [y], MARKERS[m], color=f"C{m % 10}",
                    markerfacecolor=f"C{m % 10}" if significant else "white", label=metric if r == 0 else None)
    ax.axvline(0, color="0.3", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(labels)), wrapped)
    ax.set_ylim(-0.6, len(labels) - 0.4)
    ax.invert_yaxis()
    ax.set_xlabel("B − A (percentage points); filled = 95% interval excludes 0")
    ax.grid(True, axis="x", alpha=0.3)
    legend(ax)
    summary = PlotSummary(path, len(labels) * len(metrics), tuple(labels), ylim=tuple(ax.get_ylim()))
    save_png(fig, path)
    return summary


BASE_STYLE = {"color": "black", "marker": "*", "markersize": 15, "linestyle": "none", "zorder": 50}


def frontier_curves(path: str | Path, title: str, k: int, runs: Mapping[str, Sequence[tuple[float, float, str]]],
                    base: tuple[float, float] | None = None) -> PlotSummary:
    """Pass@k (%) against Pass@1 (%), one line per run through its checkpoints in step order (each point
    labelled with its step), the base model as a black star where every run starts. Up-left of another
    run = more Pass@k at the same Pass@1 (explores); a run moving right and down sharpens."""
    path = Path(path)
    fig, ax = _figure(title)
    for i, (label, points) in enumerate(runs.items()):
        style = line_style(i, len(runs))
        ax.plot([100 * x for x, _, _ in points], [100 * y for _, y, _ in points], label=label, **style)
        for x, y, step in points:
            if step != "base":
                ax.annotate(step, (100 * x, 100 * y), textcoords="offset points", xytext=(4, 4), fontsize=7,
                            color=style["color"])
    if base is not None:
        ax.plot([100 * base[0]], [100 * base[1]], label="base model (step 0)", **BASE_STYLE)
    xs = [x for pts in runs.values() for x, _, _ in pts] + ([base[0]] if base else [])
    ys = [y for pts in runs.values() for _, y, _ in pts] + ([base[1]] if base else [])
    if xs:
        ax.set_xlim(*_fit(xs))
        ax.set_ylim(*_fit(ys))
    else:
        _empty(ax, "no checkpoints with the table's setting")
    ax.set_xlabel("Pass@1 (%)")
    ax.set_ylabel(f"Pass@{k} (%)")
    ax.grid(True, alpha=0.3)
    legend(ax)
    summary = _line_summary(path, ax, list(runs) + (["base model (step 0)"] if base is not None else []))
    save_png(fig, path)
    return summary


def _fit(values: Sequence[float]) -> tuple[float, float]:
    """Axis limits (%) around the values with a margin, at least 4 points wide, inside -1..101."""
    low, high = 100 * min(values), 100 * max(values)
    pad = max(1.0, 0.12 * (high - low), (4.0 - (high - low)) / 2)
    return max(-1.0, low - pad), min(101.0, high + pad)
