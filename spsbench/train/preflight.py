"""Everything a training run can refuse, refused before the first weight loads, by the plan and the run alike.

`prepare` is the one path `spsbench train --dry-run` and the run both take, so the plan accepts exactly what the
run accepts and plans the steps the run trains. The recipe sections and the `rl` values validate themselves
when parsed (`train.config`, `train.rl_values`); `prepare` adds what needs other layers, in this order: the
model (resolved, and a local folder complete), the run name and folder, the training task and every
evaluation task loaded as specs with their local data files readable, the evaluation settings the callback
will send (its SamplingConfig, the engine and its options: what `EvalRequest` runs; the trainer reaches the
evaluator only through its callback), the store path usable, the launch's world size, the rollout length
against the policy's context (with its tokenizer: a length that does not fit is clamped with a warning),
TRL's GRPOConfig itself, the schedule (`train.plan`), and the run folder (`train.run_folder`: one run per
folder, `--resume` only from its own checkpoints and only when steps are left).

A plan for another launch (`--dry-run --set world_size=32` on a laptop; the run here would refuse that world
size) builds GRPOConfig as that launch would, and a model that is not on this machine is a plan warning
instead of an error: everything else is checked as the run checks it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spsbench import paths
from spsbench.config import SamplingConfig
from spsbench.engines import check_engine_options
from spsbench.errors import ConfigError, EngineError, StoreError
from spsbench.models import DEFAULT_MODEL_NAME, check_loadable, gguf_path, resolve_model
from spsbench.quiet import warn
from spsbench.tasks import load_spec
from spsbench.train import algorithms
from spsbench.train.args import grpo_args
from spsbench.train.budget import WHAT, rollout_budget
from spsbench.train.config import TrainConfig
from spsbench.train.plan import Plan, make_plan
from spsbench.train.reward import check_kind
from spsbench.train.run_folder import FolderVerdict, adopt_run_name, check_folder, run_identity
from spsbench.validate import existing_file, output_file


@dataclass
class Prepared:
    """A run checked before any weight loads: what the run builds its trainer from, and what the plan prints."""

    model_path: str
    output_dir: Path
    args: Any                         # TRL's GRPOConfig
    plan: Plan
    identity: dict[str, Any]          # run name, algorithm, base model, recipe digest and its settings
    folder: FolderVerdict             # the checkpoint to resume from, if any
    warnings: list[str] = field(default_factory=list)   # besides the schedule's own (also in plan.warnings)

    def say_warnings(self) -> None:
        """The run's warnings (the schedule's and the checks'), once, from rank 0, through spsbench's one
        warning path (terminal and train.log); the plan lists them instead."""
        if int(os.environ.get("RANK", "0")) == 0:
            for line in self.plan.warnings:
                warn(line)

    def as_dict(self) -> dict[str, Any]:
        """The plan as `--dry-run` prints it: the schedule, then the run it belongs to."""
        resume = self.folder.resume
        return self.plan.as_dict() | {
            "run_name": self.identity["run_name"], "output_dir": str(self.output_dir),
            "recipe_digest": self.identity["recipe_digest"], "resume_from": str(resume) if resume else None,
            "resume_step": self.folder.resume_step,
            "steps_to_train": self.plan.max_steps - (self.folder.resume_step or 0)}


def prepare(config: TrainConfig, resume: str | bool | None = None, *, plan_only: bool = False) -> Prepared:
    """Check everything and resolve the run; one SpsbenchError line for anything the run would refuse. The run
    says the warnings once it holds the folder (`Prepared.say_warnings`); the plan lists them. Mutates `config`
    as the run does (names, a clamped rollout length)."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    world = config.world_size or launched
    here = world == launched
    for algorithm in config.algorithms:           # what an algorithm cannot run (SPS: DeepSpeed, FSDP1)
        if algorithm.check:
            algorithms.load_object(algorithm.check)(config)
    if resume not in (None, True, False) and not config.output_dir:
        config.output_dir = str(Path(str(resume)).parent)       # --resume DIR/checkpoint-N continues DIR's run
    adopt_run_name(config)
    warnings = list(config.notes)
    model_path, model_here = _model(config, plan_only, here, warnings)
    output_dir = fill_names(config, model_path)
    preflight(config, output_dir, model_path)     # tasks, eval settings, engine options, paths
    if not plan_only:
        check_launch(config)
    if model_here:
        _fit_rollouts(config, model_path, warnings)
    args = grpo_args(config, output_dir, None if here else world)
    check_reward_settings(config, args)
    plan = make_plan(config, world_size=world)    # the schedule (IRL phases that fire), from the real data size
    identity = run_identity(config, model_path)
    folder = check_folder(output_dir, identity, resume, plan.max_steps, planned=plan_only)
    warnings += folder.warnings
    plan.warnings += warnings
    return Prepared(model_path, output_dir, args, plan, identity, folder, warnings)


def check_launch(config: TrainConfig) -> int:
    """The launch's world size, which a recipe's `world_size` must match (it is for planning elsewhere)."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if config.world_size is not None and config.world_size != launched:
        raise ConfigError(f"{config.recipe}: world_size is {config.world_size} but this launch has {launched} "
                          "process(es); drop world_size (it is for --dry-run planning) or launch that many")
    return launched


def check_reward_settings(config: TrainConfig, args: Any) -> None:
    """What TRL's trainer checks about its reward functions when it is built, after the model loads: checked now.
    The grader is reward function 1; DAPO's soft overlong punishment, when on, function 2."""
    check_soft_overlong(config, args.max_completion_length)
    overlong = config.dynamic_sampling.enabled and config.dynamic_sampling.soft_overlong_cache is not None
    funcs = 1 + overlong
    if args.reward_weights is not None and len(args.reward_weights) != funcs:
        raise ConfigError(f"rl.reward_weights: {len(args.reward_weights)} weight(s) for {funcs} reward function(s) "
                          "(the grader" + (", DAPO's soft overlong punishment)" if overlong else ")"))
    if getattr(args, "sync_ref_model", False) and not args.beta:
        raise ConfigError("rl.sync_ref_model: true needs a reference model, and rl.beta is 0 (no reference model)")


def check_soft_overlong(config: TrainConfig, max_completion_length: int) -> None:
    """DAPO's soft overlong punishment ramps over the last `soft_overlong_cache` tokens of the rollout length."""
    cache = config.dynamic_sampling.soft_overlong_cache
    if cache is not None and config.dynamic_sampling.enabled and cache >= max_completion_length:
        raise ConfigError(f"{config.recipe}: dynamic_sampling.soft_overlong_cache ({cache}) must be smaller "
                          f"than rl.max_completion_length ({max_completion_length})")


def fill_names(config: TrainConfig, model_path: str) -> Path:
    """Default run name and run folder."""
    if config.run_name is None:
        config.run_name = f"{config.label}-{Path(str(model_path).rstrip('/')).name}"
    return Path(config.output_dir or Path("runs") / config.run_name)


def _model(config: TrainConfig, plan_only: bool, here: bool, warnings: list[str]) -> tuple[str, bool]:
    """(path or hub id, whether it is here to check). Resolving the embedded default converts it on first
    use (weights): a plan only checks that its source is installed. A model missing here is an error, except
    in a plan for another launch."""
    if config.model is None and plan_only:
        final = paths.cache_dir() / "models" / DEFAULT_MODEL_NAME
        if not (final / "config.json").is_file():
            gguf_path()
            warnings.append("the embedded default model is converted on first use: its context was not checked")
            return str(final), False
    try:
        return resolve_model(config.model), True
    except EngineError as exc:
        if here or not plan_only:
            raise
        warnings.append(f"model not checked on this machine ({exc}); the run checks it before loading")
        return str(config.model), False


def _fit_rollouts(config: TrainConfig, model_path: str, warnings: list[str]) -> None:
    """Prompt + completion vs the policy's context: a length that does not fit is clamped (warned), a prompt
    that alone fills the context is a BudgetError."""
    budget = rollout_budget(config, model_path=model_path)
    if budget.clamped:
        warnings.append(budget.warning(f"{config.task}: {WHAT}").removeprefix("spsbench: warning: "))
        config.rl = {**(config.rl or {}), "max_completion_length": budget.effective}


def preflight(config: TrainConfig, output_dir: Path, model_path: str) -> None:
    """Raise one SpsbenchError line for anything that would fail later in the run."""
    spec = load_spec(config.task)
    check_kind(spec.grader, spec.name)           # the task's grader gives the reward
    if config.data is not None:
        existing_file(config.data, "data")
    if Path(model_path).is_dir():
        check_loadable(model_path)
    if config.eval.enabled:
        check_eval(config)


def check_eval(config: TrainConfig) -> SamplingConfig:
    """The checks `EvalRequest` makes when the callback builds it, made now; returns the sampling."""
    ev = config.eval
    specs = {name: load_spec(name) for name in ev.tasks}
    known = {spec.name for spec in specs.values()} | set(ev.tasks)
    unused = sorted(set(ev.data) - known)
    if unused:
        raise ConfigError(f"eval.data: {', '.join(unused)} is not among eval.tasks ({', '.join(ev.tasks)})")
    for name, path in ev.data.items():
        existing_file(path, f"eval.data.{name}")
    store = Path(ev.store) if ev.store else paths.default_store_path()
    output_file(store, "eval.store", error=StoreError)
    check_engine_options(ev.engine, dict(ev.engine_options))
    return SamplingConfig(n=ev.n, temperature=ev.temperature, top_p=ev.top_p, max_tokens=ev.max_tokens, seed=ev.seed)
