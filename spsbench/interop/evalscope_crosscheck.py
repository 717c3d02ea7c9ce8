"""`spsbench crosscheck evalscope`: our stored samples reviewed by EvalScope itself, verdict by verdict.

For each selected evaluation the stored completions are written as an EvalScope prediction tree with
the task's rows as local data (index = problem position * n + sample index, in our problem order),
EvalScope's review runs on it in its own venv (`evalscope_review.py`, offline), and the result is
compared with ours: verdict agreement, and Pass@k for every k from three estimates: ours on our
verdicts, ours on EvalScope's verdicts, EvalScope's aggregator on its verdicts (the last two see the
same verdicts, so they must agree to 1e-9; on identical verdicts all three do). EvalScope's verdicts
are stored in `external_grades`, so `spsbench results --disagreements` lists the samples that differ.

Multiple-choice tasks go through EvalScope's `general_mcq` benchmark with our options and gold letter:
its `gpqa_diamond` adapter re-shuffles the options with its own seed, so the letters in our completions
would be graded against other options (EvalScope issue #1579).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spsbench.errors import TaskError
from spsbench.interop import InteropError
from spsbench.leaderboards.external import agree, counts_by_problem, passk
from spsbench.store import EvalRow, Store
from spsbench.tasks import Problem, TaskSpec, load_spec
from spsbench.tasks import sources as task_data
from spsbench.tasks.sources import build_problems

# our task -> (EvalScope benchmark, local data file, row builder name)
CROSS_BENCH = {"aime24": ("aime24", "test.jsonl", "math"), "aime25": ("aime25", "test.jsonl", "math"),
               "hmmt_feb25": ("hmmt25", "train.jsonl", "math"), "brumo25": ("hmmt25", "train.jsonl", "math"),
               "hmmt_nov25": ("hmmt_nov25", "train.jsonl", "math"), "math500": ("math_500", "test.jsonl", "level"),
               "gpqa_diamond": ("general_mcq", "default_val.jsonl", "mc"),
               "mmlu": ("general_mcq", "default_val.jsonl", "mc")}
MODEL_FOLDER = "spsbench"
TIMEOUT_S = 1800
_REPO = Path(__file__).resolve().parents[2]


@dataclass
class CrossReport:
    eval_id: int
    task: str
    model: str
    bench: str
    evalscope_version: str
    samples: int
    agree: int
    passk: dict[int, dict[str, float]] = field(default_factory=dict)   # k -> {ours, ours_on_theirs, theirs}
    disagreements: list[dict[str, Any]] = field(default_factory=list)


def evalscope_python(explicit: str | None = None) -> Path:
    """EvalScope's interpreter: --python, $SPSBENCH_EVALSCOPE_PYTHON, or the repository's .venv-evalscope."""
    path = Path(explicit or os.environ.get("SPSBENCH_EVALSCOPE_PYTHON") or _REPO / ".venv-evalscope" / "bin" / "python")
    if not path.is_file():
        raise InteropError(f"EvalScope's venv not found ({path}): run `make setup-evalscope` (EvalScope pins "
                           "datasets<=4.8.4, so it cannot share .venv), or pass --python")
    return path


def crosscheck(db: Store, evals: list[EvalRow], *, data: dict[str, str] | None = None, python: str | None = None,
               work: str | Path | None = None) -> list[CrossReport]:
    """Review each evaluation's samples with EvalScope and compare; nothing is written until all succeed."""
    exe = evalscope_python(python)
    if not evals:
        raise InteropError("no finished evaluation matches (see `spsbench results`)")
    base = Path(work) if work else Path(tempfile.mkdtemp(prefix="spsbench-crosscheck-"))
    reports = [_one(db, ev, (data or {}).get(ev.task), exe, base / f"eval-{ev.id}") for ev in evals]
    return reports


def _one(db: Store, ev: EvalRow, data: str | None, exe: Path, work: Path) -> CrossReport:
    if ev.task not in CROSS_BENCH:
        raise InteropError(f"evaluation {ev.id}: task {ev.task!r} has no EvalScope crosscheck (supported: "
                           f"{', '.join(sorted(CROSS_BENCH))})")
    bench, data_file, kind = CROSS_BENCH[ev.task]
    spec, problems, rows = _task_rows(ev, data)
    samples = _samples(db, ev, problems)
    order = _write_tree(work, (bench, data_file, kind), spec.columns["problem"], list(zip(problems, rows, strict=True)),
                        samples, ev.n)
    result = _run(exe, work, bench, data_file, ev.n)
    return _compare(db, ev, bench, result, order, samples)


def _task_rows(ev: EvalRow, data: str | None) -> tuple[TaskSpec, list[Problem], list[dict[str, Any]]]:
    """Our task spec, its problems (id, gold, options) and their raw rows (problem text), in task order."""

    spec = load_spec(ev.task)
    if spec.version != ev.task_version:
        raise InteropError(f"evaluation {ev.id}: task version {ev.task_version} is not the registered task's "
                           f"({spec.version}); only native evaluations can be cross-checked")
    try:
        rows, label = task_data.load_rows(spec, data)
    except TaskError as exc:
        raise InteropError(f"evaluation {ev.id}: {exc} (pass --data {ev.task}=FILE to cross-check offline)") from None
    return spec, build_problems(spec, rows, label), rows


def _samples(db: Store, ev: EvalRow, problems: list[Problem]) -> dict[str, list[dict[str, Any]]]:
    """Stored samples 0..n-1 per scored problem (every one must be there)."""
    by_problem: dict[str, list[dict[str, Any]]] = {}
    for s in db.samples(ev.id):
        if s["sample_idx"] < ev.n:
            by_problem.setdefault(s["problem_id"], []).append(s)
    scored = db.scored_problems(ev.id) or set(by_problem)
    out = {p.id: sorted(by_problem.get(p.id, []), key=lambda s: s["sample_idx"]) for p in problems if p.id in scored}
    short = [pid for pid, rows in out.items() if len(rows) != ev.n]
    if short or not out:
        raise InteropError(f"evaluation {ev.id}: {len(short)} problem(s) lack some of the n={ev.n} samples "
                           "or no problem matches the task's data; run `spsbench eval` to fill them in")
    return out


def _data_row(kind: str, problem: Problem, text: str) -> dict[str, Any]:
    if kind == "mc":
        return {"question": text, **{"ABCDEFGHIJ"[i]: c for i, c in enumerate(problem.choices or ())},
                "answer": problem.answer, "id": problem.id}
    row = {"problem": text, "answer": problem.answer, "problem_idx": problem.id}
    if kind == "level":     # math_500 splits its rows into 'Level N' subset files by this column
        row |= {"level": 1, "unique_id": problem.id, "solution": ""}
    return row


def _write_tree(work: Path, target: tuple[str, str, str], column: str, problems: list[tuple[Any, dict[str, Any]]],
                samples: dict[str, list[dict[str, Any]]], n: int) -> dict[int, tuple[str, int]]:
    """Local data + predictions; returns EvalScope index -> (problem id, sample index)."""
    bench, data_file, kind = target
    kept = [(p, raw) for p, raw in problems if p.id in samples]
    (work / "data").mkdir(parents=True, exist_ok=True)
    with open(work / "data" / data_file, "w", encoding="utf-8") as fh:
        for p, raw in kept:
            fh.write(json.dumps(_data_row(kind, p, str(raw[column]))) + "\n")
    subset = "Level 1" if kind == "level" else "default"
    pred_dir = work / "predictions" / MODEL_FOLDER
    pred_dir.mkdir(parents=True, exist_ok=True)
    order: dict[int, tuple[str, int]] = {}
    with open(pred_dir / f"{bench}_{subset}.jsonl", "w", encoding="utf-8") as fh:
        for pos, (p, _) in enumerate(kept):
            for s in samples[p.id]:
                index = pos * n + s["sample_idx"]
                order[index] = (p.id, s["sample_idx"])
                fh.write(json.dumps(_prediction_row(index, s)) + "\n")
    return order


def _prediction_row(index: int, sample: dict[str, Any]) -> dict[str, Any]:
    stop = "max_tokens" if sample["finish_reason"] == "length" else "stop"
    usage = {"input_tokens": sample["prompt_tokens"] or 0, "output_tokens": sample["completion_tokens"] or 0,
             "total_tokens": (sample["prompt_tokens"] or 0) + (sample["completion_tokens"] or 0)}
    message = {"role": "assistant", "content": sample["completion"], "source": "generate"}
    return {"index": index, "model": MODEL_FOLDER,
            "model_output": {"model": MODEL_FOLDER, "choices": [{"message": message, "stop_reason": stop}],
                             "usage": usage},
            "messages": [{"role": "user", "content": sample["prompt"]}, message], "metadata": {}}


def _run(exe: Path, work: Path, bench: str, data_file: str, n: int) -> dict[str, Any]:
    job = {"work_dir": str(work), "model": MODEL_FOLDER, "repeats": n, "datasets": [bench],
           "dataset_args": {bench: {"dataset_id": str(work / "data")}}}
    (work / "job.json").write_text(json.dumps(job), encoding="utf-8")
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": ""}
    script = Path(__file__).with_name("evalscope_review.py")
    with open(work / "evalscope.log", "w", encoding="utf-8") as log:
        try:
            proc = subprocess.run([str(exe), str(script), str(work / "job.json"), str(work / "result.json")],
                                  stdout=log, stderr=subprocess.STDOUT, env=env, timeout=TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise InteropError(f"EvalScope's review took over {TIMEOUT_S} s; see {work / 'evalscope.log'}") from None
    if proc.returncode != 0 or not (work / "result.json").is_file():
        tail = [line for line in (work / "evalscope.log").read_text(errors="replace").splitlines() if line.strip()]
        raise InteropError(f"EvalScope's review failed (exit {proc.returncode}): {tail[-1] if tail else 'no output'} "
                           f"(full log: {work / 'evalscope.log'})")
    return json.loads((work / "result.json").read_text(encoding="utf-8"))


def _verdict(row: dict[str, Any]) -> str:
    if row["status"] not in ("success", "fallback") or not row["value"]:
        return row["status"] if row["status"] not in ("success", "fallback") else "missing"
    value = row["value"].get("acc", row["value"].get("accuracy", next(iter(row["value"].values()))))
    return "correct" if float(value) >= 1.0 - 1e-9 else "incorrect"


def _compare(db: Store, ev: EvalRow, bench: str, result: dict[str, Any], order: dict[int, tuple[str, int]],
             samples: dict[str, list[dict[str, Any]]]) -> CrossReport:

    version = str(result.get("evalscope_version") or "unknown")
    got = result["benchmarks"][bench]
    ours = {(s["problem_id"], s["sample_idx"]): s for rows in samples.values() for s in rows}
    theirs = {order[r["index"]]: (r.get("extracted"), _verdict(r)) for r in got["reviews"] if r["index"] in order}
    report = CrossReport(ev.id, ev.task, ev.model_path, bench, version, len(theirs), 0)
    for key, (extracted, verdict) in sorted(theirs.items()):
        mine = ours[key]
        if agree(mine["outcome"], verdict):
            report.agree += 1
        else:
            report.disagreements.append({"problem_id": key[0], "sample_idx": key[1], "ours": mine["outcome"],
                                         "ours_extracted": mine["extracted"], "theirs": verdict,
                                         "theirs_extracted": extracted})
    n1, c1 = counts_by_problem([(k[0], "correct" if s["outcome"] == "correct" else "incorrect")
                                for k, s in ours.items()])
    n2, c2 = counts_by_problem([(k[0], v) for k, (_, v) in theirs.items()])
    ks = sorted({1 << e for e in range(max(n1).bit_length())} | {int(k) for k in got["pass_at_k"]})
    a, b = passk(n1, c1, ks), passk(n2, c2, ks)
    for k in ks:
        report.passk[k] = {"ours": a.get(k), "ours_on_theirs": b.get(k), "theirs": got["pass_at_k"].get(str(k))}
    db.add_external_grades(ev.id, f"evalscope@{version}", [(k[0], k[1], x, v) for k, (x, v) in theirs.items()])
    return report

