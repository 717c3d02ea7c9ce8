"""SPS (Steering Probability Squeezing, paper Algorithm 1) as a thin layer over any GRPO-family trainer.

The RL phase is the base trainer, unchanged. While it runs, `SPSTrainer` records every rollout of the
batches it trains on (prompt and completion token ids, reward, grader verdict, sequence log-prob
under the policy that generated it), grouped by prompt. Every `rl_steps_per_phase` optimizer steps
the IRL phase runs: all ranks gather the groups (rank order, groups kept whole), select rollouts with
L2TE, and take `irl_steps` AdamW steps of token-level cross-entropy on the selected completions
(prompt tokens masked) with their own optimizer, so the RL optimizer and LR schedule never see it.

The buffer is not checkpointed: after a resume the phase restarts collecting (documented). The
phase position and the IRL optimizer state are saved as `sps_state.pt` in each checkpoint folder.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from spsbench.train.config import SPSConfig
from spsbench.train.l2te import Scored, select_l2te
from spsbench.train.reward import TrainingError
from spsbench.train.trainer import SpsbenchGRPOTrainer

logger = logging.getLogger(__name__)
STATE_FILE = "sps_state.pt"
PHASE_LOG = "sps_phases.jsonl"


class _PhaseClock(TrainerCallback):
    """Runs the IRL phase after the optimizer step that closes an RL phase (before saving/logging)."""

    def __init__(self, trainer: SPSTrainer) -> None:
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.trainer.sps.rl_steps_per_phase == 0:
            self.trainer.run_irl_phase()


class SPSTrainer(SpsbenchGRPOTrainer):
    """RL phase = the base trainer; IRL phase = L2TE selection + cross-entropy with its own AdamW."""

    def __init__(self, *args: Any, sps: SPSConfig | None = None, **kwargs: Any) -> None:
        self.sps = sps or SPSConfig()
        self.sps_groups: list[list[dict[str, Any]]] = []      # this rank's rollouts, one list per prompt
        self.sps_phase_log: list[dict[str, Any]] = []
        self.sps_last_selection: list[dict[str, Any]] = []      # last phase's inputs, kept for inspection
        self.sps_last_groups: list[list[dict[str, Any]]] = []
        self.sps_phase_index = 0
        self.sps_last_irl_step = 0
        self.irl_optimizer: torch.optim.Optimizer | None = None
        self._pending_irl_state: dict[str, Any] | None = None
        self._rl_seconds = 0.0
        self._sps_pending: dict[int, dict[str, Any]] = {}      # row id -> rollout awaiting its log-prob
        self._sps_next_row = 0
        self._sps_capture: list[torch.Tensor] | None = None
        super().__init__(*args, **kwargs)
        self._refuse_sharded_training()
        self.add_callback(_PhaseClock(self))

    def _refuse_sharded_training(self) -> None:
        """The IRL optimizer needs whole parameters and their .grad: DDP or ZeRO-0/1, not ZeRO-2/3 or FSDP."""
        plugin = getattr(self.accelerator.state, "deepspeed_plugin", None)
        stage = plugin.zero_stage if plugin is not None and getattr(self, "is_deepspeed_enabled", False) else 0
        if stage >= 2 or getattr(self, "is_fsdp_enabled", False):
            raise TrainingError("SPS's IRL phase needs unsharded parameters and gradients: use DDP or DeepSpeed "
                                "ZeRO stage 0/1 (ZeRO-2/3 and FSDP are supported for grpo/dapo/gspo only)")

    # ------------------------------------------------------------------ RL phase: record rollouts

    def training_step(self, model, inputs, num_items_in_batch):
        start = time.perf_counter()
        loss = super().training_step(model, inputs, num_items_in_batch)
        self._rl_seconds += time.perf_counter() - start
        return loss

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if self.model.training:
            self._record_rollouts(output)
        return output

    def _record_rollouts(self, output: dict[str, Any]) -> None:
        # Sequence log-probs: TRL's old_per_token_logps when it computed them, else captured from the loss's
        # own forward when the batch is trained on (compute_loss below): no extra forward pass.
        old = output.get("old_per_token_logps")
        logps = (old * output["completion_mask"]).sum(dim=1).tolist() if old is not None else None
        prompt_mask, completion_mask = output["prompt_mask"].bool(), output["completion_mask"].bool()
        rows, ids = [], []
        for i in range(output["prompt_ids"].size(0)):
            row = {"prompt_ids": output["prompt_ids"][i][prompt_mask[i]].tolist(),
                   "completion_ids": output["completion_ids"][i][completion_mask[i]].tolist(),
                   "logp": logps[i] if logps is not None else None, "reward": float(output["rewards"][i]),
                   "correct": bool(output["correct"][i])}
            rows.append(row)
            if logps is None:
                self._sps_next_row += 1
                self._sps_pending[self._sps_next_row] = row
                ids.append(self._sps_next_row)
        if ids:
            output["sps_row"] = torch.tensor(ids, device=output["advantages"].device)
        size = self.num_generations
        self.sps_groups += [rows[g:g + size] for g in range(0, len(rows), size)]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        self._sps_capture = [] if "sps_row" in inputs else None
        try:
            result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        finally:
            captured, self._sps_capture = self._sps_capture, None
        if captured:
            seq = (captured[0].detach() * inputs["completion_mask"]).sum(dim=1)
            for row_id, value in zip(inputs["sps_row"].tolist(), seq.tolist(), strict=True):
                row = self._sps_pending.pop(row_id, None)
                if row is not None:
                    row["logp"] = value
        return result

    def _get_per_token_logps_and_entropies(self, model, *args, **kwargs):
        result = super()._get_per_token_logps_and_entropies(model, *args, **kwargs)
        if self._sps_capture is not None and torch.is_grad_enabled():   # the policy forward of the loss
            self._sps_capture.append(result[0])
        return result

    @torch.no_grad()
    def _fill_missing_logps(self, groups: list[list[dict[str, Any]]]) -> None:
        """Rollouts not trained on yet (a generation batch split by the phase boundary): one forward each."""
        for row in (r for g in groups for r in g if r["logp"] is None):
            row["logp"] = -float(_completion_nll(self.model, [row], self._pad_id()))
        self._sps_pending.clear()

    # ------------------------------------------------------------------ IRL phase

    def run_irl_phase(self) -> dict[str, Any] | None:
        """L2TE selection over all ranks' groups, then `irl_steps` cross-entropy steps. Returns metrics."""
        from accelerate.utils import gather_object

        start = time.perf_counter()
        groups = gather_object(self.sps_groups) if self.accelerator.num_processes > 1 else list(self.sps_groups)
        self.sps_groups, self.sps_last_groups = [], groups
        self._fill_missing_logps(groups)
        picks = select_l2te([[Scored(r["logp"], r["correct"]) for r in g] for g in groups],
                            self.sps.sampling_size, self.sps.quantile)
        selected = [groups[g][i] for g, idx in enumerate(picks) for i in idx]
        self.sps_last_selection = selected
        if not selected:
            logger.warning("SPS: IRL phase at step %d skipped: no rollouts recorded since the last phase "
                           "(e.g. right after a resume)", self.state.global_step)
            return None
        record = self._irl_update(selected)
        record.update(phase=self.sps_phase_index, step=self.state.global_step, groups=len(groups),
                      sequences=len(selected), rl_time_s=self._rl_seconds,
                      from_negatives_share=sum(not r["correct"] for r in selected) / len(selected),
                      irl_time_s=time.perf_counter() - start)
        record["irl_time_share"] = record["irl_time_s"] / max(record["irl_time_s"] + record["rl_time_s"], 1e-9)
        self._finish_phase(record)
        return record

    def _irl_update(self, selected: list[dict[str, Any]]) -> dict[str, Any]:
        model = self.model_wrapped
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = self._irl_optimizer(params)
        before = [p.detach().clone() for p in params]
        order = list(range(len(selected)))
        random.Random(self.sps.seed + self.sps_phase_index).shuffle(order)   # same order on every rank
        losses = []
        for step in range(self.sps.irl_steps):
            batch = [selected[order[(step * self.sps.irl_batch_size + j) % len(order)]]
                     for j in range(min(self.sps.irl_batch_size, len(order)))]
            if step == 0:
                first_batch = batch
            losses.append(self._irl_step(model, optimizer, batch))
        loss_after = self._irl_loss(first_batch)
        return {"irl_loss_before": losses[0], "irl_loss_after": loss_after, **_weight_change(before, params)}

    def _irl_optimizer(self, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        if self.irl_optimizer is None:
            self.irl_optimizer = torch.optim.AdamW(params, lr=self.sps.irl_learning_rate,
                                                   weight_decay=self.sps.irl_weight_decay)
            if self._pending_irl_state is not None:
                self.irl_optimizer.load_state_dict(self._pending_irl_state)
                self._pending_irl_state = None
        return self.irl_optimizer

    def _irl_step(self, model, optimizer: torch.optim.Optimizer, batch: list[dict[str, Any]]) -> float:
        """One optimizer step of token-mean cross-entropy over `batch` (all ranks), by micro-batches."""
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        total_tokens = max(1, sum(len(r["completion_ids"]) for r in batch))
        shard = batch[rank::world]
        micro = self.sps.irl_micro_batch_size
        n_micro = math.ceil(math.ceil(len(batch) / world) / micro)   # equal count on all ranks (DDP sync)
        optimizer.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for m in range(n_micro):
            chunk = shard[m * micro:(m + 1) * micro]
            weight = world / total_tokens if chunk else 0.0   # DDP averages gradients over ranks
            nll = _completion_nll(model, chunk or batch[:1], self._pad_id())
            (nll * weight).backward()
            loss_sum += float(nll.detach()) if chunk else 0.0
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return self._global_sum(loss_sum) / total_tokens

    @torch.no_grad()
    def _irl_loss(self, batch: list[dict[str, Any]]) -> float:
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        shard, micro = batch[rank::world], self.sps.irl_micro_batch_size
        local = sum(float(_completion_nll(self.model, shard[i:i + micro], self._pad_id()))
                    for i in range(0, len(shard), micro))
        return self._global_sum(local) / max(1, sum(len(r["completion_ids"]) for r in batch))

    def _global_sum(self, value: float) -> float:
        if self.accelerator.num_processes == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.accelerator.device)
        return float(self.accelerator.reduce(tensor, reduction="sum").item())

    def _pad_id(self) -> int:
        tokenizer = getattr(self, "_tokenizer", None) or self.processing_class
        return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def _finish_phase(self, record: dict[str, Any]) -> None:
        resolution = torch.finfo(record.pop("_dtype")).eps
        record["dtype_resolution"] = resolution
        record["below_resolution"] = record["rel_weight_change"] < resolution
        if record["below_resolution"]:
            logger.warning(
                "SPS phase %d: IRL changed the weights by ||dθ||/||θ|| = %.2e (largest |dθ| = %.2e), below the "
                "resolution of %s weights (%.1e): at irl_learning_rate=%g the IRL phase barely moves the model.",
                record["phase"], record["rel_weight_change"], record["max_abs_change"], record["dtype"],
                resolution, self.sps.irl_learning_rate)
        self.sps_phase_log.append(record)
        for key in ("irl_loss_before", "irl_loss_after", "sequences", "from_negatives_share",
                    "rel_weight_change", "rl_time_s", "irl_time_s", "irl_time_share"):
            self._metrics["train"][f"sps/{key}"].append(float(record[key]))
        if self.args.should_save:
            Path(self.args.output_dir).mkdir(parents=True, exist_ok=True)
            with open(Path(self.args.output_dir) / PHASE_LOG, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
        self.sps_phase_index += 1
        self.sps_last_irl_step = self.state.global_step
        self._rl_seconds = 0.0
        if self.use_vllm:
            self._last_loaded_step = -1      # the IRL update must reach vLLM before the next generation

    # ------------------------------------------------------------------ checkpoint / resume

    def sps_state(self) -> dict[str, Any]:
        return {"version": 1, "phase_index": self.sps_phase_index, "last_irl_step": self.sps_last_irl_step,
                "irl_optimizer": self.irl_optimizer.state_dict() if self.irl_optimizer else self._pending_irl_state,
                "buffer": "dropped"}

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
            torch.save(self.sps_state(), folder / STATE_FILE)

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        path = os.path.join(checkpoint, STATE_FILE) if checkpoint else None
        if path and os.path.isfile(path):
            state = torch.load(path, map_location="cpu", weights_only=True)
            self.sps_phase_index, self.sps_last_irl_step = state["phase_index"], state["last_irl_step"]
            self._pending_irl_state, self.irl_optimizer = state["irl_optimizer"], None
            self.sps_groups = []


def _completion_nll(model, rows: list[dict[str, Any]], pad_id: int) -> torch.Tensor:
    """Summed negative log-likelihood of the completion tokens of `rows` (prompt tokens masked)."""
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
    logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1].float()
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1),
                                             ignore_index=-100, reduction="sum")


@torch.no_grad()
def _weight_change(before: list[torch.Tensor], params: list[torch.nn.Parameter]) -> dict[str, Any]:
    """||Δθ||/||θ|| and max |Δθ|. The difference of two nearby floats is exact, so no float64 copies."""
    delta_sq = norm_sq = max_abs = 0.0
    for b, p in zip(before, params, strict=True):
        delta = p.detach() - b
        delta_sq += float(delta.float().norm()) ** 2
        norm_sq += float(b.float().norm()) ** 2
        max_abs = max(max_abs, float(delta.abs().max()))
    return {"rel_weight_change": math.sqrt(delta_sq) / max(math.sqrt(norm_sq), 1e-30), "max_abs_change": max_abs,
            "dtype": str(params[0].dtype).replace("torch.", ""), "_dtype": params[0].dtype}


def with_sps(base_cls: type) -> type:
    """The SPS trainer class for a base trainer class (SPS is a layer, not a fourth copy of the RL code)."""
    if issubclass(base_cls, SPSTrainer):
        return base_cls
    if base_cls is SpsbenchGRPOTrainer:
        return SPSTrainer
    return type(f"SPS{base_cls.__name__}", (SPSTrainer, base_cls), {"__module__": __name__})
