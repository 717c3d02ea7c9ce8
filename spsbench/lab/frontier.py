"""Seed-level statistics of the lab (numpy only): t intervals on a scale the quantity cannot leave, paired
differences, and Pass@k at a matched Pass@1 along training trajectories (the frontier question).

* `interval(values, scale)`: mean over seeds ± t(0.975, n-1) x sd / sqrt(n), computed on the scale given
  (`logit` for probabilities, `log` for positive counts, `neglog` for log-probabilities, `raw`) and mapped
  back, so a band never leaves the possible range; the centre is the plain mean (what the tables show).
* `paired(a, b)`: mean of b - a over seeds with its t interval (raw scale: a difference can be negative).
* `at_level(trajectory, level)`: Pass@k when the trajectory last had Pass@1 = level, interpolated linearly
  between the two probes around it. `gaps(ref, arm)`: every state the arm was probed in after it left the
  reference's path (paired seeds share it until then), minus the reference's Pass@k at the same Pass@1;
  a seed's mean gap is its distance to the reference's frontier, and `verdict` turns the paired interval
  of those means over seeds into one of above / on / below that frontier.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# t(0.975, df) for df = 1 ... 30; beyond, the normal quantile is within 2 %.
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
EPS = 1e-9
SCALES = ("raw", "logit", "log", "neglog")


def t975(df: int) -> float:
    if df < 1:
        raise ValueError("a t interval needs at least two values")
    return T975[df - 1] if df <= len(T975) else 1.96


def _forward(x: np.ndarray, scale: str) -> np.ndarray:
    if scale == "logit":
        x = np.clip(x, EPS, 1 - EPS)
        return np.log(x / (1 - x))
    if scale == "log":
        return np.log(np.maximum(x, EPS))
    if scale == "neglog":
        return np.log(np.maximum(-x, EPS))
    return x


def _back(y: float, scale: str) -> float:
    if scale == "logit":
        return float(1 / (1 + math.exp(-y)))
    if scale == "log":
        return float(math.exp(y))
    if scale == "neglog":
        return float(-math.exp(y))
    return float(y)


def interval(values: Sequence[float], scale: str = "raw") -> tuple[float, float, float]:
    """(mean, low, high) over seeds; low = high = mean for a single value."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("interval of no values")
    mean = float(x.mean())
    if x.size < 2:
        return mean, mean, mean
    y = _forward(x, scale)
    half = t975(x.size - 1) * float(y.std(ddof=1)) / math.sqrt(x.size)
    lo, hi = _back(float(y.mean()) - half, scale), _back(float(y.mean()) + half, scale)
    if scale == "neglog":           # -exp is decreasing: the larger transformed value is the lower bound
        lo, hi = hi, lo
    return mean, min(lo, mean), max(hi, mean)


def paired(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """Mean of b - a over paired seeds with its t interval."""
    if len(a) != len(b):
        raise ValueError(f"paired values: {len(a)} vs {len(b)}")
    return interval([y - x for x, y in zip(a, b, strict=True)])


def at_level(trajectory: Sequence[tuple[float, float]], level: float) -> float | None:
    """Pass@k when the (Pass@1, Pass@k) trajectory last had Pass@1 = level (None if never)."""
    pts = list(trajectory)
    if pts and math.isclose(pts[-1][0], level, abs_tol=1e-12):
        return pts[-1][1]
    for (x0, y0), (x1, y1) in zip(reversed(pts[:-1]), reversed(pts[1:]), strict=True):
        if min(x0, x1) <= level <= max(x0, x1):
            if x1 == x0:
                return y1
            return y0 + (y1 - y0) * (level - x0) / (x1 - x0)
    return None


def diverged(ref: Sequence[tuple[float, float]], arm: Sequence[tuple[float, float]]) -> int:
    """Index of the arm's first point that is not the reference's (paired seeds share the path up to there)."""
    for i, (a, b) in enumerate(zip(ref, arm, strict=False)):
        if a != b:
            return i
    return min(len(ref), len(arm))


def gaps(ref: Sequence[tuple[float, float]], arm: Sequence[tuple[float, float]]) -> dict[str, list[float] | int]:
    """Each state of the arm after it left the reference's path, against the reference at the same Pass@1.

    Returns the gaps (arm Pass@k minus the reference's where its path last had that Pass@1) with the Pass@1
    they were read at, and how many states fell below / above the Pass@1 range the reference's path covered
    (no reference state to compare them with)."""
    lo, hi = min(x for x, _ in ref), max(x for x, _ in ref)
    out: dict[str, list[float] | int] = {"gaps": [], "levels": [], "below": 0, "above": 0}
    for x, y in arm[diverged(ref, arm):]:
        if x < lo or x > hi:
            out["below" if x < lo else "above"] += 1           # type: ignore[operator]
            continue
        out["gaps"].append(y - at_level(ref, x))              # type: ignore[union-attr,operator]
        out["levels"].append(x)                                 # type: ignore[union-attr]
    return out


def curve(trajectories: Sequence[Sequence[tuple[float, float]]], levels: Sequence[float],
          min_seeds: int = 2) -> list[list[float] | None]:
    """Per level, every seed's Pass@k at that level (None where fewer than `min_seeds` reached it)."""
    out: list[list[float] | None] = []
    for level in levels:
        ys = [y for t in trajectories if (y := at_level(t, level)) is not None]
        out.append(ys if len(ys) >= min_seeds else None)
    return out


ABOVE, ON, BELOW = "above", "on", "below"
RESOLUTION = 1e-6     # probes are stored to 6 significant digits: smaller differences are not measured


def verdict(diff: tuple[float, float, float]) -> str:
    """above / on / below the reference's frontier from the paired interval of the Pass@k difference."""
    _, lo, hi = diff
    if lo > RESOLUTION:
        return ABOVE
    if hi < -RESOLUTION:
        return BELOW
    return ON


def pass_at_k(ps: Sequence[float], k: int) -> float:
    """Mean over problems of the exact Pass@k = 1 - (1 - p)^k from each problem's P(correct)."""
    p = np.clip(np.asarray(ps, dtype=float), 0.0, 1.0)
    return float(np.mean(1.0 - (1.0 - p) ** k))
