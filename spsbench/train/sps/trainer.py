"""SPS (Steering Probability Squeezing, paper Algorithm 1) as a thin layer over any GRPO-family trainer.

The RL phase is the base trainer, unchanged. While it runs, `SPSTrainer` records every rollout of the
batches it trains on (prompt and completion token ids, reward, grader verdict, sequence log-prob
under the policy that generated it), grouped by prompt; over DAPO also the groups dynamic sampling drops.
Every `rl_steps_per_phase` optimizer steps the IRL phase runs (`epoch`: one pass of TRL's dataloader,
spsbench.train.plan): each rank selects from its own groups with L2TE (groups are whole on a rank; only a
few counts per rank cross the network), and takes `irl_steps` AdamW steps of token-level cross-entropy on
the selected completions (prompt tokens masked) under the RL step's autocast, with its own optimizer, so
the RL optimizer and LR schedule never see it. The steps themselves are `update.irl_step` (DDP: all-reduce
keeps parameters identical; FSDP2: reduce-scatter into the shards, which the IRL AdamW updates in place).
The open choices of the paper are `SPSConfig` settings (docs/training.md, "Interpretive choices").

Non-finite IRL loss, gradients or weights stop the run with one line; the IRL phase runs in
`on_step_end`, before the step's checkpoint is saved, so the last saved checkpoint stays good.

Each checkpoint folder gets `spsbench_checkpoint.json` (IRL phases before it: a checkpoint before the first
phase is its base algorithm's) and the SPS state: the phase position, this rank's rollout buffer and the
IRL optimizer state, in `sps_state.pt` for one process, in `sps_state-rank<r>.pt` from every rank when
there are several (DDP or FSDP2: each rank's buffer holds its own groups, and FSDP2's IRL moments are
shards), so a run resumed mid-phase selects from the same rollouts as an uninterrupted one. Resuming
under another world size is a one-line error (nothing is re-sharded).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import random
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from spsbench.errors import TrainingError
from spsbench.train import plan
from spsbench.train.sps import irl, update
from spsbench.train.sps.config import SPSConfig
from spsbench.train.sps.l2te import Scored, batch_threshold, select_l2te
from spsbench.train.sps.state import PhaseState, Rollouts
from spsbench.train.trainer import DynamicSamplingTrainer, SpsbenchGRPOTrainer

logger = logging.getLogger(__name__)
STATE_FILE = "sps_state.pt"
RANK_STATE_FILE = "sps_state-rank{rank}.pt"
# 2: every rank writes its own file when there are several, with the world size recorded
STATE_VERSION = 2
PHASE_LOG = "sps_phases.jsonl"
# light diagnostics: the weight change is estimated on every LIGHT_STRIDE-th element of each parameter (a prime:
# a power-of-two stride would sample the same few columns of every row-major matrix)
LIGHT_STRIDE = 1021


class _PhaseClock(TrainerCallback):
    """Runs the IRL phase after the optimizer step that closes an RL phase (before saving/logging)."""

    def __init__(self, trainer: SPSTrainer) -> None:
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.trainer.phase_length == 0:
            self.trainer.run_irl_phase()


class SPSTrainer(SpsbenchGRPOTrainer):
    """RL phase = the base trainer; IRL phase = L2TE selection + cross-entropy with its own AdamW."""

    def __init__(self, *args: Any, sps: SPSConfig | None = None, **kwargs: Any) -> None:
        self.sps = sps or SPSConfig()
        self.rollouts = Rollouts()
        self.phase = PhaseState()
        self.irl_optimizer: torch.optim.Optimizer | None = None
        self._pending_irl_state: dict[str, Any] | None = None
        super().__init__(*args, **kwargs)
        self._refuse_sharded_training()
        self.phase_length = self._phase_length()
        self.add_callback(_PhaseClock(self))

    def irl_phases(self) -> list[dict[str, Any]]:
        return self.phase.log

    def _phase_length(self) -> int:
        """`sps.rl_steps_per_phase` in optimizer steps; `epoch` from this run's dataloader geometry."""
        if self.sps.rl_steps_per_phase != "epoch":
            return int(self.sps.rl_steps_per_phase)
        if not hasattr(self.train_dataset, "__len__"):
            raise TrainingError("sps.rl_steps_per_phase: 'epoch' needs a training set with a length; set a number")
        geo = plan.Geometry.from_args(self.args, self.accelerator.num_processes)
        return plan.steps_per_epoch(len(self.train_dataset), geo)

    def phase_report(self) -> dict[str, Any]:
        """IRL phases planned for this run's max_steps against those that ran (a shortfall is spelled out)."""
        planned = plan.irl_steps(self.phase_length, self.state.max_steps)
        report: dict[str, Any] = {"rl_steps_per_phase": self.phase_length, "planned_irl_phases": len(planned),
                                  "planned_irl_steps": planned, "irl_phases_run": self.phase.index,
                                  "irl_steps_run": [r["step"] for r in self.phase.log], "shortfall": None}
        if self.phase.index < len(planned):
            report["shortfall"] = (f"only {self.phase.index} of {len(planned)} planned IRL phases ran (training "
                                   f"stopped at step {self.state.global_step} of {self.state.max_steps}, or a "
                                   "phase had nothing to select and was skipped: see the log)")
        return report

    def _refuse_sharded_training(self) -> None:
        """DDP or FSDP2 only (run.refuse_sharding_for_sps explains why); this catches an `accelerate launch` config."""
        if getattr(self, "is_deepspeed_enabled", False):
            raise TrainingError("SPS does not run under DeepSpeed (its IRL update would bypass the engine's fp32 "
                                "master weights); use FSDP2 (recipes/gpu/accelerate/fsdp2-*.yaml) or DDP")
        plugin = getattr(self.accelerator.state, "fsdp_plugin", None)
        if getattr(self, "is_fsdp_enabled", False) and getattr(plugin, "fsdp_version", 1) != 2:
            raise TrainingError("SPS under FSDP needs FSDP2 (fsdp_version: 2, fully_shard): under FSDP1 its IRL "
                                "optimizer would see flattened parameters; use recipes/gpu/accelerate/fsdp2-*.yaml")

    # ------------------------------------------------------------------ RL phase: record rollouts

    def training_step(self, model, inputs, num_items_in_batch):
        start = time.perf_counter()
        loss = super().training_step(model, inputs, num_items_in_batch)
        self.phase.rl_seconds += time.perf_counter() - start
        return loss

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if self.model.training:
            self._record_rollouts(output)
            self.rollouts.next_batch += 1
        return output

    def _rows(self, output: dict[str, Any], index: list[int]) -> list[dict[str, Any]]:
        """Rollout records of batch rows `index` (sequence log-prob from TRL's old_per_token_logps when it
        computed them, else None until the loss's forward or a fill supplies it)."""
        old = output.get("old_per_token_logps")
        prompt_mask, completion_mask = output["prompt_mask"].bool(), output["completion_mask"].bool()
        rows = []
        for i in index:
            completion = output["completion_ids"][i][completion_mask[i]].tolist()
            rows.append({"prompt_ids": output["prompt_ids"][i][prompt_mask[i]].tolist(), "completion_ids": completion,
                         # left padding of the prompt in its batch: TRL's positions count it, so the fill uses it too
                         "prompt_pad": int((~prompt_mask[i]).sum()),
                         "logp": float((old[i] * output["completion_mask"][i]).sum()) if old is not None else None,
                         "reward": float(output["rewards"][i]), "correct": bool(output["correct"][i]),
                         "truncated": not set(self.eos_token_ids) & set(completion),      # cut before any EOS
                         "batch": self.rollouts.next_batch})
        return rows

    def _record_rollouts(self, output: dict[str, Any]) -> None:
        # Sequence log-probs: TRL's old_per_token_logps when it computed them, else captured from the loss's
        # own forward when the batch is trained on (compute_loss below): no extra forward pass.
        rows = self._rows(output, list(range(output["prompt_ids"].size(0))))
        ids = [self.rollouts.add_pending(row) for row in rows if row["logp"] is None]
        if ids:
            output["sps_row"] = torch.tensor(ids, device=output["advantages"].device)
        size = self.num_generations
        self.rollouts.groups += [rows[g:g + size] for g in range(0, len(rows), size)]

    def _dropped_groups(self, pool: list[dict[str, Any]], dropped: list[tuple[int, int]]) -> None:
        """SPS over DAPO: the groups dynamic sampling dropped (all rewards equal: mostly all-wrong groups, the
        main source of low-likelihood negatives) join the IRL buffer. They are never trained on, so their
        sequence log-probs come from one no-grad forward now, under the policy that generated them."""
        if self.sps.dropped_groups != "buffer":      # the same on every rank (the fill below may be collective)
            return
        size = self.num_generations
        groups = [self._rows(pool[b], list(range(g * size, (g + 1) * size))) for b, g in dropped]
        for row in (r for group in groups for r in group):
            row["dropped"] = True
        self._fill_missing_logps(groups, clear_pending=False)
        self.rollouts.groups += groups

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        self.rollouts.capture = [] if "sps_row" in inputs else None
        try:
            result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        finally:
            captured, self.rollouts.capture = self.rollouts.capture, None
        if captured:
            seq = (captured[0].detach() * inputs["completion_mask"]).sum(dim=1)
            for row_id, value in zip(inputs["sps_row"].tolist(), seq.tolist(), strict=True):
                row = self.rollouts.pending.pop(row_id, None)
                if row is not None:
                    row["logp"] = value
        return result

    def _get_per_token_logps_and_entropies(self, model, *args, **kwargs):
        result = super()._get_per_token_logps_and_entropies(model, *args, **kwargs)
        if self.rollouts.capture is not None and torch.is_grad_enabled():   # the policy forward of the loss
            self.rollouts.capture.append(result[0])
        return result

    @torch.no_grad()
    def _fill_missing_logps(self, groups: list[list[dict[str, Any]]], clear_pending: bool = True) -> None:
        """Rollouts without a sequence log-prob (a generation batch split by the phase boundary, or groups
        dynamic sampling dropped): TRL's own log-prob forward (same temperature, same left padding as in
        their batch), one per group. Under FSDP every forward all-gathers parameters, so every rank runs as
        many forwards as the rank with the most groups to fill (the others on a one-token dummy row)."""
        from trl.models.utils import disable_gradient_checkpointing

        todo = [rows for rows in ([r for r in g if r["logp"] is None] for g in groups) if rows]
        forwards = len(todo)
        if getattr(self, "is_fsdp_enabled", False) and self.accelerator.num_processes > 1:
            forwards = int(self._rank_counts(len(todo))[:, 0].max())
        pad = self._pad_id()
        with disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs):
            for i in range(forwards):
                if i >= len(todo):
                    self._sequence_logps([{"prompt_ids": [pad], "completion_ids": [pad]}])
                    continue
                for row, value in zip(todo[i], self._sequence_logps(todo[i]), strict=True):
                    row["logp"] = value
        if clear_pending:
            self.rollouts.pending.clear()

    def _sequence_logps(self, rows: list[dict[str, Any]]) -> list[float]:
        """Summed completion log-probs of `rows` at the rollout temperature, by TRL's fused LM head."""
        ids, attention, keep, completion = irl.trl_layout(rows, self._pad_id(), self.accelerator.device)
        logps, _, _ = self._get_per_token_logps_and_entropies(self.model, ids, attention, keep,
                                                                batch_size=self.sps.irl_micro_batch_size)
        return (logps * completion).sum(dim=1).tolist()

    # ------------------------------------------------------------------ IRL phase

    def run_irl_phase(self) -> dict[str, Any] | None:
        """L2TE selection on this rank's groups, then the IRL steps (`sps.irl_steps`). Returns metrics."""
        start = time.perf_counter()
        groups = self.rollouts.take()
        self.phase.last_groups = groups
        self._fill_missing_logps(groups)
        counts = self._rank_counts(len(groups), 0, 0)
        selected = self._select(groups, first_group=int(counts[: self.accelerator.process_index, 0].sum()))
        self.phase.last_selection = selected
        counts = self._rank_counts(len(groups), len(selected), sum(not r["correct"] for r in selected))
        if counts[:, 1].sum() == 0:           # the same on every rank: all skip together
            logger.warning("SPS: IRL phase at step %d skipped: L2TE had nothing to select (no rollouts recorded "
                           "since the last phase, e.g. right after a resume, or all of them truncated with "
                           "sps.l2te_truncated: exclude)", self.state.global_step)
            return None
        select_s = time.perf_counter() - start
        record = self._irl_update(selected, [int(n) for n in counts[:, 1]])
        total = int(counts[:, 1].sum())
        record.update(phase=self.phase.index, step=self.state.global_step, groups=int(counts[:, 0].sum()),
                      sequences=total, rl_time_s=self.phase.rl_seconds, from_negatives_share=int(counts[:, 2].sum()) / total,
                      irl_select_s=select_s, irl_time_s=time.perf_counter() - start)
        record["irl_time_share"] = record["irl_time_s"] / max(record["irl_time_s"] + record["rl_time_s"], 1e-9)
        self._finish_phase(record)
        return record

    def _select(self, groups: list[list[dict[str, Any]]], first_group: int) -> list[dict[str, Any]]:
        """L2TE on this rank's groups; `first_group` (this rank's global offset) seeds each group's draw."""
        mean, exclude = self.sps.l2te_logprob == "mean", self.sps.l2te_truncated == "exclude"
        eligible = [[r for r in g if not (exclude and r.get("truncated"))] for g in groups]
        scored = [[Scored(r["logp"] / max(1, len(r["completion_ids"])) if mean else r["logp"], r["correct"])
                   for r in g] for g in eligible]
        thresholds = self._batch_thresholds(eligible, scored) if self.sps.quantile_scope == "batch" else None
        picks = select_l2te(scored, self.sps.sampling_size, self.sps.quantile, seed=self.sps.seed,
                            phase=self.phase.index, first_group=first_group, thresholds=thresholds,
                            random_topup=self.sps.positive_topup == "random")
        return [eligible[g][i] for g, idx in enumerate(picks) for i in idx]

    def _batch_thresholds(self, eligible: list[list[dict[str, Any]]], scored: list[list[Scored]]) -> list[float]:
        """quantile_scope batch: each group's cut, the lower quantile of its generation batch's negatives over
        all ranks (a batch's groups are spread over the ranks; one all-gather of (batch, score) pairs)."""
        from accelerate.utils import gather_object

        negatives = [(g[0]["batch"], sc.logp) for g, row in zip(eligible, scored, strict=True) if g
                     for sc in row if not sc.correct]
        if self.accelerator.num_processes > 1:
            negatives = gather_object(negatives)
        by_batch: dict[int, list[float]] = {}
        for batch, logp in negatives:
            by_batch.setdefault(batch, []).append(logp)
        cuts = {batch: batch_threshold(values, self.sps.quantile) for batch, values in by_batch.items()}
        return [cuts.get(g[0]["batch"], -math.inf) if g else -math.inf for g in eligible]

    def _rank_counts(self, *values: int) -> torch.Tensor:
        """(world, len(values)) int64 tensor of every rank's `values`, in rank order (one small all-gather)."""
        local = torch.tensor([values], dtype=torch.int64, device=self.accelerator.device)
        if self.accelerator.num_processes == 1:
            return local.cpu()
        return self.accelerator.gather(local).cpu()

    def _irl_update(self, selected: list[dict[str, Any]], per_rank: list[int]) -> dict[str, Any]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = self._irl_optimizer(params)
        comm = update.Collectives(self.accelerator.num_processes, self.accelerator.device)
        rank = self.accelerator.process_index
        order = list(range(len(selected)))
        random.Random(f"irl:{self.sps.seed}:{self.phase.index}:{rank}").shuffle(order)
        batches = irl.step_batches([selected[i] for i in order], self.sps.irl_steps, self.sps.irl_batch_size,
                                   per_rank, rank)
        micro = self.sps.irl_micro_batch_size
        sizes = irl.local_batch_sizes(self.sps.irl_batch_size, per_rank)
        n_micro = max(1, max(math.ceil(n / micro) for n in sizes))     # equal on all ranks (collectives)
        full = self.sps.irl_diagnostics == "full"
        how = update.StepSettings(micro, self._pad_id(), self.accelerator.autocast, self.sps.irl_max_grad_norm,
                                  -1.0 if self.sps.irl_objective == "repel" else 1.0, check_weights=full)
        tokens = update.token_totals(batches, comm)
        stride = 1 if full else LIGHT_STRIDE
        start = time.perf_counter()
        before = update.snapshot(params, stride)
        diagnostics_s = time.perf_counter() - start
        probe: list[float] = []
        losses = [update.irl_step(self.model_wrapped, optimizer, b, t, n_micro, how, comm,
                                  stop=functools.partial(self._stop, step=s), probe=probe if s == 0 else None)
                  for s, (b, t) in enumerate(zip(batches, tokens, strict=True))]
        steps_s = time.perf_counter() - start - diagnostics_s
        record = self._loss_after(batches[0], tokens[0], n_micro, how, comm, losses[0], probe)
        if not full and not comm.all_finite(params):
            self._stop("the IRL weights are not finite after the update", step=len(batches) - 1)
        record.update(update.weight_change(before, params, comm, stride))
        record.update(irl_steps=len(batches), coverage=irl.coverage(self.sps.irl_steps, self.sps.irl_batch_size,
                                                                    per_rank),
                      irl_steps_s=steps_s, irl_diagnostics_s=time.perf_counter() - start - steps_s)
        return record

    def _loss_after(self, batch: list[dict[str, Any]], tokens: float, n_micro: int, how: update.StepSettings,
                    comm: update.Collectives, first_loss: float, probe: list[float]) -> dict[str, Any]:
        """The IRL loss before and after the phase on the same rows: the first IRL batch (full diagnostics,
        one more forward over it), or each rank's first micro-batch of it (light: one micro-batch forward)."""
        if self.sps.irl_diagnostics == "full":
            after = update.irl_loss(self.model_wrapped, batch, tokens, n_micro, how, comm)
            return {"irl_loss_before": first_loss, "irl_loss_after": after, "irl_loss_rows": "first IRL batch"}
        nll, count = comm.sums(probe or [0.0, 0.0])
        count = max(1.0, count)
        after = update.irl_loss(self.model_wrapped, update.length_sorted(batch)[:how.micro], count, 1, how, comm)
        return {"irl_loss_before": nll / count, "irl_loss_after": after, "irl_loss_first_step": first_loss,
                "irl_loss_rows": "first micro-batch of the first IRL batch, per rank"}

    def _irl_optimizer(self, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        if self.irl_optimizer is None or self.sps.irl_optimizer_state == "reset":
            self.irl_optimizer = torch.optim.AdamW(params, lr=self.sps.irl_learning_rate,
                                                   weight_decay=self.sps.irl_weight_decay)
            if self._pending_irl_state is not None and self.sps.irl_optimizer_state == "carry":
                update.load_local_optimizer_state(self.irl_optimizer, self._pending_irl_state)
            self._pending_irl_state = None
        return self.irl_optimizer

    def _stop(self, what: str, step: int) -> None:
        raise TrainingError(f"{what} in IRL step {step + 1} of SPS phase {self.phase.index} at step "
                            f"{self.state.global_step}; stopping before checkpoint-{self.state.global_step} is saved "
                            f"(last good checkpoint kept in {self.args.output_dir})")

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
        self.phase.log.append(record)
        for key in ("irl_loss_before", "irl_loss_after", "sequences", "from_negatives_share", "coverage",
                    "rel_weight_change", "rl_time_s", "irl_time_s", "irl_time_share"):
            self._metrics["train"][f"sps/{key}"].append(float(record[key]))
        if self.args.should_save:
            Path(self.args.output_dir).mkdir(parents=True, exist_ok=True)
            with open(Path(self.args.output_dir) / PHASE_LOG, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
        self.phase.index += 1
        self.phase.last_irl_step = self.state.global_step
        self.phase.rl_seconds = 0.0
        if self.use_vllm:
            self._last_loaded_step = -1      # the IRL update must reach vLLM before the next generation

    # ------------------------------------------------------------------ checkpoint / resume

    def sps_state(self) -> dict[str, Any]:
        optimizer = self.irl_optimizer.state_dict() if self.irl_optimizer else self._pending_irl_state
        if self.sps.irl_optimizer_state == "reset":
            optimizer = None                  # a fresh AdamW every phase: nothing to carry over
        return {"version": STATE_VERSION, "world_size": self.accelerator.num_processes,
                "rank": self.accelerator.process_index, "phase_index": self.phase.index,
                "last_irl_step": self.phase.last_irl_step,
                "irl_optimizer": update.local_optimizer_state(optimizer) if optimizer else None,
                # this rank's rollouts since the last IRL phase: a resume mid-phase selects from the same ones
                "buffer": self.rollouts.groups, "next_batch": self.rollouts.next_batch}

    def _state_file(self) -> str:
        """`sps_state.pt` for one process; with several, one file per rank (`sps_state-rank<r>.pt`): each rank's
        rollout buffer is its own (groups never cross ranks), and under FSDP2 so are the IRL moments."""
        if self.accelerator.num_processes == 1:
            return STATE_FILE
        return RANK_STATE_FILE.format(rank=self.accelerator.process_index)

    def _save_rank_state(self, folder: Path) -> None:
        super()._save_rank_state(folder)
        if self.args.should_save or self.accelerator.num_processes > 1:
            torch.save(self.sps_state(), folder / self._state_file())

    def checkpoint_record(self) -> dict[str, Any]:
        # What the checkpoint is: before its first IRL phase an SPS checkpoint is its base algorithm's
        # (the comparison page marks it; rl_steps_per_phase epoch puts phase 1 at step ~187 of 700).
        return {"algo": "sps", **super().checkpoint_record(), "irl_phases": self.phase.index,
                "last_irl_step": self.phase.last_irl_step, "rl_steps_per_phase": self.phase_length}

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if not checkpoint:
            return
        state = load_rank_state(Path(checkpoint), self.accelerator.num_processes, self.accelerator.process_index)
        if state is None:
            return
        self.phase.index, self.phase.last_irl_step = state["phase_index"], state["last_irl_step"]
        self._pending_irl_state, self.irl_optimizer = state["irl_optimizer"], None
        buffer = state.get("buffer")          # "dropped" in checkpoints written before the buffer was kept
        self.rollouts.groups = buffer if isinstance(buffer, list) else []
        self.rollouts.next_batch = int(state.get("next_batch", 0))


def load_rank_state(folder: Path, world: int, rank: int) -> dict[str, Any] | None:
    """This rank's SPS state from checkpoint `folder` (None: it has none). A checkpoint written by another
    number of ranks is a one-line error: each rank's rollout buffer (and FSDP2 moment shards) belongs to its
    rank, and spsbench does not re-shard them (TRL's sampler would not give a rank the same prompts anyway)."""
    saved = len(list(folder.glob(RANK_STATE_FILE.format(rank="*"))))
    single = folder / STATE_FILE
    if not saved and not single.is_file():
        return None
    state = None
    if not saved:
        state = torch.load(single, map_location="cpu", weights_only=True)
        saved = int(state.get("world_size", 0))        # 0: written before the world size was recorded
    if saved and saved != world:
        raise TrainingError(f"{folder.name} holds the SPS state of {saved} rank(s) but this run has {world}: each "
                            "rank's rollout buffer and IRL optimizer state belong to it and are not re-sharded; "
                            f"resume with {saved} process(es), or start a new run")
    if state is not None and world > 1:
        # written by the main process alone (spsbench before per-rank buffers): the buffer is rank 0's rollouts
        logger.warning("SPS: %s predates per-rank rollout buffers (its buffer holds rank 0's rollouts only): phase "
                       "position and IRL optimizer restored, the buffer dropped on every rank; the next IRL phase "
                       "selects only from rollouts generated after the resume", folder.name)
        return {**state, "buffer": "dropped"}
    if state is not None:
        return state
    return torch.load(folder / RANK_STATE_FILE.format(rank=rank), map_location="cpu", weights_only=True)


class SPSDynamicSamplingTrainer(SPSTrainer, DynamicSamplingTrainer):
    """SPS over DAPO (dynamic sampling): the IRL phase records the batches dynamic sampling kept."""


SPS_CLASSES: dict[type, type] = {SpsbenchGRPOTrainer: SPSTrainer, DynamicSamplingTrainer: SPSDynamicSamplingTrainer}


def with_sps(base_cls: type) -> type:
    """The SPS trainer class for a base trainer class (SPS is a layer, not a fourth copy of the RL code). A base
    the table adds (`layers_sps`) gets one composed like SPSDynamicSamplingTrainer: SPS's hooks, then its own."""
    if issubclass(base_cls, SPSTrainer):
        return base_cls
    if base_cls in SPS_CLASSES:
        return SPS_CLASSES[base_cls]
    if not issubclass(base_cls, SpsbenchGRPOTrainer):
        raise TypeError(f"SPS layers only on SpsbenchGRPOTrainer subclasses, not {base_cls.__name__}")
    return _composed(base_cls)


@functools.cache
def _composed(base_cls: type) -> type:
    """SPS over a base class not in SPS_CLASSES (one class per base, so isinstance holds across calls)."""
    return type(f"SPS{base_cls.__name__}", (SPSTrainer, base_cls),
                {"__module__": __name__, "__doc__": f"SPS over {base_cls.__name__}."})
