"""Regrade the committed export (`results/published/`) under today's grader policy, when no verdict changes.

A grader policy is part of an evaluation's identity: after a policy change (x=4 -> x=5) every published
evaluation is "not comparable" with one graded today, so the quick-start `spsbench eval` of the embedded model
on a fresh clone would sit beside the published runs with no paired difference at all. This script grades every
published sample again with today's grader, against the gold of its task (loaded as `spsbench eval` loads it),
and then:

* when no verdict changes, rewrites each file under today's policy: the head's `grader_policy`, each sample's
  `extracted` answer as today's grader reads it, each session's provenance gains `regraded_from_policy`. The
  scores follow from the verdicts, so they are kept as they are; the file is renamed (its name hashes the
  identity, policy included) and the old one removed;
* when any verdict changes, changes nothing and lists the changed samples (exit 1): publish again from a store
  re-evaluated under today's policy (`spsbench eval` regrades stored completions), which recomputes the scores.

Usage: python scripts/regrade_published.py [--folder results/published] [--check]
`--check` only reports (exit 1 when a file is not under today's policy or a verdict would change).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from spsbench.grading import grade, policy_id
from spsbench.store.published import Published, file_name, read_file, write_records
from spsbench.tasks.registry import load_task

ROOT = Path(__file__).resolve().parents[1]


def regraded(pub: Published, golds: dict[str, tuple[str, str, Any]]) -> tuple[list[dict], list[str]]:
    """(samples as today's grader reads them, one line per changed verdict)."""
    samples, changed = [], []
    for s in pub.samples:
        gold, kind, choices = golds[s["problem_id"]]
        verdict = grade(s["completion"], gold, kind, choices)
        if verdict.outcome.value != s["outcome"]:
            changed.append(f"{pub.source}: problem {s['problem_id']} sample {s['sample_idx']}: "
                           f"{s['outcome']} -> {verdict.outcome.value}")
        samples.append(s | {"extracted": verdict.extracted})
    return samples, changed


def golds_of(head: dict[str, Any]) -> dict[str, tuple[str, str, Any]]:
    """problem id -> (gold, grader kind, choices) of the published task, at the published task version."""
    task = load_task(head["task"])
    if str(task.spec.version) != str(head["task_version"]):
        raise SystemExit(f"{head['task']}: published at task version {head['task_version']}, the task here is "
                         f"version {task.spec.version}: re-evaluate instead")
    return {p.id: (p.answer, task.spec.grader, p.choices) for p in task.problems}


def regraded_export(pub: Published, samples: list[dict], policy: str) -> Published:
    """The export under `policy`: today's samples, each session noting the policy it was graded under."""
    old = pub.head["grader_policy"]
    sessions = [s | {"provenance": (s.get("provenance") or {}) | {"regraded_from_policy": old}} for s in pub.sessions]
    return dataclasses.replace(pub, head=pub.head | {"grader_policy": policy}, sessions=sessions, samples=samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=str(ROOT / "results" / "published"))
    parser.add_argument("--check", action="store_true", help="Report only; change nothing.")
    args = parser.parse_args(argv)
    policy = policy_id()
    files = sorted(Path(args.folder).glob("*.jsonl.gz"))
    stale = [(path, pub) for path in files if (pub := read_file(path)).head["grader_policy"] != policy]
    plans, changed = [], []
    for path, pub in stale:
        samples, lines = regraded(pub, golds_of(pub.head))
        changed += lines
        plans.append((path, pub, samples))
    print(f"{len(files)} published evaluation(s); {len(stale)} under another policy than {policy}; "
          f"{len(changed)} verdict(s) would change")
    for line in changed:
        print("  " + line)
    if changed or (args.check and stale):
        return 1
    for path, pub, samples in plans:
        new = regraded_export(pub, samples, policy)
        target = path.parent / file_name(new.head)
        write_records(target, new.records())
        if target != path:
            path.unlink()
        print(f"  {path.name} -> {target.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
