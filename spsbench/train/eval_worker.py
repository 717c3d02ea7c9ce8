"""The child process that evaluates one model for the training callback (`eval.isolate: true`).

Why a child: the evaluator's engine then has its own memory, threads and (for vLLM) process groups,
and everything is returned to the system when it exits. Seen on 2 CPU cores: in one run, after a vLLM
engine had evaluated inside the training process, the RL steps took 31-33 s instead of ~21 s, and a
resident engine made the policy's forward/backward ~20% slower (measured, docs/training.md). The trainer's RNG streams and
weights cannot be touched by a process that does not share them.

Protocol: one JSON argument (the `evaluate` keyword arguments plus `model`, `tasks`, `sampling`,
`tags`); the child prints `RESULT <json list of eval ids>` and exits 0, or prints the one-line error on
stderr and exits 2. The parent reads the scores from the store.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from spsbench import quiet
from spsbench.config import SamplingConfig
from spsbench.errors import SpsbenchError
from spsbench.evaluation.evaluate import evaluate
from spsbench.evaluation.records import EvalRequest, ModelTags

RESULT = "RESULT "


def run(spec: dict[str, Any]) -> list[Any]:
    """`evaluate` on a JSON-able spec; returns its EvalResults."""

    tags = ModelTags(**spec["tags"]) if spec.get("tags") else None
    request = EvalRequest(spec["model"], tuple(spec["tasks"]), SamplingConfig(**spec["sampling"]),
                          engine=spec["engine"], store=spec.get("store"), data=spec.get("data") or {},
                          ks=tuple(spec.get("ks") or ()), tags=tags, limit=spec.get("limit"), progress=False,
                          engine_options=spec.get("engine_options") or {})
    return evaluate(request)


def main(argv: list[str]) -> int:
    quiet.install()        # spsbench's logged warnings as `spsbench: warning:` lines: the parent shows those
    try:
        ids = [r.eval_id for r in run(json.loads(argv[0]))]
    except SpsbenchError as exc:
        print(f"evaluation failed: {exc}", file=sys.stderr)
        return 2
    print(RESULT + json.dumps(ids), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
