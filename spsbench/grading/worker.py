"""A grader worker process: `python -m spsbench.grading.worker TIMEOUT_S`.

Reads one JSON job per line on stdin (`[job_id, mode, answer, gold]`), writes `[job_id, outcome,
extracted, detail]` per line on its private copy of stdout, and exits at end of input. A plain
subprocess (not multiprocessing) so the caller's `__main__` is never re-imported: grading works from
unguarded scripts, stdin, notebooks and daemon processes alike.
"""

from __future__ import annotations

import json
import os
import signal
import sys


def main(argv: list[str]) -> int:
    timeout_s = float(argv[0]) if argv else 5.0
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl-C is the parent's to handle
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)                                    # stray prints from libraries must not corrupt replies

    from spsbench.grading import verify

    verify._mv()                                     # import math-verify before the first deadline
    protocol.write('["ready"]\n')
    protocol.flush()
    for line in sys.stdin:
        job_id, mode, answer, gold = json.loads(line)
        outcome, extracted, detail = verify.run_job((mode, answer, gold), timeout_s)
        protocol.write(json.dumps([job_id, outcome, extracted, detail]) + "\n")
        protocol.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
