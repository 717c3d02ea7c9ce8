"""The training schedule a recipe really produces, computed without loading a model: `spsbench train --dry-run`.

TRL 1.16's GRPOTrainer feeds the Trainer a dataloader over a `RepeatSampler` that cuts the shuffled prompts
into chunks of `generation_batch_size // num_generations` prompts and **drops the last partial chunk**;
each chunk is yielded `num_iterations x steps_per_generation` times, as per-rank batches of
`per_device_train_batch_size x steps_per_generation` completions. So one epoch is
`prompts // chunk x num_iterations x steps_per_generation` micro-steps on every rank, and transformers'
Trainer turns that into `ceil(micro-steps / gradient_accumulation_steps)` optimizer steps. The trainer uses
the same function on its resolved arguments, and a test checks it against the real dataloader's length.

Save steps follow transformers' DefaultFlowCallback (every `save_steps`, plus the last step); spsbench
evaluates each saved checkpoint. IRL phases run after every `sps.rl_steps_per_phase` optimizer steps.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from spsbench.errors import ConfigError
from spsbench.train.config import TrainConfig, grpo_config_fields


@dataclass(frozen=True)
class Geometry:
    """How completions are batched: what decides the dataloader's length."""

    world_size: int
    per_device: int                 # completions per micro-step on one rank
    grad_accum: int                 # micro-steps per optimizer step
    steps_per_generation: int       # micro-steps one generation batch feeds (TRL's unit)
    generation_batch: int           # completions per generation, over all ranks
    num_generations: int            # completions per prompt
    num_iterations: int             # passes over one generation batch

    @property
    def prompts_per_generation(self) -> int:
        return self.generation_batch // self.num_generations

    @classmethod
    def from_args(cls, args: Any, world_size: int) -> Geometry:
        """From a resolved GRPOConfig (TRL already filled steps_per_generation / generation_batch_size)."""
        return cls(world_size, args.per_device_train_batch_size, args.gradient_accumulation_steps,
                   args.steps_per_generation, args.generation_batch_size, args.num_generations, args.num_iterations)


def rl_value(config: TrainConfig, key: str) -> Any:
    """A GRPOConfig value as the run will see it: the recipe's, else TRL's default."""
    if key in config.rl:
        return config.rl[key]
    return grpo_config_fields()[key].default


def geometry(config: TrainConfig, world_size: int) -> Geometry:
    """GRPOConfig's batch resolution (trl 1.16 GRPOConfig.__post_init__) for `world_size` ranks."""
    per_device, accum = int(rl_value(config, "per_device_train_batch_size")), int(rl_value(config, "gradient_accumulation_steps"))
    spg, gen = rl_value(config, "steps_per_generation"), rl_value(config, "generation_batch_size")
    if config.optimizer_steps_per_generation is not None:
        spg = config.optimizer_steps_per_generation * accum
    if spg is None and gen is None:
        spg = accum
    if spg is None:
        if gen % (per_device * world_size):
            raise ConfigError(f"rl.generation_batch_size ({gen}) must be divisible by per_device_train_batch_size x "
                              f"world_size ({per_device * world_size})")
        spg = gen // (per_device * world_size)
    gen = per_device * world_size * int(spg)
    groups = int(rl_value(config, "num_generations"))
    if gen % groups:
        raise ConfigError(f"generation batch ({gen} completions over {world_size} rank(s)) must be divisible by "
                          f"rl.num_generations ({groups})")
    return Geometry(world_size, per_device, accum, int(spg), gen, groups, int(rl_value(config, "num_iterations")))


def steps_per_epoch(prompts: int, geo: Geometry) -> int:
    """Optimizer steps in one pass of TRL's dataloader over `prompts` prompts (partial chunk dropped)."""
    chunks = prompts // geo.prompts_per_generation
    if chunks == 0:
        raise ConfigError(f"the training set has {prompts} prompt(s), fewer than one generation batch "
                          f"({geo.prompts_per_generation} prompts): TRL's sampler would yield nothing")
    micro = chunks * geo.num_iterations * geo.steps_per_generation
    return -(-micro // geo.grad_accum)


def phase_length(setting: int | str, epoch_steps: int) -> int:
    """`sps.rl_steps_per_phase` in optimizer steps (`epoch` = one pass of the dataloader)."""
    return epoch_steps if setting == "epoch" else int(setting)


def irl_steps(phase: int, max_steps: int) -> list[int]:
    """Global steps after which an IRL phase runs (the phase clock fires on multiples of the phase length)."""
    return list(range(phase, max_steps + 1, phase))


@dataclass
class Plan:
    algo: str
    base: str | None
    prompts: int
    world_size: int
    steps_per_epoch: int
    max_steps: int
    rl_steps_per_phase: int | None
    rl_steps_per_phase_setting: int | str | None
    irl_phase_steps: list[int]
    save_steps: list[int]
    eval_steps: list[int]
    irl_sequences_per_phase: int | None
    irl_sequences_trained_per_phase: int | None
    generation_batch: dict[str, int]
    irl_steps_per_phase: int | None = None          # sps.irl_steps, `auto` resolved on the estimated selection
    irl_coverage: float | None = None               # share of the selection an IRL phase trains on
    # dynamic sampling: groups an `epoch` phase generates, from the dataloader and at most with refills
    groups_per_phase: dict[str, int] | None = None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def count_prompts(config: TrainConfig) -> int:
    """Training prompts the dataset will hold (task rows after `limit`), without a tokenizer or model."""
    from spsbench.tasks import load_task

    return len(load_task(config.task, data=config.data, limit=config.limit).problems)


def planned_world_size(config: TrainConfig) -> int:
    """The planned ranks: the recipe's `world_size`, else the launcher's WORLD_SIZE, else 1."""
    return config.world_size or int(os.environ.get("WORLD_SIZE", "1"))


def total_steps(config: TrainConfig, epoch_steps: int) -> int:
    steps = int(rl_value(config, "max_steps") or -1)
    return steps if steps > 0 else math.ceil(float(rl_value(config, "num_train_epochs")) * epoch_steps)


def save_steps(config: TrainConfig, epoch_steps: int, max_steps: int) -> list[int]:
    """Checkpoint steps as transformers' DefaultFlowCallback produces them."""
    strategy = str(rl_value(config, "save_strategy")).lower().split(".")[-1]
    if strategy == "no":
        return []
    if strategy == "epoch":
        every = epoch_steps
    else:
        every = float(rl_value(config, "save_steps"))
        every = math.ceil(max_steps * every) if every < 1 else int(every)
    steps = list(range(every, max_steps + 1, every))
    if strategy == "steps" and (not steps or steps[-1] != max_steps):
        steps.append(max_steps)          # transformers saves at the last step under the "steps" strategy
    return steps


def make_plan(config: TrainConfig, prompts: int | None = None, world_size: int | None = None) -> Plan:
    """The schedule of `config`; an SPS plan without any IRL phase is a ConfigError unless allowed."""
    prompts = count_prompts(config) if prompts is None else prompts
    geo = geometry(config, world_size or planned_world_size(config))
    per_rank = geo.per_device * geo.steps_per_generation
    if config.whole_groups and per_rank % geo.num_generations:
        raise ConfigError(f"{config.recipe}: rl: per_device_train_batch_size x steps_per_generation ({per_rank}) must "
                          f"be a multiple of num_generations ({geo.num_generations}) for SPS and dynamic sampling "
                          "(each rank must hold whole prompt groups)")
    epoch_steps = steps_per_epoch(prompts, geo)
    steps = total_steps(config, epoch_steps)
    saves = save_steps(config, epoch_steps, steps)
    plan = Plan(config.algo, config.base, prompts, geo.world_size, epoch_steps, steps, None, None, [], saves,
                saves if config.eval.enabled else [], None, None,
                {"completions": geo.generation_batch, "prompts": geo.prompts_per_generation,
                 "micro_steps": geo.steps_per_generation, "gradient_accumulation_steps": geo.grad_accum})
    dropped = prompts % geo.prompts_per_generation
    if dropped:
        plan.warnings.append(f"{dropped} of {prompts} prompts are never trained on in an epoch: TRL's sampler "
                             f"drops the last partial generation batch of {geo.prompts_per_generation} prompts")
    if not config.eval.enabled:
        plan.warnings.append("eval.enabled is false: no checkpoint is evaluated during training")
    if config.uses("sps"):
        _plan_sps(config, plan, geo)
    return plan


def _plan_sps(config: TrainConfig, plan: Plan, geo: Geometry) -> None:
    sps = config.sps
    length = phase_length(sps.rl_steps_per_phase, plan.steps_per_epoch)
    plan.rl_steps_per_phase, plan.rl_steps_per_phase_setting = length, sps.rl_steps_per_phase
    plan.irl_phase_steps = irl_steps(length, plan.max_steps)
    groups = groups_in_phase(length, geo)
    plan.irl_sequences_per_phase = groups * min(sps.sampling_size, geo.num_generations)
    _plan_coverage(config, plan)
    if config.dynamic_sampling.enabled:
        _plan_dynamic_sampling(config, plan, groups)
    if "rl_steps_per_phase" in config.sps_defaults:
        plan.warnings.append(f"sps.rl_steps_per_phase is not set by the recipe: the default 'epoch' gives "
                             f"{length} steps")
    others = [k for k in config.sps_defaults if k not in ("rl_steps_per_phase", "allow_no_irl")]
    if others:
        plan.warnings.append(f"sps keys at spsbench's defaults (no recipe layer sets them): {', '.join(others)}")
    if plan.irl_sequences_per_phase < sps.irl_batch_size:
        plan.warnings.append(f"an IRL phase selects ~{plan.irl_sequences_per_phase} sequences, fewer than one "
                             f"IRL batch (sps.irl_batch_size {sps.irl_batch_size}): every IRL step uses them all")
    tail = plan.max_steps - (plan.irl_phase_steps[-1] if plan.irl_phase_steps else 0)
    if plan.irl_phase_steps and tail:
        plan.warnings.append(f"the last {tail} steps (after the IRL phase at step {plan.irl_phase_steps[-1]}) are "
                             "RL only")
    if not plan.irl_phase_steps:
        what = (f"no IRL phase: sps.rl_steps_per_phase = {length} ({sps.rl_steps_per_phase}) > max_steps = "
                f"{plan.max_steps}, so this SPS run would be plain {config.base}")
        if not sps.allow_no_irl:
            raise ConfigError(f"{config.recipe}: {what}; lower sps.rl_steps_per_phase, raise rl.max_steps, or "
                              "--set sps.allow_no_irl=true")
        plan.warnings.append(what)


def _plan_coverage(config: TrainConfig, plan: Plan) -> None:
    """IRL steps and the share of L2TE's selection they train on (one process holding every selected row;
    several ranks with uneven selections cover a little less: the phase log records the real figure)."""
    sps, selected = config.sps, plan.irl_sequences_per_phase or 0
    auto = sps.irl_steps == "auto"
    plan.irl_steps_per_phase = max(1, -(-selected // sps.irl_batch_size) if auto else int(sps.irl_steps))
    # rows run through the IRL steps (a selection smaller than a batch is reused whole by every step)
    plan.irl_sequences_trained_per_phase = selected if auto else plan.irl_steps_per_phase * min(sps.irl_batch_size,
                                                                                                  selected)
    distinct = selected if auto else min(selected, plan.irl_steps_per_phase * sps.irl_batch_size)
    plan.irl_coverage = round(distinct / selected, 4) if selected else 1.0
    if plan.irl_coverage < 1:
        auto = -(-selected // sps.irl_batch_size)
        plan.warnings.append(
            f"IRL coverage {plan.irl_coverage:.0%}: an IRL phase trains on {plan.irl_sequences_trained_per_phase} "
            f"({sps.irl_steps} steps x {sps.irl_batch_size}) of the ~{selected} sequences L2TE selects, a random "
            f"subset; the rest are never imitated (sps.irl_steps: auto trains on each once: {auto} steps)")


def _plan_dynamic_sampling(config: TrainConfig, plan: Plan, groups: int) -> None:
    """SPS over DAPO: the phase is counted in dataloader batches; refills come on top of them."""
    rounds = config.dynamic_sampling.max_resample_times
    buffered = config.sps.dropped_groups == "buffer"
    plan.groups_per_phase = {"dataloader": groups, "at_most": groups * (1 + rounds)}
    plan.warnings.append(
        f"dynamic sampling: an IRL phase of {plan.rl_steps_per_phase} steps is one pass of the dataloader "
        f"({groups} prompt groups, each prompt once); refill rounds add up to {groups * rounds} groups drawn at "
        "random from the whole training set (repeats possible) and do not advance the dataloader; "
        + ("the groups dynamic sampling drops enter the IRL buffer too, so L2TE selects from "
           f"{groups}-{groups * (1 + rounds)} groups (coverage above counts the dataloader's)" if buffered else
           "the dropped groups do not enter the IRL buffer (sps.dropped_groups: skip)"))


def groups_in_phase(length: int, geo: Geometry) -> int:
    """Prompt groups the first RL phase generates (all ranks): generations in its micro-steps x prompts each."""
    every = geo.steps_per_generation * geo.num_iterations
    generations = -(-(length * geo.grad_accum) // every)
    return generations * geo.prompts_per_generation


# ----------------------------------------------------------------------------------------------------
# Two recipes side by side: `spsbench train --dry-run --config A --diff B`


def flat_settings(config: TrainConfig, rl_keys: set[str]) -> dict[str, Any]:
    """Every setting of `config` as `section.key` -> value, `rl` keys (`rl_keys`) resolved to TRL's defaults
    where the recipe leaves them out; the sps section only under algo sps (a baseline has none)."""
    out: dict[str, Any] = {name: getattr(config, name) for name in
                           ("algo", "base", "model", "task", "data", "limit", "world_size",
                            "optimizer_steps_per_generation", "run_name", "output_dir")}
    out |= {f"rl.{key}": rl_value(config, key) for key in sorted(rl_keys)}
    sections = ("dynamic_sampling", "eval") + tuple(a.section for a in config.algorithms if a.section)
    for section in sections:
        out |= {f"{section}.{k}": v for k, v in asdict(getattr(config, section)).items()}
    return out


def diff(a: TrainConfig, b: TrainConfig, prompts: int | None = None, world_size: int | None = None) -> dict[str, Any]:
    """What differs between two recipes: their resolved settings and their plans, key -> [A, B]."""
    keys = set(a.rl) | set(b.rl)
    fa, fb = flat_settings(a, keys), flat_settings(b, keys)
    settings = {k: [fa.get(k), fb.get(k)] for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)}
    pa, pb = (make_plan(c, prompts, world_size).as_dict() for c in (a, b))
    plan = {k: [pa[k], pb[k]] for k in pa if pa[k] != pb[k]}
    return {"a": a.recipe, "b": b.recipe, "settings": settings, "plan": plan}
