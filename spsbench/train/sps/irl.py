"""The IRL phase's tensor work, free of any Trainer: laying out rollouts as TRL does, the completion
cross-entropy with bounded memory, and micro-batch shares per rank. Tested on a bare model. The optimizer
steps and the weight-change measure (DDP and FSDP2) are in `update`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

# Completion tokens per LM-head chunk: at a 152k vocabulary one chunk's fp32 logits are 0.6 GB.
NLL_CHUNK_TOKENS = 1024


def optimizer_params(optimizer: torch.optim.Optimizer) -> list[torch.nn.Parameter]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def rank_shares(batch_size: int, world: int) -> list[int]:
    """Each rank's share of one IRL step's `batch_size` rows (as even as integers allow)."""
    return [batch_size // world + (r < batch_size % world) for r in range(world)]


def local_batch_sizes(batch_size: int, per_rank: list[int]) -> list[int]:
    """Rows per IRL step on each rank: `batch_size` split evenly over ranks, capped by each rank's selection
    (a selection smaller than its share is used whole every step)."""
    return [min(share, n) for share, n in zip(rank_shares(batch_size, len(per_rank)), per_rank, strict=True)]


def auto_steps(batch_size: int, per_rank: list[int]) -> int:
    """`sps.irl_steps: auto`: the IRL steps that train once on every selected row of every rank."""
    shares = rank_shares(batch_size, len(per_rank))
    return max(1, max(-(-n // share) if share else 0 for n, share in zip(per_rank, shares, strict=True)))


def step_batches(rows: list[Any], steps: int | str, batch_size: int, per_rank: list[int], rank: int) -> list[list[Any]]:
    """This rank's rows of each IRL step, from its (already shuffled) selection `rows`.

    A number of steps takes the rank's share per step, cycling through its rows (a selection larger than
    steps x share is trained on in part: `coverage`); `auto` walks through the rows once, in as many steps
    as the rank with the most rows needs (a rank out of rows joins the later steps with none)."""
    if steps == "auto":
        share = rank_shares(batch_size, len(per_rank))[rank]
        return [rows[s * share:(s + 1) * share] for s in range(auto_steps(batch_size, per_rank))]
    size = local_batch_sizes(batch_size, per_rank)[rank]
    return [[rows[(step * size + j) % len(rows)] for j in range(size)] for step in range(int(steps))]


def coverage(steps: int | str, batch_size: int, per_rank: list[int]) -> float:
    """Share of the selected rows (all ranks) an IRL phase trains on at least once."""
    total = sum(per_rank)
    if steps == "auto" or not total:
        return 1.0
    sizes = local_batch_sizes(batch_size, per_rank)
    return sum(min(n, int(steps) * size) for n, size in zip(per_rank, sizes, strict=True)) / total


def dummy_row(pad_id: int) -> dict[str, Any]:
    return {"prompt_ids": [pad_id], "completion_ids": []}


def trl_layout(rows: list[dict[str, Any]], pad_id: int, device: torch.device):
    """Rows laid out as in TRL's batch: left-padded prompt (its recorded padding), completion, right padding.

    Returns (input_ids, attention_mask, logits_to_keep, completion mask over the kept columns).
    """
    starts = [r.get("prompt_pad", 0) + len(r["prompt_ids"]) for r in rows]
    width = max(s + len(r["completion_ids"]) for s, r in zip(starts, rows, strict=True))
    keep = width - min(starts)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    completion = torch.zeros((len(rows), keep))
    for i, (r, s) in enumerate(zip(rows, starts, strict=True)):
        pad, end = r.get("prompt_pad", 0), s + len(r["completion_ids"])
        ids[i, pad:end] = torch.tensor(r["prompt_ids"] + r["completion_ids"])
        attention[i, pad:end] = 1
        completion[i, s - (width - keep):end - (width - keep)] = 1
    return ids.to(device), attention.to(device), keep, completion.to(device)


def completion_nll(model, rows: list[dict[str, Any]], pad_id: int, chunk_tokens: int = NLL_CHUNK_TOKENS,
                   autocast: Callable[[], AbstractContextManager] = contextlib.nullcontext) -> torch.Tensor:
    """Summed negative log-likelihood of the completion tokens of `rows` (prompt tokens masked).

    Memory is bounded like TRL's fused LM head: the backbone runs once, then the LM head and log-softmax
    run only on completion positions, `chunk_tokens` at a time, each chunk under activation checkpointing
    (its logits are recomputed in the backward pass rather than kept). So no (batch x length x vocab)
    tensor exists; the largest is one chunk's (chunk_tokens x vocab) fp32 logits. The call goes through
    `model(...)` (a DDP or FSDP wrapper included), so its hooks (gradient reduction, parameter gathering) run.

    `autocast` is the mixed-precision context of the RL step (the trainer passes `accelerator.autocast`):
    accelerate puts autocast inside the model's own `forward`, which this loss replaces, so without it the
    IRL matmuls would run in fp32 under a `bf16: true` recipe (twice the activations, several times the time).
    """
    seqs = [r["prompt_ids"] + r["completion_ids"] for r in rows]
    width = max(len(s) for s in seqs)
    device = next(model.parameters()).device
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long, device=device)
    attention = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, (r, s) in enumerate(zip(rows, seqs, strict=True)):
        ids[i, :len(s)] = torch.tensor(s)
        attention[i, :len(s)] = 1
        labels[i, len(r["prompt_ids"]):len(s)] = torch.tensor(r["completion_ids"], dtype=torch.long)
    inner = getattr(model, "module", model)          # DDP keeps the model in .module; FSDP2 is the model
    with _nll_forward(inner, chunk_tokens), autocast():
        return model(input_ids=ids, attention_mask=attention, labels=labels)


@contextlib.contextmanager
def _nll_forward(module: torch.nn.Module, chunk_tokens: int) -> Iterator[None]:
    """While active, `module(...)` returns the summed completion NLL instead of logits (an instance attribute
    shadows the class's forward; TRL's fused-head patch is an instance attribute too, restored on exit)."""
    saved = module.__dict__.get("forward")
    module.forward = functools.partial(_chunked_nll, module, chunk_tokens)
    try:
        yield
    finally:
        if saved is None:
            del module.forward
        else:
            module.forward = saved


def _chunked_nll(module, chunk_tokens: int, input_ids, attention_mask, labels) -> torch.Tensor:
    hidden = module.base_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    targets = labels[:, 1:]
    mask = targets != -100
    picked, wanted = hidden[:, :-1][mask], targets[mask]
    head = module.get_output_embeddings()
    if picked.size(0) == 0:    # keep the head in the graph: DDP expects every parameter to get a gradient
        return head(hidden[:, :1]).sum() * 0.0
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, picked.size(0), chunk_tokens):
        end = start + chunk_tokens
        total = total + checkpoint(_head_nll, head, picked[start:end], wanted[start:end], use_reentrant=False)
    return total


def _head_nll(head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(head(hidden).float(), targets, reduction="sum")
