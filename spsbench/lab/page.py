"""`leaderboards/lab/`: the lab page (Markdown + PNG), rebuilt deterministically from the lab store only.

Every sentence that states a finding is computed from the stored numbers (a null or contrary result
reads as such); nothing on the page comes from anywhere but the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spsbench.lab import record
from spsbench.lab.page_dynamics import dynamics_sections
from spsbench.lab.plots import squeeze_plot
from spsbench.lab.squeeze import decade_table
from spsbench.store import Store

LOW_P = 1e-3     # "low-probability negative sample" on the page: p(y-) below this


def _fmt(value: float) -> str:
    return f"{value:+.2e}"


def squeeze_summary(result: dict[str, Any]) -> dict[tuple[str, str], dict[str, float]]:
    """(regime, update) -> mean deltas and share of negatives that raised p(dominant), over p(y-) < LOW_P."""
    out = {}
    for reg in result["regimes"]:
        for update in ("grpo", "irl", "grpo+irl"):
            rows = [r for r in reg["rows"] if r["update"] == update and r["p"] < LOW_P]
            if not rows:
                continue
            mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("d_p_dom", "d_entropy", "d_other_correct",
                                                                    "d_p_neg")}
            out[(reg["regime"], update)] = {**mean, "n": len(rows),
                                            "share_up": sum(r["d_p_dom"] > 0 for r in rows) / len(rows)}
    return out


def squeeze_findings(result: dict[str, Any]) -> list[str]:
    """Plain sentences of what the squeeze run measured."""
    s = squeeze_summary(result)
    peaked, balanced = s.get(("peaked", "grpo")), s.get(("balanced", "grpo"))
    if not peaked or not balanced:
        return ["No negative sample below p = 1e-3 in one of the regimes: nothing to compare."]
    lines = []
    rises = peaked["d_p_dom"] > 0 and peaked["d_entropy"] < 0
    lines.append(f"Peaked start, one GRPO update on a negative sample with p(y-) < {LOW_P:g} ({peaked['n']} samples): "
                 f"p(dominant) changed by {_fmt(peaked['d_p_dom'])} on average ({peaked['share_up']:.0%} of the "
                 f"updates raised it), entropy by {_fmt(peaked['d_entropy'])} nats, the other correct sequences' "
                 f"mass by {_fmt(peaked['d_other_correct'])}, while p(y-) itself moved only "
                 f"{_fmt(peaked['d_p_neg'])}: " + ("squeezing, as in the paper's Figure 1(b)." if rises else
                                                    "this is NOT the squeezing the paper describes."))
    ratio = abs(balanced["d_p_dom"]) / max(abs(peaked["d_p_dom"]), 1e-30)
    lines.append(f"Balanced start, same updates ({balanced['n']} samples): p(dominant) changed by "
                 f"{_fmt(balanced['d_p_dom'])} ({ratio:.1%} of the peaked change in size; "
                 f"{balanced['share_up']:.0%} raised it), entropy by {_fmt(balanced['d_entropy'])}: "
                 + ("no squeezing onto one sequence." if ratio < 0.1 else "a comparable effect."))
    irl = s.get(("peaked", "irl"))
    if irl:
        lines.append(f"Peaked start, one SPS IRL update on the L2TE selection of a group holding y-: p(dominant) "
                     f"{_fmt(irl['d_p_dom'])}, entropy {_fmt(irl['d_entropy'])}, other correct "
                     f"{_fmt(irl['d_other_correct'])}: " + ("it moves mass away from the dominant sequence."
                                                            if irl["d_p_dom"] < 0 else
                                                            "it does not move mass away from the dominant sequence."))
    both = s.get(("peaked", "grpo+irl"))
    if both:
        lines.append(f"GRPO then IRL (one SPS iteration in miniature): p(dominant) {_fmt(both['d_p_dom'])}, "
                     f"entropy {_fmt(both['d_entropy'])} (GRPO alone: {_fmt(peaked['d_p_dom'])}, "
                     f"{_fmt(peaked['d_entropy'])}).")
    return lines


def squeeze_markdown(result: dict[str, Any]) -> str:
    """Start distributions, the per-decade table and the findings."""

    cfg = result["config"]
    lines = [f"Model: LlamaForCausalLM (hidden {cfg['hidden']}, {cfg['layers']} layers, random init, seed "
             f"{cfg['seed']}), vocabulary {cfg['vocab']}, sequences of {cfg['length']} tokens "
             f"({cfg['vocab'] ** cfg['length']} in all, enumerated exactly); correct = token sum divisible by "
             f"{cfg['vocab']}. Every update is one plain SGD step at lr {cfg['lr']:g}.", "",
             "| start | p(dominant) | entropy (nats) | other correct mass | incorrect mass | fit KL |",
             "|---|--:|--:|--:|--:|--:|"]
    for reg in result["regimes"]:
        lines.append(f"| {reg['regime']} | {reg['p_dom']:.4f} | {reg['entropy']:.3f} | {reg['other_correct']:.4f} | "
                     f"{reg['incorrect']:.4f} | {reg['fit_kl']:.3f} |")
    lines += ["", "Mean change after one update, by decade of the negative sample's probability p(y-):", "",
              "| start | update | p(y-) in | samples | Δ p(dominant) | raised it | Δ entropy | Δ other correct | Δ p(y-) |",
              "|---|---|---|--:|--:|--:|--:|--:|--:|"]
    for r in decade_table(result):
        lines.append(f"| {r['regime']} | {r['update']} | [{r['p_low']:.0e}, {r['p_high']:.0e}) | {r['negatives']} | "
                     f"{_fmt(r['d_p_dom'])} | {r['share_dom_up']:.0%} | {_fmt(r['d_entropy'])} | "
                     f"{_fmt(r['d_other_correct'])} | {_fmt(r['d_p_neg'])} |")
    lines += ["", *[f"* {s}" for s in squeeze_findings(result)]]
    return "\n".join(lines)


def write_page(store: str | Path, out: str | Path) -> list[Path]:
    """Rebuild `out`/README.md and its PNGs from the lab store; returns the files written."""

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    sections = ["# The squeezing lab", "",
                "Generated by `spsbench lab page` from the lab store only (`make lab` reruns the lab and "
                "regenerates it). Paper: arXiv 2604.16995, section 3.1, appendix A, Figure 1 and 2, Tables 4 and 6.",
                ""]
    with Store(store) as db:
        squeeze = record.load_squeeze(db)
        if squeeze is not None:
            files.append(squeeze_plot(out / "squeeze.png", squeeze))
            sections += ["## 1. The mechanism, exactly (`spsbench lab squeeze`)", "", squeeze_markdown(squeeze), "",
                         "![squeeze](squeeze.png)", ""]

        more, pngs = dynamics_sections(db, out)
        sections += more
        files += pngs
    readme = out / "README.md"
    readme.write_text("\n".join(sections).rstrip() + "\n", encoding="utf-8")
    return [readme, *files]
