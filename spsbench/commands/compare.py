"""`spsbench results --compare A B` and `--solved-diff A B`: two evaluations of the same problems compared
problem by problem (paired bootstrap of the difference; problems gained and lost at the largest k).

A and B name a run (its best checkpoint per task by Avg@n: the paper's rule), a checkpoint `run@step`,
or a model (`spsbench.store.names`: an exact name wins, then a path tail; a name that selects several
models lists them, one that selects none lists the nearest). The local store and the published export
are both searched, as the leaderboards do. A and B must be two different evaluations. Printed as a text
table, or as rows with `--format jsonl|csv`; `--out FILE` writes either to a file.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spsbench import paths
from spsbench.commands.selection import existing_store, output, write
from spsbench.errors import ConfigError
from spsbench.leaderboards.markdown import best_entry, common_k, pct
from spsbench.leaderboards.pairs import SIGNIFICANT, diff_text, paired, solved_change, solved_lines
from spsbench.leaderboards.snapshot import Entry, Snapshot, reference_setting, short_path_name
from spsbench.leaderboards.sources import load_sources, published_folder
from spsbench.store.names import Candidate, ambiguous, listing, matches

COMPARE_FIELDS = ("task", "a", "b", "problems", "metric", "k", "a_value", "b_value", "difference", "ci_low",
                  "ci_high", "significant")
SOLVED_FIELDS = ("task", "a", "b", "problems", "solved_a", "solved_b", "p_value", "change", "problem_id",
                 "a_pass_rate", "b_pass_rate")


@dataclass(frozen=True)
class Target:
    """What A or B names: a run (best checkpoint per task), one checkpoint, or one model."""

    spec: str
    run: str | None = None
    step: int | None = None
    model: int | None = None


def run_compare(args: argparse.Namespace) -> int:
    flag = "--compare" if args.compare else "--solved-diff"
    for name, given in (("--all", args.all), ("--model", args.model)):
        if given:
            raise ConfigError(f"{name}: does not apply to {flag} (A and B name the evaluations; finished ones only)")
    store_path = Path(args.store or paths.default_store_path())
    if store_path.exists():
        existing_store(args.store)            # a folder: one line (a missing store is fine: the export may do)
    snap = load_sources(store_path, published_folder(store_path, True))
    spec_a, spec_b = args.compare or args.solved_diff
    targets = target(snap, spec_a, f"{flag} A"), target(snap, spec_b, f"{flag} B")
    pairs = _pairs(snap, targets, args.task)
    with output(args.out) as fh:
        if args.format is None:
            fh.write("\n".join(_text(snap, pairs, bool(args.compare))) + "\n")
        else:
            rows = _compare_rows(snap, pairs) if args.compare else _solved_rows(snap, pairs)
            write(iter(rows), COMPARE_FIELDS if args.compare else SOLVED_FIELDS, args.format, fh)
    if args.out:
        print(f"wrote the {flag[2:]} of {len(pairs)} task(s) to {args.out}", file=sys.stderr)
    return 0


def _pairs(snap: Snapshot, targets: tuple[Target, Target], task: str | None) -> list[tuple[str, Entry, Entry]]:
    """(task, A's entry, B's entry) for every task both have a comparable finished evaluation of."""
    if task and task not in snap.tasks():
        raise ConfigError(f"--task: no finished evaluation of {task!r}; tasks: {listing(snap.tasks())}")
    out = []
    for name in [task] if task else snap.tasks():
        a, b = entry(snap, targets[0], name), entry(snap, targets[1], name)
        if a is None or b is None:
            if task:
                missing = targets[0] if a is None else targets[1]
                raise ConfigError(f"{missing.spec!r} has no finished evaluation of {name}")
            continue
        if a.eval_id == b.eval_id:
            raise ConfigError(f"A ({targets[0].spec}) and B ({targets[1].spec}) are the same evaluation of {name} "
                              f"({_name(snap, a)}); name two different ones")
        out.append((name, a, b))
    if not out:
        raise ConfigError(f"no task with a finished evaluation of both {targets[0].spec!r} and {targets[1].spec!r}")
    if all(a.setting != b.setting for _, a, b in out):
        task, a, b = out[0]
        raise ConfigError(f"no task with a comparable finished evaluation of both {targets[0].spec!r} and "
                          f"{targets[1].spec!r}: on {task} B has {b.setting.diff(a.setting).replace('table', 'A')}")
    return out


# --------------------------------------------------------------------------- names


def target(snap: Snapshot, spec: str, flag: str) -> Target:
    """Resolve A or B once, for every task (module docstring)."""
    runs = snap.runs()
    run, at, step = spec.rpartition("@")
    if at and run in runs:
        steps = sorted({m.step for m in snap.models.values() if m.run_name == run and m.step is not None})
        if not step.isdigit() or int(step) not in steps:
            raise ConfigError(f"{flag}: {spec!r}: run {run} has no checkpoint {step!r}; its steps: "
                              f"{', '.join(map(str, steps))} (or {run} alone for its best checkpoint)")
        return Target(spec, run=run, step=int(step))
    candidates = _candidates(snap)
    exact = [c for c in candidates if spec in c.names]
    if spec in runs:
        if exact:
            raise ConfigError(f"{flag}: {spec!r} names both run {spec} and model {exact[0].label}; give "
                              f"{spec}@STEP or the model's path")
        return Target(spec, run=spec)
    found = matches(spec, candidates)
    if len(found) > 1:
        raise ambiguous(flag, spec, found)
    if not found:
        raise _unknown(snap, spec, flag, candidates)
    return Target(spec, model=found[0].key)


def _unknown(snap: Snapshot, spec: str, flag: str, candidates: list[Candidate]) -> ConfigError:
    """Nothing is named `spec`: the runs and models whose names contain it, else every run and plain model."""
    low = spec.lower()
    near = [r for r in snap.runs() if low in r.lower()]
    near += [c.label for c in candidates if any(low in n.lower() for n in (c.path, *c.names))]
    if near:
        return ConfigError(f"{flag}: no run or model named {spec!r}; names containing it: {listing(near)} "
                           "(give one exactly)")
    plain = [c.label for c in candidates if snap.models[c.key].run_name is None]
    return ConfigError(f"{flag}: no run or model named {spec!r}; runs: {listing(snap.runs()) or 'none'}; "
                       f"models: {listing(plain) or 'none'}")


def _candidates(snap: Snapshot) -> list[Candidate]:
    labels = snap.labels()
    return [Candidate.of(m.id, labels[m.id], m.path, snap.show(m.path), short_path_name(m.path), snap.name(m))
            for m in snap.models.values()]


def entry(snap: Snapshot, t: Target, task: str) -> Entry | None:
    """`t`'s evaluation of `task` at the reference setting (the run's best checkpoint for a run)."""
    entries = [e for e in snap.entries if e.task == task]
    if t.run is not None and t.step is None:
        mine = [e for e in entries if e.model.run_name == t.run]
        return best_entry(mine, reference_setting([e.setting for e in mine]))
    if t.run is not None:
        found = [e for e in entries if e.model.run_name == t.run and e.model.step == t.step]
    else:
        found = [e for e in entries if e.model.id == t.model]
    ref = reference_setting([e.setting for e in found])
    return next((e for e in found if e.setting == ref), None)


def _name(snap: Snapshot, e: Entry) -> str:
    return snap.labels()[e.model.id]


# --------------------------------------------------------------------------- output


def _text(snap: Snapshot, pairs: list[tuple[str, Entry, Entry]], compare: bool) -> list[str]:
    lines = []
    for task, a, b in pairs:
        lines.append(f"## {task}: B = {_name(snap, b)} vs A = {_name(snap, a)}")
        if a.setting != b.setting:
            lines.append(f"not comparable: B has {b.setting.diff(a.setting).replace('table', 'A')}\n")
            continue
        change = solved_change(a, b)
        body = _compare_lines(a, b) if compare else (solved_lines(change, "A", "B", limit=10**9) if change else
                                                     ["no problem scored by both"])
        lines += [*body, ""]
    return lines[:-1] if lines and not lines[-1] else lines


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


def _compare_rows(snap: Snapshot, pairs: list[tuple[str, Entry, Entry]]) -> list[dict[str, Any]]:
    """One row per (task, metric): values and difference as fractions (not percent), interval, significance."""
    rows = []
    for task, a, b in pairs:
        base = {"task": task, "a": _name(snap, a), "b": _name(snap, b)}
        d = paired(a, b, common_k([a, b])) if a.setting == b.setting else None
        if d is None:
            rows.append(base | {"metric": "not comparable" if a.setting != b.setting else "no common problems"})
            continue
        metrics = ([("pass@k", d.k, a.passk.get(d.k), b.passk.get(d.k), d.passk)] if d.k else [])
        metrics.append(("avg@n", a.setting.n, a.avg, b.avg, d.avg))
        for metric, k, sa, sb, diff in metrics:
            rows.append(base | {"problems": d.problems, "metric": metric, "k": k,
                                "a_value": sa.value if sa else None, "b_value": sb.value if sb else None,
                                "difference": diff.value if diff else None, "ci_low": diff.low if diff else None,
                                "ci_high": diff.high if diff else None,
                                "significant": diff.significant if diff else None})
    return rows


def _solved_rows(snap: Snapshot, pairs: list[tuple[str, Entry, Entry]]) -> list[dict[str, Any]]:
    """One row per problem gained or lost, with the task's summary repeated on each."""
    rows = []
    for task, a, b in pairs:
        change = solved_change(a, b) if a.setting == b.setting else None
        base = {"task": task, "a": _name(snap, a), "b": _name(snap, b)}
        if change is None:
            rows.append(base | {"change": "not comparable" if a.setting != b.setting else "no common problems"})
            continue
        base |= {"problems": change.problems, "solved_a": change.solved_a, "solved_b": change.solved_b,
                 "p_value": change.p_value}
        rows += [base | {"change": kind, "problem_id": p, "a_pass_rate": ra, "b_pass_rate": rb}
                 for kind, items in (("gained", change.gained), ("lost", change.lost)) for p, ra, rb in items]
    return rows


