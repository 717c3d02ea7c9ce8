"""SQL of the results store: the schema (documented in README and docs/store.md), its version, the v3
backfill, and the column lists the `Store` reads. Data only; `spsbench.store` owns the behaviour.
"""

# PRAGMA user_version; bump with a migration when SCHEMA changes. 2 added `scored_problems` (a v1 store
# is upgraded in place on open: the new table is created, old evaluations read as "all stored problems").
# 3 added `eval_sessions`, the provenance history (an older store gains the table on open, with one
# 'upgrade' session per evaluation carrying the provenance it had kept and the samples stored so far).
# 4 added `run_failures` (what failed during a training run; an older store gains the empty table on open).
# 5 added `evaluations.task_digest` to the identity (the table is rebuilt on open, old rows get '' =
# legacy, claimed by the first run whose prompts match what they stored; see docs/store.md).
SCHEMA_VERSION = 5
BUSY_TIMEOUT_MS = 60_000         # how long a writer waits for another process's transaction

# Verdicts of another evaluator (e.g. an imported EvalScope run) beside ours, one per sample and source.
# Created IF NOT EXISTS by the first write (`Store.add_external_grades`) too, so an existing v3 store
# gains it without a version bump; readers treat a missing table as "no external verdicts".
EXTERNAL_GRADES = """
CREATE TABLE IF NOT EXISTS external_grades(
  eval_id INTEGER NOT NULL REFERENCES evaluations(id),
  problem_id TEXT NOT NULL,
  sample_idx INTEGER NOT NULL,
  source TEXT NOT NULL,            -- e.g. 'evalscope@1.14.1'
  extracted TEXT,                  -- the answer that evaluator extracted
  verdict TEXT NOT NULL,           -- correct | incorrect | or the evaluator's own status (e.g. excluded)
  PRIMARY KEY(eval_id, problem_id, sample_idx, source)
)"""

EVALUATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS {name}(
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
  task_digest TEXT NOT NULL DEFAULT '',   -- tasks.identity.task_digest, empty = legacy (v1-v4, not yet resumed)
  UNIQUE(model_id, task, task_version, grader_policy, sampling_key, task_digest)
);
"""

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
""" + EVALUATIONS_TABLE.format(name="evaluations") + """
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
CREATE TABLE IF NOT EXISTS scored_problems(   -- the problems the evaluation's current scores cover
  eval_id INTEGER NOT NULL REFERENCES evaluations(id),
  problem_id TEXT NOT NULL,
  PRIMARY KEY(eval_id, problem_id)
);
CREATE TABLE IF NOT EXISTS eval_sessions(     -- one row per run that opened the evaluation (v3)
  id INTEGER PRIMARY KEY,
  eval_id INTEGER NOT NULL REFERENCES evaluations(id),
  kind TEXT NOT NULL,              -- run | upgrade (made by the v3 upgrade from the old provenance_json)
  started_at TEXT NOT NULL,
  engine TEXT NOT NULL,            -- the engine this run used ('none' when it only rescored)
  n INTEGER NOT NULL,              -- n this run asked for
  provenance_json TEXT NOT NULL,   -- this run's engine.describe(), package versions, host, command line
  samples INTEGER NOT NULL DEFAULT 0,   -- samples this run stored (committed with them)
  min_idx INTEGER,                 -- smallest / largest sample index it stored (NULL: none)
  max_idx INTEGER,
  last_at TEXT                     -- when it last stored a sample
);
CREATE INDEX IF NOT EXISTS eval_sessions_by_eval ON eval_sessions(eval_id);
CREATE TABLE IF NOT EXISTS run_failures(      -- what failed during a training run (v4)
  id INTEGER PRIMARY KEY,
  run_name TEXT NOT NULL,
  step INTEGER,                    -- the checkpoint's global step (0: the base model, NULL: the run)
  model_path TEXT,                 -- the checkpoint or model being evaluated (NULL: the run)
  kind TEXT NOT NULL,              -- evaluation | leaderboard
  message TEXT NOT NULL,
  created_at TEXT NOT NULL
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
""" + EXTERNAL_GRADES + ";\n"

EVAL_COLUMNS = ("SELECT e.id, e.model_id, m.path, m.weights_hash, m.run_name, m.step, m.algo, m.base_model, "
                "e.task, e.task_version, e.grader_policy, e.sampling_json, e.n, e.engine, e.status, "
                "e.created_at, e.finished_at, e.task_digest FROM evaluations e JOIN models m ON m.id = e.model_id")
SESSION_COLUMNS = ("id", "eval_id", "kind", "started_at", "engine", "n", "provenance_json", "samples", "min_idx",
                   "max_idx", "last_at")
# Backfill for a store older than v3: one 'upgrade' session per evaluation from what it kept.
UPGRADE_SESSIONS = """
INSERT INTO eval_sessions(eval_id, kind, started_at, engine, n, provenance_json, samples, min_idx, max_idx,
                          last_at)
SELECT e.id, 'upgrade', e.created_at, e.engine, e.n, e.provenance_json, COUNT(s.sample_idx), MIN(s.sample_idx),
       MAX(s.sample_idx), MAX(s.created_at)
FROM evaluations e LEFT JOIN samples s ON s.eval_id = e.id
WHERE e.id NOT IN (SELECT eval_id FROM eval_sessions)
GROUP BY e.id
"""
# v4 -> v5: rebuild `evaluations` with task_digest in its UNIQUE key (SQLite cannot alter a constraint).
# Run with foreign keys off (the documented SQLite procedure); ids are kept, so samples etc. still match.
EVAL_V3_COLUMNS = ("id, model_id, task, task_version, grader_policy, sampling_key, sampling_json, n, engine, "
                   "provenance_json, status, created_at, finished_at")
REBUILD_EVALUATIONS = (
    EVALUATIONS_TABLE.format(name="evaluations_v4"),
    f"INSERT INTO evaluations_v4({EVAL_V3_COLUMNS}, task_digest) SELECT {EVAL_V3_COLUMNS}, '' FROM evaluations",
    "DROP TABLE evaluations",
    "ALTER TABLE evaluations_v4 RENAME TO evaluations",
)
SAMPLE_COLUMNS = ("problem_id", "sample_idx", "seed", "prompt", "completion", "prompt_tokens",
                  "completion_tokens", "finish_reason", "extracted", "outcome", "created_at")
