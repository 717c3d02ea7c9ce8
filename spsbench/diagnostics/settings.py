"""The setting of a `spsbench diagnose` invocation (`DiagConfig`) and the `setting` record every stored
diagnostic carries: the store keeps one value per (model, task, metric), so the record is what tells a
later run whether a stored value can be reused and tells the leaderboards which values are comparable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spsbench.config import SamplingConfig
from spsbench.diagnostics.similarity import group_counts
from spsbench.engines import DEFAULT_ENGINE
from spsbench.errors import SpsbenchError
from spsbench.store import EvalRow
from spsbench.tasks import TaskSpec

SIMILARITY_FROM = ("auto", "eval", "sampled")
SAMPLES_FROM = ("auto", "fresh")
ENTROPY_TEMPERATURE = 1.0   # token entropy samples at temperature 1, as RL rollouts do


@dataclass(frozen=True)
class DiagConfig:
    """One `spsbench diagnose` invocation's setting (recorded with every diagnostic it writes)."""

    n: int = 4
    max_tokens: int = 256
    seed: int = 0
    limit: int | None = None
    similarity_from: str = "auto"     # auto: the stored evaluation's completions when there are any
    engine: str = DEFAULT_ENGINE      # the evaluation engine that generates (auto = vllm when installed)
    engine_options: dict[str, Any] = field(default_factory=dict)
    samples_from: str = "auto"        # auto: a stored evaluation sampled at the entropy setting is reused

    def __post_init__(self) -> None:
        if self.similarity_from not in SIMILARITY_FROM:
            raise SpsbenchError(f"similarity source must be one of {', '.join(SIMILARITY_FROM)}, "
                                f"got {self.similarity_from!r}")
        if self.samples_from not in SAMPLES_FROM:
            raise SpsbenchError(f"samples source must be one of {', '.join(SAMPLES_FROM)}, got {self.samples_from!r}")

    def sampling(self) -> SamplingConfig:
        """The entropy samples' sampling (the greedy completions override the temperature with 0)."""
        return SamplingConfig(n=self.n, temperature=ENTROPY_TEMPERATURE, max_tokens=self.max_tokens, seed=self.seed)


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
    engine: str | None = None,
) -> dict[str, Any]:
    """The `setting` entry of a diagnostic's details JSON, read back by the leaderboards.

    The store keeps one row per (model, task, metric), so a later `spsbench diagnose` with another
    --limit or --n replaces the earlier value: this record is what tells the pages which setting a
    value has, so that values with different settings are flagged instead of compared.
    """
    out = {
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
    return out | {"engine": engine} if engine is not None else out


def run_settings(spec: TaskSpec, cfg: DiagConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The settings of this invocation's greedy decoding and of its fresh (entropy) samples on a task."""
    common = {"problems": len(spec.problems), "max_tokens": cfg.max_tokens, "task_version": str(spec.spec.version),
              "limit": cfg.limit, "engine": engine_label(cfg)}
    return setting_details("greedy decoding", **common), setting_details(
        "fresh samples", **common, n=cfg.n, temperature=ENTROPY_TEMPERATURE, seed=cfg.seed)


def samples_setting(spec: TaskSpec, cfg: DiagConfig, ev: EvalRow) -> dict[str, Any]:
    """The setting of token entropy computed on a stored evaluation's completions."""
    return setting_details("eval samples", problems=len(spec.problems), max_tokens=cfg.max_tokens,
                           task_version=str(spec.spec.version), limit=cfg.limit, n=cfg.n,
                           temperature=ENTROPY_TEMPERATURE, eval_id=int(ev.id))


def eval_setting(groups: dict[str, list[str]], ev: EvalRow, spec: TaskSpec, cfg: DiagConfig) -> dict[str, Any]:
    """The setting of a similarity computed from a stored evaluation's completions."""
    sampling = getattr(ev, "sampling", None) or {}
    counts = group_counts(groups)
    return setting_details(
        "eval samples", problems=counts["problems"], max_tokens=sampling.get("max_tokens"),
        task_version=str(spec.spec.version), limit=cfg.limit, n=counts["completions_per_problem"],
        temperature=sampling.get("temperature"), eval_id=int(ev.id),
    )


def same_sampling(sampling: dict[str, Any], cfg: DiagConfig) -> bool:
    return (sampling.get("temperature") == ENTROPY_TEMPERATURE and sampling.get("top_p", 1.0) == 1.0
            and sampling.get("max_tokens") == cfg.max_tokens and not sampling.get("stop"))


def engine_label(cfg: DiagConfig) -> str:
    """The engine as asked for ('auto', 'hf dtype=fp32'): part of the setting, so a value generated with
    another engine or dtype is recomputed rather than reused (greedy paths can differ at near-ties)."""
    return " ".join([cfg.engine, *(f"{k}={v}" for k, v in sorted(cfg.engine_options.items()))])

