"""Hostile inputs, by class: each ends in one `spsbench <cmd>: error: ...` line with exit code 2 (or the
documented outcome), never a traceback, never a silent success, and finished work survives.

Classes: text that is not UTF-8 in every file kind spsbench reads; non-finite sampling numbers; permission
errors on weights and the cache folder; an output path that is a folder (or a folder path that is a
file); empty strings for options that need a value; a run folder whose checkpoints are all broken;
`--set` type errors; a library message cut mid-sentence; malformed and very long gold answers.
The Hypothesis properties at the end: for any input the task loader, the data loaders, the recipe
loader and the grader return a result or raise a one-line SpsbenchError, never another exception.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from spsbench import paths
from spsbench.config import SamplingConfig
from spsbench.errors import CheckpointError, ConfigError, SpsbenchError, TaskError, one_line
from spsbench.evaluation.evaluate import evaluate
from spsbench.evaluation.records import EvalRequest
from spsbench.grading import Outcome, grade
from spsbench.tasks import load_task
from spsbench.tasks.sources import build_problems, read_local
from tests.hostile import HYPO, SCALARS, VALUES, fails, one_line_error, outcome_of

NOT_UTF8 = b"name: x\nversion: '1'\n# caf\xe9 in Latin-1\n"


# ------------------------------------------------------------------ text that is not UTF-8


@pytest.fixture
def latin1(tmp_path) -> Path:
    return tmp_path


def test_non_utf8_task_file(capsys, tmp_path):
    bad = tmp_path / "mine.yaml"
    bad.write_bytes(NOT_UTF8)
    fails(capsys, ["tasks", "--show", str(bad)], "is not UTF-8 text", "line 3")
    fails(capsys, ["eval", "--task-file", str(bad), "--store", str(tmp_path / "s.db")], "is not UTF-8")


def test_non_utf8_data_file(capsys, tmp_path):
    bad = tmp_path / "rows.jsonl"
    bad.write_bytes(b'{"id": "1", "problem": "caf\xe9", "answer": "1"}\n')
    with pytest.raises(TaskError, match="not UTF-8 text") as info:
        load_task("arith", data=bad)
    one_line_error(info.value)
    store = tmp_path / "s.db"
    fails(capsys, ["eval", "--data", f"arith={bad}", "--store", str(store), "--no-leaderboard"], "not UTF-8")
    assert not store.exists()                                      # refused before anything was stored


def test_non_utf8_recipe(capsys, tmp_path):
    bad = tmp_path / "recipe.yaml"
    bad.write_bytes(b"algo: grpo\n# \xff\xfe\n")
    fails(capsys, ["train", "--config", str(bad)], "recipe", "not UTF-8")


def test_non_utf8_grading_input(capsys, tmp_path):
    bad = tmp_path / "completion.txt"
    bad.write_bytes(b"\\boxed{4} \xff")
    fails(capsys, ["grade", str(bad), "--gold", "4"], "not UTF-8")
    batch = tmp_path / "batch.jsonl"
    batch.write_bytes(b'{"completion": "\xff", "gold": "1"}\n')
    fails(capsys, ["grade", "--jsonl", str(batch)], "not UTF-8")


# ------------------------------------------------------------------ non-finite and out-of-range numbers


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--temperature", "inf", "sampling.temperature: must be a finite number, got inf"),
    ("--temperature", "nan", "sampling.temperature: must be a finite number, got nan"),
    ("--top-p", "nan", "sampling.top_p: must be a finite number, got nan"),
    ("--temperature", "-1", "sampling.temperature: must be >= 0, got -1.0"),
])
def test_non_finite_sampling_refused_before_anything_runs(capsys, tmp_path, flag, value, message):
    store = tmp_path / "s.db"
    fails(capsys, ["eval", flag, value, "--store", str(store), "--no-leaderboard"], message)
    assert not store.exists()                                      # no `running` evaluation left behind


def test_sampling_config_refuses_every_non_finite_number():
    for kw in ({"temperature": float("inf")}, {"top_p": float("-inf")}, {"n": 2.5}, {"max_tokens": True},
               {"stop": ("",)}):
        with pytest.raises(ConfigError) as info:
            SamplingConfig(**kw)
        one_line_error(info.value)


def test_finished_work_survives_a_hostile_second_run(capsys, tiny_model_dir, store_path, fake_factory):
    request = EvalRequest(str(tiny_model_dir), ("arith",), SamplingConfig(n=2, max_tokens=8), store=store_path,
                          limit=3, progress=False)
    [first] = evaluate(request, engine_factory=fake_factory)
    fails(capsys, ["eval", str(tiny_model_dir), "--temperature", "inf", "--store", str(store_path)], "finite")
    fails(capsys, ["eval", str(tiny_model_dir), "--data", "arith=/nonexistent.jsonl", "--store", str(store_path),
                   "--no-leaderboard"], "file not found")
    con = sqlite3.connect(store_path)
    assert con.execute("SELECT status, COUNT(*) FROM evaluations GROUP BY status").fetchall() == [("done", 1)]
    assert con.execute("SELECT COUNT(*) FROM samples WHERE eval_id = ?", (first.eval_id,)).fetchone()[0] == 6


# ------------------------------------------------------------------ permissions (simulated: tests run as root)


def test_unreadable_weights_are_one_line(tiny_model_dir, monkeypatch, tmp_path):
    from spsbench import models

    monkeypatch.setenv("SPSBENCH_CACHE", str(tmp_path / "cache"))
    real_open = open

    def denied(path, *args, **kwargs):
        if str(path).endswith(".safetensors"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", denied)
    with pytest.raises(CheckpointError, match="cannot read weight file model.safetensors: Permission denied") as info:
        models.weights_hash(tiny_model_dir)
    one_line_error(info.value)


def test_unusable_cache_folder_is_one_line(monkeypatch, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("SPSBENCH_CACHE", str(blocker / "cache"))
    with pytest.raises(ConfigError, match=r"cache folder \(\$SPSBENCH_CACHE\): cannot create folder") as info:
        paths.cache_dir()
    one_line_error(info.value)
    monkeypatch.setenv("SPSBENCH_CACHE", str(blocker))
    with pytest.raises(ConfigError, match="is a file, expected a folder"):
        paths.cache_dir()
    monkeypatch.setenv("SPSBENCH_CACHE", "")
    with pytest.raises(ConfigError, match="SPSBENCH_CACHE: needs a value"):
        paths.cache_dir()


def test_unwritable_folder_is_refused(monkeypatch, tmp_path):
    from spsbench import validate

    monkeypatch.setattr(validate.os, "access", lambda path, mode: False)
    with pytest.raises(ConfigError, match="not writable"):
        validate.writable_dir(tmp_path, "--out")


# ------------------------------------------------------------------ output paths of the wrong kind


def test_output_path_that_is_a_folder(capsys, tmp_path, store_path):
    from spsbench.store import Store

    Store(store_path).close()
    fails(capsys, ["results", "--store", str(store_path), "--out", str(tmp_path)], "--out", "is a folder")
    batch = tmp_path / "b.jsonl"
    batch.write_text(json.dumps({"completion": "\\boxed{1}", "gold": "1"}) + "\n")
    fails(capsys, ["grade", "--jsonl", str(batch), "--out", str(tmp_path)], "is a folder")
    fails(capsys, ["leaderboard", "--store", str(store_path), "--out", str(batch)], "is a file, expected a folder")
    fails(capsys, ["eval", "--store", str(tmp_path)], "is a folder")


# ------------------------------------------------------------------ empty strings


@pytest.mark.parametrize("argv", [
    ["eval", "--store", ""], ["eval", "--tasks", ""], ["eval", ""], ["eval", "--base-url", " "],
    ["eval", "--stop", ""], ["eval", "--data", ""], ["grade", "x.txt", "--gold", ""],
    ["results", "--store", ""], ["leaderboard", "--out", ""], ["train", "--run-name", ""],
    ["train", "--task", ""], ["train", "--config", ""], ["diagnose", ""],
])
def test_empty_strings_are_refused(capsys, argv):
    fails(capsys, argv, "needs a value, got an empty string")


def test_empty_values_in_key_value_options(capsys):
    fails(capsys, ["eval", "--engine-opt", "batch_size="], "--engine-opt: expected KEY=VALUE")
    fails(capsys, ["train", "--set", "model="], "--set model: needs a value")
    fails(capsys, ["diagnose", "m", "--engine-opt", "batch_size="], "--engine-opt: expected KEY=VALUE")


def test_diagnose_refuses_a_bad_engine_option_before_anything_loads(capsys, tmp_path):
    store = tmp_path / "s.db"
    fails(capsys, ["diagnose", "no/such-model", "--engine", "hf", "--engine-opt", "warp=9", "--store", str(store)],
          "engine hf: unknown option(s) warp")
    assert not store.exists()          # refused before the store was even opened


# ------------------------------------------------------------------ broken run folders


def test_run_folder_with_only_broken_checkpoints_fails(capsys, tmp_path):
    run = tmp_path / "run"
    for step in (1, 2):
        (run / f"checkpoint-{step}").mkdir(parents=True)
        (run / f"checkpoint-{step}" / "config.json").write_text("{}")
    out = fails(capsys, ["eval", str(run), "--engine", "hf", "--store", str(tmp_path / "s.db"),
                         "--no-leaderboard"], "all 2 checkpoint(s) are broken, nothing was evaluated")
    assert "no model weight files" in out


# ------------------------------------------------------------------ recipe values


@pytest.mark.parametrize(("override", "message"), [
    ("sps.irl_steps=abc", "sps.irl_steps: must be an integer or 'auto', got str 'abc'"),
    ("eval.temperature=.inf", "eval.temperature: must be a finite number, got inf"),
    ("eval.top_p=.nan", "eval.top_p: must be a finite number"),
    ("eval.n=true", "eval.n: must be an integer, got bool True"),
    ("dynamic_sampling.enabled=3", "dynamic_sampling.enabled: must be true or false"),
    ("eval.tasks=[]", "eval.tasks: give at least one task"),
    ("task=[1]", "task: must be a string"),
    ("sps.quantile=.nan", "sps.quantile: must be a finite number"),
])
def test_set_type_errors_name_the_key(capsys, override, message):
    fails(capsys, ["train", "--algo", "sps", "--set", override], message)


# ------------------------------------------------------------------ library messages and gold answers


def test_a_multi_line_library_message_is_not_cut_mid_sentence():
    from spsbench.engines.hf import _load_error

    exc = ValueError("Couldn't instantiate the backend tokenizer from one of: \n(1) a `tokenizers` library "
                     "serialization file, \n(2) a slow tokenizer instance to convert or \n(3) an equivalent slow "
                     "tokenizer class to instantiate and convert. \nYou need to have sentencepiece installed.")
    err = _load_error("/no/such/model", exc)
    one_line_error(err)
    assert "(3) an equivalent slow tokenizer class" in str(err) and str(err).endswith("sentencepiece installed.")
    assert one_line("word " * 200, limit=50).endswith(" …") and len(one_line("word " * 200, limit=50)) <= 52


@pytest.mark.parametrize("gold", [r"\frac{", "}{", r"\sqrt", "{{{"])
def test_malformed_gold_is_a_grader_error(gold):
    g = grade(r"\boxed{3}", gold)
    assert g.outcome is Outcome.GRADER_ERROR and "malformed" in g.detail


def test_a_5000_digit_answer_is_compared():
    big = "9" * 5000
    assert grade(rf"\boxed{{{big}}}", big).outcome is Outcome.CORRECT
    assert grade(rf"\boxed{{{big[:-1]}8}}", big).outcome is Outcome.INCORRECT
    assert grade(rf"\boxed{{000{big}}}", big).outcome is Outcome.CORRECT


# ------------------------------------------------------------------ Hypothesis properties

TASK_KEYS = ["name", "version", "grader", "source", "columns", "prompt_template", "n", "k", "answer_regex",
             "answer_format", "shuffle_choices", "distractor_columns", "meta_columns", "description"]
GOOD_TASK = {"version": "1", "grader": "math", "source": {"file": "rows.jsonl"},
             "columns": {"problem": "q", "answer": "a"}, "prompt_template": "{problem}", "n": 2, "k": [1]}
BUILTIN_SOURCES = st.fixed_dictionaries({"builtin": st.just("arith")}, optional={
    "seed": SCALARS, "count": st.integers(-2, 30), "difficulty": st.sampled_from(["easy", "hard", "x", 3])})


@HYPO
@given(changes=st.dictionaries(st.sampled_from(TASK_KEYS), VALUES, max_size=4),
       source=st.one_of(st.none(), BUILTIN_SOURCES), rows=st.binary(max_size=80))
def test_property_task_loader(tmp_path, changes, source, rows):
    raw = dict(GOOD_TASK, **changes) | ({"source": source} if source else {})
    (tmp_path / "rows.jsonl").write_bytes(rows)
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    outcome_of(lambda: load_task(path))


@HYPO
@given(content=st.one_of(st.binary(max_size=120), st.lists(VALUES, max_size=4).map(
    lambda rows: "\n".join(json.dumps(r) for r in rows).encode())), suffix=st.sampled_from([".jsonl", ".json"]))
def test_property_data_loaders(tmp_path, content, suffix):
    from spsbench.tasks.spec import read_spec

    (tmp_path / "rows.jsonl").write_text('{"q": "1+1", "a": "2"}\n')
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(GOOD_TASK))
    spec = read_spec(tmp_path / "t.yaml")
    data = tmp_path / f"data{suffix}"
    data.write_bytes(content)
    rows = outcome_of(lambda: read_local(data))
    if rows is not None:
        outcome_of(lambda: build_problems(spec, rows, str(data)))


RECIPE_KEYS = {"": ["algo", "task", "limit", "run_name", "optimizer_steps_per_generation", "data"],
               "sps": ["irl_steps", "quantile", "irl_learning_rate", "sampling_size", "l2te_logprob"],
               "eval": ["n", "k", "temperature", "top_p", "tasks", "limit", "engine", "isolate"],
               "dynamic_sampling": ["enabled", "max_resample_times", "soft_overlong_cache"]}
RECIPE_ITEMS = st.sampled_from([(s, k) for s, keys in RECIPE_KEYS.items() for k in keys])


@HYPO
@given(items=st.lists(st.tuples(RECIPE_ITEMS, VALUES), max_size=4), garbage=st.binary(max_size=40))
def test_property_recipe_loader(tmp_path, items, garbage):
    from spsbench.train.config import load_config

    raw: dict = {"model": "m"}
    for (section, key), value in items:
        (raw.setdefault(section, {}) if section else raw)[key] = value
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    outcome_of(lambda: load_config(config=path))
    path.write_bytes(garbage)
    outcome_of(lambda: load_config(config=path))


@HYPO
@given(completion=st.text(max_size=60), gold=st.one_of(st.text(max_size=12), st.integers().map(str)),
       kind=st.sampled_from(["math", "mc"]))
def test_property_grader(completion, gold, kind):
    choices = ("a", "b", "c") if kind == "mc" else None
    g = outcome_of(lambda: grade(completion, gold, kind=kind, choices=choices))
    assert g is None or isinstance(g.outcome, Outcome)


# ------------------------------------------------------------------ training checks everything before weights


@pytest.mark.parametrize(("override", "message"), [
    ("task=nosuchtask", "unknown task 'nosuchtask'"),
    ("eval.tasks=[arith, nosuchtask]", "unknown task 'nosuchtask'"),
    ("eval.engine=nope", "unknown engine 'nope'"),
    ("eval.engine_options={batchsize: 3}", "engine hf: unknown option(s) batchsize"),
    ("eval.engine_options={batch_size: 0}", "option batch_size must be an integer >= 1"),
    ("eval.data={aime25: x.jsonl}", "eval.data: aime25 is not among eval.tasks"),
    ("eval.data={arith: /nonexistent.jsonl}", "eval.data.arith: cannot read /nonexistent.jsonl"),
    ("data=/nonexistent.jsonl", "data: cannot read /nonexistent.jsonl"),
])
def test_training_refuses_before_the_first_weight_loads(tiny_model_dir, tmp_path, monkeypatch, override, message):
    from spsbench.train import run as train_run
    from spsbench.train.config import load_config

    def no_weights(*args, **kwargs):
        raise AssertionError("weights loaded before the configuration was checked")

    monkeypatch.setattr(train_run, "load_policy", no_weights)
    config = load_config("grpo", overrides=[override, f"output_dir={tmp_path / 'run'}"], model=str(tiny_model_dir))
    with pytest.raises(SpsbenchError) as info:
        train_run.build_trainer(config)
    one_line_error(info.value)
    assert message in str(info.value)
