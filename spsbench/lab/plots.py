"""PNG plots of the lab page that the leaderboard plots (`spsbench.leaderboards.plots`) do not already draw: the squeeze
curves (paper Figure 1 as measured points) and curves with confidence bands and IRL phase markers.

Same conventions as `spsbench.leaderboards.plots`: Agg backend, fixed dpi, no metadata chunk (same data, same bytes).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from spsbench.leaderboards.plots import legend, line_style, pyplot, save_png

UPDATE_STYLE = {"grpo": ("C3", "o"), "irl": ("C0", "s"), "grpo+irl": ("C2", "^")}


def squeeze_plot(path: str | Path, result: Mapping[str, Any]) -> Path:
    """2 x 2 panels: change of the dominant sequence's probability (top) and of the entropy (bottom)
    against p(y-) of the negative sample, for the peaked (left) and balanced (right) start."""
    path = Path(path)
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharex=True, sharey="row")  # same scale: sizes compare
    for col, reg in enumerate(result["regimes"]):
        for row, (key, label) in enumerate((("d_p_dom", "Δ p(dominant)"), ("d_entropy", "Δ entropy (nats)"))):
            ax = axes[row][col]
            for update, (color, marker) in UPDATE_STYLE.items():
                pts = sorted((r["p"], r[key]) for r in reg["rows"] if r["update"] == update)
                ax.plot([p for p, _ in pts], [v for _, v in pts], color=color, marker=marker, markersize=4,
                        linestyle="none", alpha=0.8, label=update)
            ax.axhline(0.0, color="0.5", linewidth=0.8)
            ax.set_xscale("log")
            ax.grid(True, alpha=0.3)
            if col == 0:
                ax.set_ylabel(label)
            if row == 0:
                ax.set_title(f"{reg['regime']} start: p(dominant) = {reg['p_dom']:.3f}, H = {reg['entropy']:.2f}",
                             fontsize=10)
            else:
                ax.set_xlabel("p(y-) of the negative sample")
    legend(axes[0][1])
    save_png(fig, path)
    return path


def band_curves(path: str | Path, title: str, xs: Sequence[float], series: Mapping[str, Sequence[tuple]],
                xlabel: str, ylabel: str, markers: Sequence[float] = (), logx: bool = False,
                percent: bool = True) -> Path:
    """One line per label with a shaded interval: series[label] = [(mean, low, high) or None per x].
    `markers` are x positions of IRL phases (dotted vertical lines)."""
    path = Path(path)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    ax.set_title(title, fontsize=11)
    scale = 100.0 if percent else 1.0
    for i, (label, values) in enumerate(series.items()):
        pts = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None]
        style = line_style(i, len(series))
        ax.plot([x for x, _ in pts], [scale * v[0] for _, v in pts], label=label, **style)
        # probabilities: a t-interval of 3 seeds can pass 0 or 100 %, the band stops there
        lo, hi = (0.0, 100.0) if percent else (-float("inf"), float("inf"))
        ax.fill_between([x for x, _ in pts], [max(lo, scale * v[1]) for _, v in pts],
                        [min(hi, scale * v[2]) for _, v in pts], color=style["color"], alpha=0.15, linewidth=0)
    for j, x in enumerate(markers):
        ax.axvline(x, color="0.35", linestyle=":", linewidth=1.0, label="IRL phase" if j == 0 else None)
    if logx:
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(xs), [str(int(x)) for x in xs])
        ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    legend(ax)
    save_png(fig, path)
    return path


P_BUCKETS = (0.0, 1e-3, 4e-3, 0.02, 0.05, 0.1, 0.25, 1.0000001)


def p_buckets(path: str | Path, title: str, groups: Mapping[str, Sequence[float]]) -> Path:
    """Problems per bucket of P(correct) (paper Figure 2 (a)/(b), with finer buckets at the low end, where the
    lab's policies live: below 1/256 ~ 0.004 a problem is mostly missed even at Pass@256)."""
    path = Path(path)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    ax.set_title(title, fontsize=11)
    labels = [f"[{a:g}, {b:g})" if b <= 1 else f"[{a:g}, 1]" for a, b in itertools.pairwise(P_BUCKETS)]
    width = 0.8 / max(1, len(groups))
    for i, (label, ps) in enumerate(groups.items()):
        counts = [sum(a <= p < b for p in ps) for a, b in itertools.pairwise(P_BUCKETS)]
        xs = [j + (i - (len(groups) - 1) / 2) * width for j in range(len(counts))]
        bars = ax.bar(xs, counts, width=width, label=label, color=f"C{i % 10}", edgecolor="white")
        ax.bar_label(bars, fontsize=8, padding=1)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("per-problem P(correct) (exact)")
    ax.set_ylabel("problems")
    legend(ax)
    save_png(fig, path)
    return path
