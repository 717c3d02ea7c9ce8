"""The dynamics sections of the lab page: tables, plots and findings of the latest `lab dynamics` session.

Seed-level intervals: mean over seeds ± t(0.975, seeds-1) x sd / sqrt(seeds) (none with one seed).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from spsbench.lab.dynamics import EXACT, SESSION
from spsbench.lab.measure import KS
from spsbench.lab.plots import band_curves, p_buckets

EPS = 0.005
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def interval(values: list[float]) -> tuple[float, float, float]:
    """(mean, low, high) over seeds."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, mean, mean
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = T975.get(n - 1, 1.96) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def latest_session(db: Any, sweep: bool | None = None) -> tuple[dict[str, Any] | None, dict[int, dict[str, Any]]]:
    """The newest session record (with or without a sweep when `sweep` says) and {model_id: exact measures}."""

    diags = db.diagnostics()
    sessions = [d for d in diags if d["metric"] == SESSION
                and (sweep is None or bool(d["details"].get("sweep")) == sweep)]
    exact = {d["model_id"]: d["details"] for d in diags if d["metric"] == EXACT}
    if not sessions:
        return None, exact
    return max(sessions, key=lambda d: (d["created_at"], d["model_id"]))["details"], exact


def sampled_scores(db: Any) -> dict[int, dict[str, float]]:
    """{model_id: {"avg": Avg@n, "pass": Pass@n, "n": n}} of the lab task's evaluations."""
    out = {}
    for ev in db.evaluations(task="lab-sums"):
        scores = {(s.metric, s.k): s.value for s in db.scores(ev.id)}
        passes = [k for m, k in scores if m == "pass@k"]
        if passes:
            top = max(passes)
            out[ev.model_id] = {"avg": scores.get(("avg@n", 0), float("nan")), "pass": scores[("pass@k", top)],
                                "n": top, "no_answer": scores.get(("count:no_answer", 0), 0.0)}
    return out


class View:
    """The session's runs grouped by (sweep value, arm), with their exact measures per step."""

    def __init__(self, session: dict[str, Any], exact: dict[int, dict[str, Any]]) -> None:
        self.session, self.exact = session, exact
        self.base = exact.get(session["base_model_id"])
        self.groups: dict[tuple[Any, str], list[dict[str, Any]]] = {}
        for run in session["runs"]:
            self.groups.setdefault((run["sweep_value"], run["arm"]), []).append(run)

    def final(self, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self.exact[r["checkpoints"][-1]["model_id"]] for r in runs if r["checkpoints"]]

    def steps(self, runs: list[dict[str, Any]]) -> list[int]:
        return sorted({c["step"] for r in runs for c in r["checkpoints"]})

    def at(self, runs: list[dict[str, Any]], step: int) -> list[dict[str, Any]]:
        if step == 0:
            return [self.base] * len(runs) if self.base else []
        return [self.exact[c["model_id"]] for r in runs for c in r["checkpoints"] if c["step"] == step]

    def label(self, key: tuple[Any, str]) -> str:
        value, arm = key
        sweep = self.session.get("sweep")
        return f"{arm} ({sweep['key']}={value})" if sweep else arm


METRICS = (("Pass@1", lambda e: e["pass_at_k"]["1"], True), ("Pass@16", lambda e: e["pass_at_k"]["16"], True),
           ("Pass@256", lambda e: e["pass_at_k"]["256"], True),
           ("greedy log-prob", lambda e: e["greedy_logp"], False),
           ("distinct correct", lambda e: e["distinct"], False), ("exp(H) correct", lambda e: e["effective"], False),
           ("leak", lambda e: e["leak_mean"], True))


def _cell(values: list[float], percent: bool) -> str:
    mean, low, high = interval(values)
    if percent:                       # probabilities: the interval stops at 0 and 100 %
        low, high = max(0.0, low), min(1.0, high)
    f = (lambda v: f"{100 * v:.1f}") if percent else (lambda v: f"{v:.2f}")
    return f(mean) if len(values) < 2 else f"{f(mean)} [{f(low)}, {f(high)}]"


def final_table(view: View, sampled: dict[int, dict[str, float]]) -> list[str]:
    head = [name + (" %" if pct else "") for name, _, pct in METRICS]
    lines = ["| policy | seeds | " + " | ".join(head) + " | sampled Avg@n % | sampled Pass@n % |",
             "|---|--:|" + "--:|" * (len(METRICS) + 2)]
    if view.base:
        s = sampled.get(view.session["base_model_id"], {})
        lines.append("| base | - | " + " | ".join(_cell([fn(view.base)], pct) for _, fn, pct in METRICS)
                     + f" | {_pct(s.get('avg'))} | {_pct(s.get('pass'))} |")
    for key, runs in view.groups.items():
        finals = view.final(runs)
        if not finals:
            continue
        s = [sampled[r["checkpoints"][-1]["model_id"]] for r in runs if r["checkpoints"][-1]["model_id"] in sampled]
        lines.append(f"| {view.label(key)} (step {view.steps(runs)[-1]}) | {len(finals)} | "
                     + " | ".join(_cell([fn(e) for e in finals], pct) for _, fn, pct in METRICS)
                     + f" | {_cell([x['avg'] for x in s], True) if s else '-'} | "
                     f"{_cell([x['pass'] for x in s], True) if s else '-'} |")
    return lines


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def passk_series(view: View) -> dict[str, list[tuple | None]]:
    series = {"base": [(view.base["pass_at_k"][str(k)],) * 3 for k in KS]} if view.base else {}
    for key, runs in view.groups.items():
        finals = view.final(runs)
        series[view.label(key)] = [interval([e["pass_at_k"][str(k)] for e in finals]) for k in KS]
    return series


def step_series(view: View, fn) -> tuple[list[int], dict[str, list[tuple | None]]]:
    steps = sorted({0} | {s for runs in view.groups.values() for s in view.steps(runs)})
    series = {}
    for key, runs in view.groups.items():
        series[view.label(key)] = [interval([fn(e) for e in view.at(runs, s)]) if view.at(runs, s) else None
                                   for s in steps]
    return steps, series


def irl_markers(view: View) -> list[int]:
    return sorted({s for runs in view.groups.values() for r in runs for s in r["irl_steps"]})


def histogram_groups(view: View) -> dict[str, list[float]]:
    """Per-problem probability of a correct answer, averaged over seeds (paper Figure 2 (a)/(b))."""
    groups = {"base": [v["p"] for v in view.base["per_problem"].values()]} if view.base else {}
    for key, runs in view.groups.items():
        finals = view.final(runs)
        ids = list(finals[0]["per_problem"]) if finals else []
        groups[view.label(key)] = [sum(e["per_problem"][i]["p"] for e in finals) / len(finals) for i in ids]
    return groups


def plots(view: View, out: Path, prefix: str = "") -> list[Path]:

    files = [band_curves(out / f"{prefix}passk.png", "Exact Pass@k of the final checkpoints (band: seed-level 95% CI)",
                         list(KS), passk_series(view), "k", "Pass@k (%)", logx=True)]
    marks = irl_markers(view)
    for name, fn, pct, title in (
            ("pass256_steps.png", lambda e: e["pass_at_k"]["256"], True, "Exact Pass@256 against training step"),
            ("pass1_steps.png", lambda e: e["pass_at_k"]["1"], True, "Exact Pass@1 against training step"),
            ("greedy_steps.png", lambda e: e["greedy_logp"], False, "Greedy-path log-prob (squeezing, Table 6)"),
            ("distinct_steps.png", lambda e: e["distinct"], False,
             "Distinct correct trajectories with p >= tau, per problem")):
        steps, series = step_series(view, fn)
        files.append(band_curves(out / f"{prefix}{name}", title + " (dotted: IRL phases of SPS)", steps, series,
                                 "training step (0 = base)", "%" if pct else "value", markers=marks, percent=pct))
    files.append(p_buckets(out / f"{prefix}buckets.png", "Per-problem P(correct), base vs final (mean over seeds)",
                           histogram_groups(view)))
    return files


def findings(view: View) -> list[str]:
    """What the numbers say, computed (null and contrary results included)."""
    if not view.base:
        return []
    b1, b256 = view.base["pass_at_k"]["1"], view.base["pass_at_k"]["256"]
    lines = []
    for key, runs in view.groups.items():
        finals = view.final(runs)
        if not finals:
            continue
        p1 = interval([e["pass_at_k"]["1"] for e in finals])
        p256 = interval([e["pass_at_k"]["256"] for e in finals])
        g = interval([e["greedy_logp"] for e in finals])
        d = interval([e["distinct"] for e in finals])
        lines.append(f"{view.label(key)}: Pass@1 {100 * b1:.1f} -> {_pint(p1)}, Pass@256 {100 * b256:.1f} -> "
                     f"{_pint(p256)}, greedy log-prob {view.base['greedy_logp']:.2f} -> {g[0]:.2f} [{g[1]:.2f}, "
                     f"{g[2]:.2f}], distinct correct trajectories {view.base['distinct']:.1f} -> {d[0]:.1f} "
                     f"[{d[1]:.1f}, {d[2]:.1f}]: " + verdict(b1, b256, p1, p256) + " "
                     + squeeze_verdict(view.base["greedy_logp"], view.base["distinct"], g, d))
    lines += _compare(view, "grpo", "sps")
    return lines


def verdict(b1: float, b256: float, p1: tuple, p256: tuple) -> str:
    """Sharpening / squeezing / exploration, judged by the seed intervals against the base (a change smaller
    than EPS = half a point does not count)."""
    up1, down1 = p1[1] > b1 + EPS, p1[2] < b1 - EPS
    up256, down256 = p256[1] > b256 + EPS, p256[2] < b256 - EPS
    if up1 and up256:
        return "exploration (Pass@1 and Pass@256 up)."
    if up1:
        return "sharpening (Pass@1 up, Pass@256 " + ("down)." if down256 else "not up).")
    if down256:
        return "squeezing without gain (Pass@256 down, Pass@1 " + ("down too)." if down1 else "not up).")
    return "no change beyond the seed intervals."


def squeeze_verdict(base_greedy: float, base_distinct: float, g: tuple, d: tuple) -> str:
    """Paper Table 6 / Table 4 measures against the base, by the seed intervals."""
    up, fewer = g[1] > base_greedy, d[2] < base_distinct
    if up and fewer:
        return "Squeezed: greedy log-prob up and fewer distinct correct trajectories (both beyond the intervals)."
    if up or fewer:
        return ("Partly squeezed: " + ("greedy log-prob up" if up else "fewer distinct correct trajectories")
                + " beyond the intervals, the other measure not.")
    return "Not squeezed beyond the intervals (greedy log-prob and distinct correct trajectories)."


def _pint(t: tuple) -> str:
    return f"{100 * t[0]:.1f}% [{100 * max(0.0, t[1]):.1f}, {100 * min(1.0, t[2]):.1f}]"


def _compare(view: View, a: str, b: str) -> list[str]:
    out = []
    for (value, arm), runs in view.groups.items():
        if arm != b or (value, a) not in view.groups:
            continue
        x = interval([e["pass_at_k"]["256"] for e in view.final(view.groups[(value, a)])])
        y = interval([e["pass_at_k"]["256"] for e in view.final(runs)])
        overlap = not (y[1] > x[2] or x[1] > y[2])
        verdict = ("the seed intervals overlap: no difference shown" if overlap else
                   f"{b} higher" if y[0] > x[0] else f"{b} lower")
        where = f" at {view.session['sweep']['key']}={value}" if view.session.get("sweep") else ""
        out.append(f"{b} vs {a}{where}: Pass@256 {100 * y[0]:.1f}% vs {100 * x[0]:.1f}% ({verdict}).")
    return out


def dynamics_sections(db: Any, out: Path) -> tuple[list[str], list[Path]]:
    """Section 2 (the latest session without a sweep) and section 3 (the latest sweep), when stored."""
    lines: list[str] = []
    files: list[Path] = []
    sampled = sampled_scores(db)
    for sweep, prefix in ((False, ""), (True, "sweep_")):
        session, exact = latest_session(db, sweep)
        if session is not None:
            more, pngs = session_section(View(session, exact), sampled, out, prefix)
            lines += more
            files += pngs
    return lines, files


def _settings(session: dict[str, Any]) -> str:
    runs = [r for r in session["runs"] if r.get("settings")]
    if not runs:
        return ""
    rl = {r["settings"]["rl.learning_rate"] for r in runs}
    steps = {r["settings"]["rl.max_steps"] for r in runs}
    irl = {r["settings"]["sps.irl_learning_rate"] for r in runs if r["settings"]["sps.irl_learning_rate"] is not None}
    return (f"RL learning rate {', '.join(f'{v:g}' for v in sorted(rl))}, {', '.join(str(v) for v in sorted(steps))} "
            "steps" + (f", IRL learning rate {', '.join(f'{v:g}' for v in sorted(irl))}" if irl else "") + ".")


def session_section(view: View, sampled: dict[int, dict[str, float]], out: Path, prefix: str):
    session = view.session
    files = plots(view, out, prefix)
    lab, warm = session["lab"], session["warmup"]
    sweep = session.get("sweep")
    title = (f"## 3. Ablation: `--sweep {sweep['key']}={','.join(str(v) for v in sweep['values'])}`" if sweep
             else "## 2. The dynamics (`spsbench lab dynamics`)")
    lines = [title, "",
             f"Task `lab-sums` (47 problems: a number as a sum of 2 or 3 digits, graded by the math grader). Base: "
             f"a LlamaForCausalLM (hidden {warm['hidden']}, {warm['layers']} layers) after {warm['steps']} supervised "
             f"warm-up steps ({warm['targeted']:.0%} of demonstrations correct). Arms {', '.join(lab['arms'])}, "
             f"{lab['seeds']} seeds each, recipe `recipes/<algo>.yaml` + `recipes/{session['recipe']}`"
             + (f" + `{' '.join(session['overrides'])}`" if session["overrides"] else "") + ". Exact measures at "
             f"temperature 1 from enumerated probabilities (distinct: correct trajectories with p >= {lab['tau']:g}); "
             f"sampled scores from `evaluate` with n = {lab['eval_n']}. " + _settings(session) + " Intervals: "
             "mean over seeds ± t x sd / sqrt(seeds), probabilities clipped to [0, 100] %.", "",
             f"Wall time {session['seconds'] / 60:.1f} min on {session['cpus']} CPUs, {session['threads']} torch "
             f"thread(s), load average {session['load_before'][0]:.1f} before and {session['load_after'][0]:.1f} "
             "after (other processes shared the cores).", "", *final_table(view, sampled), "",
             *[f"* {s}" for s in findings(view)], ""]
    lines += [f"![{p.stem}]({p.name})" for p in files] + [""]
    return lines, files
