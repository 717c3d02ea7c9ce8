"""The squeeze section of the lab page (pure): start distributions and fit quality per model seed, means
over seeds with t intervals, per-decade table, where the mass goes, and the findings in plain sentences.

A seed whose fitted start is not the regime it should be (`squeeze.fit_flag`: e.g. a "peaked" fit that
reached p(dominant) = 0.23) is listed with its flag and left out of every mean, never averaged in silently.
"""

from __future__ import annotations

import itertools
from typing import Any

from spsbench.lab import frontier, record

LOW_P = 1e-3      # "low-probability negative sample": p(y-) below this
UPDATES = ("grpo", "irl", "grpo+irl")
KEYS = ("d_p_dom", "d_other_correct", "d_incorrect", "d_entropy", "d_p_neg")
DECADES = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def _fmt(value: float) -> str:
    return f"{value:+.2e}"


def _iv(t: tuple[float, float, float]) -> str:
    return _fmt(t[0]) if t[1] == t[2] else f"{_fmt(t[0])} [{_fmt(t[1])}, {_fmt(t[2])}]"


def regimes(result: dict[str, Any], regime: str, flagged: bool = False) -> list[dict[str, Any]]:
    """The seeds' fits of one regime (unflagged only, unless `flagged`), each with its model seed."""
    return [{**r, "seed": s["seed"]} for s in result["seeds"] for r in s["regimes"]
            if r["regime"] == regime and (flagged or not r["flag"])]


def seed_means(reg: dict[str, Any], update: str) -> dict[str, float] | None:
    """Mean deltas over one seed's negatives with p(y-) < LOW_P, and the share that raised p(dominant)."""
    rows = [r for r in reg["rows"] if r["update"] == update and r["p"] < LOW_P]
    if not rows:
        return None
    out = {k: sum(r[k] for r in rows) / len(rows) for k in KEYS}
    out["share_up"] = sum(r["d_p_dom"] > 0 for r in rows) / len(rows)
    out["n"], out["seed"] = len(rows), reg["seed"]
    return out


def summary(result: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(regime, update) -> per-seed means and their intervals over the unflagged seeds."""
    out = {}
    for regime in ("peaked", "balanced"):
        for update in UPDATES:
            per = [m for reg in regimes(result, regime) if (m := seed_means(reg, update))]
            if per:
                out[(regime, update)] = {"seeds": per, "n": sum(m["n"] for m in per),
                                         **{k: frontier.interval([m[k] for m in per]) for k in (*KEYS, "share_up")}}
    return out


def fit_table(result: dict[str, Any]) -> list[str]:
    lines = ["| model seed | start | p(dominant) (target) | other correct mass | incorrect mass | entropy (nats) | "
             "fit KL (nats) | fit |", "|--:|---|--:|--:|--:|--:|--:|---|"]
    for s in result["seeds"]:
        for r in s["regimes"]:
            lines.append(f"| {s['seed']} | {r['regime']} | {r['p_dom']:.3f} ({r['target_p_dom']:.2f}) | "
                         f"{r['other_correct']:.3f} | {r['incorrect']:.3f} | {r['entropy']:.2f} | {r['fit_kl']:.3f} | "
                         + (f"**{r['flag']}: left out**" if r["flag"] else "ok") + " |")
    return lines


def mean_table(result: dict[str, Any]) -> list[str]:
    lines = ["| start | update | seeds | Δ p(dominant) | raised it (share) | Δ other correct | Δ incorrect | Δ entropy (nats) |",
             "|---|---|--:|--:|--:|--:|--:|--:|"]
    for (regime, update), m in summary(result).items():
        lines.append(f"| {regime} | {update} | {len(m['seeds'])} | {_iv(m['d_p_dom'])} | {m['share_up'][0]:.0%} | "
                     f"{_iv(m['d_other_correct'])} | {_iv(m['d_incorrect'])} | {_iv(m['d_entropy'])} |")
    return lines


def decade_table(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Mean deltas per (regime, update, decade of p(y-)), pooled over the unflagged seeds."""
    out = []
    for regime in ("peaked", "balanced"):
        rows = [r for reg in regimes(result, regime) for r in reg["rows"]]
        for update in UPDATES:
            for lo, hi in itertools.pairwise(DECADES):
                sel = [r for r in rows if r["update"] == update and lo <= r["p"] < hi]
                if sel:
                    out.append({"regime": regime, "update": update, "p_low": lo, "p_high": hi, "negatives": len(sel),
                                **{k: sum(r[k] for r in sel) / len(sel) for k in KEYS},
                                "share_dom_up": sum(r["d_p_dom"] > 0 for r in sel) / len(sel)})
    return out


def irl_wrong_shares(result: dict[str, Any], update: str = "irl") -> list[float]:
    """Per unflagged peaked seed: of the mass the update took from the dominant, the share gained by incorrect."""
    shares = []
    for reg in regimes(result, "peaked"):
        m = seed_means(reg, update)
        if m and m["d_p_dom"] < 0:
            shares.append(m["d_incorrect"] / -m["d_p_dom"])
    return shares


def _span(values: list[float], fmt: str) -> str:
    lo, hi = min(values), max(values)
    return format(lo, fmt) if lo == hi else f"{format(lo, fmt)} to {format(hi, fmt)}"


def _seeds(n: int) -> str:
    return f"{n} model seed" + ("s" if n != 1 else "")


def findings(result: dict[str, Any]) -> list[str]:
    s = summary(result)
    peaked, balanced = s.get(("peaked", "grpo")), s.get(("balanced", "grpo"))
    if not peaked or not balanced:
        return ["No seed with both a peaked and a balanced start and a negative sample below p = 1e-3: nothing "
                "to compare."]
    n = len(peaked["seeds"])
    up = sum(m["d_p_dom"] > 0 for m in peaked["seeds"])
    lines = [f"Peaked start, one GRPO update on a negative sample with p(y-) < {LOW_P:g}: p(dominant) changed by "
             f"{_iv(peaked['d_p_dom'])} (mean over {_seeds(n)}; it rose in {up} of {n}), the other correct "
             f"sequences' mass by {_iv(peaked['d_other_correct'])}, the incorrect mass by "
             f"{_iv(peaked['d_incorrect'])}: " + ("squeezing, as in the paper's Figure 1(b)." if up == n else
                                                  "not squeezing in every seed.")]
    by_seed = {m["seed"]: m for m in peaked["seeds"]}
    ratios = [abs(b["d_p_dom"]) / max(abs(by_seed[b["seed"]]["d_p_dom"]), 1e-30) for b in balanced["seeds"]
              if b["seed"] in by_seed] or [float("nan")]
    lines.append(f"Balanced start, same updates: p(dominant) changed by {_iv(balanced['d_p_dom'])}; its size was "
                 f"{_span(ratios, '.1%')} of the peaked change, seed by seed: "
                 + ("no squeezing onto one sequence." if max(ratios) < 0.1 else "a comparable effect in some seeds."))
    irl = s.get(("peaked", "irl"))
    if irl:
        down = sum(m["d_p_dom"] < 0 for m in irl["seeds"])
        shares = irl_wrong_shares(result)
        where = (f"; of the mass it freed, {_span(shares, '.0%')} (mean {sum(shares) / len(shares):.0%}, seed by "
                 "seed) went to incorrect sequences, the rest to other correct ones" if shares else "")
        lines.append(f"Peaked start, one SPS IRL update on the L2TE selection of a group holding y-: p(dominant) "
                     f"{_iv(irl['d_p_dom'])} (lowered in {down} of {len(irl['seeds'])} seeds), other correct "
                     f"{_iv(irl['d_other_correct'])}, incorrect {_iv(irl['d_incorrect'])}{where}.")
    return lines


def squeeze_markdown(result: dict[str, Any]) -> str:
    cfg = result["config"]
    seeds = [s["seed"] for s in result["seeds"]]
    lines = [f"Model: LlamaForCausalLM (hidden {cfg['hidden']}, {cfg['layers']} layers, random init), model seeds "
             f"{', '.join(map(str, seeds))}; vocabulary {cfg['vocab']}, sequences of {cfg['length']} tokens "
             f"({cfg['vocab'] ** cfg['length']} in all, enumerated exactly); correct = token sum divisible by "
             f"{cfg['vocab']}. Every update is one plain SGD step at lr {cfg['lr']:g}. Intervals: mean over seeds "
             "± t x sd / sqrt(seeds). " + record.timing_text(result), "", "Fitted starts, per model seed:", "",
             *fit_table(result), "",
             f"Mean change after one update on a negative sample with p(y-) < {LOW_P:g} (per seed the mean over its "
             "negatives, then over seeds; dominant + other correct + incorrect = 1, so their changes sum to 0):", "",
             *mean_table(result), "", "By decade of p(y-), pooled over the seeds:", "",
             "| start | update | p(y-) in | samples | Δ p(dominant) | raised it | Δ other correct | Δ incorrect | Δ p(y-) |",
             "|---|---|---|--:|--:|--:|--:|--:|--:|"]
    for r in decade_table(result):
        lines.append(f"| {r['regime']} | {r['update']} | [{r['p_low']:.0e}, {r['p_high']:.0e}) | {r['negatives']} | "
                     f"{_fmt(r['d_p_dom'])} | {r['share_dom_up']:.0%} | {_fmt(r['d_other_correct'])} | "
                     f"{_fmt(r['d_incorrect'])} | {_fmt(r['d_p_neg'])} |")
    lines += ["", *[f"* {s}" for s in findings(result)]]
    return "\n".join(lines)
