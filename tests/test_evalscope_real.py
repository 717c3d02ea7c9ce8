"""Real EvalScope (its own venv, `make setup-evalscope`) against a stub OpenAI server on 127.0.0.1 with local
data: its run folder is imported, and its review of our samples is compared with ours (`crosscheck`)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from pathlib import Path

import pytest

from spsbench.interop.evalscope_crosscheck import crosscheck
from spsbench.interop.evalscope_ingest import import_evalscope
from spsbench.leaderboards.external import dual_passk
from spsbench.store import Store
from tests.openai_stub_server import StubServer, StubState

pytestmark = pytest.mark.slow
VENV_PYTHON = Path(__file__).resolve().parents[1] / ".venv-evalscope" / "bin" / "python"
ANSWERS = ["So \\boxed{70}.", "I think it is 70", "Either \\boxed{71} or \\boxed{70}.", "\\boxed{204}", "\\boxed{2}",
           "\\boxed{3}", "<think>\\boxed{2}</think> no idea"]
AIME = [{"problem": "Find 70.", "answer": "70", "problem_idx": 1}, {"problem": "Compute 17 * 12.", "answer": "204",
                                                                   "problem_idx": 2}]
MATH = [{"problem": "Simplify 6/3.", "answer": "2", "level": 1, "unique_id": "test/algebra/1.json", "solution": "2",
         "subject": "Algebra"},
        {"problem": "What is 1+1?", "answer": "2", "level": 1, "unique_id": "test/prealgebra/7.json", "solution": "2",
         "subject": "Prealgebra"}]
RUN = """
import sys
from evalscope import TaskConfig, run_task
run_task(TaskConfig(model="stub-model", api_url=sys.argv[1], eval_type="openai_api", datasets=["aime25", "math_500"],
    dataset_args={"aime25": {"dataset_id": sys.argv[2] + "/aime25"}, "math_500": {"dataset_id": sys.argv[2] + "/math"}},
    repeats=4, generation_config={"temperature": 0.7, "max_tokens": 64}, work_dir=sys.argv[3], eval_batch_size=2))
"""


class CycleEngine:
    """Answers from ANSWERS in turn: right, wrong, unboxed, two boxes, an answer only inside a think block."""

    name = "cycle"

    def __init__(self) -> None:
        self.counter = itertools.count()

    def generate(self, requests, sampling):
        from spsbench.engines.base import Completion

        for r in requests:
            for idx, seed in zip(r.sample_indices, r.seeds, strict=True):
                text = ANSWERS[next(self.counter) % len(ANSWERS)]
                yield Completion(r.key, idx, seed, text, 10, len(text.split()), "stop")


def _write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def evalscope_run(tmp_path_factory) -> Path:
    if not VENV_PYTHON.is_file():
        pytest.skip("EvalScope's venv is missing: run `make setup-evalscope`")
    root = tmp_path_factory.mktemp("evalscope")
    _write(root / "data" / "aime25" / "test.jsonl", AIME)
    _write(root / "data" / "math" / "test.jsonl", MATH)
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": ""}
    with StubServer(StubState(engine=CycleEngine())) as server:
        proc = subprocess.run([str(VENV_PYTHON), "-c", RUN, server.url, str(root / "data"), str(root / "work")],
                              capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return root


def test_real_run_imports_and_its_verdicts_give_its_report(evalscope_run, tmp_path):
    store = tmp_path / "s.db"
    reports = {r.bench: r for r in import_evalscope(evalscope_run / "work", store=store)}
    assert set(reports) == {"aime25", "math_500"}
    assert reports["aime25"].samples == 8 and reports["math_500"].samples == 8
    (run,) = list((evalscope_run / "work").iterdir())
    with Store(store) as db:
        for bench, report in reports.items():
            published = json.loads((run / "reports" / "stub-model" / f"{bench}.json").read_text())
            dual = dual_passk(db, report.eval_id)
            theirs = next(v for k, v in dual.items() if k.startswith("evalscope@1.14.1"))
            # EvalScope's reported accuracy is our Pass@1 estimator on its verdicts
            assert theirs[1] == pytest.approx(published["metrics"][0]["score"], abs=1e-9)
    # the unboxed "I think it is 70" and the two joined boxes are the disagreements on AIME
    assert reports["aime25"].agree < reports["aime25"].reviewed


def test_crosscheck_estimators_agree_for_every_k(evalscope_run, tmp_path):
    store = tmp_path / "s.db"
    reports = {r.bench: r for r in import_evalscope(evalscope_run / "work", store=store)}
    data = {"math500": str(_write(tmp_path / "math.jsonl", MATH))}
    with Store(store) as db:
        math = db.evaluation(reports["math_500"].eval_id)
        assert math.task_version == "1"                 # EvalScope's math_500 prompt is ours: native
        (result,) = crosscheck(db, [math], data=data, python=str(VENV_PYTHON), work=tmp_path / "cc")
    assert result.samples == 8 and sorted(result.passk) == [1, 2, 3, 4]
    for k, row in result.passk.items():
        assert row["ours_on_theirs"] == pytest.approx(row["theirs"], abs=1e-9), k
        if result.agree == result.samples:               # identical verdicts: identical Pass@k
            assert row["ours"] == pytest.approx(row["theirs"], abs=1e-9), k
    assert result.agree == result.samples, result.disagreements
