"""PNG figures of the lab page, made to be put on a slide: one fixed colour per arm in every figure
(`ARM_COLOURS`), axes named with quantity and unit, IRL phases marked on step plots, a panel of the
difference to GRPO under each comparison, and seed bands computed on a scale the quantity cannot leave
(`spsbench.lab.frontier.interval`: logit for probabilities).

Same conventions as `spsbench.leaderboards.plots`: Agg backend, matplotlib's bundled default font, fixed
dpi, no metadata chunk (same data, same bytes).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spsbench.lab import view as v
from spsbench.leaderboards.plots import legend, pyplot, save_png

ARM_COLOURS = {
    "base": "#000000", "grpo": "#1f77b4", "sps": "#d62728", "grpo-slow": "#2ca02c", "grpo-pos": "#9467bd",
    "grpo-neg": "#8c564b", "sps-irl3e-4": "#ff7f0e", "sps-irl1e-4": "#e377c2", "dapo": "#bcbd22", "gspo": "#17becf",
}
SPARE = ("#7f7f7f", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173")
DASHES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P")
UPDATE_STYLE = {"grpo": ("#1f77b4", "o"), "irl": ("#d62728", "s"), "grpo+irl": ("#2ca02c", "^")}


def arm_colour(arm: str) -> str:
    """The arm's colour on every figure (an arm not in the map gets a fixed spare colour by its name)."""
    if arm in ARM_COLOURS:
        return ARM_COLOURS[arm]
    return SPARE[int(hashlib.sha256(arm.encode()).hexdigest(), 16) % len(SPARE)]


def styles(view: v.SessionView) -> dict[str, dict[str, Any]]:
    """Colour by arm; line style and marker by position among the same arm's sweep values."""
    seen: dict[str, int] = {}
    out = {}
    for label in view.labels:
        arm = view.arm(label)
        i = seen[arm] = seen.get(arm, -1) + 1
        out[label] = {"color": arm_colour(arm), "linestyle": DASHES[i % len(DASHES)], "marker": MARKERS[i % len(MARKERS)]}
    return out


def _band(ax, xs: Sequence[float], series: Sequence[tuple | None], style: dict[str, Any], label: str,
          scale: float = 100.0, markersize: float = 4.0) -> None:
    pts = [(x, s) for x, s in zip(xs, series, strict=True) if s is not None]
    if not pts:
        return
    x = [p[0] for p in pts]
    ax.plot(x, [scale * s[0] for _, s in pts], color=style["color"], linestyle=style["linestyle"],
            marker=style["marker"], markersize=markersize, linewidth=1.8, label=label)
    ax.fill_between(x, [scale * s[1] for _, s in pts], [scale * s[2] for _, s in pts], color=style["color"],
                    alpha=0.15, linewidth=0)


def _zero(ax) -> None:
    ax.axhline(0.0, color="0.3", linewidth=0.9)


def _irl_marks(ax, steps: Sequence[int]) -> None:
    for j, x in enumerate(steps):
        ax.axvline(x, color="0.45", linestyle=":", linewidth=1.1, label="IRL phase (SPS arms)" if j == 0 else None)


def frontier_figure(path: Path, view: v.SessionView, ks: Sequence[int] = v.FRONTIER_KS) -> Path:
    """Per k: the change of Pass@k against the change of Pass@1 along each arm's training, each seed from its
    own base at (0, 0) (faint: each seed; bold: mean over seeds at each Pass@1 gain reached by at least half
    of them, read where each path last had it, t band; square: the arms' mean end), and below it every state
    of each arm after it left GRPO's path minus GRPO's Pass@k at the same Pass@1 and seed (dots), with the
    mean of the seeds' mean gaps and its paired t interval (line and band): the verdict's numbers."""
    plt = pyplot()
    fig, axes = plt.subplots(2, len(ks), figsize=(5.4 * len(ks), 8.2), sharex=True,
                             gridspec_kw={"height_ratios": [3, 2], "wspace": 0.32}, squeeze=False)
    sty = styles(view)
    for col, k in enumerate(ks):
        top, bottom = axes[0][col], axes[1][col]
        levels = _levels(view, k)
        for label in view.labels:
            for r in view.runs(label):
                t = np.asarray(v.gains(view, r, k))
                top.plot(100 * t[:, 0], 100 * t[:, 1], color=sty[label]["color"], alpha=0.15, linewidth=0.8)
            _band(top, [100 * x for x in levels], v.frontier_curve(view, label, k, levels), sty[label], label,
                  markersize=0)
            ends = np.asarray([v.gains(view, r, k)[-1] for r in view.runs(label)])
            top.plot(100 * ends[:, 0].mean(), 100 * ends[:, 1].mean(), marker="s", markersize=9,
                     color=sty[label]["color"], markeredgecolor="black", linestyle="none")
            if label in view.paired_labels():
                _gap_panel(bottom, view, label, k, sty[label])
        top.plot(0, 0, marker="o", markersize=9, color=ARM_COLOURS["base"], linestyle="none", label="base (each seed's)")
        _zero(top)
        top.axvline(0.0, color="0.3", linewidth=0.9)
        top.set_title(f"Pass@{k} against Pass@1, from each seed's base", fontsize=11)
        top.set_ylabel(f"Pass@{k} change (points)")
        top.grid(True, alpha=0.3)
        _zero(bottom)
        bottom.set_ylabel(f"Pass@{k} gap to GRPO at\nequal Pass@1 (points)")
        bottom.set_xlabel("Pass@1 change from the base (points)")
        bottom.grid(True, alpha=0.3)
    legend(axes[0][-1])
    save_png(fig, path)
    return path


def _gap_panel(ax, view: v.SessionView, label: str, k: int, style: dict[str, Any], ref: str = v.REFERENCE) -> None:
    pts = v.state_gaps(view, label, k, ref)
    if not pts:
        return
    xs, ys = [100 * x for x, _ in pts], [100 * y for _, y in pts]
    ax.plot(xs, ys, color=style["color"], marker=style["marker"], markersize=3, linestyle="none", alpha=0.35)
    m = v.matched_rows(view, label, k, ref)
    if m["diff"] is not None:
        span = [min(xs), max(xs)]
        ax.plot(span, [100 * m["diff"][0]] * 2, color=style["color"], linestyle=style["linestyle"], linewidth=2.2,
                label=label)
        ax.fill_between(span, [100 * m["diff"][1]] * 2, [100 * m["diff"][2]] * 2, color=style["color"], alpha=0.15,
                        linewidth=0)


def versus_figure(path: Path, view: v.SessionView, ref: str, ks: Sequence[int] = v.FRONTIER_KS) -> Path:
    """Every state of each arm (after it left `ref`'s path) minus `ref`'s Pass@k at the same Pass@1 and seed,
    with the mean of the seeds' mean gaps and its paired t interval: is an arm more than slower RL?"""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(ks), figsize=(5.4 * len(ks), 3.8), gridspec_kw={"wspace": 0.32}, squeeze=False)
    sty = styles(view)
    for col, k in enumerate(ks):
        ax = axes[0][col]
        for label in view.labels:
            if label not in (ref, v.REFERENCE):
                _gap_panel(ax, view, label, k, sty[label], ref)
        _zero(ax)
        ax.grid(True, alpha=0.3)
        ax.set_title(f"Pass@{k}: arm minus {ref} at equal Pass@1", fontsize=11)
        ax.set_ylabel(f"Pass@{k} gap to {ref} (points)")
        ax.set_xlabel("Pass@1 change from the base (points)")
    legend(axes[0][-1])
    save_png(fig, path)
    return path


def _levels(view: v.SessionView, k: int, count: int = 60) -> list[float]:
    xs = [x for label in view.labels for r in view.runs(label) for x, _ in v.gains(view, r, k)]
    return list(np.linspace(min(xs), max(xs), count)) if xs else []


StepMetric = tuple[str, Callable[[dict[str, Any]], float], str, float, str]


def steps_figure(path: Path, view: v.SessionView, metrics: Sequence[StepMetric]) -> Path:
    """One column per metric (title, fn, band scale, display factor, unit): the metric against the training
    step (mean over seeds, t band; at an IRL step the line jumps from before to after the phase), and
    below it each arm minus GRPO, paired by seed."""
    plt = pyplot()
    fig, axes = plt.subplots(2, len(metrics), figsize=(5.4 * len(metrics), 7.6), sharex=True,
                             gridspec_kw={"height_ratios": [3, 2], "wspace": 0.32}, squeeze=False)
    sty = styles(view)
    xs = [step for step, _ in v.positions(view)]
    irl = view.irl_steps()
    for col, (title, fn, scale, factor, unit) in enumerate(metrics):
        top, bottom = axes[0][col], axes[1][col]
        for label in view.labels:
            _band(top, xs, v.step_series(view, label, fn, scale), sty[label], label, scale=factor)
            if label in view.paired_labels():
                _band(bottom, xs, v.step_difference(view, label, fn), sty[label], label, scale=factor)
        for ax in (top, bottom):
            _irl_marks(ax, irl)
            ax.grid(True, alpha=0.3)
        _zero(bottom)
        top.set_title(title, fontsize=11)
        top.set_ylabel(f"{title} ({unit})")
        bottom.set_ylabel(f"minus GRPO ({'points' if unit == '%' else unit})")
        bottom.set_xlabel("training step (optimizer steps; 0 = base)")
    legend(axes[0][-1])
    save_png(fig, path)
    return path


BUCKETS = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0000001)


def base_figure(path: Path, view: v.SessionView) -> Path:
    """Problems per bucket of the base's exact P(correct), for problems whose favourite is correct and
    those whose favourite is wrong (mean over the seeds' bases; paper Figure 2 (a)/(b))."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    labels = [f"[{a:g}, {b:g})" if b <= 1 else f"[{a:g}, 1]" for a, b in itertools.pairwise(BUCKETS)]
    groups: dict[str, list[float]] = {"favourite correct": [], "favourite wrong": []}
    for s in view.seeds:
        for p, ok in zip(s["base"]["probe"]["p"], s["base"]["favourite_correct"], strict=True):
            groups["favourite correct" if ok else "favourite wrong"].append(p)
    width = 0.38
    for i, (name, colour) in enumerate((("favourite correct", "#4d4d4d"), ("favourite wrong", "#bababa"))):
        counts = [sum(a <= p < b for p in groups[name]) / len(view.seeds) for a, b in itertools.pairwise(BUCKETS)]
        bars = ax.bar([j + (i - 0.5) * width for j in range(len(counts))], counts, width=width, label=name,
                      color=colour, edgecolor="white")
        ax.bar_label(bars, fmt="%.1f", fontsize=8, padding=1)
    ax.set_xticks(range(len(labels)), labels, fontsize=9)
    ax.set_xlabel("per-problem P(correct) of the base (exact, temperature 1)")
    ax.set_ylabel("problems per base (mean over seeds)")
    ax.set_title(f"The peaked bases: {len(view.seeds)} seeds, 47 problems each", fontsize=11)
    ax.grid(True, axis="y", alpha=0.3)
    legend(ax)
    save_png(fig, path)
    return path


def squeeze_figure(path: Path, result: Mapping[str, Any]) -> Path:
    """2 x 2 panels: change of the dominant sequence's probability (top) and of the incorrect mass (bottom)
    against p(y-) of the negative sample, peaked (left) and balanced (right) start; every seed's updates."""
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10.5, 6.8), sharex=True, sharey="row")
    for col, regime in enumerate(("peaked", "balanced")):
        regs = [r for s in result["seeds"] for r in s["regimes"] if r["regime"] == regime and not r.get("flag")]
        for row, (key, label) in enumerate((("d_p_dom", "change of p(dominant)"),
                                            ("d_incorrect", "change of the incorrect mass"))):
            ax = axes[row][col]
            for update, (colour, marker) in UPDATE_STYLE.items():
                pts = sorted((r["p"], r[key]) for reg in regs for r in reg["rows"] if r["update"] == update)
                ax.plot([p for p, _ in pts], [y for _, y in pts], color=colour, marker=marker, markersize=3.5,
                        linestyle="none", alpha=0.6, label=update)
            _zero(ax)
            ax.set_xscale("log")
            ax.grid(True, alpha=0.3)
            if col == 0:
                ax.set_ylabel(f"{label}\n(probability, one update)")
            if row == 0:
                ax.set_title(f"{regime} start ({len(regs)} model seeds)", fontsize=11)
            else:
                ax.set_xlabel("p(y-) of the negative sample (probability, log scale)")
    legend(axes[0][1])
    save_png(fig, path)
    return path
