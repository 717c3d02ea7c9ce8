"""What `spsbench diagnose` diagnoses: a run name in the store, a run folder with checkpoint-*/ subfolders,
or one model; the run's base model first, and each model's row in the store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from spsbench.errors import EngineError
from spsbench.evaluation.scan import checkpoints, run_tags
from spsbench.models import resolve_model, weights_hash
from spsbench.store import ModelRow, ModelTags, Store
from spsbench.store.rows import Tagged


@dataclass(frozen=True)
class Target(Tagged):
    """A model to diagnose, with its training tags (`target.run_name` etc. read them)."""

    path: str
    tags: ModelTags = field(default_factory=ModelTags)
    is_base: bool = False


def resolve_targets(target: str, known: Sequence[ModelRow], base: str | None) -> list[Target]:
    """A run name in the store, a run folder with checkpoint-*/ subfolders, or one model; base model first."""
    found = [
        Target(m.path, m.tags)
        for m in sorted(known, key=lambda m: (m.step or 0, m.id))
        if m.run_name == target
    ]
    folder = Path(target)
    if not found and folder.is_dir():

        # The trainer's run info names the run, its algorithm and its base model (diagnosed alongside).
        tags = [(p, run_tags(folder, step)) for step, p in checkpoints(folder)]
        found = [Target(str(p.resolve()), t) for p, t in tags]
    if not found:

        found = [Target(resolve_model(target))]
    bases = _base_targets(base, found)
    if base and bases:
        # --base names the base of checkpoints that carry no base_model tag (a run folder without the
        # trainer's spsbench_run.json): tag them, so the run page shows the base row beside them.
        found = [replace(t, tags=replace(t.tags, base_model=bases[0].path)) if t.run_name and not t.base_model
                 else t for t in found]
    return bases + found


def _base_targets(explicit: str | None, found: list[Target]) -> list[Target]:
    """--base, else the run's recorded base model when it can be loaded here (a hub id may not be cached)."""

    if explicit:
        return [Target(resolve_model(explicit), is_base=True)]
    recorded = next((t.base_model for t in found if t.base_model), None)
    if recorded is None:
        return []
    try:
        return [Target(resolve_model(recorded), is_base=True)]
    except EngineError:
        return []


def store_model_id(store: Store, known: Sequence[ModelRow], t: Target) -> int:
    """Reuse the store's row for this path (keeps its run tags); otherwise register the model."""
    for m in known:
        if m.path == t.path and (m.run_name == t.run_name or t.run_name is None):
            return int(m.id)

    digest = weights_hash(t.path) if Path(t.path).is_dir() else ""
    return int(store.upsert_model(t.path, digest, t.tags))

