"""Assemble and run a training run from a TrainConfig: model, prompts, reward, TRL config, trainer class.

The trainer class is the algorithm table's (`train.algorithms`): grpo / gspo -> SpsbenchGRPOTrainer (a recipe of
TRL settings), dapo -> DynamicSamplingTrainer (`dynamic_sampling.enabled`), sps -> the SPS layer over the base's
class.
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
from spsbench.errors import TrainingError, one_line
from spsbench.models import resolve_model
from spsbench.quiet import status
from spsbench.system import busy_cpus
from spsbench.train import algorithms
from spsbench.train.config import TrainConfig
from spsbench.train.data import build_dataset
from spsbench.train.preflight import Prepared, check_soft_overlong, prepare
from spsbench.train.reward import make_reward_fn
from spsbench.train.run_folder import held_for_training
from spsbench.validate import writable_dir

logger = logging.getLogger(__name__)
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
    """The trainer class a config runs with, from the algorithm table (a layer composes over its base's class)."""
    return algorithms.trainer_class(config.algo, config.base)


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

        check_soft_overlong(config, max_completion_length)      # prepare checked it: the plan says so too
        funcs.append(get_soft_overlong_punishment(max_completion_length, cache))
    return funcs


def _colocate_env() -> None:
    """vLLM colocate on CPU: the engine's environment, with OpenMP threads left to the training process
    (vLLM's own binding pins them, and torch then refuses `set_num_threads`)."""
    import torch

    if torch.cuda.is_available():
        return

    cpu_env_defaults(kv_space_gib=1)
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")


def build_trainer(config: TrainConfig, callbacks: list[Any] | None = None, dtype: str = "float32",
                  resume: str | bool | None = None, prepared: Prepared | None = None,
                  wrap: Callable[[type], type] | None = None):
    """(trainer, eval callback) ready to `.train()`; every user error is raised before loading weights, by the
    checks the plan makes too (`prepare`; `resume`: what `--resume` says, for the run folder's checks).
    `wrap` subclasses the trainer class the config selects (the squeezing lab's instrumented variants)."""
    from spsbench.train.callbacks import EvaluateCheckpointCallback, write_run_info

    if prepared is None:
        prepared = prepare(config, resume)
        prepared.say_warnings()
    output_dir, args, plan = prepared.output_dir, prepared.args, prepared.plan
    writable_dir(output_dir, "output_dir")        # created last: a refused run leaves no folder behind
    if args.use_vllm and args.vllm_mode == "colocate":
        _colocate_env()
    cls = wrap(trainer_class(config)) if wrap else trainer_class(config)
    main = int(os.environ.get("RANK", "0")) == 0          # one rank speaks for a torchrun launch
    loading = f"loading {Path(prepared.model_path).name} as the policy (and TRL's trainer: reference model, rollout settings)"
    with status(loading, done="policy and trainer ready") if main else contextlib.nullcontext():
        model, tokenizer, model_path = load_policy(config.model, dtype)
        dataset, kind = build_dataset(config.task, tokenizer, data=config.data, limit=config.limit)
        extra: dict[str, Any] = {}
        if config.dynamic_sampling.enabled:
            extra["max_resample_times"] = config.dynamic_sampling.max_resample_times
        for algorithm in config.algorithms:            # an algorithm's own section: the keyword of its name
            if algorithm.section:
                extra[algorithm.section] = getattr(config, algorithm.section)
        evaluator = EvaluateCheckpointCallback(config, base_model=str(model_path))
        trainer = cls(model=model, reward_funcs=reward_funcs(config, kind, args.max_completion_length), args=args,
                      train_dataset=dataset, processing_class=tokenizer, callbacks=[evaluator, *(callbacks or [])],
                      **extra)
    trainer.run_identity = {k: prepared.identity[k] for k in ("run_name", "algo", "recipe_digest")}
    for callback in (evaluator, *(callbacks or [])):
        if hasattr(callback, "attach"):           # the evaluator logs through it; the progress view reads it
            callback.attach(trainer)
    if trainer.args.should_save:
        write_run_info(output_dir, config, str(model_path), plan=plan.as_dict(), identity=prepared.identity)
    return trainer, evaluator


def shutdown_distributed(wait: bool = True) -> None:
    """Tear the process group down before exit: left to interpreter shutdown, gloo's threads sometimes
    abort a rank ("terminate called without an active exception", exit -6) after training succeeded."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def train(config: TrainConfig, resume: str | bool | None = None, callbacks: list[Any] | None = None,
          prepared: Prepared | None = None, wrap: Callable[[type], type] | None = None) -> RunSummary:
    """Run training to the end, holding the run folder's lock; returns what the CLI prints. `prepared`: the
    checks already made (`prepare(config, resume)`), or None to make them now."""
    prepared = prepared or prepare(config, resume)
    with held_for_training(prepared.output_dir, prepared.identity, resume, prepared.plan.max_steps):
        prepared.say_warnings()
        return _train(config, prepared, callbacks, wrap)


def _train(config: TrainConfig, prepared: Prepared, callbacks: list[Any] | None,
           wrap: Callable[[type], type] | None) -> RunSummary:
    from spsbench.train.callbacks import refresh_leaderboard, update_run_info
    from spsbench.train.preempt import PreemptCallback, Preemption, catching

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    preemption = Preemption()
    # The preemption checkpoint is not evaluated now (the job is being stopped); `spsbench eval RUN` later.
    stop = PreemptCallback(preemption, on_stop=lambda: setattr(config.eval, "enabled", False))
    trainer, evaluator = build_trainer(config, [stop, *(callbacks or [])], prepared=prepared, wrap=wrap)
    # With vLLM colocate, vLLM owns the process groups and destroys them itself at exit.
    owns_group = not trainer.use_vllm
    try:
        with catching(preemption):
            trainer.train(resume_from_checkpoint=str(prepared.folder.resume) if prepared.folder.resume else None)
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
    if config.uses("sps"):
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
