"""What the leaderboards are built from: the local results store, the committed published export, or both.

Without a published export the local store is read as it is. With one, both are copied into one
in-memory store (`spsbench.store.merge`: an evaluation in both counts once), so a fresh clone rebuilds
the committed pages from the export alone and a user's own evaluations are added beside them. The
training task of a published run comes from the export (a clone has no run folders to read it from).
"""

from __future__ import annotations

import os
from pathlib import Path

from spsbench import paths
from spsbench.errors import StoreError
from spsbench.leaderboards.snapshot import Snapshot, load_snapshot
from spsbench.store import Store
from spsbench.store.merge import merged_store
from spsbench.store.published import read_published


def published_folder(store_path: Path, published: str | Path | bool | None) -> Path | None:
    """True: the default export for this store (`paths.default_published_dir`); False/None: none."""
    if published is True:
        return paths.default_published_dir(store_path)
    return Path(published) if published else None


def load_sources(store_path: Path, published: Path | None, store_label: str | None = None) -> Snapshot:
    """The snapshot of `store_path` and/or the export in `published` (at least one must hold results)."""
    exported = read_published(published) if published is not None else []
    if not exported:
        if not store_path.is_file():
            raise StoreError(f"results store {store_path} does not exist; run `spsbench eval` first")
        with Store(store_path) as store:
            return load_snapshot(store, store_label or paths.display_path(store_path), store_path)
    local = Store(store_path) if store_path.is_file() else None
    try:
        merged = merged_store(exported, local, os.getcwd(), paths.display_path(published))
    finally:
        if local is not None:
            local.close()
    try:
        parts = [paths.display_path(published)] + ([paths.display_path(store_path)] if merged.local else [])
        snap = load_snapshot(merged.store, store_label or " + ".join(parts), store_path)
    finally:
        merged.store.close()
    snap.run_info = {**snap.run_info, **merged.run_info}     # published facts win: clones must agree
    snap.names = {**snap.names, **merged.names}
    return snap
