"""`spsbench import evalscope`: hand-written run folders in three layouts, the verdicts kept beside ours,
scores like a native evaluation's, warnings, and bad inputs (one line each, nothing half-imported)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from spsbench.cli import main
from spsbench.interop import InteropError
from spsbench.interop.evalscope_ingest import import_evalscope
from spsbench.leaderboards.external import agreement, disagreements, dual_passk
from spsbench.metrics import pass_at_k
from spsbench.store import Store
from tests.fixtures.evalscope_runs import AIME_PROBLEMS, MATH500, write_run
from tests.fixtures.store_helpers import begin
from tests.hostile import counts


def _by_task(store: Path) -> dict:
    with Store(store) as db:
        return {ev.task: ev for ev in db.evaluations()}


@pytest.fixture(scope="module", params=["1.14", "1.8", "1.0"])
def imported(request, tmp_path_factory):
    """One import per layout (the 1.8 run has no reports/, as after EvalScope's report-step crash)."""
    root = tmp_path_factory.mktemp(f"es{request.param}")
    write_run(root / "work", request.param, reports=request.param != "1.8")
    store = root / "spsbench.db"
    reports = import_evalscope(root / "work", store=store)
    return request.param, store, reports


def test_every_layout_imports_all_benchmarks(imported):
    layout, store, reports = imported
    evals = _by_task(store)
    assert sorted(evals) == ["aime25", "gpqa_diamond", "math500"]
    assert {e.engine for e in evals.values()} == {f"evalscope@{ {'1.14': '1.14.1', '1.8': '1.8.2', '1.0': '1.0.1'}[layout]}"}
    assert all(e.n == 4 and e.status == "done" for e in evals.values())
    assert evals["aime25"].model_path == "http://127.0.0.1:8011/v1#stub-model"
    assert evals["aime25"].sampling["temperature"] == 0.7 and evals["aime25"].sampling["max_tokens"] == 256
    with Store(store) as db:
        assert db.count_samples(evals["aime25"].id) == 12
        assert len(db.external_grades(evals["aime25"].id)) == 12
        layouts = db.sessions(evals["aime25"].id)[0].provenance["evalscope"]["review_layouts"]
    assert layouts == [{"1.14": ">=1.11", "1.8": "1.8-1.10", "1.0": "<=1.7"}[layout]]


def test_ids_prompts_and_versions(imported):
    _, store, _ = imported
    evals = _by_task(store)
    with Store(store) as db:
        math = {(s["problem_id"], s["sample_idx"]) for s in db.samples(evals["math500"].id)}
        aime = {s["problem_id"] for s in db.samples(evals["aime25"].id)}
    assert {pid for pid, _ in math} == {qid for qid, *_ in MATH500}      # EvalScope's question_id
    assert aime == {"0", "1", "2"}                                         # position in the subset file
    # math_500's EvalScope prompt is exactly ours: comparable; AIME's and GPQA's are not
    assert evals["math500"].task_version == "1"
    assert evals["aime25"].task_version.startswith("1+evalscope.")
    assert evals["gpqa_diamond"].task_version.startswith("1+evalscope.")


def test_dedupe_reasoning_and_length_stop(imported):
    _, store, _ = imported
    with Store(store) as db:
        rows = {(s["problem_id"], s["sample_idx"]): s for s in db.samples(_by_task(store)["aime25"].id)}
    assert rows[("1", 2)]["completion"] == "\\boxed{214}"                 # the later row of index 6 won
    thought = rows[("1", 0)]
    assert thought["completion"].startswith("<think>\nFirst 17*10") and thought["completion"].endswith("\\boxed{204}")
    assert thought["extracted"] == "204" and thought["outcome"] == "correct"   # the box in the reasoning is ignored
    assert rows[("0", 3)]["finish_reason"] == "length" and rows[("0", 3)]["outcome"] != "correct"
    assert rows[("0", 0)]["prompt_tokens"] == 40 and rows[("0", 0)]["completion_tokens"] == 12


def test_scores_match_a_native_computation(imported):
    _, store, _ = imported
    evals = _by_task(store)
    with Store(store) as db:
        scores = {(s.metric, s.k): s for s in db.scores(evals["aime25"].id)}
        counts = db.problem_counts(evals["aime25"].id)
    # ours: problem 0 right twice (first box, and the last of two boxes), problem 1 three times, problem 2 never
    assert [c for _, _, c in counts] == [2, 3, 0]
    for k in (1, 2, 4):
        expected = float(pass_at_k([4, 4, 4], [2, 3, 0], k).mean())
        assert scores[("pass@k", k)].value == pytest.approx(expected, abs=1e-12)
        assert scores[("pass@k", k)].ci_low <= expected <= scores[("pass@k", k)].ci_high
    assert ("chance_pass@k", 1) in {(s.metric, s.k) for s in Store(store).scores(evals["gpqa_diamond"].id)}


def test_disagreements_carry_both_answers(imported):
    _, store, _ = imported
    evals = _by_task(store)
    with Store(store) as db:
        rows = list(disagreements(db, evals["aime25"].id))
        assert agreement(db, evals["aime25"].id) == (10, 12)
        dual = dual_passk(db, evals["aime25"].id)
        gpqa = list(disagreements(db, evals["gpqa_diamond"].id))
    found = {(r["problem_id"], r["sample_idx"]): r for r in rows}
    assert set(found) == {("0", 1), ("0", 2)}
    assert found[("0", 1)]["theirs"] == "correct" and found[("0", 1)]["ours"] == "no_answer"   # unboxed 70
    assert found[("0", 2)]["theirs_extracted"] == "71,70" and found[("0", 2)]["ours_extracted"] == "70"
    assert [(r["problem_id"], r["theirs_extracted"]) for r in gpqa] == [("0", "B")]   # "It is B": bare letter
    ours, theirs = dual["spsbench"], next(v for k, v in dual.items() if k.startswith("evalscope@"))
    assert sorted(ours) == [1, 2, 4]
    their_correct = [sum(a[3] for a in problem[2]) for problem in AIME_PROBLEMS]
    assert theirs[2] == pytest.approx(float(pass_at_k([4] * 3, [int(c) for c in their_correct], 2).mean()))


def test_cli_import_prints_one_line_per_evaluation_and_reimport_adds_nothing(tmp_path, capsys):
    write_run(tmp_path / "w")
    store = str(tmp_path / "s.db")
    assert main(["import", "evalscope", str(tmp_path / "w"), "--store", store]) == 0
    out, err = capsys.readouterr()
    assert len(out.strip().splitlines()) == 3 and "verdicts agree on 10/12" in out
    assert "duplicate index" in err and "differ from task aime25's template" in err
    assert main(["import", "evalscope", str(tmp_path / "w"), "--store", store]) == 0
    assert "(0 new)" in capsys.readouterr()[0]
    # the same settings from ANOTHER run folder would silently merge: refused, unless renamed
    write_run(tmp_path / "w2", stamp="20260102_080000")
    assert main(["import", "evalscope", str(tmp_path / "w2"), "--store", store]) == 2
    assert "already holds samples from EvalScope run" in capsys.readouterr()[1]
    assert main(["import", "evalscope", str(tmp_path / "w2"), "--store", store, "--model-name", "b"]) == 0


def test_warnings_for_greedy_fixed_seed_and_failed_problems(tmp_path):
    write_run(tmp_path / "w", generation="", errored=True)            # empty generation_config
    (report, *_), = [import_evalscope(tmp_path / "w", store=tmp_path / "s.db")]
    text = " | ".join(report.warnings)
    assert "sets no temperature" in text and "temperature 0 with repeats=4" in text
    assert "no successful attempt (2)" in text and "sets no max_tokens" in text
    write_run(tmp_path / "v", generation="  temperature: 0.6\n  seed: 7\n  max_tokens: 64\n")
    report = import_evalscope(tmp_path / "v", store=tmp_path / "t.db")[0]
    assert any("seed=7 is sent on every repeat" in w for w in report.warnings)
    ev = _by_task(tmp_path / "t.db")["aime25"]
    assert ev.sampling["seed"] == -1                  # apart from any native evaluation's identity
    with Store(tmp_path / "t.db") as db:
        assert {s["seed"] for s in db.samples(ev.id)} == {7}      # the seed EvalScope sent, on every repeat




def _truncate(run: Path) -> None:
    path = run / "predictions" / "stub-model" / "gpqa_diamond_default.jsonl"
    text = path.read_text()
    path.write_text(text[: len(text) - 40])


def _orphan_review(run: Path) -> None:
    path = run / "reviews" / "stub-model" / "math_500_Level 1.jsonl"
    row = json.loads(path.read_text().splitlines()[0]) | {"index": 99}
    path.write_text(path.read_text() + json.dumps(row) + "\n")


def _unknown_bench(run: Path) -> None:
    config = run / "configs" / "task_config.yaml"
    config.write_text(config.read_text().replace("- math_500", "- math_500\n- super_bench"))
    src = run / "predictions" / "stub-model" / "aime25_default.jsonl"
    (src.parent / "super_bench_default.jsonl").write_text(src.read_text())


@pytest.mark.parametrize("damage, message", [
    (None, "is not an EvalScope run folder"),
    (_truncate, "gpqa_diamond_default.jsonl:8: not a JSON line"),
    (_orphan_review, "review of index 99 has no prediction row"),
    (_unknown_bench, "benchmark 'super_bench' has no spsbench task"),
])
def test_bad_inputs_give_one_line_and_write_nothing(tmp_path, capsys, damage, message):
    store = tmp_path / "s.db"
    folder = tmp_path / "w"
    if damage is None:
        (folder / "20260101_120000" / "logs").mkdir(parents=True)
    else:
        damage(write_run(folder))
    assert main(["import", "evalscope", str(folder), "--store", str(store)]) == 2
    err = capsys.readouterr()[1].strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert counts(store) == (0, 0)


def test_a_failure_while_storing_rolls_the_evaluation_back(tmp_path, monkeypatch):
    write_run(tmp_path / "w")
    calls = []

    def boom(self, eval_id, source, rows):
        calls.append(eval_id)
        if len(calls) == 2:                       # the second evaluation fails after its samples were added
            raise InteropError("disk trouble")
        return original(self, eval_id, source, rows)

    original = Store.add_external_grades
    monkeypatch.setattr(Store, "add_external_grades", boom)
    with pytest.raises(InteropError):
        import_evalscope(tmp_path / "w", store=tmp_path / "s.db")
    con = sqlite3.connect(tmp_path / "s.db")
    per_eval = con.execute("SELECT e.task, COUNT(s.sample_idx) FROM evaluations e LEFT JOIN samples s "
                           "ON s.eval_id = e.id GROUP BY e.id").fetchall()
    con.close()
    assert per_eval == [("aime25", 12)]           # the first is whole, the failed one left nothing behind


def test_results_disagreements_lists_both_answers(imported, capsys):
    _, store, _ = imported
    assert main(["results", "--store", str(store), "--disagreements", "--task", "aime25"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr()[0].splitlines()]
    assert [(r["problem_id"], r["sample_idx"], r["ours"], r["theirs"]) for r in rows] == [
        ("0", 1, "no_answer", "correct"), ("0", 2, "correct", "incorrect")]
    assert rows[1]["ours_extracted"] == "70" and rows[1]["theirs_extracted"] == "71,70"
    assert main(["results", "--store", str(store), "--disagreements", "--with", "lighteval"]) == 0
    assert capsys.readouterr()[0] == ""            # no verdicts from that source


def test_graders_side_by_side_section(imported):
    from spsbench.leaderboards.external import comparison_markdown

    _, store, _ = imported
    with Store(store) as db:
        lines = comparison_markdown(db)
    rows = [line for line in lines if line.startswith("| http")]
    assert len(rows) == 6                          # 3 evaluations x (spsbench, evalscope@...)
    gpqa = [r for r in rows if "gpqa_diamond" in r]
    assert "| spsbench | 62.5 |" in gpqa[0] and "| 75.0 |" in gpqa[1] and gpqa[1].endswith("| 7/8 |")


def _config(tmp_path: Path, **fields):
    from spsbench.interop.evalscope_parse import RunConfig

    base = {"path": tmp_path / "task_config.yaml", "version": "1.14.1", "model": "m", "api_url": None,
            "generation": {"temperature": 0.6}, "repeats": 2, "datasets": ("hmmt25",), "dataset_args": {}}
    return RunConfig(**(base | fields))


def test_mapping_rules(tmp_path):
    from spsbench.interop.evalscope_map import model_identity, parse_options, split_prompt, task_for

    brumo = _config(tmp_path, dataset_args={"hmmt25": {"dataset_id": "/data/BrUMO_2025"}})
    assert task_for("hmmt25", brumo) == "brumo25" and task_for("hmmt25", _config(tmp_path)) == "hmmt_feb25"
    assert task_for("math_500", _config(tmp_path)) == "math500"
    assert model_identity(_config(tmp_path, api_url="http://h:8000/v1/chat/completions")) == "http://h:8000/v1#m"
    assert model_identity(_config(tmp_path, api_url="http://h:8000/v1/"), "other") == "http://h:8000/v1#other"
    assert model_identity(_config(tmp_path, model="/models/qwen")) == "/models/qwen"
    question, choices = split_prompt("hmmt25", "Problem:\nFind x.\nPlease reason step by step, and put your "
                                     "final answer within \\boxed{}.", _config(tmp_path))
    assert question == "Find x." and choices is None
    assert parse_options("A) one\nB) two\nlines\nC) three") == ("one", "two\nlines", "three")
    custom = _config(tmp_path, dataset_args={"hmmt25": {"prompt_template": "Q: {question}\nA:"}})
    assert split_prompt("hmmt25", "Q: 1+1?\nA:", custom) == ("1+1?", None)
    assert split_prompt("hmmt25", "something else", custom) is None


def test_problems_map_to_our_ids_through_the_cached_task_rows(tmp_path, monkeypatch):
    from spsbench.tasks import load_spec
    from tests.fixtures.evalscope_runs import AIME_PROBLEMS

    monkeypatch.setenv("SPSBENCH_CACHE", str(tmp_path / "cache"))
    cache = load_spec("aime25").cache_path()
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text("".join(json.dumps({"problem_idx": 11 + i, "problem": "  " + q + "\n", "answer": a}) + "\n"
                             for i, (q, a, _) in enumerate(AIME_PROBLEMS)))
    write_run(tmp_path / "w")
    import_evalscope(tmp_path / "w", store=tmp_path / "s.db")
    with Store(tmp_path / "s.db") as db:
        ids = {s["problem_id"] for s in db.samples(_by_task(tmp_path / "s.db")["aime25"].id)}
    assert ids == {"11", "12", "13"}


def test_external_grades_on_a_v3_store_without_the_table_and_grouped_rollback(tmp_path):
    from spsbench.config import SamplingConfig

    path = tmp_path / "s.db"
    with Store(path) as db:
        model = db.upsert_model("m", "")
        eval_id = begin(db, model, SamplingConfig(n=1), "x", {}, task="aime25", policy="p")
    con = sqlite3.connect(path)
    con.execute("DROP TABLE external_grades")      # a store written before the table existed (still v3)
    con.commit()
    con.close()
    with Store(path) as db:
        assert db.external_grades(eval_id) == []
        db.add_external_grades(eval_id, "evalscope@1", [("1", 0, "70", "correct")])
        assert db.external_grades(eval_id)[0]["verdict"] == "correct"
        with pytest.raises(RuntimeError), db.transaction():
            db.upsert_model("n", "")
            raise RuntimeError("abort")
        assert db.find_model("n", "") is None        # the grouped write was rolled back with it


def test_task_page_shows_both_graders_for_an_imported_run(imported, tmp_path):
    from spsbench.leaderboards.refresh import refresh

    _, store, _ = imported
    refresh(store, tmp_path / "boards", plots=False)
    page = (tmp_path / "boards" / "tasks" / "aime25.md").read_text()
    assert "### Graders side by side" in page
    rows = [line for line in page.splitlines() if "| spsbench |" in line or "| evalscope@" in line]
    assert len(rows) == 2 and all(row.endswith("| 10/12 |") for row in rows)


def test_an_interrupted_run_scores_what_is_there(tmp_path):
    run = write_run(tmp_path / "w", duplicate=False)
    for kind in ("predictions", "reviews"):             # indices 10 and 11 (problem 2, attempts 2-3) never written
        path = run / kind / "stub-model" / "aime25_default.jsonl"
        keep = [line for line in path.read_text().splitlines() if json.loads(line)["index"] not in (10, 11)]
        path.write_text("\n".join(keep) + "\n")
    report = next(r for r in import_evalscope(tmp_path / "w", store=tmp_path / "s.db") if r.task == "aime25")
    assert report.samples == 10 and any("fewer than repeats=4" in w for w in report.warnings)
    assert sorted(report.scores.pass_at_k) == [1, 2]      # k <= the fewest attempts (2)
    with Store(tmp_path / "s.db") as db:
        assert db.problem_counts(report.eval_id) == [("0", 4, 2), ("1", 4, 3), ("2", 2, 0)]


def test_two_runs_of_one_work_dir_that_would_merge_are_refused_before_writing(tmp_path, capsys):
    write_run(tmp_path / "w")
    write_run(tmp_path / "w", stamp="20260102_080000")
    assert main(["import", "evalscope", str(tmp_path / "w"), "--store", str(tmp_path / "s.db")]) == 2
    assert "import them one at a time with --model-name" in capsys.readouterr()[1]
    assert counts(tmp_path / "s.db") == (0, 0)
