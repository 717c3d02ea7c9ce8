"""The lab's results in the lab store: squeeze results and exact measurements as store diagnostics.

The lab store is an ordinary `spsbench.store.Store` (sampled evaluations go in through `evaluate`); what
only the lab measures (the squeeze experiment, exact Pass@k from enumerated probabilities, greedy-path
log-prob, distinct correct trajectories, IRL phase records) is kept as diagnostics of the model it was
measured on, so the page is rebuilt from the store alone.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from spsbench.store import Store

SQUEEZE_TASK = "lab-squeeze"
SQUEEZE_METRIC = "lab.squeeze"


def default_store() -> Path:
    """`results/lab.db`, or $SPSBENCH_LAB_STORE."""
    return Path(os.environ.get("SPSBENCH_LAB_STORE", "results/lab.db"))


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def save_squeeze(store: str | Path, result: dict[str, Any]) -> None:
    """One squeeze result per configuration (a rerun with the same settings replaces it)."""
    path = Path(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    with Store(path) as db:
        model_id = db.upsert_model("lab:squeeze", config_hash(result["config"]))
        value = result["regimes"][0]["p_dom"]
        db.add_diagnostic(model_id, SQUEEZE_TASK, SQUEEZE_METRIC, value, result)


def load_squeeze(db: Store) -> dict[str, Any] | None:
    """The most recently stored squeeze result, if any."""
    rows = [d for d in db.diagnostics() if d["metric"] == SQUEEZE_METRIC]
    return max(rows, key=lambda d: (d["created_at"], d["model_id"]))["details"] if rows else None
