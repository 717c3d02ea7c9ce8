"""Which sequence score should L2TE rank by? A small CPU experiment on real rollouts (docs/training.md).

    python -m bench.l2te_scores [--prompts 12] [--n 8] [--max-tokens 96] [--lr 1e-5]

SmolLM2-135M-Instruct (the embedded default) samples `n` completions per `arith` prompt at temperature
0.7 and at most `max-tokens` tokens (the CPU demo's rollouts); each is graded and scored by its summed
log-probability at the rollout temperature, as SPS records it. For each variant (sum, mean, each with
truncated completions kept or excluded) the script reports what L2TE selects (3 of 8, quantile 0.5, seed
0), then takes one IRL phase (4 AdamW steps at `lr` on that selection, token-mean cross-entropy) from
the same weights and measures what it does to the policy on all rollouts: mean token entropy (nats, at
T=1) and mean per-token log-prob of the correct completions. SPS's IRL phase is meant to lift unlikely
trajectories, not to sharpen the policy (lower entropy).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics

import torch

from spsbench.train.sps import irl
from spsbench.train.sps.l2te import Scored, select_l2te

VARIANTS = [("sum", "keep"), ("mean", "keep"), ("sum", "exclude"), ("mean", "exclude")]


def rollouts(model, tokenizer, prompts: int, n: int, max_tokens: int) -> list[list[dict]]:
    """`n` sampled completions per arith prompt, graded, with their summed log-prob at T=0.7."""
    import spsbench.grading as grading
    from spsbench.tasks import load_task

    task = load_task("arith", limit=prompts)
    groups = []
    torch.manual_seed(0)
    for problem in task.problems:
        text = tokenizer.apply_chat_template([{"role": "user", "content": problem.prompt}], tokenize=False,
                                             add_generation_prompt=True)
        prompt = tokenizer(text, return_tensors="pt").input_ids
        with torch.no_grad():
            out = model.generate(prompt.repeat(n, 1), do_sample=True, temperature=0.7, top_p=1.0,
                                 max_new_tokens=max_tokens, pad_token_id=tokenizer.pad_token_id)
        rows = []
        for seq in out[:, prompt.size(1):].tolist():
            cut = next((i + 1 for i, t in enumerate(seq) if t == tokenizer.eos_token_id), None)
            rows.append({"prompt_ids": prompt[0].tolist(), "completion_ids": seq[:cut] if cut else seq,
                         "truncated": cut is None})
        texts = [tokenizer.decode(r["completion_ids"], skip_special_tokens=True) for r in rows]
        for r, reward in zip(rows, grading.reward(texts, [problem.answer] * n, kind=task.spec.grader), strict=True):
            r["correct"] = reward >= 1.0
        for r in rows:
            r["logp"] = float(sequence_logp(model, r, 0.7))
        groups.append(rows)
    return groups


@torch.no_grad()
def sequence_logp(model, row: dict, temperature: float) -> torch.Tensor:
    ids = torch.tensor([row["prompt_ids"] + row["completion_ids"]])
    logps = (model(input_ids=ids).logits[0, :-1] / temperature).log_softmax(-1)
    token = logps.gather(1, ids[0, 1:, None])[:, 0]
    return token[len(row["prompt_ids"]) - 1:].sum()


def select(groups: list[list[dict]], score: str, truncated: str) -> list[dict]:
    eligible = [[r for r in g if not (truncated == "exclude" and r["truncated"])] for g in groups]
    scored = [[Scored(r["logp"] / max(1, len(r["completion_ids"])) if score == "mean" else r["logp"], r["correct"])
               for r in g] for g in eligible]
    picks = select_l2te(scored, 3, 0.5, seed=0)
    return [eligible[g][i] for g, idx in enumerate(picks) for i in idx]


@torch.no_grad()
def policy_stats(model, groups: list[list[dict]]) -> dict[str, float]:
    entropies, correct_logps = [], []
    for row in (r for g in groups for r in g):
        ids = torch.tensor([row["prompt_ids"] + row["completion_ids"]])
        logps = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)[len(row["prompt_ids"]) - 1:]
        entropies.append(float(-(logps.exp() * logps).sum(-1).mean()))
        if row["correct"]:
            token = logps.gather(1, ids[0, len(row["prompt_ids"]):, None])
            correct_logps.append(float(token.mean()))
    return {"entropy": statistics.mean(entropies),
            "correct_logp": statistics.mean(correct_logps) if correct_logps else float("nan")}


def irl_phase(model, selection: list[dict], lr: float) -> torch.nn.Module:
    tuned = copy.deepcopy(model)
    tuned.train()
    optimizer = torch.optim.AdamW(tuned.parameters(), lr=lr, weight_decay=0.0)
    tokens = sum(len(r["completion_ids"]) for r in selection)
    for _ in range(4):
        optimizer.zero_grad(set_to_none=True)
        for start in range(0, len(selection), 8):
            (irl.completion_nll(tuned, selection[start:start + 8], 0) / tokens).backward()
        optimizer.step()
    tuned.eval()
    return tuned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--lr", type=float, default=1e-5)
    args = parser.parse_args()
    from spsbench.train.run import load_policy, pick_cpu_threads

    pick_cpu_threads()
    model, tokenizer, _ = load_policy(None)
    model.eval()
    groups = rollouts(model, tokenizer, args.prompts, args.n, args.max_tokens)
    rows = [r for g in groups for r in g]
    base = policy_stats(model, groups)
    print(json.dumps({"rollouts": len(rows), "truncated": sum(r["truncated"] for r in rows) / len(rows),
                      "correct": sum(r["correct"] for r in rows) / len(rows),
                      "mean_length": statistics.mean(len(r["completion_ids"]) for r in rows), **base}))
    for score, truncated in VARIANTS:
        chosen = select(groups, score, truncated)
        after = policy_stats(irl_phase(model, chosen, args.lr), groups)
        print(json.dumps({"score": score, "truncated": truncated, "selected": len(chosen),
                          "selected_truncated": sum(r["truncated"] for r in chosen) / len(chosen),
                          "selected_mean_length": statistics.mean(len(r["completion_ids"]) for r in chosen),
                          "entropy_change": after["entropy"] - base["entropy"],
                          "correct_logp_change": after["correct_logp"] - base["correct_logp"]}))


if __name__ == "__main__":
    main()
