"""Assemble and run a training run from a TrainConfig: model, prompts, reward, TRL config, trainer class.

Trainer class by algorithm: grpo / gspo -> SpsbenchGRPOTrainer (a recipe of TRL settings), dapo ->
DynamicSamplingTrainer (`dynamic_sampling.enabled`), sps -> the SPS layer over the base's class.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spsbench.engines.vllm import cpu_env_defaults
from spsbench.errors import ConfigError, TrainingError, one_line
from spsbench.models import DEFAULT_MODEL_NAME, default_model_dir, resolve_model
from spsbench.quiet import status, warn
from spsbench.system import busy_cpus
from spsbench.train.budget import apply_rollout_budget
from spsbench.train.config import TrainConfig
from spsbench.train.data import build_dataset
from spsbench.train.preflight import preflight
from spsbench.train.reward import make_reward_fn
from spsbench.validate import writable_dir

logger = logging.getLogger(__name__)
CPU_DEFAULTS = {"report_to": "none", "logging_steps": 1, "save_strategy": "steps", "disable_tqdm": True}
# The DDP collective timeout (TrainingArguments.ddp_timeout, seconds; recipe key rl.ddp_timeout wins).
# While rank 0 evaluates a checkpoint inline the other ranks wait in the next collective, and the
# paper's evaluation (5 benchmarks x n=128 x <= 4,096 tokens, ~19,000 samples, ~40M tokens at most) on
# a vLLM that holds 0.3 of one GPU takes hours, not torch's default 30 minutes. 8 hours covers it at
# ~1,500 tokens/s; with `eval.mode: watch` nothing waits.
DDP_TIMEOUT_S = 8 * 3600


@dataclass
class RunSummary:
    output_dir: Path
    run_name: str
    steps: int
    checkpoints: list[str] = field(default_factory=list)
    sps_phases: list[dict[str, Any]] = field(default_factory=list)
    sps_report: dict[str, Any] | None = None     # IRL phases planned vs run (SPSTrainer.phase_report)
    evaluations: list[tuple[int, Any]] = field(default_factory=list)
    base_evaluations: list[Any] = field(default_factory=list)
    leaderboard: Path | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)   # failed evaluations / refreshes
    eval_mode: str = "inline"                                       # inline | watch | off
    preempted: str | None = None        # 'SIGTERM' / 'SIGINT' when a signal stopped the run at a checkpoint
    exit_code: int = 0                  # 128 + signal number when preempted


def pick_cpu_threads() -> int | None:
    """Torch CPU threads for a shared machine: fewer than the cores when other processes keep them busy.

    Measured on 2 shared cores under load ~4: a SmolLM2 forward+backward took 52 s with 2 threads and 6 s
    with 1 (OpenMP threads spin-waiting for a core another process holds). OMP_NUM_THREADS wins if set.
    """
    import torch

    if torch.cuda.is_available() or os.environ.get("OMP_NUM_THREADS"):
        return None

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    # Runnable tasks right now, not the 1-minute load average: right after `spsbench eval` kept both cores
    # busy, the average still said 2 and the demo trained on 1 thread at ~63 s per step.
    busy = busy_cpus()
    threads = max(1, min(cores, int(cores - busy + 0.5)))
    torch.set_num_threads(threads)
    return threads


def trainer_class(config: TrainConfig) -> type:
    """The trainer class a config runs with (SPS composes over the base algorithm's class)."""
    from spsbench.train.sps.trainer import with_sps
    from spsbench.train.trainer import DynamicSamplingTrainer, SpsbenchGRPOTrainer

    cls = DynamicSamplingTrainer if config.dynamic_sampling.enabled else SpsbenchGRPOTrainer
    return with_sps(cls) if config.algo == "sps" else cls


def grpo_args(config: TrainConfig, output_dir: Path):
    """TRL GRPOConfig from the recipe's `rl` section (spsbench defaults first, recipe wins)."""
    import torch
    from trl import GRPOConfig

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
        args = GRPOConfig(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{config.recipe}: rl: {one_line(exc)}") from None
    per_rank = args.per_device_train_batch_size * args.steps_per_generation
    if (config.algo == "sps" or config.dynamic_sampling.enabled) and per_rank % args.num_generations:
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


def load_policy(name: str | None, dtype: str = "float32"):
    """(model, tokenizer, resolved path). fp32 by default: bf16 weights round away small updates."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    except (OSError, ValueError) as exc:
        raise TrainingError(f"cannot load model {path!r}: {one_line(exc)}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, path


def reward_funcs(config: TrainConfig, kind: str, max_completion_length: int) -> list[Any]:
    funcs = [make_reward_fn(kind, Path(config.task).stem)]
    cache = config.dynamic_sampling.soft_overlong_cache
    if cache is not None and config.dynamic_sampling.enabled:   # a DAPO component, like dynamic sampling
        from trl.rewards import get_soft_overlong_punishment

        if cache >= max_completion_length:
            raise ConfigError(f"{config.recipe}: dynamic_sampling.soft_overlong_cache ({cache}) must be smaller "
                              f"than rl.max_completion_length ({max_completion_length})")
        funcs.append(get_soft_overlong_punishment(max_completion_length, cache))
    return funcs


def fill_names(config: TrainConfig, model_path: str) -> Path:
    """Default run name and run folder."""
    if config.run_name is None:
        config.run_name = f"{config.label}-{Path(str(model_path).rstrip('/')).name}"
    return Path(config.output_dir or Path("runs") / config.run_name)


def run_folder(config: TrainConfig) -> Path:
    """The run folder `build_trainer` will use, known before anything loads or is checked (the embedded
    default model is named by its cache folder, not converted; a model that does not resolve is refused
    later, by build_trainer, in its usual order), so the run's log can open first."""
    if config.model in (None, "", "default", DEFAULT_MODEL_NAME):
        return fill_names(config, str(default_model_dir()))
    folder = Path(config.model).expanduser()
    return fill_names(config, str(folder.resolve()) if folder.is_dir() else config.model)


def _colocate_env() -> None:
    """vLLM colocate on CPU: the engine's environment, with OpenMP threads left to the training process
    (vLLM's own binding pins them, and torch then refuses `set_num_threads`)."""
    import torch

    if torch.cuda.is_available():
        return

    cpu_env_defaults(kv_space_gib=1)
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")


def build_trainer(config: TrainConfig, callbacks: list[Any] | None = None, dtype: str = "float32",
                  wrap: Callable[[type], type] | None = None):
    """(trainer, eval callback) ready to `.train()`; every user error is raised before loading weights.
    `wrap` subclasses the trainer class the config selects (the squeezing lab's instrumented variants)."""
    from spsbench.train.callbacks import EvaluateCheckpointCallback, write_run_info

    if config.algo == "sps":
        refuse_sharding_for_sps(config)
    model_path = resolve_model(config.model)
    output_dir = fill_names(config, model_path)
    preflight(config, output_dir, model_path)     # tasks, eval settings, engine options, paths: before weights
    plan = check_plan(config)                     # the schedule (IRL phases that fire), from the real data size
    apply_rollout_budget(config)            # prompt + completion vs the context, before the model loads
    writable_dir(output_dir, "output_dir")        # created last: a refused run leaves no folder behind
    args = grpo_args(config, output_dir)
    if args.use_vllm and args.vllm_mode == "colocate":
        _colocate_env()
    cls = wrap(trainer_class(config)) if wrap else trainer_class(config)
    main = int(os.environ.get("RANK", "0")) == 0          # one rank speaks for a torchrun launch
    for warning in plan.warnings if main else ():
        warn(warning)
    loading = f"loading {Path(model_path).name} as the policy (and TRL's trainer: reference model, rollout settings)"
    with status(loading, done="policy and trainer ready") if main else contextlib.nullcontext():
        model, tokenizer, model_path = load_policy(config.model, dtype)
        dataset, kind = build_dataset(config.task, tokenizer, data=config.data, limit=config.limit)
        extra: dict[str, Any] = {}
        if config.dynamic_sampling.enabled:
            extra["max_resample_times"] = config.dynamic_sampling.max_resample_times
        if config.algo == "sps":
            extra["sps"] = config.sps
        evaluator = EvaluateCheckpointCallback(config, base_model=str(model_path))
        trainer = cls(model=model, reward_funcs=reward_funcs(config, kind, args.max_completion_length), args=args,
                      train_dataset=dataset, processing_class=tokenizer, callbacks=[evaluator, *(callbacks or [])],
                      **extra)
    for callback in (evaluator, *(callbacks or [])):
        if hasattr(callback, "attach"):           # the evaluator logs through it; the progress view reads it
            callback.attach(trainer)
    if trainer.args.should_save:
        write_run_info(output_dir, config, str(model_path), plan=plan.as_dict())
    return trainer, evaluator


def check_plan(config: TrainConfig):
    """The run's schedule at the launcher's world size (an SPS plan without IRL phase stops here, before any
    weights load); a recipe's `world_size` must match the launch."""
    from spsbench.train.plan import make_plan

    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if config.world_size is not None and config.world_size != launched:
        raise ConfigError(f"{config.recipe}: world_size is {config.world_size} but this launch has {launched} "
                          "process(es); drop world_size (it is for --dry-run planning) or launch that many")
    return make_plan(config, world_size=launched)


def shutdown_distributed(wait: bool = True) -> None:
    """Tear the process group down before exit: left to interpreter shutdown, gloo's threads sometimes
    abort a rank ("terminate called without an active exception", exit -6) after training succeeded."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def train(config: TrainConfig, resume: str | bool | None = None, callbacks: list[Any] | None = None,
          wrap: Callable[[type], type] | None = None) -> RunSummary:
    """Run training to the end; returns what the CLI prints."""
    from spsbench.train.callbacks import refresh_leaderboard, update_run_info
    from spsbench.train.preempt import PreemptCallback, Preemption, catching, resume_point

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    preemption = Preemption()
    # The preemption checkpoint is not evaluated now (the job is being stopped); `spsbench eval RUN` later.
    stop = PreemptCallback(preemption, on_stop=lambda: setattr(config.eval, "enabled", False))
    trainer, evaluator = build_trainer(config, [stop, *(callbacks or [])], wrap=wrap)
    # With vLLM colocate, vLLM owns the process groups and destroys them itself at exit.
    owns_group = not trainer.use_vllm
    try:
        with catching(preemption):
            trainer.train(resume_from_checkpoint=resume_point(trainer.args.output_dir, resume))
    except BaseException:
        for callback in callbacks or ():
            if hasattr(callback, "close"):     # a live progress display must not outlive the run
                callback.close()
        if owns_group:
            shutdown_distributed(wait=False)     # a failed rank must not wait in a barrier for the others
        raise
    if owns_group:
        shutdown_distributed()
    output_dir = Path(trainer.args.output_dir)
    summary = RunSummary(output_dir=output_dir, run_name=config.run_name or "", steps=trainer.state.global_step,
                         checkpoints=sorted(p.name for p in output_dir.glob("checkpoint-*")),
                         sps_phases=list(trainer.irl_phases()), evaluations=evaluator.results,
                         base_evaluations=list(evaluator.base_results or []))
    if preemption.requested:
        summary.preempted, summary.exit_code = preemption.name, 128 + int(preemption.signum)
    if config.algo == "sps":
        summary.sps_report = trainer.phase_report()
        if summary.sps_report["shortfall"]:
            logger.warning("SPS: %s", summary.sps_report["shortfall"])
        if trainer.args.should_save:
            update_run_info(output_dir, sps=summary.sps_report)
    if evaluator.results:
        summary.leaderboard = refresh_leaderboard(
            config.eval.store, lambda msg: evaluator.record_failure("leaderboard", msg, step=summary.steps))
    summary.failures = list(evaluator.failures)
    summary.eval_mode = config.eval.mode if config.eval.enabled else "off"
    if trainer.args.should_save:
        update_run_info(output_dir, steps=summary.steps, failures=summary.failures)
    return summary
