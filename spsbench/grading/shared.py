"""The grader pools a process keeps warm: one per (process, worker count, policy), lent to one user at a
time (a GraderPool is not thread-safe; the trainer's reward and the evaluator's writer thread may both
grade). Starting workers costs ~0.3 s of CPU (python + math-verify import) and the answer cache is worth
keeping, so scanning many checkpoints, evaluating from a training loop and the RL reward reuse one pool.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from collections.abc import Iterator

from spsbench.grading.pool import GraderPool
from spsbench.grading.types import GradingPolicy

_pools: dict[tuple[int, int, str], tuple[GraderPool, threading.Lock]] = {}
_pools_lock = threading.Lock()


def default_workers() -> int:
    """Grader processes when the caller does not say: at most two (grading is cheap next to generation)."""
    return max(1, min(2, os.cpu_count() or 1))


def _entry(policy: GradingPolicy, workers: int) -> tuple[GraderPool, threading.Lock]:
    # The pid is part of the key: a forked child cannot talk to its parent's workers and starts its own.
    key = (os.getpid(), workers, policy.id())
    with _pools_lock:
        if key not in _pools:
            pool = GraderPool(workers=workers, policy=policy)
            atexit.register(pool.close)
            _pools[key] = (pool, threading.Lock())
        return _pools[key]


@contextlib.contextmanager
def shared_pool(policy: GradingPolicy | None = None, workers: int | None = None) -> Iterator[GraderPool]:
    """The process's pool for `policy` (default policy, default workers), held exclusively in the block."""
    pool, lock = _entry(policy or GradingPolicy(), workers or default_workers())
    with lock:
        yield pool
