"""docs/architecture.md, "How to add", done: a task is one YAML file in tasks/ (no registry line), listed by
`spsbench tasks` and evaluated by name; a grader is one function plus one GRADERS line; an engine is one
class plus one ENGINES line (tests/test_engine_registry.py)."""

from __future__ import annotations

import json

import spsbench.engines as engines
from spsbench import grading, paths
from spsbench.cli import main
from spsbench.grading.core import Prepared
from spsbench.grading.types import GRADERS, Grade, GradeRequest, GradingPolicy, Outcome
from spsbench.store import Store
from spsbench.tasks import load_spec
from spsbench.train import reward

SUMS = """\
name: sums
version: "1"
description: Sums of small numbers, generated offline.
grader: math
source:
  builtin: arith
  seed: 3
  count: 4
  difficulty: easy
prompt_template: |-
  {problem}
  Answer with \\boxed{{number}}.
n: 2
k: [1, 2]
"""


def test_a_task_is_one_yaml_file(tmp_path, monkeypatch, capsys):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "arith.yaml").write_text((paths.tasks_dir() / "arith.yaml").read_text())
    (tasks / "sums.yaml").write_text(SUMS)                                    # the one file
    monkeypatch.setenv("SPSBENCH_TASKS_DIR", str(tasks))
    monkeypatch.setitem(engines.ENGINES, "echo", "tests.test_engine_registry:EchoEngine")
    assert main(["tasks"]) == 0
    listed = capsys.readouterr().out
    assert [line.split()[1] for line in listed.splitlines() if line.startswith("│")] == ["arith", "sums"]
    store = tmp_path / "s.db"
    assert main(["eval", "m", "--engine", "echo", "--tasks", "sums", "--store", str(store), "--no-leaderboard",
                 "-q"]) == 0
    with Store(store) as db:
        [ev] = db.evaluations()
        prompts = {s["prompt"] for s in db.samples(ev.id)}
    assert (ev.task, ev.n) == ("sums", 2) and len(prompts) == 4
    assert all(p.endswith("Answer with \\boxed{number}.") for p in prompts)


def prepare_exact(request: GradeRequest, policy: GradingPolicy) -> Prepared:
    """A dummy grader: correct when the completion's last line is the gold, verbatim."""
    last = request.completion.strip().splitlines()[-1:] or [""]
    outcome = Outcome.CORRECT if last[0].strip() == request.gold else Outcome.INCORRECT
    return Prepared(Grade(outcome, last[0].strip(), "last line"))


def test_a_grader_is_one_function_and_one_registry_line(tmp_path, monkeypatch, capsys):
    """Registered in GRADERS alone, a grader is a `spsbench grade --kind`, a task's `grader:` and a reward."""
    monkeypatch.setitem(GRADERS, "exact", "tests.test_how_to_add:prepare_exact")      # the one line
    answer = tmp_path / "answer.txt"
    answer.write_text("thinking...\n42\n")
    assert main(["grade", str(answer), "--gold", "42", "--kind", "exact", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["outcome"] == "correct"
    assert grading.grade("41", "42", "exact").outcome is Outcome.INCORRECT
    assert reward.make_reward_fn("exact")(prompts=["p"], completions=["x\n42"], answer=["42"]) == [1.0]
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "sums.yaml").write_text(SUMS.replace("grader: math", "grader: exact"))
    monkeypatch.setenv("SPSBENCH_TASKS_DIR", str(tasks))
    assert load_spec("sums").grader == "exact"
