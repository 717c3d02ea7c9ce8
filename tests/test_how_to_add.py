"""docs/how-to-add-engines.md, done: a task is one YAML file in tasks/ (no registry line), listed by
`spsbench tasks` and evaluated by name; an engine is one class plus one ENGINES line
(tests/test_engine_registry.py)."""

from __future__ import annotations

import spsbench.engines as engines
from spsbench import paths
from spsbench.cli import main
from spsbench.store import Store

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
