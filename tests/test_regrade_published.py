"""The committed export is graded under today's grader policy, and scripts/regrade_published.py moves it there
after a policy change only when no verdict changes (otherwise: nothing written, the changed samples listed)."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

from spsbench.grading import policy_id
from spsbench.grading.types import Grade, Outcome
from spsbench.store.published import file_name, read_file, read_published, write_records

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "results" / "published"
BASE = "arith--smollm2-135m-instruct--*.jsonl.gz"


def script():
    spec = importlib.util.spec_from_file_location("regrade_published", ROOT / "scripts" / "regrade_published.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_export_is_graded_under_todays_policy():
    """Else a fresh clone's quick-start evaluation is "not comparable" with every published run."""
    assert {p.head["grader_policy"] for p in read_published(PUBLISHED)} == {policy_id()}


def as_older_policy(folder: Path) -> Path:
    """A copy of the published base evaluation as an older policy would have written it."""
    pub = read_file(next(PUBLISHED.glob(BASE)))
    older = dataclasses.replace(pub, head=pub.head | {"grader_policy": "math-verify==0.9.0;strict;last-box;t=5;x=4"})
    path = folder / file_name(older.head)
    write_records(path, older.records())
    return path


def test_an_older_policy_with_the_same_verdicts_is_rewritten_under_todays(tmp_path, capsys):
    old = as_older_policy(tmp_path)
    assert script().main(["--folder", str(tmp_path), "--check"]) == 1      # --check reports, writes nothing
    assert [p.name for p in tmp_path.iterdir()] == [old.name]
    assert script().main(["--folder", str(tmp_path)]) == 0
    (new,) = tmp_path.iterdir()
    pub, committed = read_file(new), read_file(next(PUBLISHED.glob(BASE)))
    assert pub.head["grader_policy"] == policy_id() and new.name == next(PUBLISHED.glob(BASE)).name
    assert pub.scores == committed.scores and [s["outcome"] for s in pub.samples] == \
        [s["outcome"] for s in committed.samples]
    assert all(s["provenance"]["regraded_from_policy"].endswith("x=4") for s in pub.sessions)
    assert "0 verdict(s) would change" in capsys.readouterr().out


def test_a_changed_verdict_changes_nothing_and_is_named(tmp_path, capsys):
    """A grader that reads the first sample of problem 0 otherwise: the scores would change, so no rewrite."""
    old = as_older_policy(tmp_path)
    before = old.read_bytes()
    module = script()
    real = module.grade

    def other_grader(completion, gold, kind, choices):
        verdict = real(completion, gold, kind, choices)
        first = read_file(old).samples[0]["completion"]
        flipped = Outcome.CORRECT if verdict.outcome is not Outcome.CORRECT else Outcome.INCORRECT
        return Grade(flipped, verdict.extracted) if completion == first else verdict

    module.grade = other_grader
    assert module.main(["--folder", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "1 verdict(s) would change" in out and "problem 0 sample 0" in out
    assert [p.name for p in tmp_path.iterdir()] == [old.name] and old.read_bytes() == before


def test_a_missing_folder_has_nothing_to_regrade(tmp_path, capsys):
    assert script().main(["--folder", str(tmp_path / "missing")]) == 0
    assert "0 published evaluation(s)" in capsys.readouterr().out
