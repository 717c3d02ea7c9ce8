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
from contextlib import AbstractContextManager
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
        """Every element of every (local shard of a) tensor finite, on every rank (one host sync, not one per
        tensor)."""
        flags = [torch.isfinite(local(t).detach()).all() for t in tensors if t is not None and t.numel()]
        bad = bool((~torch.stack(flags).all()).item()) if flags else False
        return self.maximum(float(bad)) == 0.0


def _sync_context(model: torch.nn.Module, last: bool):
    """DDP: hold the gradient all-reduce until the last micro-batch. FSDP2 and one process: nothing to hold."""
    if not last and isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return model.no_sync()
    return contextlib.nullcontext()


def token_totals(batches: Sequence[Sequence[Row]], comm: Collectives) -> list[float]:
    """Completion tokens of each step's batch over all ranks (the token-mean's denominator, >= 1)."""
    return [max(1.0, t) for t in comm.sums([sum(len(r["completion_ids"]) for r in b) for b in batches])]


@dataclass(frozen=True)
class StepSettings:
    """How every IRL step runs (identical on all ranks)."""

    micro: int                      # rows per forward/backward
    pad_id: int
    # the RL step's mixed-precision context (accelerate's autocast): the IRL forward runs under the same policy
    autocast: Callable[[], AbstractContextManager] = contextlib.nullcontext
    max_grad_norm: float | None = None          # clip the IRL gradient's global norm (None: no clipping)
    sign: float = 1.0                           # +1: minimise the completion NLL; -1: maximise it (Eq. 4 as printed)
    check_weights: bool = True                  # every weight finite after each step (else once per phase)


def length_sorted(batch: Sequence[Row]) -> list[Row]:
    """The step's rows, longest first: each micro-batch then pads to similar lengths. A step's gradient is the
    sum over its rows, so the order of rows changes nothing but the padding (and float summation order)."""
    return sorted(batch, key=lambda r: -(len(r["prompt_ids"]) + len(r["completion_ids"])))


def irl_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: Sequence[Row], total_tokens: float,
             n_micro: int, how: StepSettings, comm: Collectives, stop: Callable[[str], None],
             probe: list[float] | None = None) -> float:
    """One IRL optimizer step on this rank's `batch`; returns the global token-mean loss before the update.

    `probe`, when given, receives [NLL sum, completion tokens] of this rank's first micro-batch (the rows the
    light diagnostics score again after the phase)."""
    optimizer.zero_grad(set_to_none=True)
    rows = length_sorted(batch)
    loss_sum = 0.0
    for m in range(n_micro):
        chunk = rows[m * how.micro:(m + 1) * how.micro]
        with _sync_context(model, last=m == n_micro - 1):
            nll = irl.completion_nll(model, chunk or [irl.dummy_row(how.pad_id)], how.pad_id, autocast=how.autocast)
            (nll * (how.sign * comm.world / total_tokens if chunk else 0.0)).backward()
        value = float(nll.detach()) if chunk else 0.0
        if probe is not None and m == 0:
            probe[:] = [value, float(sum(len(r["completion_ids"]) for r in chunk))]
        loss_sum += value
    loss = comm.sums([loss_sum])[0] / total_tokens
    if not math.isfinite(loss):
        stop(f"the IRL loss is {loss}")
    params = irl.optimizer_params(optimizer)
    if not comm.all_finite([p.grad for p in params]):      # checked before they reach the weights
        stop(f"the IRL gradients are not finite (IRL loss {loss:.4g})")
    if how.max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], how.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if how.check_weights and not comm.all_finite(params):
        stop("the IRL weights are not finite after the update")
    return loss


@torch.no_grad()
def irl_loss(model: torch.nn.Module, batch: Sequence[Row], total_tokens: float, n_micro: int, how: StepSettings,
             comm: Collectives) -> float:
    """Global token-mean loss of `batch` without a gradient (every rank runs `n_micro` forwards: FSDP gathers)."""
    rows = length_sorted(batch)
    total = 0.0
    for m in range(n_micro):
        chunk = rows[m * how.micro:(m + 1) * how.micro]
        nll = irl.completion_nll(model, chunk or [irl.dummy_row(how.pad_id)], how.pad_id, autocast=how.autocast)
        total += float(nll) if chunk else 0.0
    return comm.sums([total])[0] / total_tokens


def snapshot(params: Sequence[torch.Tensor], stride: int = 1) -> list[torch.Tensor]:
    """This rank's part of the parameters for `weight_change`: all of it copied to host RAM (stride 1: not a
    second copy in accelerator memory), or every `stride`-th element of each, kept where it is (cheap)."""
    if stride == 1:
        return [local(p).detach().to("cpu", copy=True) for p in params]
    return [local(p).detach().reshape(-1)[::stride].clone() for p in params]


@torch.no_grad()
def weight_change(before: Sequence[torch.Tensor], params: Sequence[torch.Tensor], comm: Collectives,
                  stride: int = 1) -> dict[str, Any]:
    """||Δθ||/||θ|| and max |Δθ| over all parameters (shards summed over ranks when sharded); with `stride` > 1
    estimated on the snapshot's strided sample. One host sync for all parameters."""
    device = local(params[0]).device
    sums = torch.zeros(3, dtype=torch.float64, device=device)      # ||Δ||², ||θ||², max |Δ|
    for b, p in zip(before, params, strict=True):
        now = local(p).detach() if stride == 1 else local(p).detach().reshape(-1)[::stride]
        old = b.to(now.device, non_blocking=True)
        delta = now - old
        if delta.numel():
            weight = local(p).numel() / delta.numel()         # a sample stands for its whole tensor
            sums[0] += weight * torch.linalg.vector_norm(delta).double() ** 2
            sums[1] += weight * torch.linalg.vector_norm(old).double() ** 2
            sums[2] = torch.maximum(sums[2], delta.abs().max().double())
    delta_sq, norm_sq, max_abs = sums.tolist()
    if is_sharded(params):
        delta_sq, norm_sq = comm.sums([delta_sq, norm_sq])
        max_abs = comm.maximum(max_abs)
    dtype = local(params[0]).dtype
    return {"rel_weight_change": math.sqrt(delta_sq) / max(math.sqrt(norm_sq), 1e-30), "max_abs_change": max_abs,
            "dtype": str(dtype).replace("torch.", ""), "_dtype": dtype, "weight_change_stride": stride}


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
