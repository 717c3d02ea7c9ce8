"""A synthetic results store for leaderboard tests, golden files, docs and the leaderboard bench.

Owned by the leaderboard work. Rows are written with plain sqlite3 against `spsbench.store.SCHEMA`
(the documented contract) with fixed timestamps, so the same call always yields the same store and
therefore byte-identical leaderboards. Per-problem correct counts are drawn from a seeded RNG and all
scores are computed from them with the unbiased pass@k estimator, so the numbers are self-consistent.
Diagnostics carry the same `setting` record `spsbench diagnose` writes. With `model_root`, the run
folders' spsbench_run.json files (the trainer's, naming the training task) are written too.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sqlite3
from pathlib import Path

from spsbench.store import SCHEMA

STAMP = "2026-01-01T00:00:00"
BASE = "Qwen/Qwen2.5-Math-1.5B"
SAMPLING = {
    "temperature": 0.7,
    "top_p": 1.0,
    "max_tokens": 512,
    "seed": 0,
    "stop": [],
    "chat_template": "auto",
}


def _pass_at_k(n: int, c: int, k: int) -> float:
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


class _Writer:
    def __init__(self, path: Path) -> None:
        self.con = sqlite3.connect(path)
        self.con.executescript(SCHEMA)

    def model(self, path: str, *, run=None, step=None, algo=None, base=None) -> int:
        cur = self.con.execute(
            "INSERT INTO models(path, weights_hash, run_name, step, algo, base_model, created_at) "
            "VALUES (?,?,?,?,?,?,?)",
            # A hex digest like a real weights hash, independent of where the store was made.
            (path, hashlib.sha256(f"{Path(path).name}-{run}-{step}".encode()).hexdigest(), run, step, algo, base, STAMP),
        )
        return int(cur.lastrowid)

    def evaluation(
        self,
        model_id: int,
        task: str,
        rates: list[float],
        n: int,
        *,
        seed: int,
        temperature: float = 0.7,
        version: str = "1",
        flags: tuple[int, int, int] = (0, 0, 0),
        samples: list[list[str]] | None = None,
    ) -> int:
        sampling = dict(SAMPLING, temperature=temperature, n=n)
        cur = self.con.execute(
            "INSERT INTO evaluations(model_id, task, task_version, grader_policy, sampling_key,"
            " sampling_json, n, engine, provenance_json, status, created_at, finished_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                model_id,
                task,
                version,
                "strict-boxed-last",
                f"key-{temperature}",
                json.dumps(sampling),
                n,
                "hf",
                "{}",
                "done",
                STAMP,
                STAMP,
            ),
        )
        eval_id = int(cur.lastrowid)
        rng = random.Random(seed)
        correct = [sum(rng.random() < p for _ in range(n)) for p in rates]
        self._samples(eval_id, correct, n, flags, samples)
        self._scores(eval_id, correct, n)
        return eval_id

    def _samples(self, eval_id: int, correct: list[int], n: int, flags, texts) -> None:
        flag_outcomes = ["no_answer"] * flags[0] + ["grader_timeout"] * flags[1] + ["grader_error"] * flags[2]
        rows = []
        for p, c in enumerate(correct):
            for i in range(n):
                outcome = "correct" if i < c else "incorrect"
                if outcome == "incorrect" and p == 0 and i - c < len(flag_outcomes):
                    outcome = flag_outcomes[i - c]
                text = texts[p][i % len(texts[p])] if texts else f"answer {p} {i % 3}"
                rows.append(
                    (eval_id, f"p{p:02d}", i, i, f"problem {p}", text, 5, 20, "stop", None, outcome, STAMP)
                )
        self.con.executemany("INSERT INTO samples VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)

    def _scores(self, eval_id: int, correct: list[int], n: int) -> None:
        rows = [(eval_id, "avg@n", 0, *_with_ci([c / n for c in correct]), n)]
        k = 1
        while k <= n:
            rows.append((eval_id, "pass@k", k, *_with_ci([_pass_at_k(n, c, k) for c in correct]), n))
            k *= 2
        self.con.executemany("INSERT INTO scores VALUES (?,?,?,?,?,?,?)", rows)

    def diagnostic(self, model_id: int, task: str, metric: str, value: float, details: dict | None = None) -> None:
        self.con.execute(
            "INSERT OR REPLACE INTO diagnostics VALUES (?,?,?,?,?,?)",  # the store keys it the same way
            (model_id, task, metric, value, json.dumps(details or {"synthetic": True}, sort_keys=True), STAMP),
        )


def _with_ci(values: list[float]) -> tuple[float, float, float]:
    """Mean with a fixed-seed percentile bootstrap (200 resamples) over problems."""
    mean = sum(values) / len(values)
    rng = random.Random(0)
    boots = sorted(sum(rng.choice(values) for _ in values) / len(values) for _ in range(200))
    return mean, boots[4], boots[194]


def _setting(source: str, problems: int, **fields) -> dict:
    """Details JSON as `spsbench diagnose` writes it (same `setting` record, via the same function)."""
    from spsbench.diagnose import setting_details

    return {"synthetic": True, "setting": setting_details(
        source, problems=problems, max_tokens=SAMPLING["max_tokens"], task_version="1", limit=None, **fields
    )}


def _diagnostics(w: _Writer, model_id: int, task: str, eval_id: int, n: int, problems: int, level: float) -> None:
    """The three diagnostics of one model on one task, each with the setting diagnose would record;
    `level` in [0, 1] is how sharpened the model is (higher greedy log-prob, lower entropy, more similar)."""
    w.diagnostic(model_id, task, "greedy_logprob", -0.32 + 0.25 * level, _setting("greedy decoding", problems))
    fresh = _setting("fresh samples", problems, n=4, temperature=1.0, seed=0)
    w.diagnostic(model_id, task, "token_entropy", 0.64 - 0.4 * level, fresh)
    stored = _setting("eval samples", problems, n=n, temperature=SAMPLING["temperature"], eval_id=eval_id)
    w.diagnostic(model_id, task, "pairwise_similarity", 0.84 + 0.12 * level, stored)


def _run_folders(root: Path, plans: dict, task: str, base_model: str) -> None:
    """The trainer's spsbench_run.json per run (where the training task is recorded: not in the store)."""
    for run, (algo, *_) in plans.items():
        folder = root / "runs" / run
        folder.mkdir(parents=True, exist_ok=True)
        info = {"run_name": run, "algo": algo, "base_model": base_model, "task": task}
        (folder / "spsbench_run.json").write_text(json.dumps(info, indent=2) + "\n")


def synthetic_store(
    path: str | Path,
    *,
    n: int = 32,
    paper_n: int = 128,
    problems: int = 12,
    model_root: str | Path | None = None,
    base_model: str = BASE,
) -> Path:
    """Base model + a GRPO run and an SPS run (3 checkpoints each) on two tasks (aime25 at `paper_n`
    samples, as in the paper's Table 1; arith at `n`), a plain model, a non-comparable evaluation
    (temperature 1.0, half the samples), outcome flags, and diagnostics on both tasks, three of them with
    another setting (fewer problems, fresh samples, no setting recorded). Returns `path`.

    With `model_root`, checkpoint and plain-model paths are absolute under it (as the trainer and
    `spsbench diagnose` record them) and each run folder gets the trainer's spsbench_run.json
    (trained on arith); without it, paths are relative (`runs/<run>/checkpoint-<step>`) and no file is
    written outside `path`. `base_model` is the runs' base model (a hub id by default; a folder path
    tests how pages show a machine's absolute paths)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f"{Path(model_root).as_posix()}/" if model_root is not None else ""
    w = _Writer(path)
    # Two never-solved and one rarely-solved problem per task keep Pass@k below 100%.
    rates = {
        task: [0.0, 0.0, 0.02] + [((i * 37 + off) % 100) / 100 for i in range(problems - 3)]
        for task, off in (("aime25", 3), ("arith", 41))
    }
    task_n = {"aime25": paper_n, "arith": n}
    base = w.model(base_model)
    for t, task in enumerate(sorted(rates)):
        ev = w.evaluation(base, task, rates[task], task_n[task], seed=t, flags=(2, 1, 0))
        _diagnostics(w, base, task, ev, task_n[task], problems, 0.0)
    mids = {}
    plans = {"grpo-qwen": ("grpo", (0.04, 0.07, 0.05), -0.05), "sps-qwen": ("sps", (0.03, 0.08, 0.1), 0.02)}
    for run, (algo, gains, tail) in sorted(plans.items()):
        for s, step in enumerate((100, 200, 300)):
            lift = gains[s] if algo.startswith("sps") else 0.0  # SPS also finds the unsolved ones
            mid = mids[run, step] = w.model(
                f"{prefix}runs/{run}/checkpoint-{step}", run=run, step=step, algo=algo, base=base_model
            )
            for t, task in enumerate(sorted(rates)):
                # Training sharpens: easy problems rise, hard ones fall for GRPO (tail < 0).
                r = [
                    min(1.0, max(0.0, p + gains[s] + (tail if p < 0.3 else 0))) if p else lift
                    for p in rates[task]
                ]
                ev = w.evaluation(
                    mid, task, r, task_n[task], seed=100 * s + t + len(run), flags=(s, 0, int(algo == "sps"))
                )
                level = (s + 1) * (0.3 if algo == "grpo" else 0.08) + 0.01 * t
                _diagnostics(w, mid, task, ev, task_n[task], problems, level)
    # A second evaluation of one checkpoint at another temperature and n: must be flagged, not mixed.
    w.evaluation(mids["grpo-qwen", 300], "aime25", rates["aime25"], paper_n // 2, seed=7, temperature=1.0)
    plain = w.model(f"{prefix}models/other-7b" if prefix else "/models/other-7b")
    w.evaluation(plain, "aime25", [min(1.0, p + 0.1) for p in rates["aime25"]], paper_n, seed=9)
    # Diagnostics with another setting: they must be flagged in their column, not compared.
    w.diagnostic(mids["grpo-qwen", 100], "aime25", "greedy_logprob", -0.12, _setting("greedy decoding", problems // 2))
    w.diagnostic(mids["sps-qwen", 300], "arith", "pairwise_similarity", 0.41,
                 _setting("fresh samples", problems, n=4, temperature=1.0, seed=0))
    w.diagnostic(plain, "aime25", "greedy_logprob", -0.28)  # an old row: no setting recorded
    w.con.commit()
    w.con.close()
    if model_root is not None:
        _run_folders(Path(model_root), plans, "arith", base_model)
    return path


class SchemaReader:
    """Read-only stand-in for `spsbench.store.Store` reads, used only while Store is unimplemented."""

    def __init__(self, path: str | Path) -> None:
        self.con = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
        self.con.row_factory = sqlite3.Row

    def evaluations(self, status: str | None = "done"):
        from spsbench.store import EvalRow

        sql = (
            "SELECT e.*, m.path AS model_path, m.weights_hash, m.run_name, m.step, m.algo, m.base_model "
            "FROM evaluations e JOIN models m ON m.id = e.model_id"
        )
        rows = self.con.execute(
            sql + (" WHERE e.status = ?" if status else "") + " ORDER BY e.id", (status,) if status else ()
        ).fetchall()
        return [
            EvalRow(
                r["id"],
                r["model_id"],
                r["model_path"],
                r["weights_hash"],
                r["run_name"],
                r["step"],
                r["algo"],
                r["base_model"],
                r["task"],
                r["task_version"],
                r["grader_policy"],
                json.loads(r["sampling_json"]),
                r["n"],
                r["engine"],
                r["status"],
                r["created_at"],
                r["finished_at"],
            )
            for r in rows
        ]

    def scores(self, eval_id: int):
        from spsbench.store import ScoreRow

        rows = self.con.execute(
            "SELECT metric, k, value, ci_low, ci_high, n FROM scores WHERE eval_id=? ORDER BY metric, k",
            (eval_id,),
        ).fetchall()
        return [ScoreRow(*r) for r in rows]

    def problem_counts(self, eval_id: int):
        return self.con.execute(
            "SELECT problem_id, COUNT(*), SUM(outcome='correct') FROM samples WHERE eval_id=?"
            " GROUP BY problem_id ORDER BY problem_id",
            (eval_id,),
        ).fetchall()

    def outcome_counts(self, eval_id: int) -> dict[str, int]:
        return dict(
            self.con.execute(
                "SELECT outcome, COUNT(*) FROM samples WHERE eval_id=? GROUP BY outcome", (eval_id,)
            ).fetchall()
        )

    def samples(self, eval_id: int):
        for r in self.con.execute(
            "SELECT * FROM samples WHERE eval_id=? ORDER BY problem_id, sample_idx", (eval_id,)
        ):
            yield dict(r)

    def external_grades(self, eval_id: int):
        return []

    def diagnostics(self):
        return [
            dict(r) for r in self.con.execute("SELECT * FROM diagnostics ORDER BY model_id, task, metric")
        ]

    def close(self) -> None:
        self.con.close()
