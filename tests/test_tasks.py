"""Task registry: YAML validation (one-line errors naming file and field), local/hub data loading,
deterministic mc shuffling, the built-in arith generator and the `spsbench tasks` command."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from spsbench import tasks
from spsbench.cli import main
from spsbench.errors import TaskError
from spsbench.tasks import arith
from spsbench.tasks import sources as task_data

DATA = Path(__file__).parent / "data" / "tasks"
REGISTERED = {"aime24", "aime25", "brumo25", "hmmt_feb25", "hmmt_nov25", "mmlu", "gpqa_diamond", "math500",
              "gsm8k", "arith", "lab-sums"}

MATH_YAML = """\
version: "1"
grader: math
source: {hub: some/dataset, config: default, split: train, revision: main}
columns: {id: problem_idx, problem: problem, answer: answer}
prompt_template: "{problem}\\nPut the answer in \\\\boxed{{}}."
n: 4
k: [1, 4]
"""

MC_YAML = """\
version: "1"
grader: mc
source: {hub: some/mc, split: test, revision: main}
columns: {problem: question, choices: choices, answer: answer}
answer_format: index
prompt_template: "{problem}\\n{choices}\\nAnswer with one of {letters}."
n: 2
k: [1, 2]
"""


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No hub access and a private cache for every test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("SPSBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps tables at 80 columns when stdout is not a terminal


def write(tmp_path: Path, text: str, name: str = "my.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


# ----------------------------------------------------------------------------------------------------
# Registry


def test_registry_lists_every_benchmark_sorted():
    specs = tasks.list_specs()
    names = [spec.name for spec in specs]
    assert set(names) == REGISTERED
    assert names == sorted(names)
    for spec in specs:
        assert spec.path is not None and spec.path.stem == spec.name
        assert all(k <= spec.n for k in spec.k)
        if spec.source_kind == "hub":
            assert spec.source["revision"]


def test_registry_sources_and_graders():
    by_name = {spec.name: spec for spec in tasks.list_specs()}
    assert by_name["aime25"].source["hub"] == "MathArena/aime_2025"
    assert by_name["gpqa_diamond"].source["config"] == "gpqa_diamond"
    assert by_name["gpqa_diamond"].shuffle_choices is True
    assert by_name["mmlu"].shuffle_choices is False and by_name["mmlu"].answer_format == "index"
    assert {s.grader for s in by_name.values() if s.name in ("mmlu", "gpqa_diamond")} == {"mc"}
    assert tasks.fill_template(by_name["arith"], "P").endswith("\\boxed{number}.")  # see tasks/arith.yaml
    for name in ("aime24", "aime25", "brumo25", "hmmt_feb25", "hmmt_nov25", "math500", "gsm8k"):
        assert by_name[name].grader == "math"
        assert "Please reason step by step, and put your final answer within \\boxed{}." in \
            tasks.fill_template(by_name[name], "P")


def test_unknown_task_name_lists_registered():
    with pytest.raises(TaskError, match=r"unknown task 'nope'.*aime25"):
        tasks.load_spec("nope")


def test_registry_file_name_must_match(tmp_path, monkeypatch):
    monkeypatch.setenv("SPSBENCH_TASKS_DIR", str(tmp_path))
    write(tmp_path, "name: other\n" + MATH_YAML, "mine.yaml")
    with pytest.raises(TaskError, match=r"mine\.yaml: name: 'other' must match the file name"):
        tasks.list_specs()


def test_import_is_light():
    code = ("import sys, spsbench.tasks, spsbench.tasks.sources, spsbench.tasks.arith; import spsbench.tasks as t; "
            "t.load_task('arith'); "
            "bad = [m for m in ('torch', 'transformers', 'vllm', 'datasets') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------------------------------
# Validation: one line, file and field named


@pytest.mark.parametrize("edit, field, message", [
    (lambda y: y + "foo: 1\n", "foo", "unknown key"),
    (lambda y: y.replace("grader: math\n", ""), "grader", "missing required field"),
    (lambda y: y.replace('version: "1"\n', ""), "version", "missing required field"),
    (lambda y: y.replace("n: 4", "n: four"), "n", "expected int, got str"),
    (lambda y: y.replace("n: 4", "n: true"), "n", "expected int, got bool"),
    (lambda y: y.replace("k: [1, 4]", "k: 1,4"), "k", "expected list[int]"),
    (lambda y: y.replace("grader: math", "grader: exec"), "grader", "unknown grader 'exec'"),
    (lambda y: y.replace("k: [1, 4]", "k: [1, 8]"), "k", "8 is larger than n=4"),
    (lambda y: y.replace("k: [1, 4]", "k: [0]"), "k", "positive integers"),
    (lambda y: y.replace("revision: main", "revision: main, mirror: x"), "source.mirror", "unknown key"),
    (lambda y: y.replace(", revision: main", ""), "source.revision", "missing required field"),
    (lambda y: y.replace("hub: some/dataset, ", ""), "source", "needs exactly one of"),
    (lambda y: y.replace("columns: {id", "columns: {idx"), "columns.idx", "unknown field"),
    (lambda y: y.replace("answer: answer}", "}"), "columns.answer", "missing required field"),
    (lambda y: y.replace("{problem}\\n", "{problem.__class__}"), "prompt_template", "not allowed"),
    (lambda y: y.replace("{problem}\\n", "{problem}{choices}"), "prompt_template", "{choices} not allowed"),
    (lambda y: y.replace("{{}}", "{}"), "prompt_template", "literal braces"),
    (lambda y: y.replace("{problem}\\n", ""), "prompt_template", "must contain {problem}"),
    (lambda y: y + "answer_regex: '####'\n", "answer_regex", "exactly one capture group"),
    (lambda y: y + "answer_regex: '(['\n", "answer_regex", "invalid regular expression"),
    (lambda y: y + "shuffle_choices: true\n", "shuffle_choices", "only valid with grader: mc"),
    (lambda y: y + "name: 'bad name'\n", "name", "must be letters"),
])
def test_validation_errors_name_file_and_field(tmp_path, edit, field, message):
    path = write(tmp_path, edit(MATH_YAML))
    with pytest.raises(TaskError) as info:
        tasks.load_spec(path)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: {field}: "), text
    assert message in text


@pytest.mark.parametrize("edit, field, message", [
    (lambda y: y.replace("choices: choices, ", ""), "columns.choices", "either columns.choices"),
    (lambda y: y.replace("{choices}", ""), "prompt_template", "must contain {choices}"),
    (lambda y: y.replace("index", "roman"), "answer_format", "must be one of text, index, letter"),
    (lambda y: y + "distractor_columns: [w1]\n", "columns.choices", "either columns.choices"),
])
def test_mc_validation_errors(tmp_path, edit, field, message):
    path = write(tmp_path, edit(MC_YAML))
    with pytest.raises(TaskError, match=re.escape(f"{path}: {field}: ") + ".*" + re.escape(message)):
        tasks.load_spec(path)


def test_builtin_parameters_are_validated(tmp_path):
    text = MATH_YAML.replace("source: {hub: some/dataset, config: default, split: train, revision: main}",
                             "source: {builtin: arith, difficulty: extreme}")
    path = write(tmp_path, text)
    with pytest.raises(TaskError, match=re.escape(f"{path}: source.difficulty: must be one of easy")):
        tasks.load_spec(path)
    path = write(tmp_path, text.replace("difficulty: extreme", "steps: [3, 1]"))
    with pytest.raises(TaskError, match=re.escape(f"{path}: source.steps:")):
        tasks.load_spec(path)
    path = write(tmp_path, text.replace("builtin: arith", "builtin: shell"))
    with pytest.raises(TaskError, match="unknown built-in generator 'shell'"):
        tasks.load_spec(path)


def test_python_tags_are_rejected_and_not_executed(tmp_path):
    marker = tmp_path / "executed"
    path = write(tmp_path, MATH_YAML + f"description: !!python/object/apply:os.mkdir ['{marker}']\n")
    with pytest.raises(TaskError, match=re.escape(f"{path}: not a valid task file")):
        tasks.load_spec(path)
    assert not marker.exists()


def test_top_level_must_be_mapping_and_file_must_exist(tmp_path):
    path = write(tmp_path, "- a\n- b\n")
    with pytest.raises(TaskError, match="top level must be a mapping"):
        tasks.load_spec(path)
    with pytest.raises(TaskError, match="task file not found"):
        tasks.load_spec(tmp_path / "missing.yaml")


# ----------------------------------------------------------------------------------------------------
# Data-dependent errors


def test_missing_column_in_data(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"problem_idx": 1, "problem": "x", "solution": "y"}])
    spec_path = write(tmp_path, MATH_YAML)
    with pytest.raises(TaskError) as info:
        tasks.load_task(spec_path, data=data)
    assert str(info.value).startswith(f"{spec_path}: columns.answer: column 'answer' not found in {data}")
    assert "available: problem_idx, problem, solution" in str(info.value)


def test_empty_dataset(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [])
    spec_path = write(tmp_path, MATH_YAML)
    with pytest.raises(TaskError, match=re.escape(f"{spec_path}: source: dataset is empty")):
        tasks.load_task(spec_path, data=data)


def test_duplicate_problem_ids(tmp_path):
    rows = [{"problem_idx": 1, "problem": "a", "answer": "1"}, {"problem_idx": 1, "problem": "b", "answer": "2"}]
    spec_path = write(tmp_path, MATH_YAML)
    with pytest.raises(TaskError, match=re.escape(f"{spec_path}: columns.id: duplicate problem id '1' (rows 0 and 1")):
        tasks.load_task(spec_path, data=write_jsonl(tmp_path / "d.jsonl", rows))


def test_answer_regex_without_match(tmp_path):
    spec_path = write(tmp_path, MATH_YAML + "answer_regex: '####\\s*(\\S+)'\n")
    data = write_jsonl(tmp_path / "d.jsonl", [{"problem_idx": 1, "problem": "a", "answer": "no marker"}])
    with pytest.raises(TaskError, match=re.escape(f"{spec_path}: answer_regex: no match in row 0")):
        tasks.load_task(spec_path, data=data)


def test_mc_answer_index_out_of_range(tmp_path):
    spec_path = write(tmp_path, MC_YAML)
    data = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "choices": ["a", "b"], "answer": 2}])
    with pytest.raises(TaskError, match=re.escape(f"{spec_path}: columns.answer: 2 is not a valid index")):
        tasks.load_task(spec_path, data=data)


def test_bad_data_files(tmp_path):
    spec_path = write(tmp_path, MATH_YAML)
    with pytest.raises(TaskError, match="file not found"):
        tasks.load_task(spec_path, data=tmp_path / "nope.jsonl")
    (tmp_path / "d.csv").write_text("a,b\n")
    with pytest.raises(TaskError, match="unsupported file type '.csv'"):
        tasks.load_task(spec_path, data=tmp_path / "d.csv")
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{oops\n')
    with pytest.raises(TaskError, match=r"bad\.jsonl:2: invalid JSON"):
        tasks.load_task(spec_path, data=tmp_path / "bad.jsonl")
    with pytest.raises(TaskError, match="limit: must be a positive integer"):
        tasks.load_task(spec_path, data=DATA / "aime25_sample.jsonl", limit=0)


# ----------------------------------------------------------------------------------------------------
# Loading local copies of hub tasks


def test_hub_task_from_local_jsonl():
    task = tasks.load_task("aime25", data=DATA / "aime25_sample.jsonl")
    assert task.spec.name == "aime25"
    assert [p.id for p in task.problems] == ["1", "2", "3"]
    assert [p.answer for p in task.problems] == ["7", "120", "24"]
    first = task.problems[0]
    assert first.prompt.startswith("Find the remainder when $7^{2025}$")
    assert first.prompt.endswith("put your final answer within \\boxed{}.")
    assert first.choices is None and first.meta["row"] == 0
    assert len(tasks.load_task("aime25", data=DATA / "aime25_sample.jsonl", limit=2).problems) == 2


def test_hub_task_from_local_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [{"problem": f"Compute {i}+{i}.", "solution": "...", "answer": f"\\frac{{{i}}}{{2}}",
             "subject": "Algebra", "level": 2, "unique_id": f"test/algebra/{i}.json"} for i in range(5)]
    path = tmp_path / "math500.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    task = tasks.load_task("math500", data=path)
    assert [p.id for p in task.problems] == [r["unique_id"] for r in rows]
    assert task.problems[3].answer == "\\frac{3}{2}"
    assert task.problems[3].meta == {"row": 3, "subject": "Algebra", "level": 2}
    assert task_data.read_local(path) == rows


def test_json_list_and_json_lines_both_load(tmp_path):
    rows = [json.loads(line) for line in (DATA / "aime25_sample.jsonl").read_text().splitlines()]
    as_list = tmp_path / "a.json"
    as_list.write_text(json.dumps(rows))
    as_lines = tmp_path / "b.json"  # what datasets' to_json writes
    as_lines.write_text((DATA / "aime25_sample.jsonl").read_text())
    assert task_data.read_local(as_list) == rows == task_data.read_local(as_lines)


def test_gsm8k_answer_regex_and_remove():
    task = tasks.load_task("gsm8k", data=DATA / "gsm8k_sample.jsonl")
    assert [p.answer for p in task.problems] == ["1003", "1"]
    assert [p.id for p in task.problems] == ["0", "1"]  # no id column: row index


def test_mmlu_keeps_order_and_maps_index_to_letter(tmp_path):
    rows = [{"question": "2+2?", "subject": "math", "choices": ["3", "4", "5", "6"], "answer": 1},
            {"question": "Capital of France?", "subject": "geo", "choices": ["Paris", "Rome", "Oslo", "Bern"],
             "answer": 0}]
    task = tasks.load_task("mmlu", data=write_jsonl(tmp_path / "mmlu.jsonl", rows))
    first = task.problems[0]
    assert first.choices == ("3", "4", "5", "6") and first.answer == "B"
    assert "A) 3\nB) 4\nC) 5\nD) 6" in first.prompt
    assert "one of A, B, C, D" in first.prompt
    assert first.meta["subject"] == "math" and task.problems[1].answer == "A"


def test_letter_answer_format(tmp_path):
    spec_path = write(tmp_path, MC_YAML.replace("answer_format: index", "answer_format: letter"))
    data = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "choices": ["x", "y", "z"], "answer": "c"}])
    assert tasks.load_task(spec_path, data=data).problems[0].answer == "C"


# ----------------------------------------------------------------------------------------------------
# Multiple-choice shuffle


def test_gpqa_shuffle_is_deterministic_and_gold_letter_is_right():
    first = tasks.load_task("gpqa_diamond", data=DATA / "gpqa_sample.jsonl")
    again = tasks.load_task("gpqa_diamond", data=DATA / "gpqa_sample.jsonl")
    rows = task_data.read_local(DATA / "gpqa_sample.jsonl")
    for problem, repeat, row in zip(first.problems, again.problems, rows, strict=True):
        assert problem.choices == repeat.choices and problem.answer == repeat.answer
        gold = "ABCD".index(problem.answer)
        assert problem.choices[gold] == row["Correct Answer"].strip()
        wrong = {row[f"Incorrect Answer {i}"] for i in (1, 2, 3)}
        assert set(problem.choices) == wrong | {row["Correct Answer"].strip()}
        assert f"{problem.answer}) {row['Correct Answer'].strip()}" in problem.prompt
    assert [p.id for p in first.problems] == ["rec01", "rec02", "rec03"]


def test_shuffle_order_is_a_stable_permutation():
    orders = [tuple(task_data.shuffle_order(4, f"question {i}")) for i in range(200)]
    assert all(sorted(order) == [0, 1, 2, 3] for order in orders)
    gold_positions = {order.index(0) for order in orders}
    assert gold_positions == {0, 1, 2, 3}  # the right answer is not stuck at A
    assert len(set(orders)) > 20


def test_shuffle_order_pinned_values():
    # The order must never change across Python versions or machines: stored samples are regraded.
    assert task_data.shuffle_order(4, "What is 2+2?") == [2, 0, 1, 3]
    assert task_data.shuffle_order(4, "Which base pairs with adenine in DNA?") == [2, 3, 1, 0]


# ----------------------------------------------------------------------------------------------------
# Built-in arith


def _solve(text: str) -> int:
    """Independent re-computation of an arith answer from its wording."""
    total = int(re.search(r"has (\d+) ", text).group(1))
    for sentence in re.split(r"(?<=\.) ", text)[1:]:
        if m := re.search(r"buys (\d+) \w+ with (\d+) \w+ each", sentence):
            total += int(m.group(1)) * int(m.group(2))
        elif m := re.search(r"(?:buys|finds|gets) (\d+) more", sentence):
            total += int(m.group(1))
        elif m := re.search(r"(?:gives|loses|sells) (\d+) ", sentence):
            total -= int(m.group(1))
    return total


@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard"])
def test_arith_answers_are_correct_integers(difficulty):
    rows = arith.generate(arith.ArithConfig(seed=3, count=200, difficulty=difficulty))
    assert len(rows) == 200 and len({r["id"] for r in rows}) == 200
    for row in rows:
        assert row["answer"] == str(int(row["answer"])) and int(row["answer"]) >= 1
        assert _solve(row["problem"]) == int(row["answer"]), row
    steps = [len(re.findall(r"\. [A-Z]", r["problem"])) - 1 for r in rows]
    lo, hi = arith.LEVELS[difficulty]["steps"]
    assert min(steps) == lo and max(steps) == hi
    numbers = [int(x) for r in rows for x in re.findall(r"has (\d+)", r["problem"])]
    assert max(numbers) <= arith.LEVELS[difficulty]["max_value"]


def test_arith_is_deterministic_by_seed():
    config = arith.ArithConfig(seed=0, count=32, difficulty="medium")
    assert arith.generate(config) == arith.generate(arith.ArithConfig(seed=0, count=32, difficulty="medium"))
    assert arith.generate(config) != arith.generate(arith.ArithConfig(seed=1, count=32, difficulty="medium"))
    assert any("each" in r["problem"] for r in arith.generate(arith.ArithConfig(count=50, difficulty="hard")))
    # Pinned: the generator's output is part of the task version.
    assert arith.generate(config)[0] == {"id": "0", "answer": "35", "problem": (
        "Raj has 6 stamps. He buys 16 more stamps. He gets 13 more stamps from a friend. "
        "How many stamps does Raj have now?")}


def test_arith_task_loads_offline_with_overrides(tmp_path):
    task = tasks.load_task("arith")
    assert len(task.problems) == 32 and task.spec.source["difficulty"] == "easy"
    assert task.problems[0].answer == "12"
    assert task.problems[0].prompt == ("Raj has 4 stamps. He buys 8 more stamps. How many stamps does Raj have "
                                       "now?\nWrite the final answer as \\boxed{number}.")
    text = MATH_YAML.replace("source: {hub: some/dataset, config: default, split: train, revision: main}",
                             "source: {builtin: arith, seed: 5, count: 10, steps: [3, 3], max_value: 5}")
    text = text.replace("columns: {id: problem_idx, problem: problem, answer: answer}\n", "")
    custom = tasks.load_task(write(tmp_path, text))
    assert len(custom.problems) == 10
    assert all(p.prompt.count(". ") >= 4 for p in custom.problems)


# ----------------------------------------------------------------------------------------------------
# Hub path (faked: no network in tests) and cache


def _fake_datasets(monkeypatch, rows=None, calls=None):
    module = types.ModuleType("datasets")

    def load_dataset(path, name=None, split=None, revision=None):
        if calls is not None:
            calls.append((path, name, split, revision))
        if rows is None:
            raise ConnectionError("Couldn't reach 'MathArena/aime_2025' on the Hub (LocalEntryNotFoundError)")
        return rows

    module.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", module)


def test_offline_hub_task_says_to_pass_data(monkeypatch):
    _fake_datasets(monkeypatch)
    with pytest.raises(TaskError) as info:
        tasks.load_task("aime25")
    assert "cannot load MathArena/aime_2025" in str(info.value)
    assert "--data aime25=" in str(info.value) and "\n" not in str(info.value)


def test_hub_rows_are_cached_and_counted(monkeypatch, capsys):
    rows = task_data.read_local(DATA / "aime25_sample.jsonl")
    calls: list = []
    _fake_datasets(monkeypatch, rows=rows, calls=calls)
    task = tasks.load_task("aime25")
    assert calls == [("MathArena/aime_2025", "default", "train", "c94da77eb22bbd6439e62a323bec18493a421302")]
    assert len(task.problems) == 3 and task.spec.cache_path().is_file()
    _fake_datasets(monkeypatch)  # hub now unreachable: the cache must be used
    assert [p.answer for p in tasks.load_task("aime25").problems] == ["7", "120", "24"]
    assert task_data.known_count(task.spec) == 3
    assert main(["tasks"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "aime25" in x)
    assert re.search(r"│\s+3\s+│", line)


# ----------------------------------------------------------------------------------------------------
# User task files with a local data file


def test_user_task_file_with_relative_data_file(tmp_path):
    folder = tmp_path / "mytask"
    folder.mkdir()
    write_jsonl(folder / "rows.jsonl", [{"q": "1+1?", "a": "2"}, {"q": "2+3?", "a": "5"}])
    text = MATH_YAML.replace("source: {hub: some/dataset, config: default, split: train, revision: main}",
                             "source: {file: rows.jsonl}")
    text = text.replace("columns: {id: problem_idx, problem: problem, answer: answer}",
                        "columns: {problem: q, answer: a}")
    path = write(folder, text, "my_task.yaml")
    task = tasks.load_task(str(path))
    assert task.spec.name == "my_task"  # defaults to the file name
    assert [p.answer for p in task.problems] == ["2", "5"]
    assert task_data.known_count(task.spec) == 2


# ----------------------------------------------------------------------------------------------------
# --data parsing and the CLI


def test_parse_data_args():
    assert tasks.parse_data_args(["aime25=a.jsonl", "mmlu = /x/m.parquet"]) == {
        "aime25": "a.jsonl", "mmlu": "/x/m.parquet"}
    assert tasks.parse_data_args(None) == {}
    for bad in (["aime25"], ["=a.jsonl"], ["aime25="]):
        with pytest.raises(TaskError, match="--data: expected NAME=PATH"):
            tasks.parse_data_args(bad)
    with pytest.raises(TaskError, match="given twice"):
        tasks.parse_data_args(["a=1.jsonl", "a=2.jsonl"])


def test_cli_lists_registry(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for name in REGISTERED:
        assert name in out
    arith_line = next(line for line in out.splitlines() if "builtin:arith" in line)
    assert re.search(r"│\s+32\s+│ math", arith_line)
    assert "MathArena/aime_2025:train" in out


def test_cli_show_builtin_and_local_data(capsys):
    assert main(["tasks", "--show", "arith"]) == 0
    out = capsys.readouterr().out
    assert "first prompt (id 0, gold 12)" in out and "Raj has 4 stamps" in out
    assert main(["tasks", "--show", "gpqa_diamond", "--data", f"gpqa_diamond={DATA / 'gpqa_sample.jsonl'}"]) == 0
    out = capsys.readouterr().out
    assert "revision: 633f5ee89ab8ad4522a9f850766b73f62147ffdd" in out
    assert "Which particle mediates" in out and "Photon" in out
    assert main(["tasks", "--show", "aime25"]) == 0
    assert "--data aime25=" in capsys.readouterr().out


def test_cli_errors_are_one_line(capsys):
    assert main(["tasks", "--show", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spsbench tasks: error: unknown task 'nope'") and "\n" not in err
    assert main(["tasks", "--data", "oops"]) == 2
    assert "--data: expected NAME=PATH" in capsys.readouterr().err


def test_cli_schema_lists_every_key(capsys):
    assert main(["tasks", "--schema"]) == 0
    out = capsys.readouterr().out
    for key, *_ in tasks.schema():
        assert key in out
