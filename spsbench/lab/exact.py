"""Exact sequence probabilities of a causal LM over an enumerated set of completions.

Sequences of one (prompt, completion length) shape go through the model together, unpadded, so every
probability is the model's own (no padding or position-id conventions involved). The lab's exact
measurements (squeeze, exact Pass@k, greedy log-prob, distinct correct trajectories) all come from here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch


def completion_logprobs(model, prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]],
                        batch_size: int = 4096) -> torch.Tensor:
    """Summed log-probability of completions[i] after prompts[i], one value per row (float64).

    Differentiable when called with gradients enabled (the squeeze experiment backpropagates through it).
    """
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        groups[(len(p), len(c))].append(i)
    device = next(model.parameters()).device
    out: list[torch.Tensor | None] = [None] * len(prompts)
    for (plen, clen), rows in sorted(groups.items()):
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            ids = torch.tensor([list(prompts[i]) + list(completions[i]) for i in chunk], device=device)
            values = _shape_logprobs(model, ids, plen, clen)
            for i, v in zip(chunk, values, strict=True):
                out[i] = v
    return torch.stack(out) if out else torch.zeros(0, dtype=torch.float64)  # type: ignore[arg-type]


def _shape_logprobs(model, ids: torch.Tensor, plen: int, clen: int) -> torch.Tensor:
    logits = model(input_ids=ids).logits[:, plen - 1:plen + clen - 1].double()
    logp = torch.log_softmax(logits, dim=-1)
    picked = logp.gather(-1, ids[:, plen:plen + clen].unsqueeze(-1)).squeeze(-1)
    return picked.sum(dim=1)


def entropy(probs: torch.Tensor) -> float:
    """Shannon entropy (nats) of a probability vector (zeros contribute nothing)."""
    p = probs[probs > 0]
    return float(-(p * p.log()).sum())


def shared_prefix_logprobs(model, prompts: Sequence[Sequence[int]], prefix: Sequence[int],
                           continuations: Sequence[Sequence[int]]) -> torch.Tensor:
    """Log-probabilities (rows x continuations, float64) of prefix + continuation after each prompt.

    Prompts must have equal length. The prompts + shared prefix go through the model once, and their KV
    cache is repeated for the continuations (equal length too): the same numbers as
    `completion_logprobs` on the full sequences, at a fraction of the cost.
    """
    device = next(model.parameters()).device
    head = torch.tensor([list(p) + list(prefix) for p in prompts], device=device)
    plen, n = len(prompts[0]), len(continuations)
    first = model(input_ids=head, use_cache=True)
    logp_head = torch.log_softmax(first.logits.double(), dim=-1)
    prefix_ids = head[:, plen:]
    # log p(prefix | prompt) per row, and the distribution of the continuation's first token
    pre = logp_head[:, plen - 1:-1].gather(-1, prefix_ids.unsqueeze(-1)).squeeze(-1).sum(dim=1) if len(prefix) else \
        torch.zeros(len(prompts), dtype=torch.float64, device=device)
    cont = torch.tensor([list(c) for c in continuations], device=device)
    first_tok = logp_head[:, -1].index_select(1, cont[:, 0])                     # rows x n
    cache = first.past_key_values
    cache.batch_repeat_interleave(n)
    ids = cont.repeat(len(prompts), 1)
    logits = model(input_ids=ids[:, :-1], past_key_values=cache, use_cache=False).logits if cont.size(1) > 1 else None
    rest = torch.zeros(len(prompts) * n, dtype=torch.float64, device=device)
    if logits is not None:
        logp = torch.log_softmax(logits.double(), dim=-1)
        rest = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1).sum(dim=1)
    return pre.unsqueeze(1) + first_tok + rest.view(len(prompts), n)


def indexed_prefix_logprobs(model, prompts: Sequence[Sequence[int]], prefix: Sequence[int],
                            rows: Sequence[tuple[int, Sequence[int]]]) -> torch.Tensor:
    """log p(prefix + continuation | prompts[i]) for each row (i, continuation), float64.

    Like `shared_prefix_logprobs`, but every prompt has its own continuations (e.g. each problem's correct
    answers): prompts (equal length) + prefix go through the model once, and each row continues from its
    prompt's KV cache. Continuations must have equal length (>= 1); the prefix must not be empty.
    """
    device = next(model.parameters()).device
    head = torch.tensor([list(p) + list(prefix) for p in prompts], device=device)
    plen = len(prompts[0])
    first = model(input_ids=head, use_cache=True)
    logp_head = torch.log_softmax(first.logits.double(), dim=-1)
    pre = logp_head[:, plen - 1:-1].gather(-1, head[:, plen:].unsqueeze(-1)).squeeze(-1).sum(dim=1)
    index = torch.tensor([i for i, _ in rows], device=device)
    cont = torch.tensor([list(c) for _, c in rows], device=device)
    total = pre[index] + logp_head[index, -1].gather(-1, cont[:, :1]).squeeze(-1)
    if cont.size(1) > 1:
        cache = first.past_key_values
        cache.batch_select_indices(index)
        logits = model(input_ids=cont[:, :-1], past_key_values=cache, use_cache=False).logits
        total = total + torch.log_softmax(logits.double(), dim=-1).gather(-1, cont[:, 1:].unsqueeze(-1)).squeeze(-1).sum(1)
    return total
