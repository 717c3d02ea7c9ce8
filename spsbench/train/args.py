"""The TRL arguments of a run: the GRPOConfig a TrainConfig becomes, and the sharding SPS refuses.

Built by `train.preflight.prepare` before any weight loads, for the plan and the run alike; the plan for
another launch (`--dry-run --set world_size=32`) builds it as that launch would (`config_class`).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from spsbench.errors import ConfigError, one_line
from spsbench.train.config import TrainConfig

CPU_DEFAULTS = {"report_to": "none", "logging_steps": 1, "save_strategy": "steps", "disable_tqdm": True}
# The DDP collective timeout (TrainingArguments.ddp_timeout, seconds; recipe key rl.ddp_timeout wins).
# While rank 0 evaluates a checkpoint inline the other ranks wait in the next collective, and the
# paper's evaluation (5 benchmarks x n=128 x <= 4,096 tokens, ~19,000 samples, ~40M tokens at most) on
# a vLLM that holds 0.3 of one GPU takes hours, not torch's default 30 minutes. 8 hours covers it at
# ~1,500 tokens/s; with `eval.mode: watch` nothing waits.
DDP_TIMEOUT_S = 8 * 3600


def grpo_args(config: TrainConfig, output_dir: Path, world_size: int | None = None):
    """TRL GRPOConfig from the recipe's `rl` section (spsbench defaults first, recipe wins). `world_size`: build
    it as a launch of that many ranks would (the plan for another machine); None: this launch."""
    import torch

    # TRL 1.16 defaults to bf16=True, which TrainingArguments refuses without a GPU.
    gpu = torch.cuda.is_available()
    defaults = CPU_DEFAULTS | {"bf16": gpu, "ddp_timeout": DDP_TIMEOUT_S}
    if not gpu:  # without use_cpu + gloo, a torchrun launch on CPU trains every rank alone (no DDP)
        defaults["use_cpu"] = True
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            defaults["ddp_backend"] = "gloo"
    kwargs = defaults | dict(config.rl) | {"output_dir": str(output_dir), "run_name": config.run_name}
    if config.optimizer_steps_per_generation is not None:
        # TRL counts steps_per_generation in micro-steps (its `_step` advances once per training_step call)
        kwargs["steps_per_generation"] = config.optimizer_steps_per_generation * kwargs.get(
            "gradient_accumulation_steps", 1)
    try:
        args = config_class(world_size)(**kwargs)
    except (ValueError, TypeError, ZeroDivisionError) as exc:
        raise ConfigError(f"{config.recipe}: rl: {one_line(exc)}") from None
    per_rank = args.per_device_train_batch_size * args.steps_per_generation
    if config.whole_groups and per_rank % args.num_generations:
        raise ConfigError(f"{config.recipe}: rl: per_device_train_batch_size x steps_per_generation ({per_rank}) "
                          f"must be a multiple of num_generations ({args.num_generations}) for SPS and dynamic "
                          "sampling (each rank must hold whole prompt groups)")
    return args


def refuse_sharding_for_sps(config: TrainConfig) -> None:
    """SPS runs under DDP or FSDP2: refuse DeepSpeed and FSDP1 from the recipe or an `accelerate launch` config.

    The IRL phase runs its own AdamW on the module's parameters. Under FSDP2 those are the sharded fp32
    parameters the next RL step gathers, and its backward reduce-scatters the IRL gradients (sps/update.py).
    Under DeepSpeed the engine's fp32 master partitions would overwrite the IRL update at the next RL step,
    and accelerate cannot run DeepSpeed on CPU, where this would have to be tested (docs/training.md).
    """
    rl = config.rl
    env = {k: os.environ.get(k, "").lower() in ("1", "true") for k in ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP")}
    if rl.get("deepspeed") or env["ACCELERATE_USE_DEEPSPEED"]:
        raise ConfigError(f"{config.recipe}: SPS does not run under DeepSpeed (its IRL update would be overwritten "
                          "by the engine's fp32 master weights); use FSDP2 (recipes/gpu/accelerate/fsdp2-*.yaml) or "
                          "DDP, or train grpo/dapo/gspo under DeepSpeed")
    fsdp_config = rl.get("fsdp_config") or {}
    version = str(fsdp_config.get("fsdp_version", fsdp_config.get("version", "")) if isinstance(fsdp_config, dict)
                  else "") or os.environ.get("FSDP_VERSION", "1")
    if (rl.get("fsdp") or fsdp_config or env["ACCELERATE_USE_FSDP"]) and version != "2":
        raise ConfigError(f"{config.recipe}: SPS under FSDP needs FSDP2 (fsdp_version: 2, fully_shard), got FSDP "
                          f"version {version}; use recipes/gpu/accelerate/fsdp2-*.yaml")


@functools.cache
def config_class(world_size: int | None) -> type:
    """TRL's GRPOConfig, or for a planned world size a subclass whose `world_size` is that number: GRPOConfig
    resolves the generation batch over `world_size` ranks (transformers' property, pinned in
    tests/test_train_seams.py), and the plan must resolve it as the launch it plans will."""
    from trl import GRPOConfig

    if world_size is None:
        return GRPOConfig

    class PlannedGRPOConfig(GRPOConfig):
        @property
        def world_size(self) -> int:   # type: ignore[override]
            return world_size

    return PlannedGRPOConfig
