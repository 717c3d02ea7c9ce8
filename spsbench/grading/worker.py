"""A grader worker process: `python -m spsbench.grading.worker`.

Reads one JSON job per line on stdin (`[job_id, mode, answer, gold, limit_s]`: each job carries its own
soft limit, so a retry can have a longer one), writes `[job_id, outcome, extracted, detail]` per line
on its private copy of stdout, and exits at end of input, or after a soft timeout (an interrupted sympy
may be half-initialised, see `verify`). A plain
subprocess (not multiprocessing) so the caller's `__main__` is never re-imported: grading works from
unguarded scripts, stdin, notebooks and daemon processes alike.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from spsbench.grading import verify


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl-C is the parent's to handle
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)                                    # stray prints from libraries must not corrupt replies


    verify.warm_up()                                 # import and first-use costs before the first deadline
    protocol.write('["ready"]\n')
    protocol.flush()
    for line in sys.stdin:
        job_id, mode, answer, gold, limit_s = json.loads(line)
        outcome, extracted, detail = verify.run_job((mode, answer, gold), float(limit_s))
        protocol.write(json.dumps([job_id, outcome, extracted, detail]) + "\n")
        protocol.flush()
        if not verify.soft_limit_available():        # our timer fired: sympy may be half-initialised
            break                                    # (the parent replaces this worker on that reply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
