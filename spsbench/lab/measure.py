"""Exact measurements of a lab-sums policy from its own probabilities (temperature 1), cheap enough to
take every few training steps inside the run (`spsbench.lab.probes`).

Per problem:

* `p`: the probability of a correct answer, summed exactly over every well-formed correct decomposition
  (1,100 sequences for all 47 problems: each 3-digit tuple is correct for exactly one target); exact
  Pass@k = 1 - (1 - p)^k. Answers the grader also accepts in another form (`\\boxed{15}`) are not counted,
  so p is a lower bound; `full_measure` adds the mass on malformed completions (`leak`), which bounds it;
* the greedy path (paper Table 6's squeezing measure): its completion, log-probability ("greedy-path
  mass" = its probability) and whether the grader accepts it. The greedy completion is the lab's
  *dominant* sequence: mass flow is the change of its probability, of the other correct mass and of the
  incorrect mass (everything else: wrong and malformed answers) across an update;
* diversity: distinct correct decompositions holding at least `tau` of the mass (Table 4's spirit) and
  the effective number exp(H) of the correct decompositions' normalised distribution.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

from spsbench.grading import Outcome, grade
from spsbench.lab import model as lab_model
from spsbench.lab import task
from spsbench.lab.exact import completion_logprobs, indexed_prefix_logprobs, shared_prefix_logprobs
from spsbench.lab.frontier import pass_at_k  # noqa: F401  (re-exported: the lab's one Pass@k)

KS = tuple(2 ** i for i in range(9))      # 1 ... 256
TAU = 1e-3
MAX_NEW = 10                              # the lab's max_completion_length


def load(folder: str | Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return model, tok


class Layout:
    """Token ids of every prompt and every correct completion (built once per tokenizer)."""

    def __init__(self, tok: Any) -> None:
        self.tok = tok
        self.problems = task.problems()
        self.prompts = [lab_model.prompt_ids(tok, p.text) for p in self.problems]
        self.correct = [[lab_model.completion_ids(tok, task.completion_text(d))
                         for d in task.correct_decompositions(p.target, p.terms)] for p in self.problems]
        self.eos = tok.eos_token_id


def correct_probs(model: Any, layout: Layout) -> list[list[float]]:
    """Per problem, the probability of each of its correct decompositions: problems of one prompt length and
    term count share one forward of their prompts + `\\boxed{`, each answer continues from its prompt's cache."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (prompt, comps) in enumerate(zip(layout.prompts, layout.correct, strict=True)):
        groups.setdefault((len(prompt), len(comps[0])), []).append(i)
    out: list[list[float]] = [[] for _ in layout.problems]
    for members in groups.values():
        rows = [(j, c[1:]) for j, i in enumerate(members) for c in layout.correct[i]]
        values = indexed_prefix_logprobs(model, [layout.prompts[i] for i in members], layout.correct[members[0]][0][:1],
                                         rows).exp().tolist()
        for (j, _), value in zip(rows, values, strict=True):
            out[members[j]].append(value)
    return out


def greedy(model: Any, layout: Layout) -> list[tuple[list[int], float]]:
    """Greedy completion (token ids, up to and including <eos>) and its log-probability, per problem.

    Problems with equal prompt length decode together, unpadded, so each row is exactly its own greedy path.
    """
    import torch

    groups: dict[int, list[int]] = {}
    for i, p in enumerate(layout.prompts):
        groups.setdefault(len(p), []).append(i)
    out: list[tuple[list[int], float]] = [([], 0.0)] * len(layout.prompts)
    for rows in groups.values():
        ids = torch.tensor([layout.prompts[i] for i in rows])
        chosen, total, done = [[] for _ in rows], [0.0] * len(rows), [False] * len(rows)
        for _ in range(MAX_NEW):
            logp = torch.log_softmax(model(input_ids=ids).logits[:, -1].double(), dim=-1)
            best = logp.argmax(dim=-1)
            for j, tok_id in enumerate(best.tolist()):
                if not done[j]:
                    chosen[j].append(tok_id)
                    total[j] += float(logp[j, tok_id])
                    done[j] = tok_id == layout.eos
            if all(done):
                break
            ids = torch.cat([ids, best.unsqueeze(1)], dim=1)
        for j, i in enumerate(rows):
            out[i] = (chosen[j], total[j])
    return out


def sequence_probs(model: Any, layout: Layout, completions: list[list[int]]) -> list[float]:
    """p(completions[i] | prompt i) for every problem (the previous dominant sequences)."""
    return completion_logprobs(model, layout.prompts, completions).exp().tolist()


@functools.cache
def _accepted(text: str, target: int) -> bool:
    return grade(text, str(target)).outcome == Outcome.CORRECT


def probe(model: Any, layout: Layout, tau: float = TAU,
          references: dict[str, list[list[int]]] | None = None) -> dict[str, Any]:
    """Every per-problem measure of the model as it is now (no gradients; train/eval mode restored after).

    `references`: named lists of completions (one per problem, e.g. the dominant ones at the last probe);
    their probability now is returned as `p_<name>`.
    """
    import torch

    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            probs = correct_probs(model, layout)
            paths = greedy(model, layout)
            refs = {name: sequence_probs(model, layout, comps) for name, comps in (references or {}).items()}
    finally:
        model.train(training)
    out: dict[str, Any] = {"p": [], "dom": [], "dom_logp": [], "dom_ok": [], "dom_wf": [], "distinct": [],
                           "effective": []}
    for i, prob in enumerate(probs):
        ids, logp = paths[i]
        text = layout.tok.decode([t for t in ids if t != layout.eos])
        p = sum(prob)
        out["p"].append(p)
        out["dom"].append(ids)
        out["dom_logp"].append(logp)
        out["dom_ok"].append(_accepted(text, layout.problems[i].target))
        out["dom_wf"].append(ids in layout.correct[i])     # a well-formed correct decomposition (inside p)
        out["distinct"].append(sum(v >= tau for v in prob))
        out["effective"].append(_effective(prob, p))
    out.update({f"p_{name}": values for name, values in refs.items()})
    return out


def _effective(prob: list[float], total: float) -> float:
    if total <= 0:
        return 0.0
    h = -sum(q / total * math.log(q / total) for q in prob if q > 0)
    return math.exp(h)


def leak(model: Any, tok: Any) -> list[float]:
    """Per problem, the mass outside the well-formed completions (every digit tuple enumerated: ~4 s)."""
    import torch

    prompts = {p.id: lab_model.prompt_ids(tok, p.text) for p in task.problems()}
    groups: dict[tuple[int, int], list[task.SumProblem]] = {}
    for p in task.problems():
        groups.setdefault((p.terms, len(prompts[p.id])), []).append(p)
    out: dict[str, float] = {}
    with torch.no_grad():
        for (terms, _), probs in sorted(groups.items()):
            comps = [lab_model.completion_ids(tok, task.completion_text(d)) for d in task.digit_tuples(terms)]
            for start in range(0, len(probs), 8):          # 8 prompts x 1000 continuations per forward at most
                chunk = probs[start:start + 8]
                values = shared_prefix_logprobs(model, [prompts[p.id] for p in chunk], comps[0][:1],
                                                [c[1:] for c in comps]).exp()
                out.update({p.id: max(0.0, 1.0 - float(values[i].sum())) for i, p in enumerate(chunk)})
    return [out[p.id] for p in task.problems()]
