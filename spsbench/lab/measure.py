"""Exact measurements of a lab-sums policy from its enumerated completion probabilities (temperature 1).

Per problem: the probability of a correct answer p (mass on well-formed completions whose digits sum to
the target; the mass on anything else, `leak`, is reported so the bound is visible: exact Pass@k is a
lower bound off by at most the leak), exact Pass@k = 1 - (1 - p)^k, the greedy path's log-probability
(paper Table 6's squeezing measure) and the number of distinct correct trajectories holding at least
`tau` of the mass (diversity, in the spirit of Table 4), plus the effective number exp(H) of the correct
trajectories' normalised distribution.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from spsbench.grading import Outcome, grade
from spsbench.lab import model as lab_model
from spsbench.lab import task
from spsbench.lab.exact import shared_prefix_logprobs

KS = tuple(2 ** i for i in range(9))      # 1 ... 256
TAU = 1e-3


def load(folder: str | Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return model, tok


def measure(folder: str | Path, tau: float = TAU) -> dict[str, Any]:
    """Every exact measure of the model in `folder` (JSON-able)."""
    import torch

    model, tok = load(folder)
    with torch.no_grad():
        per = enumerate_problems(model, tok, tau)
        greedy = greedy_paths(model, tok)
    for pid, g in greedy.items():
        per[pid].update(g)
    return summarize(per)


def enumerate_problems(model, tok, tau: float) -> dict[str, dict[str, float]]:
    """Every problem's well-formed completions, batched by (terms, prompt length) over a shared KV cache."""
    groups: dict[tuple[int, int], list[task.SumProblem]] = {}
    prompts = {p.id: lab_model.prompt_ids(tok, p.text) for p in task.problems()}
    for p in task.problems():
        groups.setdefault((p.terms, len(prompts[p.id])), []).append(p)
    out = {}
    for (terms, _), probs in sorted(groups.items()):
        comps = [lab_model.completion_ids(tok, task.completion_text(d)) for d in task.digit_tuples(terms)]
        for start in range(0, len(probs), 8):          # 8 prompts x 1000 continuations per forward at most
            chunk = probs[start:start + 8]
            values = shared_prefix_logprobs(model, [prompts[p.id] for p in chunk], comps[0][:1],
                                            [c[1:] for c in comps]).exp()
            out.update({p.id: _problem_measures(p, values[i], tau) for i, p in enumerate(chunk)})
    return {p.id: out[p.id] for p in task.problems()}


def _problem_measures(p: task.SumProblem, probs, tau: float) -> dict[str, float]:
    digits = task.digit_tuples(p.terms)
    correct = [i for i, d in enumerate(digits) if sum(d) == p.target]
    pc = probs[correct]
    p_correct = float(pc.sum())
    q = pc / max(p_correct, 1e-300)
    h = float(-(q[q > 0] * q[q > 0].log()).sum())
    return {"p": p_correct, "leak": max(0.0, 1.0 - float(probs.sum())), "distinct": int((pc >= tau).sum()),
            "effective": math.exp(h), "correct_total": len(correct)}


def greedy_paths(model, tok, max_new: int = 10) -> dict[str, dict[str, Any]]:
    """Greedy decoding of every problem (one unpadded sequence at a time: exact, 47 short loops)."""
    import torch

    out = {}
    for p in task.problems():
        ids = torch.tensor([lab_model.prompt_ids(tok, p.text)])
        total, chosen = 0.0, []
        for _ in range(max_new):
            logp = torch.log_softmax(model(input_ids=ids).logits[0, -1].double(), dim=-1)
            nxt = int(logp.argmax())
            total += float(logp[nxt])
            chosen.append(nxt)
            if nxt == tok.eos_token_id:
                break
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
        text = tok.decode([c for c in chosen if c != tok.eos_token_id])
        out[p.id] = {"greedy_logp": total, "greedy_tokens": len(chosen), "greedy_text": text,
                     "greedy_correct": _grade(text, p.target)}
    return out


def _grade(text: str, target: int) -> bool:

    return grade(text, str(target)).outcome == Outcome.CORRECT


def pass_at_k(ps: list[float], k: int) -> float:
    return sum(1.0 - (1.0 - min(max(p, 0.0), 1.0)) ** k for p in ps) / len(ps)


def summarize(per: dict[str, dict[str, Any]]) -> dict[str, Any]:
    ps = [v["p"] for v in per.values()]
    n = len(per)
    return {"pass_at_k": {str(k): pass_at_k(ps, k) for k in KS}, "per_problem": per,
            "greedy_logp": sum(v["greedy_logp"] for v in per.values()) / n,
            "greedy_logp_per_token": sum(v["greedy_logp"] / v["greedy_tokens"] for v in per.values()) / n,
            "greedy_correct": sum(v["greedy_correct"] for v in per.values()) / n,
            "distinct": sum(v["distinct"] for v in per.values()) / n,
            "effective": sum(v["effective"] for v in per.values()) / n,
            "leak_max": max(v["leak"] for v in per.values()), "leak_mean": sum(v["leak"] for v in per.values()) / n}
