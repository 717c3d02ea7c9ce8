"""`spsbench lab dynamics`: GRPO / SPS / DAPO / GSPO from one warmed-up base, several seeds each.

Each run is the product's trainer (`spsbench.train.run.build_trainer` via `train`) on a TrainConfig from
`load_config` (the algorithm's recipe + `recipes/lab/dynamics.yaml` + `--set` / `--sweep` values). After
each run, every checkpoint is measured exactly (`spsbench.lab.measure`) and the last one is also
evaluated by the product's `evaluate` (HF engine, sampled, graded by the math grader) into the lab store;
the base model too. A session record (which runs, which settings, wall times, machine load) is stored
last, and the page shows the latest session.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spsbench import paths
from spsbench.config import SamplingConfig
from spsbench.errors import ConfigError
from spsbench.evaluation.evaluate import evaluate
from spsbench.evaluation.records import EvalRequest, ModelTags
from spsbench.lab import record
from spsbench.lab.measure import measure
from spsbench.lab.settings import apply_overrides, parse_sweep, split_item
from spsbench.lab.warmup import WarmupConfig, base_model
from spsbench.models import weights_hash
from spsbench.store import Store
from spsbench.train.config import load_config, parse_override, read_yaml

ARMS = ("grpo", "sps", "dapo", "gspo")
RECIPE = "lab/dynamics.yaml"
EXACT = "lab.exact"
SESSION = "lab.session"


@dataclass
class DynamicsConfig:
    """Lab settings of the dynamics experiment (`--set lab.KEY=VALUE`)."""

    arms: list[str] = field(default_factory=lambda: ["grpo", "sps"])
    seeds: int = 3
    eval_n: int = 64               # sampled evaluation of the base and each run's last checkpoint
    eval_all: bool = False         # also the sampled evaluation of every intermediate checkpoint
    tau: float = 1e-3              # "non-negligible" mass of one correct trajectory

    def __post_init__(self) -> None:
        if isinstance(self.arms, str):
            self.arms = [a.strip() for a in self.arms.split(",") if a.strip()]
        bad = [a for a in self.arms if a not in ARMS]
        if bad or not self.arms:
            raise ConfigError(f"lab.arms: each must be one of {', '.join(ARMS)}, got {self.arms}")
        if self.seeds < 1 or self.eval_n < 1 or not 0 < self.tau < 1:
            raise ConfigError("lab: seeds >= 1, eval_n >= 1 and 0 < tau < 1 needed")


def split_overrides(items: list[str]) -> tuple[list[str], list[str], list[str]]:
    """--set items -> (lab.*, warmup.*, recipe keys)."""
    lab, warm, recipe = [], [], []
    for item in items:
        key, _ = split_item(item)
        (lab if key.startswith("lab.") else warm if key.startswith("warmup.") else recipe).append(item)
    return lab, warm, recipe


def recipe_overrides() -> list[str]:
    """recipes/lab/dynamics.yaml as `--set` items (so it layers exactly like `spsbench train --set`)."""

    return _flatten(read_yaml(paths.recipes_dir() / RECIPE))


def _flatten(mapping: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in mapping.items():
        if isinstance(value, dict) and key in ("rl", "sps", "eval", "dynamic_sampling"):
            out += _flatten(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={json.dumps(value)}")
    return out


def arm_config(arm: str, model: Path, seed: int, extra: list[str], run_name: str, output_dir: Path):
    """The TrainConfig of one run: algorithm recipe + lab overlay + user/sweep items + run identity."""

    algo, base = ("sps", "grpo") if arm == "sps" else (arm, None)
    items = [*recipe_overrides(), *extra, f"rl.seed={seed}", f"sps.seed={seed}", f"run_name={run_name}",
             f"output_dir={json.dumps(str(output_dir))}"]
    return load_config(algo, base, overrides=items, model=str(model))


def train_run(config, log_file: Path) -> tuple[Any, float]:
    """The product's `train` with TRL's per-step printing sent to the run's log file."""
    from spsbench.train.run import train

    shutil.rmtree(config.output_dir, ignore_errors=True)     # a rerun starts fresh, never resumes
    Path(config.output_dir).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log_file, "w", encoding="utf-8") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        summary = train(config)
    return summary, time.perf_counter() - start


def step_log(output_dir: Path) -> list[dict[str, float]]:
    """Per-step reward and entropy from the trainer's state (last checkpoint's trainer_state.json)."""
    states = sorted(output_dir.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    if not states:
        return []
    history = json.loads(states[-1].read_text())["log_history"]
    keep = ("reward", "entropy", "loss")
    return [{"step": h["step"], **{k: h[k] for k in keep if k in h}} for h in history if "reward" in h]


def measure_into(db, folder: Path, tags: dict[str, Any], tau: float) -> int:
    """Exact measures of `folder` as a diagnostic of its model row; returns the model id."""

    model_id = db.upsert_model(str(folder), weights_hash(str(folder)), **tags)
    exact = measure(folder, tau)
    db.add_diagnostic(model_id, "lab-sums", EXACT, exact["pass_at_k"]["256"], exact)
    return model_id


def sampled_eval(folder: Path, store: str | Path, tags: dict[str, Any] | None, n: int) -> None:
    """The product's evaluator: n samples per problem at temperature 1 (the policy's own distribution)."""

    sampling = SamplingConfig(n=n, temperature=1.0, top_p=1.0, max_tokens=10, seed=0)
    evaluate(EvalRequest(str(folder), ["lab-sums"], sampling, engine="hf", store=store, progress=False,
                         tags=ModelTags(**tags) if tags else None, grader_workers=1,
                         engine_options={"batch_size": 512, "dtype": "fp32"}))


def run_name(arm: str, seed: int, sweep: tuple[str, Any] | None) -> str:
    suffix = f"-{sweep[0]}={sweep[1]}" if sweep else ""
    return f"lab-{arm}-s{seed}{suffix}"


def one_run(db, store, arm: str, seed: int, base: Path, extra: list[str], sweep, cfg: DynamicsConfig,
            log) -> dict[str, Any]:
    name = run_name(arm, seed, sweep)
    out = paths.cache_dir() / "lab" / "runs" / name
    config = arm_config(arm, base, seed, extra, name, out)
    summary, seconds = train_run(config, out.parent / f"{name}.log")
    steps = []
    for ckpt in sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])):
        step = int(ckpt.name.split("-")[1])
        tags = {"run_name": name, "step": step, "algo": config.label, "base_model": str(base)}
        model_id = measure_into(db, ckpt, tags, cfg.tau)
        steps.append({"step": step, "model_id": model_id, "folder": str(ckpt)})
    for entry in steps if cfg.eval_all else steps[-1:]:
        sampled_eval(Path(entry["folder"]), store, {"run_name": name, "step": entry["step"], "algo": config.label,
                                                    "base_model": str(base)}, cfg.eval_n)
    log(f"{name}: {summary.steps} steps in {seconds:.1f} s, {len(steps)} checkpoints measured")
    settings = {"rl.learning_rate": config.rl.get("learning_rate"), "rl.max_steps": config.rl.get("max_steps"),
                "sps.irl_learning_rate": config.sps.irl_learning_rate if arm == "sps" else None}
    return {"run_name": name, "arm": arm, "algo": config.label, "seed": seed, "settings": settings,
            "sweep_value": sweep[1] if sweep else None, "train_seconds": seconds, "checkpoints": steps,
            "irl_steps": [p["step"] for p in summary.sps_phases], "log": step_log(out),
            "sps_phases": [{k: p[k] for k in ("step", "irl_loss_before", "irl_loss_after", "rel_weight_change",
                                              "from_negatives_share", "irl_time_share")} for p in summary.sps_phases]}


def run_dynamics(store: str | Path, cfg: DynamicsConfig, warm: WarmupConfig, extra: list[str],
                 sweep: tuple[str, list[Any]] | None = None, log=print) -> dict[str, Any]:
    """Every arm x seed (x sweep value) from one base; returns (and stores) the session record."""

    start, load_before = time.perf_counter(), os.getloadavg()
    Path(store).parent.mkdir(parents=True, exist_ok=True)
    base = base_model(warm, log=log)
    values = sweep[1] if sweep else [None]
    runs = []
    with Store(store) as db:
        base_id = measure_into(db, base, {}, cfg.tau)
        sampled_eval(base, store, None, cfg.eval_n)
        for value in values:
            items = [*extra, f"{sweep[0]}={json.dumps(value)}"] if sweep else list(extra)
            for arm in cfg.arms:
                for seed in range(cfg.seeds):
                    runs.append(one_run(db, store, arm, seed, base, items, (sweep[0], value) if sweep else None,
                                        cfg, log))
        session = {"lab": asdict(cfg), "warmup": asdict(warm), "overrides": extra, "recipe": RECIPE,
                   "sweep": {"key": sweep[0], "values": sweep[1]} if sweep else None, "base_model_id": base_id,
                   "runs": runs, "seconds": time.perf_counter() - start, "load_before": load_before,
                   "load_after": os.getloadavg(), "threads": _threads(), "cpus": os.cpu_count()}
        session_id = db.upsert_model("lab:dynamics", record.config_hash({k: v for k, v in session.items()
                                                                         if k not in ("seconds", "load_after")}))
        db.add_diagnostic(session_id, "lab-sums", SESSION, session["seconds"], session)
    return session


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def run_cli(console, store: str, args) -> dict[str, Any]:
    lab_items, warm_items, recipe_items = split_overrides(args.overrides)
    cfg = apply_overrides(DynamicsConfig, lab_items, "lab")
    if args.arms:
        cfg = DynamicsConfig(**{**asdict(cfg), "arms": args.arms})
    if args.seeds is not None:
        cfg = DynamicsConfig(**{**asdict(cfg), "seeds": args.seeds})
    warm = apply_overrides(WarmupConfig, warm_items, "warmup")
    sweep = parse_sweep(args.sweep) if args.sweep else None
    for item in [*recipe_items, *([f"{sweep[0]}=0"] if sweep else [])]:      # validate keys before any training

        parse_override(item)
    console.print(f"dynamics: arms {', '.join(cfg.arms)} x {cfg.seeds} seeds"
                  + (f" x {sweep[0]} in {sweep[1]}" if sweep else ""), highlight=False)
    return run_dynamics(store, cfg, warm, recipe_items, sweep, log=lambda m: console.print(m, highlight=False))
