"""`spsbench lab dynamics`: named arms x paired seeds from peaked bases, probed exactly while they train.

Seed s of every arm starts from base s (its own warm-up: own favourites, own initial weights, so the base's
variability is inside the seed-level intervals) with `rl.seed = sps.seed = s`: the same data order and
the same rollout random stream wherever the arms agree. Each run is the product's trainer
(`spsbench.train.run.train` on `load_config(algo)` + `recipes/lab/dynamics.yaml` + the arm's recipe keys
+ `--set` / `--sweep` items), subclassed only to probe it (`spsbench.lab.trainer`). Seeds run in
`workers` processes (one torch thread each); a seed's job warms its base up, measures it and trains every
arm from it. The session (settings, every probe, timings, machine, load) goes to `results/lab/`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spsbench import paths
from spsbench.config import SamplingConfig
from spsbench.errors import ConfigError, TrainingError
from spsbench.lab import arms as lab_arms
from spsbench.lab import measure, record
from spsbench.lab.settings import apply_overrides, parse_sweep, parse_value, split_item
from spsbench.lab.trainer import Probes, compact, lab_trainer, stored
from spsbench.lab.warmup import WarmupConfig, base_model, describe, for_seed
from spsbench.train.algorithms import ALGORITHMS
from spsbench.train.config import load_config, parse_override, read_yaml
from spsbench.validate import number

if TYPE_CHECKING:                       # the trainer is imported when a run starts (`one_run`)
    from spsbench.train.run import RunSummary

RECIPE = "lab/dynamics.yaml"
DEFAULT_ARMS = ("grpo", "sps", "grpo-slow")
REFERENCE = "grpo"
VERSION = 2


@dataclass
class DynamicsConfig:
    """Lab settings of the dynamics experiment (`--set lab.KEY=VALUE`)."""

    arms: list[str] = field(default_factory=lambda: list(DEFAULT_ARMS))
    seeds: int = 6                 # paired seeds (seed s of every arm: base s, rl.seed = sps.seed = s)
    workers: int = 2               # processes running seeds side by side (one torch thread each)
    probe_every: int = 2           # exact probe every N steps (plus phase boundaries, before/after IRL)
    eval_n: int = 64               # the product evaluator's sampled cross-check of base 0 (0: none)
    tau: float = 1e-3              # "non-negligible" mass of one correct trajectory
    tag: str = ""                  # results/lab/dynamics-<tag>.json.gz (default: main, or from the arms)

    def __post_init__(self) -> None:
        if isinstance(self.arms, str):
            self.arms = [a.strip() for a in self.arms.split(",") if a.strip()]
        if not self.arms:
            raise ConfigError("lab.arms: name at least one arm")
        lab_arms.load_arms(self.arms)
        for name in ("seeds", "workers", "probe_every"):
            number(f"lab.{name}", getattr(self, name), low=1, integer=True)
        number("lab.eval_n", self.eval_n, low=0, integer=True)
        number("lab.tau", self.tau, low=0, low_open=True, high=1)
        if self.tag and (not self.tag.replace("-", "").replace("_", "").isalnum()):
            raise ConfigError(f"lab.tag: letters, digits, - and _ only, got {self.tag!r}")


@dataclass(frozen=True)
class Group:
    """One arm at one sweep value: what every seed trains."""

    arm: str
    sweep_key: str | None = None
    sweep_value: Any = None

    @property
    def label(self) -> str:
        return self.arm if self.sweep_key is None else f"{self.arm} {self.sweep_key}={self.sweep_value}"

    def items(self) -> list[str]:
        return [] if self.sweep_key is None else [f"{self.sweep_key}={json.dumps(self.sweep_value)}"]


def groups_of(arms: list[str], sweep: tuple[str, list[Any]] | None) -> list[Group]:
    """The arms (GRPO, the reference, always first; once, unswept, under a sweep) x sweep values."""
    others = [a for a in arms if a != REFERENCE]
    if sweep is None:
        return [Group(REFERENCE)] + [Group(a) for a in others]
    return [Group(REFERENCE)] + [Group(a, sweep[0], v) for v in sweep[1] for a in others]


def split_overrides(items: list[str]) -> tuple[list[str], list[str], list[str]]:
    """--set items -> (lab.*, warmup.*, recipe keys)."""
    lab, warm, recipe = [], [], []
    for item in items:
        key, _ = split_item(item)
        (lab if key.startswith("lab.") else warm if key.startswith("warmup.") else recipe).append(item)
    return lab, warm, recipe


def recipe_overrides() -> list[str]:
    """recipes/lab/dynamics.yaml as `--set` items (so it layers exactly like `spsbench train --set`)."""
    return lab_arms.flatten(read_yaml(paths.recipes_dir() / RECIPE))


def arm_config(group: Group, model: Path, seed: int, extra: list[str], run_name: str, output_dir: Path):
    """The TrainConfig of one run: algorithm recipe + lab overlay + arm + user/sweep items + run identity."""
    arm = lab_arms.load_arm(group.arm)
    base = ALGORITHMS[arm.algo].default_base           # an SPS arm is over GRPO (a `--set base=` disagrees)
    items = [*recipe_overrides(), *arm.overrides(), *extra, *group.items(), f"rl.seed={seed}", f"sps.seed={seed}",
             f"run_name={run_name}", f"output_dir={json.dumps(str(output_dir))}"]
    return load_config(arm.algo, base, overrides=items, model=str(model))


def boundary(config) -> int:
    """Steps per phase (the SPS IRL period; GRPO arms are probed at the same steps, so phases line up)."""
    period = config.sps.rl_steps_per_phase
    steps = int(config.rl.get("max_steps", 0))
    return period if isinstance(period, int) and period <= steps else max(steps, 1)


def run_name(group: Group, seed: int, tag: str) -> str:
    suffix = "" if group.sweep_key is None else f"-{group.sweep_key}={group.sweep_value}"
    return f"lab-{tag}-{group.arm}-s{seed}{suffix}"


def check_configs(groups: list[Group], extra: list[str], tag: str) -> int:
    """Every run's recipe resolved before any training (a bad key fails in a second); returns max_steps."""
    steps = set()
    for group in groups:
        config = arm_config(group, Path("base"), 0, extra, run_name(group, 0, tag), Path("unused"))
        steps.add(int(config.rl.get("max_steps", 0)))
        if config.uses("sps") and boundary(config) >= int(config.rl.get("max_steps", 0)) + 1:
            raise ConfigError(f"lab arm {group.label}: no IRL phase within rl.max_steps")
    if len(steps) != 1 or min(steps) < 1:
        raise ConfigError(f"lab: every arm must train the same number of steps >= 1, got {sorted(steps)}")
    return steps.pop()


def shadowed(groups: list[Group], extra: list[str]) -> list[str]:
    """`--set` / `--sweep` keys that replace an arm's own setting (`--set rl.learning_rate=...` makes
    grpo-slow as fast as grpo): said on the terminal, since the arm then no longer is what it is named for."""
    given = {split_item(item)[0] for item in extra}
    out = []
    for group in groups:
        own = {split_item(item)[0] for item in lab_arms.load_arm(group.arm).overrides()}
        for key in sorted(own & (given | ({group.sweep_key} if group.sweep_key else set()))):
            out.append(f"arm {group.label}: {key} from --set/--sweep replaces the arm's own value "
                       f"(recipes/lab/arms/{group.arm}.yaml)")
    return out


# ---------------------------------------------------------------------------------------------- one seed


@dataclass
class SeedJob:
    seed: int
    tag: str
    groups: list[Group]
    extra: list[str]
    warm: WarmupConfig
    cfg: DynamicsConfig
    store: str


def _print(message: str) -> None:
    print(message, flush=True)            # a worker process's lines reach the terminal as they happen


def run_seed(job: SeedJob, log=_print) -> dict[str, Any]:
    """Warm base `seed` up, measure it, train every group from it with probes; returns the seed's record."""
    start = time.perf_counter()
    warm = for_seed(job.warm, job.seed)
    folder = base_model(warm, log=log)
    model, tok = measure.load(folder)
    layout = measure.Layout(tok)
    raw = measure.probe(model, layout, job.cfg.tau)
    base = {"warmup": asdict(warm), **describe(warm), "probe": stored(raw, 0, "base"),
            "leak": [compact(v) for v in measure.leak(model, tok)], "seconds": time.perf_counter() - start}
    if job.seed == 0 and job.cfg.eval_n:
        base["sampled"] = sampled_eval(folder, job.store, job.cfg.eval_n)
    runs = [one_run(job, group, folder, layout, raw, log) for group in job.groups]
    return {"seed": job.seed, "base": base, "runs": runs, "seconds": time.perf_counter() - start}


def one_run(job: SeedJob, group: Group, base: Path, layout, raw: dict[str, Any], log) -> dict[str, Any]:
    from spsbench.train.run import train

    name = run_name(group, job.seed, job.tag)
    out = paths.cache_dir() / "lab" / "runs" / name
    config = arm_config(group, base, job.seed, job.extra, name, out)
    arm = lab_arms.load_arm(group.arm)
    probes = Probes(layout, raw, job.cfg.probe_every, boundary(config), job.cfg.tau)
    shutil.rmtree(out, ignore_errors=True)      # a rerun starts fresh, never resumes
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(out / paths.TRAIN_LOG, "w", encoding="utf-8") as fh, contextlib.redirect_stdout(fh), \
            contextlib.redirect_stderr(fh):
        summary = train(config, wrap=lab_trainer(arm.advantages, probes))
    seconds = time.perf_counter() - start
    if summary.preempted:                       # Ctrl-C / SIGTERM: the product's trainer stopped at a step
        raise TrainingError(f"{name}: stopped by {summary.preempted} at step {summary.steps}; session not saved")
    log(f"{name}: {summary.steps} steps in {seconds:.1f} s, {len(probes.points)} probes")
    for warning in run_warnings(summary):           # the trainer's own log went to the run's log file
        log(f"warning: {name}: {warning}")
    return {"arm": group.arm, "label": group.label, "sweep_value": group.sweep_value, "seed": job.seed,
            "steps": summary.steps, "train_seconds": seconds, "points": probes.points,
            "settings": {"rl.learning_rate": config.rl.get("learning_rate"), "rl.max_steps": config.rl.get("max_steps"),
                         "phase": boundary(config),
                         "sps.irl_learning_rate": config.sps.irl_learning_rate if config.uses("sps") else None},
            "irl": [{k: p[k] for k in ("step", "irl_loss_before", "irl_loss_after", "rel_weight_change",
                                       "from_negatives_share", "irl_time_share")} for p in summary.sps_phases],
            "log": probes.log, "advantages": probes.advantages}


def run_warnings(summary: RunSummary) -> list[str]:
    """What the product's trainer warned about during a run (IRL phases below the weights' resolution,
    IRL phases that did not run), so it reaches the terminal although TRL's output goes to the log file."""
    out = [f"SPS phase at step {p['step']}: IRL changed the weights by {p['rel_weight_change']:.1e} (relative), "
           "below the resolution of the weights" for p in summary.sps_phases if p.get("below_resolution")]
    if summary.sps_report and summary.sps_report.get("shortfall"):
        out.append(f"SPS: {summary.sps_report['shortfall']}")
    return out


def sampled_eval(folder: Path, store: str | Path, n: int) -> dict[str, float]:
    """The product's evaluator on a base: n samples per problem at temperature 1, into the lab store."""
    from spsbench.evaluation.evaluate import evaluate
    from spsbench.evaluation.records import EvalRequest

    sampling = SamplingConfig(n=n, temperature=1.0, top_p=1.0, max_tokens=measure.MAX_NEW, seed=0)
    Path(store).parent.mkdir(parents=True, exist_ok=True)
    result = evaluate(EvalRequest(str(folder), ["lab-sums"], sampling, engine="hf", store=store, progress=False,
                                  grader_workers=1, engine_options={"batch_size": 512, "dtype": "fp32"}))[0]
    return record.sampled_record(result.scores, n, compact)


# ---------------------------------------------------------------------------------------------- session


def _init_worker() -> None:
    import torch

    if not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(1)


def execute(jobs: list[SeedJob], workers: int, log) -> list[dict[str, Any]]:
    """Every seed's job, in `workers` processes (1: in this process), results in seed order."""
    if workers <= 1 or len(jobs) == 1:
        return [run_seed(job, log) for job in jobs]
    done: dict[int, dict[str, Any]] = {}
    pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=get_context("spawn"),
                               initializer=_init_worker)
    try:
        futures = {pool.submit(run_seed, job): job.seed for job in jobs}
        for future in as_completed(futures):
            done[futures[future]] = future.result()
            log(f"seed {futures[future]} done ({len(done)} of {len(jobs)})")
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)        # a failed seed or Ctrl-C stops the session
        raise
    pool.shutdown(wait=True)
    return [done[j.seed] for j in jobs]


def default_tag(cfg: DynamicsConfig, sweep, recipe_items: list[str]) -> str:
    if cfg.tag:
        return cfg.tag
    if list(cfg.arms) == list(DEFAULT_ARMS) and sweep is None and not recipe_items:
        return record.MAIN_TAG
    tag = "-".join(a for a in cfg.arms if a != REFERENCE) or REFERENCE
    if sweep:
        tag += f"-sweep-{sweep[0].replace('.', '_')}"
    if recipe_items:
        tag += f"-{record.config_hash({'set': recipe_items})[:8]}"
    return tag


def run_dynamics(data_dir: str | Path, store: str | Path, cfg: DynamicsConfig, warm: WarmupConfig,
                 extra: list[str], sweep: tuple[str, list[Any]] | None = None, log=print) -> dict[str, Any]:
    """Every group x seed; returns (and writes to `data_dir`) the session record."""
    clock = record.Clock()
    tag = default_tag(cfg, sweep, extra)
    groups = groups_of(cfg.arms, sweep)
    max_steps = check_configs(groups, extra, tag)
    for warning in shadowed(groups, extra):
        log(f"warning: {warning}")
    jobs = [SeedJob(s, tag, groups, extra, warm, cfg, str(store)) for s in range(cfg.seeds)]
    seeds = execute(jobs, cfg.workers, log)
    session = {"version": VERSION, "tag": tag, "lab": asdict(cfg), "warmup": asdict(warm), "overrides": extra,
               "recipe": RECIPE, "max_steps": max_steps,
               "sweep": {"key": sweep[0], "values": sweep[1]} if sweep else None,
               "groups": [{"arm": g.arm, "label": g.label, "sweep_value": g.sweep_value,
                           **lab_arms.load_arm(g.arm).as_dict()} for g in groups],
               "seeds": seeds, **clock.stop(), "workers": min(cfg.workers, cfg.seeds)}
    record.save_session(data_dir, session)
    return session


def parse_cli(args) -> tuple[DynamicsConfig, WarmupConfig, list[str], tuple[str, list[Any]] | None]:
    lab_items, warm_items, recipe_items = split_overrides(args.overrides)
    cfg = apply_overrides(DynamicsConfig, lab_items, "lab")
    updates = {k: v for k, v in (("arms", args.arms), ("seeds", args.seeds), ("tag", args.tag),
                                 ("workers", args.workers)) if v is not None}
    if updates:
        cfg = DynamicsConfig(**{**asdict(cfg), **updates})
    warm = apply_overrides(WarmupConfig, warm_items, "warmup")
    sweep = parse_sweep(args.sweep) if args.sweep else None
    for item in [*recipe_items, *([f"{sweep[0]}=0"] if sweep else [])]:      # validate keys before any training
        parse_override(item)
    for item in recipe_items:
        finite(item, parse_value(split_item(item)[1]))
    for value in sweep[1] if sweep else []:
        finite(f"--sweep {args.sweep}", value)
    return cfg, warm, recipe_items, sweep


def finite(where: str, value: Any) -> None:
    """Refuse nan / inf (a number or its YAML spelling) before anything trains on it."""
    if isinstance(value, float) and not math.isfinite(value) or (
            isinstance(value, str) and value.strip().lower().lstrip("+-.") in ("nan", "inf", "infinity")):
        raise ConfigError(f"{where}: must be a finite number, got {value}")


def run_cli(console, data_dir: str, store: str, args) -> dict[str, Any]:
    cfg, warm, recipe_items, sweep = parse_cli(args)
    groups = groups_of(cfg.arms, sweep)
    console.print(f"dynamics: {', '.join(g.label for g in groups)} x {cfg.seeds} paired seeds, "
                  f"{min(cfg.workers, cfg.seeds)} worker process(es)", highlight=False)
    return run_dynamics(data_dir, store, cfg, warm, recipe_items, sweep,
                        log=lambda m: console.print(m, highlight=False))
