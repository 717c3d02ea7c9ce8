"""`spsbench results --compare A B` and `--solved-diff A B`: two evaluations of the same problems compared
problem by problem (paired bootstrap of the difference; problems gained and lost at the largest k).

A and B name a run (its best checkpoint per task by Avg@n: the paper's rule), a checkpoint `run@step`,
or a plain model (its label on the pages, or a unique part of its path). The local store and the
published export are both searched, as the leaderboards do.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from spsbench import paths
from spsbench.errors import ConfigError
from spsbench.leaderboards.markdown import best_entry, common_k, pct
from spsbench.leaderboards.pairs import SIGNIFICANT, diff_text, paired, solved_change, solved_lines
from spsbench.leaderboards.snapshot import Entry, Snapshot, reference_setting
from spsbench.leaderboards.sources import load_sources, published_folder


def run_compare(args: argparse.Namespace) -> int:
    store_path = Path(args.store or paths.default_store_path())
    snap = load_sources(store_path, published_folder(store_path, True))
    spec_a, spec_b = args.compare or args.solved_diff
    shown = 0
    for task in [args.task] if args.task else snap.tasks():
        a, b = resolve(snap, spec_a, task), resolve(snap, spec_b, task)
        if a is None or b is None:
            continue
        print(f"## {task}: B = {_name(snap, b)} vs A = {_name(snap, a)}")
        if a.setting != b.setting:
            print(f"not comparable: B has {b.setting.diff(a.setting).replace('table', 'A')}\n")
            continue
        print("\n".join(_compare_lines(a, b) if args.compare else solved_lines(solved_change(a, b), "A", "B",
                                                                                  limit=10**9)) + "\n")
        shown += 1
    if not shown:
        raise ConfigError(f"no task with a comparable finished evaluation of both {spec_a!r} and {spec_b!r}")
    return 0


def _compare_lines(a: Entry, b: Entry) -> list[str]:
    k = common_k([a, b])
    d = paired(a, b, k)
    if d is None:
        return ["no problem scored by both"]
    rows = [(f"Pass@{d.k}", a.passk.get(d.k), b.passk.get(d.k), d.passk)] if d.k else []
    rows.append((f"Avg@{a.setting.n}", a.avg, b.avg, d.avg))
    out = [f"{d.problems} problems in common; B - A in percentage points, [95% interval]; "
           f"{SIGNIFICANT.replace('bold', '*')}.", "",
           f"{'metric':<10} {'A':>7} {'B':>7}  B - A"]
    out += [f"{name:<10} {pct(sa.value) if sa else '—':>7} {pct(sb.value) if sb else '—':>7}  "
            f"{diff_text(diff, markdown=False)}" for name, sa, sb, diff in rows]
    return out


def resolve(snap: Snapshot, spec: str, task: str) -> Entry | None:
    """The evaluation of `task` that `spec` names (module docstring); None when it has none there."""
    entries = [e for e in snap.entries if e.task == task]
    run, _, step = spec.partition("@")
    if step.isdigit():
        found = [e for e in entries if e.model.run_name == run and e.model.step == int(step)]
        return _one(found, spec)
    if run in snap.runs():
        mine = [e for e in entries if e.model.run_name == run]
        return best_entry(mine, reference_setting([e.setting for e in mine]))
    labels = snap.labels()
    found = [e for e in entries if e.model.run_name is None and (labels[e.model.id] == spec or spec in e.model.path)]
    return _one(found, spec)


def _one(found: list[Entry], spec: str) -> Entry | None:
    if len({e.model.id for e in found}) > 1:
        raise ConfigError(f"{spec!r} matches several models; give more of the path or run@step")
    ref = reference_setting([e.setting for e in found])
    return next((e for e in found if e.setting == ref), None)


def _name(snap: Snapshot, e: Entry) -> str:
    return snap.labels()[e.model.id]
