"""`spsbench crosscheck evalscope` without EvalScope: the prediction tree it writes reads back as EvalScope
rows, and a stand-in reviewer (same interface as `evalscope_review.py`) drives the comparison, the stored
verdicts and the report. The real EvalScope path is in test_evalscope_real.py (slow)."""

from __future__ import annotations

import json
import sys
from math import comb
from pathlib import Path

import pytest

from spsbench.cli import main
from spsbench.config import SamplingConfig
from spsbench.evaluation.evaluate import evaluate
from spsbench.evaluation.records import EvalRequest
from spsbench.interop.evalscope_parse import parse_prediction, read_jsonl
from spsbench.store import Store

DATA = Path(__file__).parent / "data" / "tasks" / "aime25_sample.jsonl"

# Reads job.json, grades each prediction "correct" when the gold appears in ANY box (also inside a think
# block, unlike our grader), and answers like evalscope_review.py would.
FAKE_REVIEW = r'''
import json, os, re, sys
from math import comb
job = json.load(open(sys.argv[1]))
bench = job["datasets"][0]
data_dir = job["dataset_args"][bench]["dataset_id"]
gold = [json.loads(l)["answer"] for l in open(os.path.join(data_dir, os.listdir(data_dir)[0]))]
rows, groups = [], {}
folder = os.path.join(job["work_dir"], "predictions", job["model"])
for name in os.listdir(folder):
    for line in open(os.path.join(folder, name)):
        r = json.loads(line)
        text = r["model_output"]["choices"][0]["message"]["content"]
        ok = float(any(b == gold[r["index"] // job["repeats"]] for b in re.findall(r"\\boxed\{([^{}]*)\}", text)))
        rows.append({"subset": "default", "index": r["index"], "value": {"acc": ok}, "status": "success",
                     "extracted": None})
        groups.setdefault(r["index"] // job["repeats"], []).append(ok)
n = job["repeats"]
passk = {str(k): sum(1 - comb(n - int(sum(g)), k) / comb(n, k) for g in groups.values()) / len(groups)
         for k in range(1, n + 1)}
json.dump({"evalscope_version": "0.0-fake", "benchmarks": {bench: {"reviews": rows, "pass_at_k": passk}}},
          open(sys.argv[2], "w"))
'''


class ThinkingEngine:
    """Per sample: the right box, a wrong box, or the right box only inside a think block."""

    name = "thinking"

    def __init__(self) -> None:
        self.gold = {str(json.loads(line)["problem_idx"]): json.loads(line)["answer"] for line in DATA.open()}

    def describe(self) -> dict:
        return {"engine": self.name}

    def close(self) -> None:
        pass

    def generate(self, requests, sampling):
        from spsbench.engines.base import Completion

        for r in requests:
            for idx, seed in zip(r.sample_indices, r.seeds, strict=True):
                gold = self.gold[r.key]
                text = [f"\\boxed{{{gold}}}", "\\boxed{-1}", f"<think>\\boxed{{{gold}}}</think> unsure"][idx % 3]
                yield Completion(r.key, idx, seed, text, 7, 3, "length" if idx == 1 else "stop")


@pytest.fixture
def native_store(tmp_path) -> Path:
    store = tmp_path / "s.db"
    evaluate(EvalRequest("m", ["aime25"], SamplingConfig(n=4), store=store, data={"aime25": str(DATA)}, progress=False, engine="openai", engine_options={"base_url": "http://127.0.0.1:1/v1"}), engine_factory=lambda engine, model: ThinkingEngine())
    return store


@pytest.fixture
def fake_python(tmp_path) -> Path:
    """An 'interpreter' that runs the stand-in reviewer instead of evalscope_review.py."""
    (tmp_path / "fake_review.py").write_text(FAKE_REVIEW)
    exe = tmp_path / "python"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{tmp_path / "fake_review.py"}" "$2" "$3"\n')
    exe.chmod(0o755)
    return exe


def test_missing_evalscope_venv_is_one_line(native_store, tmp_path, capsys):
    assert main(["crosscheck", "evalscope", "--store", str(native_store), "--python", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr()[1].strip().splitlines()
    assert len(err) == 1 and "make setup-evalscope" in err[0]


def test_tree_reads_back_as_evalscope_predictions(native_store, fake_python, tmp_path):
    work = tmp_path / "work"
    assert main(["crosscheck", "evalscope", "--store", str(native_store), "--data", f"aime25={DATA}",
                 "--python", str(fake_python), "--work", str(work)]) == 0
    (tree,) = (work / "eval-1" / "predictions" / "spsbench").glob("aime25_default.jsonl")
    rows = [parse_prediction(row, str(tree)) for _, row in read_jsonl(tree)]
    with Store(native_store) as db:
        stored = {(s["problem_id"], s["sample_idx"]): s for s in db.samples(1)}
    problems = [str(json.loads(line)["problem_idx"]) for line in DATA.open()]
    assert sorted(r.index for r in rows) == list(range(len(problems) * 4))
    for r in rows:                                  # index = problem position * n + sample index
        sample = stored[(problems[r.index // 4], r.index % 4)]
        assert r.text == sample["completion"] and r.messages == (("user", sample["prompt"]),)
        assert r.stop_reason == ("max_tokens" if r.index % 4 == 1 else "stop")
    data = [json.loads(line) for line in (work / "eval-1" / "data" / "test.jsonl").open()]
    assert [d["answer"] for d in data] == [json.loads(line)["answer"] for line in DATA.open()]


def test_report_verdicts_and_estimators(native_store, fake_python, tmp_path, capsys):
    args = ["crosscheck", "evalscope", "--store", str(native_store), "--data", f"aime25={DATA}",
            "--python", str(fake_python), "--work", str(tmp_path / "w")]
    assert main(args) == 0
    out = capsys.readouterr()[0]
    problems = sum(1 for _ in DATA.open())
    # samples 0 and 3 are right for both; sample 2 (the box inside a think block) only for the stand-in
    assert f"verdicts agree on {3 * problems}/{4 * problems}" in out
    ours = 1 - comb(2, 1) / comb(4, 1)             # c = 2 of n = 4 for every problem
    theirs = 1 - comb(1, 1) / comb(4, 1)           # c = 3 of n = 4
    line = next(x for x in out.splitlines() if x.split()[:1] == ["1"])
    assert [float(v) for v in line.split()[1:4]] == pytest.approx([ours, theirs, theirs], abs=1e-6)
    assert "differs: problem 1 sample 2: ours no_answer" in out
    # the reviewer's verdicts are kept: `results --disagreements` lists the same samples
    assert main(["results", "--store", str(native_store), "--disagreements"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr()[0].splitlines()]
    assert len(rows) == problems and {r["sample_idx"] for r in rows} == {2}
    assert {r["source"] for r in rows} == {"evalscope@0.0-fake"}
