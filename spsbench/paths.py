"""Where spsbench keeps things: task files, recipes, the cache and the results store.

Every location can be overridden by an environment variable so CI and users can redirect it. The cache
is a user cache folder ($SPSBENCH_CACHE, else $XDG_CACHE_HOME/spsbench, else ~/.cache/spsbench), never
the source checkout unless asked (SPSBENCH_CACHE=.cache): a checkout may be read-only, shared or
committed, and the cache holds converted models, hub rows and the weights-hash records.
Cache directories of vLLM / torch inductor are pointed inside our cache (they default to $HOME and /tmp).
"""

from __future__ import annotations

import os
from pathlib import Path

from spsbench.validate import text, writable_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
RUN_INFO = "spsbench_run.json"   # the trainer's record of a run, beside its checkpoint-*/ folders
CHECKPOINT_INFO = "spsbench_checkpoint.json"   # the trainer's record of one checkpoint (e.g. IRL phases before it)


def tasks_dir() -> Path:
    """Built-in task registry folder (`tasks/*.yaml`)."""
    return Path(os.environ.get("SPSBENCH_TASKS_DIR", REPO_ROOT / "tasks"))


def recipes_dir() -> Path:
    """Built-in training recipes (`recipes/*.yaml`)."""
    return Path(os.environ.get("SPSBENCH_RECIPES_DIR", REPO_ROOT / "recipes"))


def default_cache_dir() -> Path:
    """The user cache folder: $XDG_CACHE_HOME/spsbench, else ~/.cache/spsbench."""
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg and os.path.isabs(os.path.expanduser(xdg)) else Path.home() / ".cache"
    return base / "spsbench"


def cache_dir() -> Path:
    """Cache root (created): converted default model, downloaded task data, weights hashes, compile caches."""
    env = os.environ.get("SPSBENCH_CACHE")
    if env is not None:
        text("SPSBENCH_CACHE", env)
    path = Path(env).expanduser() if env else default_cache_dir()
    return writable_dir(path, "cache folder" + (" ($SPSBENCH_CACHE)" if env else ""))


def default_store_path() -> Path:
    """Default SQLite results store (`results/spsbench.db`, or $SPSBENCH_STORE)."""
    return Path(os.environ.get("SPSBENCH_STORE", "results/spsbench.db"))


def default_published_dir(store: str | Path | None = None) -> Path | None:
    """The committed export of published results (`results/published`, or $SPSBENCH_PUBLISHED) that the
    default store's leaderboards include; None for any other store (a scratch store shows only itself)."""
    env = os.environ.get("SPSBENCH_PUBLISHED")
    if env:
        return Path(env)
    if store is None or Path(store).resolve() == default_store_path().resolve():
        return Path("results/published")
    return None


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


def display_path(path: str | Path, root: str | Path | None = None) -> str:
    """How a stored path is shown on generated pages: relative to `root` (default: the current working
    directory) when inside it, else `~/...` when inside the home folder, else unchanged.

    Generated Markdown is committed and read on other machines, so it must not carry this machine's
    absolute paths. Relative paths, hub ids (`Qwen/Qwen2.5-Math-1.5B`) and server names are returned
    as they are. Pure string work on normalised paths (no symlink resolution), so the output depends
    only on the stored text, `root` and the home folder.
    """
    text = str(path)
    if not os.path.isabs(text):
        return text
    norm = Path(os.path.normpath(text))
    base = Path(os.path.normpath(os.path.abspath(root if root is not None else os.getcwd())))
    if norm == base:
        return "."
    if norm.is_relative_to(base):
        return norm.relative_to(base).as_posix()
    home = Path(os.path.expanduser("~"))
    if home != Path("/") and norm.is_relative_to(home):
        return "~/" + norm.relative_to(home).as_posix()
    return norm.as_posix()


def configure_backend_caches() -> None:
    """Point vLLM / inductor / HF caches into our cache unless the user set them."""
    root = cache_dir()
    os.environ.setdefault("VLLM_CACHE_ROOT", str(root / "vllm"))
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(root / "inductor"))
    os.environ.setdefault("TRITON_CACHE_DIR", str(root / "triton"))
