"""Names that resolve loosely (issue 23, class 4): an exact name wins over a model whose path merely contains
it, a name that selects several models lists them, a run@step names a step the run has, A and B must be two
evaluations, every option of `spsbench results` is honoured or refused in compare mode, and a filter that
selects nothing is an error (results, publish, crosscheck), as in publish.

Generators: model paths drawn from a few components so that prefixes, tails, substrings and shared short
names collide; every option of the `results` parser in compare mode; every filter command.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spsbench.cli import build_parser, main
from spsbench.leaderboards.snapshot import short_path_name
from tests.fixtures.synthetic_store import _Writer, synthetic_store
from tests.hostile import HYPO, fails


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return synthetic_store(tmp_path_factory.mktemp("names") / "s.db", n=4, problems=6)


def run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err.strip()


def store_of(path: Path, models: list[str]) -> Path:
    """A store with one finished arith evaluation per model path (same setting: all comparable)."""
    w = _Writer(path)
    for i, model in enumerate(models):
        w.evaluation(w.model(model), "arith", [0.1, 0.5, 0.9, 0.3], 4, seed=i)
    w.con.commit()
    w.con.close()
    return path


# ------------------------------------------------------------------ generated names


COMPONENTS = ["qwen", "qwen-1", "qw", "m", "models"]
PATHS = st.lists(st.tuples(st.sampled_from(["", "/models/", "org/", "/a/b/"]), st.sampled_from(COMPONENTS))
                 .map("".join), min_size=2, max_size=4, unique=True)


def exact_names(path: str) -> set[str]:
    return {path, short_path_name(path)}


def fresh_store(tmp_path: Path, paths: list[str]) -> Path:
    db = tmp_path / "names.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return store_of(db, paths)


@settings(HYPO, max_examples=15)
@given(paths=PATHS)
def test_property_an_exact_name_selects_exactly_the_models_named_so(tmp_path, capsys, paths):
    db = fresh_store(tmp_path, paths)
    for name in paths:
        named = {p for p in paths if name in exact_names(p)}
        code, out, err = run_cli(capsys, ["results", "--store", str(db), "--model", name])
        assert code == 0, err
        assert {json.loads(line)["model"] for line in out.splitlines()} == named      # a prefix never adds more
        other = next((p for p in paths if p not in named), None)
        if other is None:
            continue
        named_b = {p for p in paths if other in exact_names(p)}
        code, out, err = run_cli(capsys, ["results", "--store", str(db), "--compare", name, other])
        if len(named) > 1 or len(named_b) > 1:     # two models answer to one name exactly: listed, never one picked
            side = "A" if len(named) > 1 else "B"
            assert code == 2 and f"--compare {side}: " in err and "models: " in err, err
        else:
            assert code == 0, err
            assert out.splitlines()[0].split("vs A = ")[1].startswith(short_path_name(name)), out


@settings(HYPO, max_examples=15)
@given(paths=PATHS, cut=st.integers(1, 3))
def test_property_a_part_of_a_name_is_never_silently_taken_for_it(tmp_path, capsys, paths, cut):
    db = fresh_store(tmp_path, paths)
    part = paths[0][cut:-1] if len(paths[0]) > cut + 1 else paths[0][:-1]
    if not part or any(part in exact_names(p) or p.endswith(("/" + part, "#" + part)) for p in paths):
        return                      # the part is itself a name (or a path tail) of some model
    code, _, err = run_cli(capsys, ["results", "--store", str(db), "--compare", part, paths[1]])
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"no run or model named {part!r}" in err and "names containing it:" in err, err


# ------------------------------------------------------------------ run@step, A == B


@pytest.mark.parametrize("spec", ["sps-qwen@-1", "sps-qwen@x", "sps-qwen@999", "sps-qwen@", "sps-qwen@1e2"])
def test_a_step_the_run_does_not_have_is_refused_listing_its_steps(store, capsys, spec):
    fails(capsys, ["results", "--store", str(store), "--compare", spec, "grpo-qwen"],
          f"--compare A: {spec!r}: run sps-qwen has no checkpoint", "its steps: 100, 200, 300")


@pytest.mark.parametrize(("a", "b"), [("sps-qwen", "sps-qwen"), ("sps-qwen@300", "sps-qwen"),
                                      ("other-7b", "/models/other-7b")])
def test_one_evaluation_compared_with_itself_is_refused(store, capsys, a, b):
    fails(capsys, ["results", "--store", str(store), "--compare", a, b, "--task", "aime25"],
          "are the same evaluation of aime25")


def test_a_run_and_a_model_with_one_name_are_ambiguous(tmp_path, capsys):
    db = synthetic_store(tmp_path / "s.db", n=4, problems=6)
    w = _Writer(db)
    w.evaluation(w.model("sps-qwen"), "arith", [0.5] * 6, 4, seed=1)
    w.con.commit()
    w.con.close()
    fails(capsys, ["results", "--store", str(db), "--compare", "sps-qwen", "grpo-qwen"],
          "names both run sps-qwen and model sps-qwen")


# ------------------------------------------------------------------ every option honoured or refused


def results_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["results"]


def results_options() -> list[tuple[str, argparse.Action, bool]]:
    """(flag, action, exclusive with --compare) for every option of `spsbench results`."""
    sub = results_parser()
    exclusive = {a for g in sub._mutually_exclusive_groups for a in g._group_actions}
    return [(a.option_strings[-1], a, a in exclusive) for a in sub._actions
            if a.option_strings and a.dest not in ("help", "store", "compare", "solved_diff")]


VALUE = {"task": "arith", "model": "sps-qwen", "with_source": "evalscope", "format": "csv"}


@pytest.mark.parametrize("mode", ["--compare", "--solved-diff"])
@pytest.mark.parametrize(("flag", "action", "exclusive"), results_options(), ids=lambda x: x if isinstance(x, str)
                         else "")
def test_every_results_option_is_honoured_or_refused_in_compare_mode(store, capsys, tmp_path, mode, flag, action,
                                                                     exclusive):
    base = ["results", "--store", str(store), mode, "grpo-qwen", "sps-qwen"]
    code, plain, _ = run_cli(capsys, base)
    assert code == 0
    if exclusive:                              # argparse itself refuses --samples with --compare
        with pytest.raises(SystemExit):
            main([*base, flag])
        capsys.readouterr()
        return
    out_file = tmp_path / "out.txt"
    extra = [flag] if action.nargs == 0 else [flag, str(out_file) if action.dest == "out" else VALUE[action.dest]]
    code, out, err = run_cli(capsys, [*base, *extra])
    if code == 2:
        assert len(err.splitlines()) == 1 and flag in err, err               # refused, naming the flag
        return
    assert code == 0, err
    honoured = out != plain or (action.dest == "out" and out == "" and out_file.read_text() == plain)
    assert honoured, f"{flag} changed nothing"


def test_compare_rows_as_csv_and_jsonl_and_to_a_file(store, capsys, tmp_path):
    code, out, _ = run_cli(capsys, ["results", "--store", str(store), "--compare", "grpo-qwen", "sps-qwen",
                                    "--task", "arith", "--format", "jsonl"])
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["metric"] for r in rows] == ["pass@k", "avg@n"]
    assert rows[1]["difference"] == pytest.approx(rows[1]["b_value"] - rows[1]["a_value"])
    assert rows[0]["ci_low"] <= rows[0]["difference"] <= rows[0]["ci_high"]
    code, _, err = run_cli(capsys, ["results", "--store", str(store), "--solved-diff", "grpo-qwen@100",
                                    "sps-qwen@300", "--format", "csv", "--out", str(tmp_path / "s.csv")])
    assert code == 0 and "wrote the solved-diff of 2 task(s)" in err
    header = (tmp_path / "s.csv").read_text().splitlines()[0]
    assert header.startswith("task,a,b,problems,solved_a,solved_b,p_value,change,problem_id")


# ------------------------------------------------------------------ filters that select nothing


FILTER_COMMANDS = {
    "results": lambda store: ["results", "--store", str(store)],
    "results --samples": lambda store: ["results", "--store", str(store), "--samples"],
    "publish": lambda store: ["publish", "--store", str(store), "--out", str(store.parent / "pub")],
    "crosscheck": lambda store: ["crosscheck", "evalscope", "--store", str(store), "--python", sys.executable],
}


@pytest.mark.parametrize("command", sorted(FILTER_COMMANDS))
@pytest.mark.parametrize(("filters", "message"), [
    (["--task", "nope"], "no evaluation of 'nope'"),
    (["--model", "nope"], "matches --model nope"),
    (["--task", "aime25", "--model", "nothing/else"], "matches --task aime25 --model nothing/else"),
])
def test_a_filter_that_selects_nothing_is_an_error(store, capsys, command, filters, message):
    fails(capsys, [*FILTER_COMMANDS[command](store), *filters], message)


def test_publish_refuses_ids_it_does_not_have(store, capsys, tmp_path):
    fails(capsys, ["publish", "--store", str(store), "--eval", "2,999", "--out", str(tmp_path / "pub")],
          "--eval: 999 not among the finished evaluations")
    assert not list((tmp_path / "pub").glob("*.gz"))       # nothing published from a refused command
