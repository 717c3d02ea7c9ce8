"""The IRL phase's optimizer steps, free of any Trainer, under one process, DDP or FSDP2 (`fully_shard`).

Each step is token-mean cross-entropy over every rank's share of the selection: each rank runs the same
number of micro-batches (a rank out of rows runs a zero-weight dummy, so every rank joins every
collective), scales its summed NLL by world / total tokens, and the data-parallel wrapper's mean over
ranks gives the gradient of (sum over all ranks' tokens) / total tokens, exactly as one process holding
all rows would get. Then the IRL optimizer (its own AdamW, never the RL one) steps.

* DDP: gradients are all-reduced on the last micro-batch's backward (no_sync before it); parameters and
  the IRL optimizer are replicated.
* FSDP2: parameters are DTensor shards. Every micro-batch's backward reduce-scatters its gradient into
  the shards (skipping it would keep a full unsharded gradient on each rank, the memory FSDP saves), and
  the IRL AdamW, built over the same DTensor parameters, updates the sharded fp32 parameters in place:
  the very tensors FSDP all-gathers for the next RL step. Its moments are sharded too.

Non-finite loss, gradients or weights call `stop(what, step)`, which raises; the verdict is all-reduced,
so every rank stops together.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from spsbench.train.sps import irl

Row = dict[str, Any]


def local(t: torch.Tensor) -> torch.Tensor:
    """The part of `t` this rank holds (a DTensor's local shard; any other tensor itself)."""
    return t.to_local() if hasattr(t, "to_local") else t


def is_sharded(params: Sequence[torch.Tensor]) -> bool:
    return any(hasattr(p, "to_local") for p in params)


@dataclass
class Collectives:
    """The few cross-rank reductions the IRL phase needs (nothing when world == 1)."""

    world: int = 1
    device: torch.device | str = "cpu"

    def sums(self, values: Sequence[float]) -> list[float]:
        if self.world == 1:
            return [float(v) for v in values]
        tensor = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def maximum(self, value: float) -> float:
        if self.world == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return float(tensor.item())

    def all_finite(self, tensors: Sequence[torch.Tensor | None]) -> bool:
        """Every element of every (local shard of a) tensor finite, on every rank."""
        bad = any(not bool(torch.isfinite(local(t).detach()).all()) for t in tensors if t is not None)
        return self.maximum(float(bad)) == 0.0


def _sync_context(model: torch.nn.Module, last: bool):
    """DDP: hold the gradient all-reduce until the last micro-batch. FSDP2 and one process: nothing to hold."""
    if not last and isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return model.no_sync()
    return contextlib.nullcontext()


def token_totals(batches: Sequence[Sequence[Row]], comm: Collectives) -> list[float]:
    """Completion tokens of each step's batch over all ranks (the token-mean's denominator, >= 1)."""
    return [max(1.0, t) for t in comm.sums([sum(len(r["completion_ids"]) for r in b) for b in batches])]


def irl_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: Sequence[Row], total_tokens: float,
             n_micro: int, micro: int, pad_id: int, comm: Collectives, stop: Callable[[str], None]) -> float:
    """One IRL optimizer step on this rank's `batch`; returns the global token-mean loss before the update."""
    optimizer.zero_grad(set_to_none=True)
    loss_sum = 0.0
    for m in range(n_micro):
        chunk = list(batch[m * micro:(m + 1) * micro])
        with _sync_context(model, last=m == n_micro - 1):
            nll = irl.completion_nll(model, chunk or [irl.dummy_row(pad_id)], pad_id)
            (nll * (comm.world / total_tokens if chunk else 0.0)).backward()
        loss_sum += float(nll.detach()) if chunk else 0.0
    loss = comm.sums([loss_sum])[0] / total_tokens
    if not math.isfinite(loss):
        stop(f"the IRL loss is {loss}")
    params = irl.optimizer_params(optimizer)
    if not comm.all_finite([p.grad for p in params]):      # checked before they reach the weights
        stop(f"the IRL gradients are not finite (IRL loss {loss:.4g})")
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if not comm.all_finite(params):
        stop("the IRL weights are not finite after the update")
    return loss


@torch.no_grad()
def irl_loss(model: torch.nn.Module, batch: Sequence[Row], total_tokens: float, n_micro: int, micro: int,
             pad_id: int, comm: Collectives) -> float:
    """Global token-mean loss of `batch` without a gradient (every rank runs `n_micro` forwards: FSDP gathers)."""
    total = 0.0
    for m in range(n_micro):
        chunk = list(batch[m * micro:(m + 1) * micro])
        nll = irl.completion_nll(model, chunk or [irl.dummy_row(pad_id)], pad_id)
        total += float(nll) if chunk else 0.0
    return comm.sums([total])[0] / total_tokens


def snapshot(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """This rank's part of the parameters, copied to host RAM (not a second copy in accelerator memory)."""
    return [local(p).detach().to("cpu", copy=True) for p in params]


@torch.no_grad()
def weight_change(before: Sequence[torch.Tensor], params: Sequence[torch.Tensor], comm: Collectives) -> dict[str, Any]:
    """||Δθ||/||θ|| and max |Δθ| over all parameters (shards summed over ranks when sharded)."""
    delta_sq = norm_sq = max_abs = 0.0
    for b, p in zip(before, params, strict=True):
        now = local(p).detach()
        old = b.to(now.device, non_blocking=True)
        delta = now - old
        delta_sq += float(delta.float().norm()) ** 2
        norm_sq += float(old.float().norm()) ** 2
        max_abs = max(max_abs, float(delta.abs().max()) if delta.numel() else 0.0)
    if is_sharded(params):
        delta_sq, norm_sq = comm.sums([delta_sq, norm_sq])
        max_abs = comm.maximum(max_abs)
    dtype = local(params[0]).dtype
    return {"rel_weight_change": math.sqrt(delta_sq) / max(math.sqrt(norm_sq), 1e-30), "max_abs_change": max_abs,
            "dtype": str(dtype).replace("torch.", ""), "_dtype": dtype}


def local_optimizer_state(state: dict[str, Any]) -> dict[str, Any]:
    """An optimizer state_dict with DTensor moments replaced by this rank's shards (saved per rank)."""
    return {**state, "state": {k: {n: local(v) if isinstance(v, torch.Tensor) else v for n, v in s.items()}
                               for k, s in state["state"].items()}}


def load_local_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Inverse of local_optimizer_state: the shards become DTensors laid out like their parameters again."""
    from torch.distributed.tensor import DTensor

    optimizer.load_state_dict(state)
    for param, values in optimizer.state.items():
        if isinstance(param, DTensor):
            for name, value in values.items():
                if isinstance(value, torch.Tensor) and value.dim() > 0 and not isinstance(value, DTensor):
                    values[name] = DTensor.from_local(value.to(param.device), param.device_mesh, param.placements,
                                                      shape=param.shape, stride=param.stride())
