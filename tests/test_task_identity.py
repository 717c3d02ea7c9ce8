"""Content-addressed task identity: a task changed under a reused name and version is a new evaluation
(announced in one line), a changed `--data` file too, an unchanged one resumes; a v3 store migrates and
its evaluations are resumed by the unchanged built-in task; leaderboards never compare two digests."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from spsbench.config import SamplingConfig
from spsbench.evaluation.evaluate import evaluate
from spsbench.evaluation.records import EvalRequest
from spsbench.leaderboards.snapshot import load_snapshot
from spsbench.store import SCHEMA_VERSION, Store
from spsbench.tasks import load_task

NOTICE = "task arith v2 differs from the stored arith v2: evaluating as new"


def run(model, store, factory, task="arith", limit=4, **kw):
    request = EvalRequest(str(model), [str(task)], SamplingConfig(n=2, max_tokens=16), store=store,
                          progress=False, limit=limit, **kw)
    [result] = evaluate(request, engine_factory=factory)
    return result


def impostor(tmp_path: Path, questions=("What is 2+2?", "Name a colour.")) -> Path:
    """A task file claiming to be the built-in arith v2, with other questions."""
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"problem": q, "answer": "4"}) + "\n" for q in questions))
    path = tmp_path / "arith.yaml"
    path.write_text("name: arith\nversion: '2'\ngrader: math\nsource: {file: rows.jsonl}\n"
                    "columns: {problem: problem, answer: answer}\nprompt_template: '{problem}'\nn: 2\nk: [1]\n")
    return path


def test_a_task_reusing_a_name_and_version_is_evaluated_as_new(tiny_model_dir, store_path, fake_factory,
                                                               tmp_path, capsys):
    first = run(tiny_model_dir, store_path, fake_factory)
    capsys.readouterr()
    other = run(tiny_model_dir, store_path, fake_factory, task=impostor(tmp_path), limit=None)
    assert other.eval_id != first.eval_id and other.generated == 2 * 2     # the model ran on ITS questions
    assert capsys.readouterr().err.strip().splitlines() == [f"spsbench: warning: {NOTICE}"]
    again = run(tiny_model_dir, store_path, fake_factory)                  # the built-in still resumes
    assert (again.eval_id, again.generated) == (first.eval_id, 0)


def test_a_changed_data_file_is_new_and_an_unchanged_one_resumes(tiny_model_dir, store_path, fake_factory,
                                                                 tmp_path, capsys):
    rows = tmp_path / "arith.jsonl"
    rows.write_text("".join(json.dumps({"id": str(i), "problem": f"{i}+1?", "answer": str(i + 1)}) + "\n"
                            for i in range(3)))
    first = run(tiny_model_dir, store_path, fake_factory, data={"arith": str(rows)})
    same = run(tiny_model_dir, store_path, fake_factory, data={"arith": str(rows)})
    assert (same.eval_id, same.generated) == (first.eval_id, 0)
    capsys.readouterr()
    rows.write_text(rows.read_text().replace('"answer": "2"', '"answer": "7"'))   # one gold answer changed
    changed = run(tiny_model_dir, store_path, fake_factory, data={"arith": str(rows)})
    assert changed.eval_id != first.eval_id
    assert NOTICE in capsys.readouterr().err
    assert changed.generated == 0            # same prompts and seeds: stored completions re-graded, not redone


def make_v3(store_path: Path) -> None:
    """Turn a current store into the v3 layout: evaluations without task_digest, user_version 3."""
    con = sqlite3.connect(store_path)
    cols = ("id, model_id, task, task_version, grader_policy, sampling_key, sampling_json, n, engine, "
            "provenance_json, status, created_at, finished_at")
    con.executescript(f"""
        PRAGMA foreign_keys = OFF;
        CREATE TABLE old AS SELECT {cols} FROM evaluations;
        DROP TABLE evaluations;
        CREATE TABLE evaluations(id INTEGER PRIMARY KEY, model_id INTEGER NOT NULL REFERENCES models(id),
          task TEXT NOT NULL, task_version TEXT NOT NULL, grader_policy TEXT NOT NULL,
          sampling_key TEXT NOT NULL, sampling_json TEXT NOT NULL, n INTEGER NOT NULL, engine TEXT NOT NULL,
          provenance_json TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL, finished_at TEXT,
          UNIQUE(model_id, task, task_version, grader_policy, sampling_key));
        INSERT INTO evaluations SELECT * FROM old;
        DROP TABLE old;
        PRAGMA user_version = 3;
    """)
    con.close()


def test_a_v3_store_migrates_and_the_unchanged_task_resumes_its_evaluation(tiny_model_dir, store_path,
                                                                           fake_factory, tmp_path, capsys):
    first = run(tiny_model_dir, store_path, fake_factory)
    make_v3(store_path)
    with Store(store_path) as s:
        [ev] = s.evaluations()
        assert ev.task_digest == "" and s.count_samples(ev.id) == 4 * 2          # legacy, samples kept
    con = sqlite3.connect(store_path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    con.close()
    again = run(tiny_model_dir, store_path, fake_factory)
    assert (again.eval_id, again.generated) == (first.eval_id, 0) and len(fake_factory.engines) == 1
    with Store(store_path) as s:
        assert s.evaluation(first.eval_id).task_digest == load_task("arith").digest   # claimed
    assert capsys.readouterr().err == ""


def test_a_legacy_evaluation_with_other_prompts_is_not_resumed(tiny_model_dir, store_path, fake_factory,
                                                               tmp_path, capsys):
    first = run(tiny_model_dir, store_path, fake_factory, task=impostor(tmp_path), limit=None)
    make_v3(store_path)
    capsys.readouterr()
    builtin = run(tiny_model_dir, store_path, fake_factory)
    assert builtin.eval_id != first.eval_id and builtin.generated == 4 * 2
    assert NOTICE in capsys.readouterr().err
    with Store(store_path) as s:
        assert s.evaluation(first.eval_id).task_digest == ""                 # left as it was


def test_leaderboards_do_not_compare_two_digests(tiny_model_dir, store_path, fake_factory, tmp_path):
    run(tiny_model_dir, store_path, fake_factory)
    run(tiny_model_dir, store_path, fake_factory, task=impostor(tmp_path), limit=None)
    with Store(store_path) as s:
        a, b = load_snapshot(s, "x.db").entries
    assert a.setting != b.setting and "task_digest=" in a.setting.diff(b.setting)
