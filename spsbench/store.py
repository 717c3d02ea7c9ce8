"""Results store: one SQLite file (WAL) holding every sample, every aggregate and their provenance.

CONTRACT (owned by the eval/store work; the leaderboard and trainer rely on the schema and methods):
the schema below is documented in README; reads used by leaderboards go through the `Store` methods.
Crash safety: samples are committed in small transactions as they are graded; (eval_id, problem_id,
sample_idx) is the primary key, so a resumed run can neither lose nor duplicate a committed sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS models(
  id INTEGER PRIMARY KEY,
  path TEXT NOT NULL,              -- folder, hub id, or '<base_url>#<served name>'
  weights_hash TEXT NOT NULL,      -- sha256 over weight files ('' when not local)
  run_name TEXT,                   -- training run this checkpoint belongs to (NULL for plain models)
  step INTEGER,                    -- global step of the checkpoint (NULL for plain models)
  algo TEXT,                       -- grpo | dapo | gspo | sps | sps+dapo ... (NULL for plain models)
  base_model TEXT,                 -- model the run started from (for SPS-vs-GRPO comparisons)
  created_at TEXT NOT NULL,
  UNIQUE(path, weights_hash)
);
CREATE TABLE IF NOT EXISTS evaluations(
  id INTEGER PRIMARY KEY,
  model_id INTEGER NOT NULL REFERENCES models(id),
  task TEXT NOT NULL,
  task_version TEXT NOT NULL,
  grader_policy TEXT NOT NULL,
  sampling_key TEXT NOT NULL,      -- SamplingConfig.key(): everything but n
  sampling_json TEXT NOT NULL,
  n INTEGER NOT NULL,              -- samples per problem requested (largest so far)
  engine TEXT NOT NULL,
  provenance_json TEXT NOT NULL,   -- engine.describe(), package versions, host, spsbench version
  status TEXT NOT NULL,            -- running | done
  created_at TEXT NOT NULL,
  finished_at TEXT,
  UNIQUE(model_id, task, task_version, grader_policy, sampling_key)
);
CREATE TABLE IF NOT EXISTS samples(
  eval_id INTEGER NOT NULL REFERENCES evaluations(id),
  problem_id TEXT NOT NULL,
  sample_idx INTEGER NOT NULL,
  seed INTEGER NOT NULL,
  prompt TEXT NOT NULL,
  completion TEXT NOT NULL,
  prompt_tokens INTEGER,
  completion_tokens INTEGER,
  finish_reason TEXT,
  extracted TEXT,
  outcome TEXT NOT NULL,           -- correct | incorrect | no_answer | grader_timeout | grader_error
  created_at TEXT NOT NULL,
  PRIMARY KEY(eval_id, problem_id, sample_idx)
);
CREATE TABLE IF NOT EXISTS scores(
  eval_id INTEGER NOT NULL REFERENCES evaluations(id),
  metric TEXT NOT NULL,            -- 'avg@n' (k=0) | 'pass@k' | 'chance_pass@k' | 'count:<outcome>' (k=0)
  k INTEGER NOT NULL,
  value REAL NOT NULL,
  ci_low REAL,
  ci_high REAL,
  n INTEGER NOT NULL,              -- samples per problem the score was computed from
  PRIMARY KEY(eval_id, metric, k)
);
CREATE TABLE IF NOT EXISTS diagnostics(
  model_id INTEGER NOT NULL REFERENCES models(id),
  task TEXT NOT NULL,
  metric TEXT NOT NULL,            -- 'greedy_logprob' | 'token_entropy' | 'pairwise_similarity' | ...
  value REAL NOT NULL,
  details_json TEXT NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY(model_id, task, metric)
);
"""


@dataclass(frozen=True)
class SampleRow:
    problem_id: str
    sample_idx: int
    seed: int
    prompt: str
    completion: str
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None
    extracted: str | None
    outcome: str


@dataclass(frozen=True)
class EvalRow:
    id: int
    model_id: int
    model_path: str
    weights_hash: str
    run_name: str | None
    step: int | None
    algo: str | None
    base_model: str | None
    task: str
    task_version: str
    grader_policy: str
    sampling: dict[str, Any]        # SamplingConfig.to_dict() (with the evaluation's n)
    n: int
    engine: str
    status: str
    created_at: str
    finished_at: str | None


@dataclass(frozen=True)
class ScoreRow:
    metric: str
    k: int
    value: float
    ci_low: float | None
    ci_high: float | None
    n: int


class Store:
    """Open (creating if needed) the store at `path`. Safe for several processes at once (WAL)."""

    def __init__(self, path: str | Path) -> None:
        raise NotImplementedError

    # -- writes -------------------------------------------------------------------------------
    def upsert_model(self, path: str, weights_hash: str, *, run_name: str | None = None,
                     step: int | None = None, algo: str | None = None, base_model: str | None = None) -> int: ...
    def begin_evaluation(self, model_id: int, task: str, task_version: str, grader_policy: str,
                         sampling: Any, engine: str, provenance: dict[str, Any]) -> int: ...
    def add_samples(self, eval_id: int, rows: Iterable[SampleRow]) -> int: ...   # INSERT OR IGNORE; returns inserted
    def finish_evaluation(self, eval_id: int, scores: list[ScoreRow]) -> None: ...
    def add_diagnostic(self, model_id: int, task: str, metric: str, value: float, details: dict) -> None: ...

    # -- reads --------------------------------------------------------------------------------
    def done_samples(self, eval_id: int) -> set[tuple[str, int]]: ...
    def evaluations(self, status: str | None = "done") -> list[EvalRow]: ...
    def scores(self, eval_id: int) -> list[ScoreRow]: ...
    def problem_counts(self, eval_id: int) -> list[tuple[str, int, int]]: ...   # (problem_id, n, correct)
    def outcome_counts(self, eval_id: int) -> dict[str, int]: ...
    def samples(self, eval_id: int) -> Iterator[dict[str, Any]]: ...
    def diagnostics(self) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...
