"""Hostile published exports (issue 23, class 6): the committed `results/published/` is validated on read;
a record that is not an object, a missing or mistyped field, an unknown outcome, a sample stored twice or
removed, and scores the samples do not give are one line naming the file (and line), never a traceback and
never shown. The committed export itself passes.

Generators: any JSON value in place of any line, any field of any record kind removed or given any value,
any sample line removed or duplicated, any outcome replaced by any text.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spsbench.cli import main
from spsbench.errors import StoreError
from spsbench.grading import Outcome
from spsbench.store.published import read_published
from spsbench.store.published_check import FIELDS
from tests.fixtures.synthetic_store import synthetic_store
from tests.hostile import HYPO, VALUES, fails, one_line_error


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    """Two exported evaluations of the synthetic store (a checkpoint and a plain model, arith)."""
    root = tmp_path_factory.mktemp("pub")
    store = synthetic_store(root / "s.db", n=4, problems=6)
    assert main(["publish", "--store", str(store), "--task", "arith", "--eval", "4,2", "--out", str(root / "pub")]) == 0
    return root / "pub"


@pytest.fixture
def folder(export, tmp_path) -> Path:
    return Path(shutil.copytree(export, tmp_path / "pub"))


def lines_of(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return fh.read().splitlines()


def write_lines(path: Path, lines: list[str]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def first_file(folder: Path) -> Path:
    return sorted(folder.glob("*.jsonl.gz"))[0]


def refused(folder: Path, *pieces: str) -> str:
    with pytest.raises(StoreError) as info:
        read_published(folder)
    one_line_error(info.value)
    text = str(info.value)
    for piece in pieces:
        assert piece in text, text
    return text


def test_the_committed_export_passes():
    published = read_published(Path(__file__).resolve().parent.parent / "results" / "published")
    assert published and all(p.samples for p in published)


# ------------------------------------------------------------------ generators


@HYPO
@given(value=VALUES, where=st.data())
def test_property_any_json_value_in_place_of_any_line_is_refused_naming_the_line(folder, export, value, where):
    path = first_file(folder)
    lines = lines_of(first_file(export))
    number = where.draw(st.integers(1, len(lines)))
    write_lines(path, lines[:number - 1] + [json.dumps(value)] + lines[number:])
    if isinstance(value, dict):           # an object can still be a valid record by accident: rare, allowed
        try:
            read_published(folder)
            return
        except StoreError as exc:
            one_line_error(exc)
            return
    refused(folder, path.name)


RECORD_FIELDS = [(kind, f) for kind, fields in FIELDS.items() for f in fields]


@pytest.mark.parametrize(("kind", "field"), RECORD_FIELDS, ids=[f"{k}.{f}" for k, f in RECORD_FIELDS])
@settings(HYPO, max_examples=5)
@given(value=st.one_of(VALUES, st.just("<deleted>")), pick=st.integers(0, 10_000))
def test_property_any_field_of_any_record_removed_or_retyped(folder, export, kind, field, value, pick):
    path = first_file(folder)
    lines = lines_of(first_file(export))
    records = [json.loads(line) for line in lines]
    if kind == "model":
        number, target = 1, records[0]["model"]
    else:
        candidates = [i for i, r in enumerate(records, 1) if r["kind"] == kind]
        if not candidates:
            return
        number = candidates[pick % len(candidates)]
        target = records[number - 1]
    if value == "<deleted>":
        target.pop(field, None)
    else:
        target[field] = value
    write_lines(path, [json.dumps(r) for r in records])
    try:
        published = read_published(folder)
    except StoreError as exc:
        one_line_error(exc)
        assert path.name in str(exc), exc
        return
    # Accepted: the value was of the right type (or an optional field went missing): nothing shown is broken.
    for p in published:
        assert all(s["outcome"] in {o.value for o in Outcome} for s in p.samples)
        assert isinstance(p.head["n"], int) and isinstance(p.head["model"]["path"], str)


@settings(HYPO, max_examples=10)
@given(pick=st.integers(0, 10_000), how=st.sampled_from(["remove", "duplicate"]))
def test_property_any_sample_removed_or_duplicated_is_refused(folder, export, pick, how):
    path = first_file(folder)
    lines = lines_of(first_file(export))
    samples = [i for i, line in enumerate(lines) if json.loads(line)["kind"] == "sample"]
    i = samples[pick % len(samples)]
    changed = lines[:i] + lines[i + 1:] if how == "remove" else lines[:i + 1] + [lines[i]] + lines[i + 1:]
    write_lines(path, changed)
    text = refused(folder, path.name)
    assert ("samples were removed from the export" in text if how == "remove" else "is stored twice" in text), text


@settings(HYPO, max_examples=10)
@given(pick=st.integers(0, 10_000), outcome=st.text(max_size=12))
def test_property_any_outcome_changed_is_refused_or_caught_by_the_scores(folder, export, pick, outcome):
    path = first_file(folder)
    lines = lines_of(first_file(export))
    samples = [i for i, line in enumerate(lines) if json.loads(line)["kind"] == "sample"]
    i = samples[pick % len(samples)]
    record = json.loads(lines[i])
    if outcome in {o.value for o in Outcome} and (outcome == "correct") == (record["outcome"] == "correct"):
        return                             # a valid outcome that scores the same: nothing to notice
    record["outcome"] = outcome
    write_lines(path, lines[:i] + [json.dumps(record)] + lines[i + 1:])
    refused(folder, f"{path.name}:")


# ------------------------------------------------------------------ the named cases, through the CLI


@pytest.mark.parametrize(("damage", "message"), [
    (lambda lines: lines[:3] + ["null"] + lines[3:], ":4: expected a record (a JSON object), got NoneType None"),
    (lambda lines: [lines[0].replace('"engine": ', '"engin": ')] + lines[1:], ":1: engine: missing"),
    (lambda lines: [line.replace('"outcome": "incorrect"', '"outcome": "wrong"', 1) for line in lines],
     "outcome: expected one of correct, incorrect"),
    (lambda lines: [line for line in lines if '"sample_idx": 3' not in line],
     "samples were removed from the export"),
    (lambda lines: lines + ['{"kind": "tip"}'], "kind: unknown record kind 'tip'"),
])
def test_a_damaged_export_stops_the_leaderboard_in_one_line(folder, tmp_path, capsys, monkeypatch, damage, message):
    path = first_file(folder)
    write_lines(path, damage(lines_of(path)))
    monkeypatch.setenv("SPSBENCH_PUBLISHED", str(folder))
    fails(capsys, ["leaderboard", "--store", str(tmp_path / "none.db"), "--out", str(tmp_path / "boards"),
                   "--no-plots"], path.name, message)
    assert not list((tmp_path / "boards").rglob("*.md"))            # no page built from it


def test_two_files_holding_one_evaluation_are_refused(folder):
    path = first_file(folder)
    shutil.copy(path, folder / ("copy-" + path.name))
    refused(folder, "holds the same evaluation as", "remove one of the two files")


def test_a_fifo_in_the_export_folder_is_refused_without_reading(folder):
    import os

    os.mkfifo(folder / "zz-pipe.jsonl.gz")
    refused(folder, "zz-pipe.jsonl.gz: not a regular file")
