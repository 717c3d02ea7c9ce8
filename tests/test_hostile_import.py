"""Hostile EvalScope run folders (issue 23, class 1): an import that contradicts itself is refused in one line
naming file, line and field, nothing is stored from a refused folder, files that are not regular files are
refused without being opened, and the imported verdicts travel with `publish`.

Generators, so the next variant is caught too: any JSON value in any field spsbench reads (config, prediction
and review rows); any `repeats` that differs from the attempts the rows hold; any row of a problem whose
prompt, id or gold differs from the problem's other rows; any line break in a gold.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from spsbench.cli import main
from spsbench.interop import InteropError
from spsbench.interop.evalscope_ingest import import_evalscope, plan_run
from spsbench.interop.evalscope_parse import read_run
from spsbench.validate import LINE_BREAKS
from tests.fixtures.evalscope_runs import AIME, _prediction, _review, config_text, write_run
from tests.hostile import HYPO, VALUES, counts, fails, one_line_error

PRED = Path("predictions/stub-model/aime25_default.jsonl")
REV = Path("reviews/stub-model/aime25_default.jsonl")
CONFIG = Path("configs/task_config.yaml")




def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_rows(path: Path, items: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in items))


def line_of(path: Path, index: int) -> int:
    """1-based line of the last row with this index (the one the importer keeps)."""
    return max(n for n, r in enumerate(rows(path), 1) if r["index"] == index)


def plan(run: Path) -> list:
    """Read and plan a run (every check the import makes before grading and storing)."""
    return plan_run(read_run(run), None)


def consistent(plans: list) -> None:
    """What an accepted import holds: one prompt and one single-line gold per problem, each slot once."""
    for p in plans:
        by_problem: dict[str, set] = {}
        slots = set()
        for item in p.items:
            by_problem.setdefault(item.problem.id, set()).add((item.problem.prompt, item.problem.gold))
            assert (item.problem.id, item.idx) not in slots
            slots.add((item.problem.id, item.idx))
            assert 0 <= item.idx < p.run.config.repeats
        assert all(len(v) == 1 for v in by_problem.values()), by_problem
        assert all(len(gold.splitlines()) == 1 for v in by_problem.values() for _, gold in v)


# ------------------------------------------------------------------ any value in any field


PRED_FIELDS = ["index", "model_output", "model_output.choices", "model_output.choices.0",
               "model_output.choices.0.message", "model_output.choices.0.message.content",
               "model_output.choices.0.stop_reason", "model_output.usage", "model_output.usage.input_tokens",
               "model_output.usage.output_tokens", "model_output.error", "messages", "messages.0",
               "messages.0.role", "messages.0.content", "metadata", "metadata.problem_idx"]
REV_FIELDS = ["index", "target", "target.0", "sample_score", "sample_score.score", "sample_score.score.value",
              "sample_score.score.value.acc", "sample_score.score.status", "sample_score.score.main_score_name",
              "sample_score.score.extracted_prediction"]
CONFIG_FIELDS = ["model_id", "datasets", "repeats", "generation_config", "dataset_args", "api_url",
                 "evalscope_version", "generation_config.temperature", "generation_config.top_p",
                 "generation_config.max_tokens", "generation_config.seed", "generation_config.stop_seqs"]
DELETE = object()


def put(obj, dotted: str, value) -> None:
    """Set (or delete) `obj[a][b]...`, creating objects on the way; a list index that is missing is appended."""
    *parents, last = dotted.split(".")
    for key in parents:
        if isinstance(obj, list):
            key = int(key)
            if key >= len(obj):
                obj.append({})
            obj = obj[key] if isinstance(obj[key], (dict, list)) else obj.__setitem__(key, {}) or obj[key]
        else:
            if not isinstance(obj.get(key), (dict, list)):
                obj[key] = {}
            obj = obj[key]
    key = int(last) if isinstance(obj, list) else last
    if isinstance(obj, list) and key >= len(obj):
        obj.append(None)
    if value is DELETE:
        obj.pop(key, None) if isinstance(obj, dict) else obj.__setitem__(key, None)
    else:
        obj[key] = value


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("pristine") / "w", duplicate=False)


@pytest.fixture
def scratch(pristine, tmp_path) -> Path:
    import shutil

    return Path(shutil.copytree(pristine, tmp_path / "run"))


FIELDS = ([(PRED, f) for f in PRED_FIELDS] + [(REV, f) for f in REV_FIELDS] + [(CONFIG, f) for f in CONFIG_FIELDS])


@pytest.mark.parametrize(("file", "field"), FIELDS, ids=[f"{f.parts[0]}:{x}" for f, x in FIELDS])
@settings(HYPO, max_examples=8)
@given(row=st.integers(0, 11), value=st.one_of(VALUES, st.just(DELETE)))
def test_property_any_value_in_any_field_is_imported_consistently_or_refused_in_one_line(
        scratch, pristine, file, field, row, value):
    original = (pristine / file).read_text()
    if file == CONFIG:
        raw = yaml.safe_load(original)
        put(raw, field, value)
        (scratch / file).write_text(yaml.safe_dump(raw, allow_unicode=True))
    else:
        items = [json.loads(line) for line in original.splitlines()]
        put(items[row], field, value)
        write_rows(scratch / file, items)
    try:
        plans = plan(scratch)
    except InteropError as exc:
        one_line_error(exc)
        assert str(scratch) in str(exc), exc           # names the file (or the run folder for a whole-run clash)
        return
    finally:
        (scratch / file).write_text(original)
    consistent(plans)


@pytest.mark.parametrize(("damage", "message"), [
    (lambda r: (r / CONFIG).write_bytes(b"\xff\xfe\x00bin"), "task_config.yaml:1: not UTF-8 text"),
    (lambda r: (r / CONFIG).write_text(""), "not an EvalScope task config"),
    (lambda r: (r / PRED).write_text(""), "aime25_default.jsonl: no prediction rows (an empty file)"),
    (lambda r: (r / PRED).write_text("null\n"), "aime25_default.jsonl:1: not an EvalScope row"),
    (lambda r: (r / CONFIG).write_text((r / CONFIG).read_text().replace("temperature: 0.7", "temperature: hot")),
     "task_config.yaml:12: generation_config.temperature: expected a finite number, got text 'hot'"),
    (lambda r: (r / CONFIG).write_text((r / CONFIG).read_text().replace("max_tokens: 256", "max_tokens: 256\n"
                                                                        "  stop: abc")),
     "generation_config.stop: expected a list"),
])
def test_damaged_files_are_one_line_and_store_nothing(tmp_path, capsys, damage, message):
    run = write_run(tmp_path / "w")
    damage(run)
    fails(capsys, ["import", "evalscope", str(tmp_path / "w"), "--store", str(tmp_path / "s.db")], message)
    assert counts(tmp_path / "s.db") == (0, 0)


# ------------------------------------------------------------------ repeats that contradict the rows


def write_attempts(root: Path, problems: int, attempts: int, repeats: int) -> Path:
    """An aime25-only run of `problems` x `attempts` rows whose config says `repeats`."""
    run = root / "20260101_120000"
    (run / "configs").mkdir(parents=True)
    (run / CONFIG).write_text(config_text("1.14", datasets=("aime25",)).replace("repeats: 4", f"repeats: {repeats}"))
    preds, reviews = [], []
    for p in range(problems):
        prompt = AIME.format(q=f"What is {p} + {p}?")
        for r in range(attempts):
            index = p * attempts + r
            preds.append(_prediction(index, prompt, f"\\boxed{{{2 * p}}}", metadata={"problem_idx": p}))
            reviews.append(_review("1.14", index, prompt, str(2 * p), "acc", 1.0, str(2 * p), "x"))
    for path, items in ((run / PRED, preds), (run / REV, reviews)):
        path.parent.mkdir(parents=True)
        write_rows(path, items)
    return run


@HYPO
@given(problems=st.integers(2, 4), attempts=st.integers(1, 5), repeats=st.integers(1, 6))
def test_property_a_repeats_that_differs_from_the_rows_is_refused(tmp_path, problems, attempts, repeats):
    import shutil

    shutil.rmtree(tmp_path / "w", ignore_errors=True)
    run = write_attempts(tmp_path / "w", problems, attempts, repeats)
    if repeats == attempts:
        consistent(plan(run))
        return
    with pytest.raises(InteropError, match="repeats") as info:
        plan(run)
    one_line_error(info.value)
    assert str(run / PRED) in str(info.value) or str(run) in str(info.value)


def test_repeats_mismatch_through_the_cli_stores_nothing(tmp_path, capsys):
    write_attempts(tmp_path / "w", problems=3, attempts=8, repeats=2)     # kept 2 of 8 completions before
    fails(capsys, ["import", "evalscope", str(tmp_path / "w"), "--store", str(tmp_path / "s.db")],
          "repeats the prompt of index 0 (problem 0) under repeats=2")
    write_attempts(tmp_path / "v", problems=3, attempts=4, repeats=8)     # merged problems before
    fails(capsys, ["import", "evalscope", str(tmp_path / "v"), "--store", str(tmp_path / "s.db")],
          ":5: messages: the prompt of index 4 differs from index 0's")
    assert counts(tmp_path / "s.db") == (0, 0)


# ------------------------------------------------------------------ a problem's rows that disagree


def _other_prompt(row: dict) -> None:
    row["messages"][0]["content"] += " (edited)"


def _other_id(row: dict) -> None:
    row["metadata"]["problem_idx"] = "elsewhere"


def _other_gold(row: dict) -> None:
    row["target"] = ["71"]


@HYPO
@given(problem=st.integers(0, 2), attempt=st.integers(1, 3),
       change=st.sampled_from([(PRED, _other_prompt, "messages"), (PRED, _other_id, "metadata.problem_idx"),
                               (REV, _other_gold, "target")]))
def test_property_a_problem_whose_rows_disagree_is_refused_naming_the_row(tmp_path, problem, attempt, change):
    import shutil

    shutil.rmtree(tmp_path / "w", ignore_errors=True)
    run = write_run(tmp_path / "w", duplicate=False)
    file, edit, field = change
    items = rows(run / file)
    index = problem * 4 + attempt
    for item in items:
        if item["index"] == index:
            item.setdefault("metadata", {})
            edit(item)
    write_rows(run / file, items)
    with pytest.raises(InteropError) as info:
        plan(run)
    one_line_error(info.value)
    assert f"{run / file}:{line_of(run / file, index)}: {field}" in str(info.value), info.value


@pytest.mark.parametrize("brk", LINE_BREAKS)
def test_a_gold_with_a_line_break_is_refused(tmp_path, brk):
    run = write_run(tmp_path / "w", duplicate=False)
    items = rows(run / REV)
    for item in items:
        if item["index"] // 4 == 0:
            item["target"] = [f"4{brk}2"]
    write_rows(run / REV, items)
    with pytest.raises(InteropError, match="target: the gold answer .* holds a line break") as info:
        plan(run)
    one_line_error(info.value)


# ------------------------------------------------------------------ files that are not regular files


@pytest.mark.parametrize("which", [PRED, REV, CONFIG])
def test_a_fifo_is_refused_without_being_opened(tmp_path, capsys, which):
    run = write_run(tmp_path / "w")
    (run / which).unlink()
    os.mkfifo(run / which)

    def hung(signum, frame):
        raise AssertionError(f"the import opened the FIFO {which} and blocked")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        code = main(["import", "evalscope", str(tmp_path / "w"), "--store", str(tmp_path / "s.db")])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"{run / which}: " in err and "is a FIFO, not a regular file; refused without reading it" in err
    assert counts(tmp_path / "s.db") == (0, 0)


# ------------------------------------------------------------------ verdicts travel with publish


def test_imported_verdicts_travel_with_publish_onto_a_fresh_clones_pages(tmp_path, monkeypatch, capsys):
    from spsbench.leaderboards.refresh import refresh

    write_run(tmp_path / "w")
    store = tmp_path / "s.db"
    import_evalscope(tmp_path / "w", store=store)
    assert main(["publish", "--all", "--store", str(store), "--out", str(tmp_path / "pub")]) == 0
    # A fresh clone: the export alone, no local store.
    refresh(tmp_path / "absent.db", tmp_path / "boards", plots=False, published=tmp_path / "pub")
    page = (tmp_path / "boards" / "tasks" / "aime25.md").read_text()
    assert "### Graders side by side" in page
    lines = [line for line in page.splitlines() if "| spsbench |" in line or "| evalscope@1.14.1 |" in line]
    assert len(lines) == 2 and all(line.endswith("| 10/12 |") for line in lines)
    # ... and beside the local store, the evaluation (in both) is shown once with its verdicts.
    refresh(store, tmp_path / "boards2", plots=False, published=tmp_path / "pub")
    page = (tmp_path / "boards2" / "tasks" / "aime25.md").read_text()
    assert sum("| evalscope@1.14.1 |" in line for line in page.splitlines()) == 1
