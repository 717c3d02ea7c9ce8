"""Where spsbench keeps things: task files, recipes, the cache and the results store.

Every location can be overridden by an environment variable so CI and users can redirect it.
Cache directories of vLLM / torch inductor are pointed inside our cache (they default to $HOME and /tmp).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def tasks_dir() -> Path:
    """Built-in task registry folder (`tasks/*.yaml`)."""
    return Path(os.environ.get("SPSBENCH_TASKS_DIR", REPO_ROOT / "tasks"))


def recipes_dir() -> Path:
    """Built-in training recipes (`recipes/*.yaml`)."""
    return Path(os.environ.get("SPSBENCH_RECIPES_DIR", REPO_ROOT / "recipes"))


def cache_dir() -> Path:
    """Cache root: converted default model, downloaded task data, compile caches."""
    path = Path(os.environ.get("SPSBENCH_CACHE", REPO_ROOT / ".cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_store_path() -> Path:
    """Default SQLite results store (`results/spsbench.db`, or $SPSBENCH_STORE)."""
    return Path(os.environ.get("SPSBENCH_STORE", "results/spsbench.db"))


def default_leaderboard_dir(store: str | Path | None = None) -> Path:
    """Where `store`'s leaderboards go: $SPSBENCH_LEADERBOARDS, else `leaderboards/` for the default store,
    else a `leaderboards/` folder beside the store file.

    Tied to the store so that an evaluation into a scratch store (`--store /tmp/x.db`, a test) never
    overwrites the project's leaderboards with pages built from other data.
    """
    env = os.environ.get("SPSBENCH_LEADERBOARDS")
    if env:
        return Path(env)
    if store is None or Path(store).resolve() == default_store_path().resolve():
        return Path("leaderboards")
    return Path(store).parent / "leaderboards"


def configure_backend_caches() -> None:
    """Point vLLM / inductor / HF caches into our cache unless the user set them."""
    root = cache_dir()
    os.environ.setdefault("VLLM_CACHE_ROOT", str(root / "vllm"))
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(root / "inductor"))
    os.environ.setdefault("TRITON_CACHE_DIR", str(root / "triton"))
