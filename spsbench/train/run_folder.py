"""A run folder belongs to one run: which run a folder holds, and what a training may do with it.

A run is identified by its run name, its algorithm (`sps+dapo`, `grpo`, ...), its base model and its recipe
digest: a sha256 over every setting that changes what is trained (task, data, limit, the `rl` section without
TRL's defaults, dynamic sampling, the `sps` section), after the rollout length is fitted to the context. Left
out, so that they may change between a run and its resume: where and how often it saves and logs, the
evaluation of its checkpoints, `sps.allow_no_irl`, and its length (`rl.max_steps`, `rl.num_train_epochs`; a
change is a warning, since the learning-rate schedule follows it). `spsbench_run.json` records the identity
with the settings, and each checkpoint's `spsbench_checkpoint.json` the run name and digest.

`check_folder` decides, reading only: a new run needs an empty or absent folder; a folder holding anything else
(another spsbench run, a plain TRL run, other files) is refused, and so is the same run again over its own
checkpoints (that is `--resume`). `--resume` continues only this run's own complete checkpoints, and not one
at or past the run's last step (it would train nothing). The plan and the run call it alike; the run again
under the folder's lock (`run_lock`), before it writes anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spsbench import paths
from spsbench.errors import ConfigError, TrainingError
from spsbench.quiet import warn
from spsbench.train.config import TrainConfig
from spsbench.train.rl_values import grpo_config_fields
from spsbench.train.run_lock import LOCK_FILE, busy_message, held, lock_owner
from spsbench.validate import writable_dir

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
COMPLETE = paths.CHECKPOINT_COMPLETE       # the trainer's last file in a checkpoint
TRAINER_STATE = "trainer_state.json"        # transformers' last file: completeness for runs before the marker
# rl keys that say where and how often a run saves, logs and waits, not what it trains
OPERATIONAL_RL = frozenset({
    "logging_steps", "logging_first_step", "logging_strategy", "logging_dir", "report_to", "save_steps",
    "save_strategy", "save_total_limit", "ddp_timeout", "dataloader_num_workers", "disable_tqdm", "log_completions",
    "num_completions_to_print", "log_level", "log_level_replica", "log_on_each_node", "output_dir", "run_name"})
DURATION_RL = ("max_steps", "num_train_epochs")
IDENTITY = (("run_name", "run name"), ("algo", "algorithm"), ("base_model", "base model"))


@dataclass
class FolderVerdict:
    """What `check_folder` found: the checkpoint to resume from (None: a new run) and warnings."""

    resume: Path | None = None
    resume_step: int | None = None
    warnings: list[str] = field(default_factory=list)


def recipe_settings(config: TrainConfig) -> dict[str, Any]:
    """The settings that decide what a run trains, flat (`rl.beta`), as JSON values (the digest's input)."""
    fields = grpo_config_fields()
    out: dict[str, Any] = {k: getattr(config, k) for k in ("algo", "base", "task", "data", "limit",
                                                           "optimizer_steps_per_generation")}
    for key, value in sorted((config.rl or {}).items()):
        if key not in OPERATIONAL_RL and key not in DURATION_RL and value != _field_default(fields[key]):
            out[f"rl.{key}"] = value
    for key in ("task", "data"):        # a file named from another working folder is the same file
        if isinstance(out[key], str) and Path(out[key]).is_file():
            out[key] = str(Path(out[key]).resolve())
    out |= {f"dynamic_sampling.{k}": v for k, v in dataclasses.asdict(config.dynamic_sampling).items()}
    if config.uses("sps"):
        out |= {f"sps.{k}": v for k, v in dataclasses.asdict(config.sps).items() if k != "allow_no_irl"}
    return json.loads(json.dumps(out, sort_keys=True, default=str))


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]


def run_identity(config: TrainConfig, base_model: str) -> dict[str, Any]:
    """What spsbench_run.json records to say which run a folder holds."""
    settings = recipe_settings(config)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()
    return {"run_name": config.run_name, "algo": config.label, "base": config.base, "base_model": str(base_model),
            "recipe_digest": digest, "settings": settings}


def read_run_record(folder: Path) -> dict[str, Any] | None:
    """The folder's spsbench_run.json (None: there is none); a damaged one is a one-line refusal."""
    path = Path(folder) / paths.RUN_INFO
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TrainingError(f"{path} is unreadable ({type(exc).__name__}): cannot tell which run {folder} holds; "
                            "train into another --output-dir") from None
    if not isinstance(record, dict):
        raise TrainingError(f"{path} is not a run record (a JSON {type(record).__name__}): cannot tell which run "
                            f"{folder} holds; train into another --output-dir")
    return record


def checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every checkpoint-N/ in `folder`, by step."""
    return sorted((int(m.group(1)), p) for p in Path(folder).glob("checkpoint-*")
                  if p.is_dir() and (m := CHECKPOINT_RE.match(p.name)))


def complete_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """The checkpoints whose save finished: those with the trainer's marker, or, in a run written before the
    marker existed, those with transformers' last file."""
    found = checkpoints(folder)
    marked = [(s, p) for s, p in found if (p / COMPLETE).is_file()]
    return marked or [(s, p) for s, p in found if (p / TRAINER_STATE).is_file()]


def check_folder(folder: Path, identity: dict[str, Any], resume: str | bool | None, max_steps: int,
                 planned: bool = False) -> FolderVerdict:
    """May this run (`identity`) train into `folder`, and from which checkpoint? One SpsbenchError line if not.
    `planned`: called by the plan. A lock held by a live training is refused here for both (before the run
    opens its log in the folder); `held_for_training` takes the lock itself, race-free."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"output_dir: {folder} is a file, not a folder")
    if folder.is_dir() and (owner := lock_owner(folder)):
        raise TrainingError(busy_message(folder, owner, None))
    if resume not in (None, True, False):
        _in_folder(folder, Path(str(resume)))
    # the lock and the run's log are ours, opened before the run writes anything else
    contents = sorted(p.name for p in folder.iterdir()
                      if p.name not in (LOCK_FILE, paths.TRAIN_LOG)) if folder.is_dir() else []
    if not contents:
        if resume:
            raise TrainingError(f"--resume: {folder} holds no run to resume (it is empty or does not exist)")
        return FolderVerdict()
    record = read_run_record(folder)
    if record is None:
        shown = ", ".join(contents[:4]) + (f", … ({len(contents)} entries)" if len(contents) > 4 else "")
        raise TrainingError(f"{folder} is not empty and holds no spsbench run (found {shown}): a run folder holds "
                            "one run; train into a new or empty --output-dir")
    verdict = FolderVerdict()
    _same_run(folder, record, identity, resume, verdict)
    if not resume:
        _no_checkpoints(folder, record, verdict)
        return verdict
    step, path = resume_checkpoint(folder, resume, verdict)
    _own_checkpoint(path, identity)
    if step >= max_steps:
        raise TrainingError(f"--resume: {path.name} is at step {step} and this run's max_steps is {max_steps}: "
                            "nothing is left to train; raise rl.max_steps (--set rl.max_steps=N) to continue it")
    old = (record.get("plan") or {}).get("max_steps") if isinstance(record.get("plan"), dict) else None
    if isinstance(old, int) and old != max_steps:
        verdict.warnings.append(f"{folder} was planned for {old} steps and now trains to {max_steps}: the "
                                f"learning-rate schedule follows the new length from step {step} on")
    verdict.resume, verdict.resume_step = path, step
    return verdict


def _same_run(folder: Path, record: dict[str, Any], identity: dict[str, Any], resume: Any,
              verdict: FolderVerdict) -> None:
    differ = [f"{what} {record.get(key)!r} there, {identity[key]!r} here" for key, what in IDENTITY
              if record.get(key) != identity[key]]
    if "recipe_digest" not in record:
        verdict.warnings.append(f"{folder}/{paths.RUN_INFO} predates recipe digests: only the run name, algorithm "
                                "and base model were compared")
    elif record["recipe_digest"] != identity["recipe_digest"] and not differ:   # (another algorithm: all differ)
        differ.append(f"settings {_changed(record.get('settings'), identity['settings'])}")
    if not differ:
        return
    held = f"{folder} holds the run {record.get('run_name')!r} ({record.get('algo')})"
    if resume:
        raise TrainingError(f"--resume: {held}, not this one ({'; '.join(differ)}): a run resumes only from its "
                            "own checkpoints, with its own recipe")
    raise TrainingError(f"{held}, not this one ({'; '.join(differ)}): a run folder holds one run; train into "
                        "another --output-dir")


def _changed(before: Any, now: dict[str, Any], shown: int = 4) -> str:
    if not isinstance(before, dict):
        return "differ (recipe digest)"
    keys = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    parts = [f"{k} {before.get(k)!r} -> {now.get(k)!r}" for k in keys[:shown]]
    return ", ".join(parts) + (f" and {len(keys) - shown} more" if len(keys) > shown else "")


def _no_checkpoints(folder: Path, record: dict[str, Any], verdict: FolderVerdict) -> None:
    """A new start of the same run may replace a run record without complete checkpoints, never its checkpoints."""
    found = checkpoints(folder)
    done = complete_checkpoints(folder)
    if done:
        raise TrainingError(f"{folder} already holds the run {record.get('run_name')!r} with {len(done)} "
                            f"checkpoint(s), the last at step {done[-1][0]}: continue it with --resume, or train "
                            "into another --output-dir (a new start would overwrite them)")
    if found:
        verdict.warnings.append(f"{folder}: starting the run again over {len(found)} checkpoint(s) whose save did "
                                f"not finish ({', '.join(p.name for _, p in found)}); they are replaced as it saves")


def resume_checkpoint(folder: Path, resume: str | bool, verdict: FolderVerdict) -> tuple[int, Path]:
    """(step, checkpoint) that `resume` (True: the newest complete one; else the path given) continues; a
    later checkpoint whose save did not finish is a note in `verdict.warnings`."""
    complete = complete_checkpoints(folder)
    if resume is True:
        if not complete:
            raise TrainingError(f"--resume: no complete checkpoint in {folder} to resume from; start the run again "
                                "without --resume")
        for step, p in checkpoints(folder):
            if step > complete[-1][0] and (step, p) not in complete:
                verdict.warnings.append(f"skipping {p.name}: its save did not finish (interrupted)")
        return complete[-1]
    path = Path(str(resume))
    m = _in_folder(folder, path)
    if path.resolve() not in {p.resolve() for _, p in complete}:
        raise TrainingError(f"--resume {resume}: its save did not finish (interrupted); resume from a complete one "
                            f"({', '.join(p.name for _, p in complete) or 'none in the folder'})")
    later = [p.name for s, p in complete if s > int(m.group(1))]
    if later:
        raise TrainingError(f"--resume {resume}: the run has later checkpoints ({', '.join(later)}), which resuming "
                            "from an earlier one would overwrite; continue from the last (--resume), or move them "
                            "out of the folder first")
    return int(m.group(1)), path


def _in_folder(folder: Path, path: Path) -> re.Match:
    """An explicit --resume CHECKPOINT must be a checkpoint-N/ folder of this run's folder."""
    m = CHECKPOINT_RE.match(path.name)
    if not path.is_dir() or not m:
        raise TrainingError(f"--resume {path}: not a checkpoint folder (checkpoint-N/)")
    if path.resolve().parent != folder.resolve():
        raise TrainingError(f"--resume {path}: not a checkpoint of this run's folder {folder}; a run resumes only "
                            f"from its own checkpoints (--output-dir {path.parent} continues the run it belongs to)")
    return m


def _own_checkpoint(path: Path, identity: dict[str, Any]) -> None:
    """A checkpoint that says it is another run's (copied in) is refused; one that says nothing (written
    before checkpoint records) is the folder's."""
    try:
        record = json.loads((path / paths.CHECKPOINT_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(record, dict):
        return
    for key in ("run_name", "recipe_digest"):
        if key in record and record[key] != identity[key]:
            raise TrainingError(f"--resume: {path} was written by another run ({key} {str(record[key])[:16]!r}, "
                                f"this run's {str(identity[key])[:16]!r}): a run resumes only from its own checkpoints")


def adopt_run_name(config: TrainConfig) -> None:
    """A resume into an explicit --output-dir without --run-name continues under the folder's run name."""
    if config.run_name is not None or not config.output_dir:
        return
    try:
        record = read_run_record(Path(config.output_dir))
    except TrainingError:
        return                               # check_folder says why, in its turn
    if record and isinstance(record.get("run_name"), str) and record["run_name"].strip():
        config.run_name = record["run_name"]


@contextlib.contextmanager
def held_for_training(folder: Path, identity: dict[str, Any], resume: str | bool | None,
                      max_steps: int) -> Iterator[None]:
    """The run folder locked for this training (rank 0; the other ranks of a launch share it) and checked again
    under the lock, so no other process wrote into it since the plan's check. A run refused or failed before
    it wrote its run record leaves no folder it created behind."""
    if int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    folder = Path(folder)
    made = missing_folders(folder)
    writable_dir(folder, "output_dir")
    try:
        with held(folder, on_note=warn):
            check_folder(folder, identity, resume, max_steps)
            yield
    except BaseException:
        discard_unstarted(folder, made)
        raise


def missing_folders(folder: Path) -> list[Path]:
    """`folder` and its parents that do not exist yet (innermost first): what creating it makes."""
    return [p for p in (folder, *folder.parents) if not p.exists()]


def discard_unstarted(folder: Path, made: list[Path]) -> None:
    """After a refused or failed start: when `folder` holds only our own files (the lock, the run's log), remove
    them and the folders of `made` left empty. A folder with anything else in it is the run's, and stays."""
    if not made or not folder.is_dir() or {p.name for p in folder.iterdir()} - {LOCK_FILE, paths.TRAIN_LOG}:
        return
    for name in (LOCK_FILE, paths.TRAIN_LOG):
        (folder / name).unlink(missing_ok=True)
    for path in made:                                 # innermost first; only folders left empty
        with contextlib.suppress(OSError):
            path.rmdir()
