"""Finding the stored evaluation a request resumes, by content: name, version, grader policy, sampling
key AND the task digest (`spsbench.tasks.identity`).

A legacy evaluation (stored before schema v4, task_digest '') is adopted by the first run of the same
identity whose prompts match every prompt it stored; one whose prompts differ stays legacy and the run
evaluates as new. A changed task under a reused name and version is announced in one line.
"""

from __future__ import annotations

from collections.abc import Callable

from spsbench.quiet import warn
from spsbench.store import EvalKey, EvalRow, Store
from spsbench.tasks import Task


def differs_notice(task: Task) -> str:
    spec = task.spec
    return (f"task {spec.name} v{spec.version} differs from the stored {spec.name} v{spec.version}: "
            "evaluating as new")


def find_existing(db: Store, key: EvalKey, task: Task,
                  notify: Callable[[str], None] | None = None) -> EvalRow | None:
    """The evaluation `key` resumes (claiming a matching legacy one), else None; `notify` (default: a
    warning line) hears when the store holds this name and version with other content."""
    if not key.task_digest:                   # a caller without a digest: the pre-v4 behaviour
        return db.find_evaluation(key)
    exact = db.find_evaluation(key)
    if exact is not None:
        return exact
    others = db.digests(key)
    for ev in others:
        if ev.task_digest == "" and prompts_match(db, ev.id, task) and db.claim_legacy(ev.id, key.task_digest):
            return db.find_evaluation(key)
    if others:
        (notify or warn)(differs_notice(task))
    return None


def prompts_match(db: Store, eval_id: int, task: Task) -> bool:
    """True when every prompt stored in the evaluation is the prompt this task gives that problem now.

    Gold answers were not stored before v4, so a legacy evaluation whose answers (not prompts) changed
    under the same version cannot be told apart; docs/store.md says so."""
    current = {p.id: p.prompt for p in task.problems}
    for pid, prompts in db.stored_prompts(eval_id).items():
        if pid in current and prompts != {current[pid]}:
            return False
    return True

