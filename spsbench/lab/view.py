"""A stored `lab dynamics` session as the page reads it (pure: numpy through `frontier`).

Runs are grouped by label (arm, or arm at a sweep value) and seed; each run's path is the seed's base
(point 0) followed by its probes in the order they were taken (at an IRL step: `pre`, then `post`).
Everything the page states is computed here from the stored probes: finals with seed intervals, paired
differences against GRPO (the reference, same seed = same base, data order and rollout stream), Pass@k
at a matched Pass@1, per-step series and the mass flow of each RL segment and IRL phase.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from spsbench.lab import frontier

REFERENCE = "grpo"
SLOWER = "grpo-slow"          # the slower-RL control: what "SPS only slows RL down" would look like
KS = (1, 16, 64, 256)
FRONTIER_KS = (16, 64, 256)


def pass_k(point: dict[str, Any], k: int, subset: list[int] | None = None) -> float:
    ps = point["p"] if subset is None else [point["p"][i] for i in subset]
    return frontier.pass_at_k(ps, k) if ps else float("nan")


def greedy_mass(point: dict[str, Any]) -> float:
    """Mean over problems of the greedy (dominant) completion's probability."""
    return float(np.mean(np.exp(point["dom_logp"])))


def mean_of(point: dict[str, Any], key: str) -> float:
    return float(np.mean(point[key]))


def greedy_logp(point: dict[str, Any]) -> float:
    return mean_of(point, "dom_logp")


class SessionView:
    """Groups x seeds of one session."""

    def __init__(self, session: dict[str, Any]) -> None:
        self.session = session
        self.labels = [g["label"] for g in session["groups"]]
        self.groups = {g["label"]: g for g in session["groups"]}
        self.seeds = sorted(session["seeds"], key=lambda s: s["seed"])
        self._runs = {label: [r for s in self.seeds for r in s["runs"] if r["label"] == label] for label in self.labels}

    @property
    def tag(self) -> str:
        return self.session["tag"]

    def arm(self, label: str) -> str:
        return self.groups[label]["arm"]

    def runs(self, label: str) -> list[dict[str, Any]]:
        return self._runs[label]

    def bases(self) -> list[dict[str, Any]]:
        return [s["base"]["probe"] for s in self.seeds]

    def base_of(self, run: dict[str, Any]) -> dict[str, Any]:
        return next(s["base"] for s in self.seeds if s["seed"] == run["seed"])

    def path(self, run: dict[str, Any]) -> list[dict[str, Any]]:
        return [self.base_of(run)["probe"], *run["points"]]

    def trajectory(self, run: dict[str, Any], k: int) -> list[tuple[float, float]]:
        return [(pass_k(p, 1), pass_k(p, k)) for p in self.path(run)]

    def finals(self, label: str) -> list[dict[str, Any]]:
        return [r["points"][-1] for r in self.runs(label)]

    @staticmethod
    def wrong_favourite(seed_base: dict[str, Any]) -> list[int]:
        """Indices of the problems whose favourite (the warm-up's preferred completion) is wrong."""
        return [i for i, ok in enumerate(seed_base["favourite_correct"]) if not ok]

    def phase(self) -> int:
        return int(self.seeds[0]["runs"][0]["settings"]["phase"])

    def irl_steps(self) -> list[int]:
        return sorted({p["step"] for runs in self._runs.values() for r in runs for p in r["points"]
                       if p["when"] == "post"})

    def paired_labels(self) -> list[str]:
        return [lab for lab in self.labels if lab != REFERENCE and REFERENCE in self._runs]


# -------------------------------------------------------------------------------------------- comparisons


def matched_rows(view: SessionView, label: str, k: int, ref_label: str = REFERENCE) -> dict[str, Any]:
    """`label` against `ref_label` (GRPO, or the slower-RL control) at matched Pass@1: per seed the mean gap
    of its states after it left the reference's path (`frontier.gaps`), then the paired interval over seeds
    and the verdict."""
    means, levels, states, below, above, skipped = [], [], 0, 0, 0, []
    for ref, run in zip(view.runs(ref_label), view.runs(label), strict=True):
        g = frontier.gaps(view.trajectory(ref, k), view.trajectory(run, k))
        below, above = below + g["below"], above + g["above"]
        if not g["gaps"]:
            skipped.append(run["seed"])
            continue
        means.append(float(np.mean(g["gaps"])))
        levels += g["levels"]
        states += len(g["gaps"])
    out = {"label": label, "ref": ref_label, "k": k, "seeds": len(means), "skipped": skipped, "states": states,
           "below": below,
           "above": above, "diff": None, "verdict": None, "per_seed": means}
    if len(means) >= 2:
        diff = frontier.interval(means)
        out.update(diff=diff, verdict=frontier.verdict(diff), level=(min(levels), max(levels)))
    return out


def state_gaps(view: SessionView, label: str, k: int, ref_label: str = REFERENCE) -> list[tuple[float, float]]:
    """Every compared state of `label` (all seeds): (its Pass@1 gain over its seed's base, its Pass@k minus
    the reference's at that Pass@1)."""
    out = []
    for ref, run in zip(view.runs(ref_label), view.runs(label), strict=True):
        g = frontier.gaps(view.trajectory(ref, k), view.trajectory(run, k))
        start = view.trajectory(run, k)[0][0]
        out += [(x - start, y) for x, y in zip(g["levels"], g["gaps"], strict=True)]
    return out


def final_difference(view: SessionView, label: str, fn, ref_label: str = REFERENCE) -> tuple[float, float, float]:
    """Paired (label - reference) difference of fn(final point) over seeds."""
    return frontier.paired([fn(p) for p in view.finals(ref_label)], [fn(p) for p in view.finals(label)])


def change_from_base(view: SessionView, label: str, fn) -> tuple[float, float, float]:
    """Paired (final - base) change of fn over seeds (each seed against its own base)."""
    runs = view.runs(label)
    return frontier.paired([fn(view.base_of(r)["probe"]) for r in runs], [fn(r["points"][-1]) for r in runs])


def gains(view: SessionView, run: dict[str, Any], k: int) -> list[tuple[float, float]]:
    """The run's (Pass@1, Pass@k) path as changes from its seed's base (every seed starts at (0, 0))."""
    t = view.trajectory(run, k)
    return [(x - t[0][0], y - t[0][1]) for x, y in t]


def frontier_curve(view: SessionView, label: str, k: int, levels: list[float]) -> list[tuple | None]:
    """(mean, low, high) of the Pass@k change at each Pass@1 change along `label`'s paths (each read where it
    last had that gain; at least half the seeds), t band clipped to what the mean of the bases allows."""
    runs = view.runs(label)
    per_level = frontier.curve([gains(view, r, k) for r in runs], levels, min_seeds=max(2, math.ceil(len(runs) / 2)))
    base = float(np.mean([view.trajectory(r, k)[0][1] for r in runs]))
    return [_clip(frontier.interval(ys), -base, 1 - base) if ys else None for ys in per_level]


def _clip(t: tuple[float, float, float], lo: float, hi: float) -> tuple[float, float, float]:
    return t[0], max(t[1], lo), min(t[2], hi)


# -------------------------------------------------------------------------------------------- step series


def positions(view: SessionView) -> list[tuple[int, int]]:
    """Every (step, 0 = after RL / before IRL, 1 = after IRL) position any run was probed at, base first."""
    keys = {(0, 0)}
    for runs in view._runs.values():
        for r in runs:
            keys |= {(p["step"], int(p["when"] == "post")) for p in r["points"]}
    return sorted(keys)


def at_position(view: SessionView, run: dict[str, Any], key: tuple[int, int]) -> dict[str, Any] | None:
    """The run's point at a position; an arm without an IRL phase there is read at its step (unchanged)."""
    if key == (0, 0):
        return view.base_of(run)["probe"]
    points = {(p["step"], int(p["when"] == "post")): p for p in run["points"]}
    return points.get(key) or points.get((key[0], 0))


def step_series(view: SessionView, label: str, fn, scale: str) -> list[tuple | None]:
    out = []
    for key in positions(view):
        values = [fn(p) for r in view.runs(label) if (p := at_position(view, r, key)) is not None]
        out.append(frontier.interval(values, scale) if values else None)
    return out


def step_difference(view: SessionView, label: str, fn) -> list[tuple | None]:
    out = []
    for key in positions(view):
        pairs = [(at_position(view, a, key), at_position(view, b, key))
                 for a, b in zip(view.runs(REFERENCE), view.runs(label), strict=True)]
        diffs = [fn(q) - fn(p) for p, q in pairs if p is not None and q is not None]
        out.append(frontier.interval(diffs) if len(diffs) >= 2 else (diffs[0],) * 3 if diffs else None)
    return out


# -------------------------------------------------------------------------------------------- mass flow


def segments(view: SessionView, run: dict[str, Any]) -> list[dict[str, Any]]:
    """The run cut at its phase boundaries: RL segments (boundary -> next boundary or pre-IRL point) and IRL
    phases (pre -> post), each with the change of dominant / other-correct / incorrect mass (per problem mean)."""
    phase, path = view.phase(), view.path(run)
    out, anchor = [], path[0]
    for prev, point in zip(path[:-1], path[1:], strict=True):
        if point["when"] == "post":
            out.append({"kind": "irl", "start": point["step"], "end": point["step"],
                        **flow(prev, point, "p_prev_dom")})
            anchor = point
        elif point["when"] == "pre" or point["step"] % phase == 0 or point is path[-1]:
            out.append({"kind": "rl", "start": anchor["step"], "end": point["step"],
                        **flow(anchor, point, "p_anchor_dom")})
            anchor = point
    return out


def flow(start: dict[str, Any], end: dict[str, Any], key: str, subset: list[int] | None = None) -> dict[str, float]:
    """Mean over problems (all, or `subset`) of the change of (dominant, other correct, incorrect) mass from
    start to end, the dominant being start's greedy completion (its probability at `end` is `end[key]`);
    incorrect = everything that is not a well-formed correct decomposition (wrong and malformed answers).
    The three changes sum to 0."""
    idx = slice(None) if subset is None else np.asarray(subset, dtype=int)
    d0 = np.exp(np.asarray(start["dom_logp"]))[idx]
    d1 = np.asarray(end[key])[idx]
    wf = np.asarray(start["dom_wf"], dtype=bool)[idx]
    p0, p1 = np.asarray(start["p"])[idx], np.asarray(end["p"])[idx]
    other0, other1 = p0 - np.where(wf, d0, 0), p1 - np.where(wf, d1, 0)
    wrong0, wrong1 = 1 - p0 - np.where(wf, 0, d0), 1 - p1 - np.where(wf, 0, d1)
    return {"d_dom": float(np.mean(d1 - d0)), "d_other": float(np.mean(other1 - other0)),
            "d_wrong": float(np.mean(wrong1 - wrong0))}


def flow_rows(view: SessionView, label: str) -> list[dict[str, Any]]:
    """Per segment of `label` (same cut in every seed): the three mass changes with seed intervals."""
    per_seed = [segments(view, r) for r in view.runs(label)]
    rows = []
    for i, seg in enumerate(per_seed[0]):
        same = [s[i] for s in per_seed if len(s) > i]
        rows.append({"label": label, "kind": seg["kind"], "start": seg["start"], "end": seg["end"],
                     **{k: frontier.interval([s[k] for s in same]) for k in ("d_dom", "d_other", "d_wrong")},
                     "seeds": len(same)})
    return rows


def irl_wrong_share(view: SessionView, label: str) -> tuple[float, float, float] | None:
    """Of the mass the IRL phases took from the dominant completions, the share that went to incorrect
    answers (per seed: sum over phases of the incorrect gain / sum of the dominant loss)."""
    shares = []
    for r in view.runs(label):
        irl = [s for s in segments(view, r) if s["kind"] == "irl"]
        lost = -sum(s["d_dom"] for s in irl)
        if irl and lost > 0:
            shares.append(sum(s["d_wrong"] for s in irl) / lost)
    return frontier.interval(shares) if shares else None


SUBSETS = ("favourite correct", "favourite wrong")


def subset_flow_rows(view: SessionView, label: str) -> list[dict[str, Any]]:
    """From the base to the end of training, per problem subset (the warm-up's favourite correct or wrong):
    the mass changes with the base's greedy completion as the dominant, seed intervals."""
    rows = []
    for name in SUBSETS:
        per = []
        for r in view.runs(label):
            base = view.base_of(r)
            wrong = SessionView.wrong_favourite(base)
            idx = wrong if name == "favourite wrong" else [i for i in range(len(base["probe"]["p"])) if i not in wrong]
            if idx:
                per.append(flow(base["probe"], r["points"][-1], "p_base_dom", idx))
        if per:
            rows.append({"label": label, "subset": name, "seeds": len(per),
                         **{k: frontier.interval([f[k] for f in per]) for k in ("d_dom", "d_other", "d_wrong")}})
    return rows
