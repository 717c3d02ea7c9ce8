"""`spsbench diagnose`: the paper's diagnostics of squeezing and diversity, written into the results store.

Three metrics per (model, task), stored with `Store.add_diagnostic`:

* `greedy_logprob` (paper Table 6): each model greedily decodes every prompt; the value is the mean over
  prompts of the **per-token mean** log-probability of that greedy completion under the same model
  (raw logits, temperature 1; the EOS token counts when generated). The per-sequence sum is kept in
  details. Higher (less negative) = more probability squeezed onto the greedy path.
* `token_entropy`: mean entropy (nats) of the model's full next-token distribution (temperature 1) at
  every position of `n` sampled completions per prompt (sampled at temperature 1, as in RL rollouts),
  averaged over all sampled tokens. Lower = sharper policy.
* `pairwise_similarity` (paper Table 4): for each problem, the mean Jaccard similarity of the word
  3-gram sets of every pair of its completions, averaged over problems; in [0, 1], lower = more
  diverse. Computed from the completions already in the store when the model was evaluated on the task
  (same task version, same problems; no model needed), otherwise from the completions sampled for
  `token_entropy` (`--similarity-from` forces one source).

Every diagnostic's details JSON carries a `setting` (source, n, temperature, max_tokens, problems, limit,
task version, seed, evaluation id): the store keeps one value per (model, task, metric), so a later run
with another setting replaces an earlier one, and the leaderboards need the setting to flag values that
are not comparable.

The model statistics themselves live in `model_stats` (torch, imported lazily).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from spsbench.diagnostics.model_stats import LoadedModel, greedy_logprob, load_model, token_entropy
from spsbench.diagnostics.similarity import (
    group_counts,
    group_samples,
    similarity_by_problem,
)
from spsbench.errors import EngineError, SpsbenchError
from spsbench.evaluation.scan import checkpoints, run_tags
from spsbench.models import check_loadable, resolve_model, weights_hash
from spsbench.tasks import load_task

# ---------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    path: str
    run_name: str | None = None
    step: int | None = None
    algo: str | None = None
    base_model: str | None = None
    is_base: bool = False


def resolve_targets(target: str, known: Sequence[Any], base: str | None) -> list[Target]:
    """A run name in the store, a run folder with checkpoint-*/ subfolders, or one model; base model first."""
    found = [
        Target(m.path, m.run_name, m.step, m.algo, m.base_model)
        for m in sorted(known, key=lambda m: (m.step or 0, m.id))
        if m.run_name == target
    ]
    folder = Path(target)
    if not found and folder.is_dir():

        # The trainer's run info names the run, its algorithm and its base model (diagnosed alongside).
        tags = [(p, run_tags(folder, step)) for step, p in checkpoints(folder)]
        found = [Target(str(p.resolve()), t.run_name, t.step, t.algo, t.base_model) for p, t in tags]
    if not found:

        found = [Target(resolve_model(target))]
    bases = _base_targets(base, found)
    if base and bases:
        # --base names the base of checkpoints that carry no base_model tag (a run folder without the
        # trainer's spsbench_run.json): tag them, so the run page shows the base row beside them.
        found = [replace(t, base_model=bases[0].path) if t.run_name and not t.base_model else t for t in found]
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


def _model_id(store: Any, known: Sequence[Any], t: Target) -> int:
    """Reuse the store's row for this path (keeps its run tags); otherwise register the model."""
    for m in known:
        if m.path == t.path and (m.run_name == t.run_name or t.run_name is None):
            return int(m.id)

    digest = weights_hash(t.path) if Path(t.path).is_dir() else ""
    return int(
        store.upsert_model(
            t.path, digest, run_name=t.run_name, step=t.step, algo=t.algo, base_model=t.base_model
        )
    )


def _stored_completions(
    store: Any, model_id: int, task: str, version: str, problem_ids: Sequence[str]
) -> tuple[dict[str, list[str]], Any] | None:
    """Completions of this model's largest finished evaluation of `task` (same task version), grouped
    by problem and restricted to the problems the other diagnostics use (`--limit`)."""
    evals = [
        e
        for e in store.evaluations(status="done")
        if e.model_id == model_id and e.task == task and str(getattr(e, "task_version", version)) == version
    ]
    if not evals:
        return None
    ev = max(evals, key=lambda e: (e.n, -e.id))
    wanted = set(problem_ids)
    groups = {pid: texts for pid, texts in group_samples(store.samples(ev.id)).items() if pid in wanted}
    return groups, ev


# ---------------------------------------------------------------------------- orchestration

SIMILARITY_FROM = ("auto", "eval", "sampled")
ENTROPY_TEMPERATURE = 1.0   # token entropy samples at temperature 1, as RL rollouts do


@dataclass(frozen=True)
class DiagConfig:
    """One `spsbench diagnose` invocation's setting (recorded with every diagnostic it writes)."""

    n: int = 4
    max_tokens: int = 256
    seed: int = 0
    limit: int | None = None
    similarity_from: str = "auto"     # auto: the stored evaluation's completions when there are any


def setting_details(
    source: str,
    *,
    problems: int,
    max_tokens: int | None,
    task_version: str,
    limit: int | None,
    n: int | None = None,
    temperature: float | None = None,
    seed: int | None = None,
    eval_id: int | None = None,
) -> dict[str, Any]:
    """The `setting` entry of a diagnostic's details JSON, read back by the leaderboards.

    The store keeps one row per (model, task, metric), so a later `spsbench diagnose` with another
    --limit or --n replaces the earlier value: this record is what tells the pages which setting a
    value has, so that values with different settings are flagged instead of compared.
    """
    return {
        "source": source,  # greedy decoding | eval samples | fresh samples
        "n": n,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "problems": problems,
        "limit": limit,
        "task_version": task_version,
        "seed": seed,
        "eval_id": eval_id,
    }


@dataclass(frozen=True)
class DiagResult:
    path: str
    model_id: int
    task: str
    metric: str
    value: float
    details: dict[str, Any]
    reused: bool = False   # already in the store with this exact setting: not recomputed


def run_diagnostics(
    target: str,
    tasks: Sequence[str],
    store: Any,
    known: Sequence[Any],
    *,
    n: int = 4,
    data: dict[str, str] | None = None,
    limit: int | None = None,
    base: str | None = None,
    max_tokens: int = 256,
    seed: int = 0,
    similarity_from: str = "auto",
    progress: bool = True,
    force: bool = False,
) -> list[DiagResult]:
    """Compute the three diagnostics for every target model × task and add them to the store.

    A (model, task) whose three diagnostics are already stored with exactly this setting (same weights,
    n, max_tokens, seed, limit, task version, similarity source) is reused, not recomputed: diagnosing a
    second run from the same base model does not redo the base. `force` recomputes everything."""

    if similarity_from not in SIMILARITY_FROM:
        raise SpsbenchError(f"similarity source must be one of {', '.join(SIMILARITY_FROM)}, got {similarity_from!r}")
    cfg = DiagConfig(n, max_tokens, seed, limit, similarity_from)
    loaded = {t: load_task(t, data=(data or {}).get(t), limit=limit) for t in tasks}
    targets = resolve_targets(target, known, base)
    stored = {} if force else _stored_diagnostics(store)
    results: list[DiagResult] = []
    with _progress(progress, len(targets) * len(tasks)) as advance:
        for t in targets:
            model_id = _model_id(store, known, t)
            todo = {}
            for task, spec in loaded.items():
                kept = _reusable(stored, store, t.path, model_id, task, spec, cfg)
                if kept:
                    results += kept
                    advance(f"{Path(t.path).name} · {task} (stored)")
                else:
                    todo[task] = spec
            if not todo:
                continue
            if Path(t.path).is_dir():  # a partial checkpoint save -> one clear line, not a traceback
                check_loadable(t.path)
            lm = load_model(t.path)
            for task, spec in todo.items():
                results += _diagnose_one(store, lm, model_id, task, spec, cfg)
                advance(f"{Path(t.path).name} · {task}")
    return results


def _stored_diagnostics(store: Any) -> dict[tuple[int, str, str], dict[str, Any]]:
    """(model id, task, metric) -> stored diagnostic row."""
    return {(int(r["model_id"]), r["task"], r["metric"]): r for r in store.diagnostics()}


def _expected_settings(
    store: Any, model_id: int, task: str, spec: Any, cfg: DiagConfig
) -> dict[str, dict[str, Any]] | None:
    """The `setting` each metric would be stored with now; None when there would be no similarity
    (`--similarity-from eval` without a stored evaluation whose completions can be used)."""
    greedy, fresh = _run_settings(spec, cfg)
    out = {"greedy_logprob": greedy, "token_entropy": fresh}
    found = _usable_stored_completions(store, model_id, task, spec, cfg)
    if found is not None:
        return out | {"pairwise_similarity": _eval_setting(*found, spec, cfg)}
    return None if cfg.similarity_from == "eval" else out | {"pairwise_similarity": fresh}


def _reusable(
    stored: dict, store: Any, path: str, model_id: int, task: str, spec: Any, cfg: DiagConfig
) -> list[DiagResult] | None:
    """The stored diagnostics of (model, task) when all three have exactly the setting asked for."""
    if not stored:
        return None
    expected = _expected_settings(store, model_id, task, spec, cfg)
    rows = [stored.get((model_id, task, metric)) for metric in expected or ()]
    if not expected or any(r is None or r["details"].get("setting") != expected[r["metric"]] for r in rows):
        return None
    return [DiagResult(path, model_id, task, r["metric"], float(r["value"]), r["details"], reused=True)
            for r in rows]


def _diagnose_one(
    store: Any, lm: LoadedModel, model_id: int, task: str, spec: Any, cfg: DiagConfig
) -> list[DiagResult]:
    prompts = [p.prompt for p in spec.problems]
    g_setting, fresh = _run_settings(spec, cfg)
    greedy, g_details = greedy_logprob(lm, prompts, cfg.max_tokens)
    g_details["setting"] = g_setting
    entropy, e_details, sampled = token_entropy(lm, prompts, cfg.n, cfg.max_tokens, cfg.seed, ENTROPY_TEMPERATURE)
    e_details["setting"] = fresh
    out = [
        DiagResult(lm.path, model_id, task, "greedy_logprob", greedy, g_details),
        DiagResult(lm.path, model_id, task, "token_entropy", entropy, e_details),
    ]
    sim = _similarity(store, model_id, task, spec, sampled, cfg, fresh)
    if sim is not None:
        out.append(DiagResult(lm.path, model_id, task, "pairwise_similarity", *sim))
    for r in out:
        store.add_diagnostic(r.model_id, r.task, r.metric, r.value, r.details)
    return out


def _similarity(
    store: Any, model_id: int, task: str, spec: Any, sampled: list[list[str]], cfg: DiagConfig, fresh: dict
) -> tuple[float, dict[str, Any]] | None:
    """Pairwise similarity from the stored evaluation's completions (auto/eval) or the fresh samples.

    Which one is used is recorded in details (`source`, `setting`): the two differ in n and temperature,
    so the leaderboards flag a value whose source differs from the rest of its column."""
    found = _usable_stored_completions(store, model_id, task, spec, cfg)
    if found is not None:
        value, details = similarity_by_problem(found[0])
        return value, details | {"source": "store", "setting": _eval_setting(*found, spec, cfg)}
    if cfg.similarity_from == "eval":
        return None  # asked for the evaluation's completions and there are none: leave the metric out
    groups = {str(p.id): texts for p, texts in zip(spec.problems, sampled, strict=True)}
    if not any(len(v) > 1 for v in groups.values()):
        return None
    value, details = similarity_by_problem(groups)
    return value, details | {"source": "sampled for token_entropy", "setting": fresh}


def _run_settings(spec: Any, cfg: DiagConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The settings of this invocation's greedy decoding and of its fresh (entropy) samples on a task."""
    common = {"problems": len(spec.problems), "max_tokens": cfg.max_tokens, "task_version": str(spec.spec.version),
              "limit": cfg.limit}
    return setting_details("greedy decoding", **common), setting_details(
        "fresh samples", **common, n=cfg.n, temperature=ENTROPY_TEMPERATURE, seed=cfg.seed)


def _usable_stored_completions(
    store: Any, model_id: int, task: str, spec: Any, cfg: DiagConfig
) -> tuple[dict[str, list[str]], Any] | None:
    """The stored evaluation's completions similarity would use (auto/eval), if any problem has two."""
    if cfg.similarity_from == "sampled":
        return None
    found = _stored_completions(store, model_id, task, str(spec.spec.version), [str(p.id) for p in spec.problems])
    return found if found and any(len(v) > 1 for v in found[0].values()) else None


def _eval_setting(groups: dict[str, list[str]], ev: Any, spec: Any, cfg: DiagConfig) -> dict[str, Any]:
    """The setting of a similarity computed from a stored evaluation's completions."""
    sampling = getattr(ev, "sampling", None) or {}
    counts = group_counts(groups)
    return setting_details(
        "eval samples", problems=counts["problems"], max_tokens=sampling.get("max_tokens"),
        task_version=str(spec.spec.version), limit=cfg.limit, n=counts["completions_per_problem"],
        temperature=sampling.get("temperature"), eval_id=int(ev.id),
    )


class _progress:
    """Rich progress bar over model × task steps (silent when disabled)."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total, self.bar = enabled, total, None

    def __enter__(self):
        if self.enabled:
            from rich.progress import Progress

            self.bar = Progress(transient=True)
            self.bar.start()
            self.task = self.bar.add_task("diagnostics", total=self.total)
        return self.advance

    def advance(self, label: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=label)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
