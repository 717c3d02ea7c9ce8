"""A task's content identity: a digest of what the model is asked and graded against.

Name and version are what a task file *says* it is; the digest is what it *is*: every resolved problem
(id, rendered prompt, gold answer, options), the prompt template and the grader. Two task files (or a
task and a `--data` override) with the same name and version but different content have different
digests, so the store never hands one the other's samples.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from spsbench.tasks.spec import Problem, TaskSpec

DIGEST_CHARS = 16     # 64 bits: collisions between two versions of one task are not a practical concern


def task_digest(spec: TaskSpec, problems: Sequence[Problem]) -> str:
    """sha256 (first DIGEST_CHARS hex digits) over the grader, the template and every problem, in order."""
    h = hashlib.sha256()
    h.update(json.dumps({"grader": spec.grader, "template": spec.prompt_template}, sort_keys=True).encode())
    for p in problems:           # streamed: a 14k-problem task never builds one large string
        row = [p.id, p.prompt, p.answer, list(p.choices) if p.choices is not None else None]
        h.update(b"\n" + json.dumps(row, ensure_ascii=False).encode("utf-8"))
    return h.hexdigest()[:DIGEST_CHARS]
