"""The dynamics sections of the lab page: one per stored session (`main` first), tables, figures and
findings computed from the committed probes (`spsbench.lab.view`). A null or contrary result reads as such.

Intervals: over seeds, mean ± t(0.975, seeds-1) x sd / sqrt(seeds); probabilities on the logit scale
(they stay inside 0-100 %), differences paired by seed on the raw scale (points).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spsbench.lab import frontier, plots, record
from spsbench.lab import view as v

NAMES = {v.REFERENCE: "GRPO", v.SLOWER: "the slower-RL control"}


def words(verdict: str | None, ref: str = v.REFERENCE) -> str:
    return f"{verdict} {NAMES.get(ref, ref)}'s frontier" if verdict else "no verdict"


STEP_METRICS: list[plots.StepMetric] = [
    ("Pass@1", lambda p: v.pass_k(p, 1), "logit", 100.0, "%"),
    ("Pass@256", lambda p: v.pass_k(p, 256), "logit", 100.0, "%"),
    ("greedy-path mass", v.greedy_mass, "logit", 100.0, "%"),
]


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def cell(t: tuple[float, float, float] | None, scale: float = 100.0, signed: bool = False, digits: int = 1) -> str:
    if t is None:
        return "-"
    def f(x: float) -> str:
        value = round(scale * x, digits) + 0.0          # a value that rounds to 0 reads 0, not -0
        return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"

    return f(t[0]) if t[1] == t[2] == t[0] else f"{f(t[0])} [{f(t[1])}, {f(t[2])}]"


# -------------------------------------------------------------------------------------------- setup


def setup_text(view: v.SessionView) -> list[str]:
    s, lab, warm = view.session, view.session["lab"], view.session["warmup"]
    arms = "; ".join(f"`{g['label']}` ({g['about']})" for g in s["groups"])
    run0 = view.seeds[0]["runs"][0]["settings"]
    return [
        f"Arms: {arms}. {len(view.seeds)} paired seeds: seed s of every arm starts from base s (its own warm-up) "
        f"with the same data order and rollout random stream (`rl.seed` = `sps.seed` = s). {s['max_steps']} RL "
        f"steps of 8 prompts x 8 rollouts, RL learning rate {run0['rl.learning_rate']:g} (arms may change it), "
        f"an SPS IRL phase every {view.phase()} steps; recipe `recipes/<algo>.yaml` + `recipes/{s['recipe']}` + "
        "`recipes/lab/arms/<arm>.yaml`" + (f" + `{' '.join(s['overrides'])}`" if s["overrides"] else "")
        + (f", swept over `{s['sweep']['key']}`" if s.get("sweep") else "") + ".",
        "",
        f"Exact probes (temperature 1, from the model's own probabilities, no sampling) every "
        f"{lab['probe_every']} steps, at every phase boundary and just before and just after each IRL phase. "
        f"Bases: {warm['steps']} supervised steps where {warm['favourite']:.0%} of a problem's demonstrations "
        f"are its favourite completion, correct for {warm['favourite_correct']:.0%} of the problems "
        "(`spsbench/lab/warmup.py`).",
        "",
        f"{record.timing_text(s)} Warm-ups and all measurements included.",
    ]


def base_table(view: v.SessionView) -> list[str]:
    lines = ["| base | greedy-path mass % | Pass@1 % | Pass@16 % | Pass@256 % | favourite wrong | their Pass@1 % | "
             "their Pass@256 % | malformed mass % |", "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    rows = []
    for s in view.seeds:
        b, wrong = s["base"]["probe"], v.SessionView.wrong_favourite(s["base"])
        row = [v.greedy_mass(b), v.pass_k(b, 1), v.pass_k(b, 16), v.pass_k(b, 256), len(wrong),
               v.pass_k(b, 1, wrong), v.pass_k(b, 256, wrong), sum(s["base"]["leak"]) / len(s["base"]["leak"])]
        rows.append(row)
        lines.append(f"| seed {s['seed']} | " + " | ".join(str(x) if isinstance(x, int) else pct(x) for x in row) + " |")
    if len(rows) > 1:
        cols = list(zip(*rows, strict=True))
        lines.append("| mean [95% CI] | " + " | ".join(
            f"{sum(c) / len(c):.1f}" if i == 4 else cell(frontier.interval(c, "logit")) for i, c in enumerate(cols))
            + " |")
    return lines


def sampled_line(view: v.SessionView) -> list[str]:
    scores = record.sampled_scores(view.seeds[0]["base"].get("sampled"))
    if scores is None or scores.avg is None:
        return []
    b, n, avg = view.seeds[0]["base"]["probe"], scores.n, scores.avg
    return [f"Cross-check by the product's evaluator (`evaluate`, HF engine, n = {n} samples per problem "
            f"at temperature 1, graded by the math grader) on base 0: Avg@{n} {pct(avg.value)}% "
            f"[{pct(avg.ci_low)}, {pct(avg.ci_high)}] against the exact Pass@1 {pct(v.pass_k(b, 1))}%; "
            f"Pass@{n} {pct(scores.pass_at_k[n].value)}% against the exact {pct(v.pass_k(b, n))}%."]


# -------------------------------------------------------------------------------------------- tables


def final_table(view: v.SessionView) -> list[str]:
    lines = [f"| arm (step {view.session['max_steps']}) | Pass@1 % | Pass@16 % | Pass@64 % | Pass@256 % | "
             "Pass@256 change from the base (points) | Pass@256 %, favourite-wrong problems | greedy-path mass % | "
             "distinct correct (p >= tau) |", "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for label in view.labels:
        finals = view.finals(label)
        subset = [v.pass_k(r["points"][-1], 256, v.SessionView.wrong_favourite(view.base_of(r)))
                  for r in view.runs(label)]
        lines.append(f"| {label} | " + " | ".join([
            *(cell(frontier.interval([v.pass_k(p, k) for p in finals], "logit")) for k in v.KS),
            cell(v.change_from_base(view, label, lambda p: v.pass_k(p, 256)), signed=True),
            cell(frontier.interval(subset, "logit")),
            cell(frontier.interval([v.greedy_mass(p) for p in finals], "logit")),
            cell(frontier.interval([v.mean_of(p, "distinct") for p in finals], "log"), scale=1.0)]) + " |")
    return lines


def comparisons(view: v.SessionView) -> list[tuple[str, str]]:
    """(arm, reference) pairs the page compares: every arm against GRPO, and every other arm against the
    slower-RL control when the session has it (the test of "SPS only slows RL down")."""
    pairs = [(label, v.REFERENCE) for label in view.paired_labels()]
    if v.SLOWER in view.labels:
        pairs += [(label, v.SLOWER) for label in view.paired_labels() if label != v.SLOWER]
    return pairs


def matched_table(view: v.SessionView) -> list[str]:
    lines = ["| arm vs reference (paired by seed) | final Pass@1 difference (points) | states compared (Pass@1 range %) | "
             + " | ".join(f"Pass@{k} gap at matched Pass@1 (points)" for k in v.FRONTIER_KS)
             + " | seeds | verdict (Pass@256) |", "|---|--:|--:|" + "--:|" * len(v.FRONTIER_KS) + "--:|---|"]
    for label, ref in comparisons(view):
        rows = {k: v.matched_rows(view, label, k, ref) for k in v.FRONTIER_KS}
        top = rows[256]
        p1 = v.final_difference(view, label, lambda p: v.pass_k(p, 1), ref)
        states = (f"{top['states']} ({pct(top['level'][0])}-{pct(top['level'][1])})" if top["diff"] else
                  str(top["states"])) + (f"; {top['below']} below, {top['above']} above the reference's range"
                                         if top["below"] or top["above"] else "")
        lines.append(f"| {label} vs {ref} | {cell(p1, signed=True)} | {states} | "
                     + " | ".join(cell(rows[k]["diff"], signed=True) for k in v.FRONTIER_KS)
                     + f" | {top['seeds']} | {words(top['verdict'], ref)} |")
    return lines


def verdict_sentence(view: v.SessionView, label: str, ref: str = v.REFERENCE) -> str:
    """The frontier verdict of one arm against a reference, from the paired interval at Pass@256."""
    m, name = v.matched_rows(view, label, 256, ref), NAMES.get(ref, ref)
    if m["diff"] is None:
        return (f"{label}: no verdict against {name}. Fewer than two seeds had a state to compare at the same "
                f"Pass@1 ({m['below']} of its states lay below and {m['above']} above the Pass@1 range of {name}'s path).")
    d, p1 = m["diff"], v.final_difference(view, label, lambda p: v.pass_k(p, 1), ref)
    text = (f"{label} is **{words(m['verdict'], ref)}**: at the same Pass@1 as {name} on the same seed, its "
            f"Pass@256 was {cell(d, signed=True)} points from {name}'s (mean gap of its {m['states']} states after "
            f"it left that path, paired t interval over {m['seeds']} seeds)")
    if m["below"]:
        text += f"; {m['below']} of its states had a Pass@1 below any state of {name} and are not in that number"
    if m["verdict"] == frontier.ON:
        text += "; the interval includes 0"
        if p1[2] < 0:
            gained = v.change_from_base(view, label, lambda p: v.pass_k(p, 1))[1] > 0
            text += (f", and it ended at a lower Pass@1 ({cell(p1, signed=True)} points)"
                     + (": what slower RL gives" if gained else ", without a Pass@1 gain over the base"))
    return text + "."


def conclusion(view: v.SessionView, label: str) -> str | None:
    """The answer for one arm: its place against GRPO's frontier, read through the slower-RL control. If
    slower GRPO itself lies above GRPO's frontier, only the comparison with it separates "moves the
    frontier" from "slows RL down"."""
    against = v.matched_rows(view, label, 256)["verdict"]
    if against is None:
        return None
    if v.SLOWER not in view.labels or label == v.SLOWER:
        return {frontier.ABOVE: f"{label} moves the frontier up", frontier.ON: f"{label} stays on GRPO's frontier",
                frontier.BELOW: f"{label} falls below GRPO's frontier"}[against]
    slow = v.matched_rows(view, v.SLOWER, 256)["verdict"]
    versus = v.matched_rows(view, label, 256, v.SLOWER)["verdict"]
    if slow != frontier.ABOVE or versus is None:
        return {frontier.ABOVE: f"{label} moves the frontier up (the slower-RL control does not)",
                frontier.ON: f"{label} stays on GRPO's frontier, like slower RL",
                frontier.BELOW: f"{label} falls below GRPO's frontier"}[against]
    return THROUGH_SLOWER[(against, versus)].format(label=label)


# (against GRPO, against the slower-RL control) -> the answer, when slower GRPO is above GRPO's frontier
THROUGH_SLOWER = {
    (frontier.ABOVE, frontier.ABOVE): "{label} does more than slow RL down: it is above the slower-RL control's "
                                      "frontier, which is itself above GRPO's",
    (frontier.ON, frontier.ABOVE): "{label} is above the slower-RL control's frontier but not above GRPO's",
    (frontier.BELOW, frontier.ABOVE): "{label} is below GRPO's frontier and above the slower-RL control's",
    (frontier.ABOVE, frontier.ON): "in this lab {label} behaves like slower RL: slower GRPO is above GRPO's "
                                   "frontier as well, and {label} is on the slower-RL control's frontier",
    (frontier.ON, frontier.ON): "{label} is on GRPO's frontier and on the slower-RL control's: this lab cannot "
                                "tell it from either",
    (frontier.BELOW, frontier.ON): "{label} is below GRPO's frontier and on the slower-RL control's",
    (frontier.ABOVE, frontier.BELOW): "{label} is above GRPO's frontier but below the slower-RL control's: "
                                      "slowing RL down does better",
    (frontier.ON, frontier.BELOW): "{label} is on GRPO's frontier and below the slower-RL control's: slowing RL "
                                   "down does better",
    (frontier.BELOW, frontier.BELOW): "{label} is below both GRPO's frontier and the slower-RL control's",
}


def grpo_sentence(view: v.SessionView) -> str:
    if v.REFERENCE not in view.labels:
        return ""
    d256 = v.change_from_base(view, v.REFERENCE, lambda p: v.pass_k(p, 256))
    d1 = v.change_from_base(view, v.REFERENCE, lambda p: v.pass_k(p, 1))
    dm = v.change_from_base(view, v.REFERENCE, v.greedy_mass)
    word = "lowered" if d256[2] < 0 else "raised" if d256[1] > 0 else "did not change (beyond its interval)"
    return (f"GRPO {word} Pass@256 ({cell(d256, signed=True)} points from the base, paired by seed) while Pass@1 "
            f"changed by {cell(d1, signed=True)} and the greedy path's mass by {cell(dm, signed=True)} points"
            + (": the paper's squeezing." if d256[2] < 0 and d1[1] > 0 else "."))


def change_sentence(view: v.SessionView, label: str) -> str:
    d1 = v.change_from_base(view, label, lambda p: v.pass_k(p, 1))
    d256 = v.change_from_base(view, label, lambda p: v.pass_k(p, 256))
    return (f"{label}: Pass@1 {cell(d1, signed=True)} and Pass@256 {cell(d256, signed=True)} points from the base "
            "(paired by seed).")


def flow_table(view: v.SessionView) -> list[str]:
    lines = ["| arm | segment | dominant mass (points) | other correct mass (points) | incorrect mass (points) |",
             "|---|---|--:|--:|--:|"]
    for label in view.labels:
        for row in v.flow_rows(view, label):
            seg = (f"RL steps {row['start']}-{row['end']}" if row["kind"] == "rl" else f"IRL phase at step {row['end']}")
            lines.append(f"| {label} | {seg} | {cell(row['d_dom'], signed=True, digits=2)} | "
                         f"{cell(row['d_other'], signed=True, digits=2)} | {cell(row['d_wrong'], signed=True, digits=2)} |")
    return lines


def subset_table(view: v.SessionView) -> list[str]:
    lines = ["| arm | problems | base's dominant completion (points) | other correct (points) | incorrect (points) |",
             "|---|---|--:|--:|--:|"]
    for label in view.labels:
        for row in v.subset_flow_rows(view, label):
            lines.append(f"| {label} | {row['subset']} | {cell(row['d_dom'], signed=True)} | "
                         f"{cell(row['d_other'], signed=True)} | {cell(row['d_wrong'], signed=True)} |")
    return lines


def flow_findings(view: v.SessionView) -> list[str]:
    out = []
    for label in view.labels:
        share = v.irl_wrong_share(view, label)
        if share is not None:
            out.append(f"{label}: of the mass its IRL phases took from the dominant completions, "
                       f"{cell(share)}% went to incorrect answers (per seed: incorrect gain / dominant loss, "
                       "summed over the phases), the rest to other correct ones.")
    return out


# -------------------------------------------------------------------------------------------- sections


def session_section(view: v.SessionView, out: Path, number: int) -> tuple[list[str], list[Path]]:
    tag = view.tag
    files = [plots.frontier_figure(out / f"{tag}-frontier.png", view),
             plots.steps_figure(out / f"{tag}-steps.png", view, STEP_METRICS)]
    versus = [lab for lab in view.paired_labels() if lab != v.SLOWER] if v.SLOWER in view.labels else []
    if versus:
        files.append(plots.versus_figure(out / f"{tag}-vs-slower.png", view, v.SLOWER))
    title = ("Does SPS move the Pass@1-Pass@k frontier, or only slow RL down?" if tag == "main"
             else f"Further arms: `{tag}`")
    lines = [f"## {number}. {title} (`spsbench lab dynamics`, session `{tag}`)", "", *setup_text(view), ""]
    if number == 2 or tag == "main":
        files.append(plots.base_figure(out / f"{tag}-bases.png", view))
        lines += ["### The bases", "", *base_table(view), "", *sampled_line(view), "",
                  f"![bases]({tag}-bases.png)", ""]
    lines += ["### Where the arms ended", "", *final_table(view), "",
              f"* {grpo_sentence(view)}", *[f"* {change_sentence(view, lab)}" for lab in view.paired_labels()], "",
              "### The frontier: Pass@k at matched Pass@1", "",
              "Seed by seed, every probed state of the arm after it left GRPO's path (paired seeds share it until "
              "then: SPS until its first IRL phase) is read against GRPO's Pass@k where GRPO's path last had the "
              "same Pass@1 (linear between two probes); states with a Pass@1 outside the range GRPO's path "
              "covered cannot be matched and are counted apart. A seed's gap is the mean over its states; the "
              "verdict is the paired t interval of the seeds' gaps: above 0, on (includes 0), below 0. "
              "Positive: more Pass@k for the same Pass@1. The same comparison against the slower-RL control "
              "(GRPO at a lower learning rate) tells whether an arm does more than slow RL down.", "",
              *matched_table(view), "", *[f"* {verdict_sentence(view, lab, ref)}" for lab, ref in comparisons(view)],
              *[f"* **Answer**: {c}." for lab in view.paired_labels() if view.arm(lab).startswith("sps")
                and (c := conclusion(view, lab))], "",
              f"![frontier]({tag}-frontier.png)", "",
              *([f"Against the slower-RL control ({v.SLOWER}):", "", f"![vs slower RL]({tag}-vs-slower.png)", ""]
                if versus else []),
              "### Along training", "", f"![steps]({tag}-steps.png)", "",
              "### Where the mass goes", "",
              "Per segment, the change of the mass on each problem's dominant completion (its greedy completion at "
              "the segment's start), on the other correct decompositions and on everything else (wrong and "
              "malformed answers), mean over problems, then over seeds.", "", *flow_table(view), "",
              f"From the base to step {view.session['max_steps']}, on the problems whose favourite (the completion "
              "most warm-up demonstrations showed) is correct and on those where it is wrong, with the base's "
              "greedy completion as the dominant one:", "", *subset_table(view), "",
              *[f"* {s}" for s in flow_findings(view)], ""]
    return lines, files


def dynamics_sections(sessions: list[dict[str, Any]], out: Path, first: int = 2) -> tuple[list[str], list[Path]]:
    lines: list[str] = []
    files: list[Path] = []
    for i, session in enumerate(sessions):
        more, pngs = session_section(v.SessionView(session), out, first + i)
        lines += more
        files += pngs
    return lines, files


def headline(sessions: list[dict[str, Any]]) -> str | None:
    """The lab's answer (the main session's SPS arm against GRPO and the slower-RL control), or None."""
    main = next((s for s in sessions if s["tag"] == "main"), None)
    if main is None:
        return None
    view = v.SessionView(main)
    sps = next((lab for lab in view.paired_labels() if view.arm(lab).startswith("sps")), None)
    answer = conclusion(view, sps) if sps else None
    if answer is None:
        return None
    parts = [grpo_sentence(view), verdict_sentence(view, sps)]
    if v.SLOWER in view.labels:
        parts += [verdict_sentence(view, v.SLOWER), verdict_sentence(view, sps, v.SLOWER)]
    return f"**{answer[0].upper() + answer[1:]}.** " + " ".join(parts)
