"""Where spsbench keeps things: task files, recipes, the cache and the results store.

Every location can be overridden by an environment variable so CI and users can redirect it. The cache
is a user cache folder ($SPSBENCH_CACHE, else $XDG_CACHE_HOME/spsbench, else ~/.cache/spsbench), never
the source checkout unless asked (SPSBENCH_CACHE=.cache): a checkout may be read-only, shared or
committed, and the cache holds converted models, hub rows and the weights-hash records.
Cache directories of vLLM / torch inductor are pointed inside our cache (they default to $HOME and /tmp).
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from spsbench.errors import StoreError
from spsbench.validate import text, writable_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
RUN_INFO = "spsbench_run.json"   # the trainer's record of a run, beside its checkpoint-*/ folders
EMBEDDED_MODEL = "smollm2-135m-instruct"     # the embedded default's folder in the cache's models/ (models.py)
EMBEDDED_NAME = f"{EMBEDDED_MODEL} (embedded)"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_HUB_SNAPSHOT = re.compile(r"(?:^|/)models--([^/]+?)--([^/]+)/snapshots/[^/]+$")   # the HF hub cache layout
# Written by `spsbench train` into a checkpoint folder after the last file of its save (train.preempt.COMPLETE,
# the same name: tests/test_hostile_watch.py holds them equal); `eval --watch` waits for it.
CHECKPOINT_COMPLETE = "spsbench_checkpoint_complete"
TRAIN_LOG = "train.log"       # in a run folder: the libraries' output (TRL, transformers, vLLM) of every command on it
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
    hint = "" if env else "; set SPSBENCH_CACHE to a writable folder"
    return writable_dir(_cache_root(), "cache folder" + (" ($SPSBENCH_CACHE)" if env else ""), hint=hint)


def _cache_root() -> Path:
    """Where the cache is (not created, not checked)."""
    env = os.environ.get("SPSBENCH_CACHE")
    return Path(env).expanduser() if env else default_cache_dir()


def default_store_path() -> Path:
    """Default SQLite results store (`results/spsbench.db`, or $SPSBENCH_STORE: a file path; empty = unset)."""
    env = os.environ.get("SPSBENCH_STORE", "").strip()
    if env and os.path.isdir(env):
        raise StoreError(f"$SPSBENCH_STORE: {env} is a folder; it names the store file (e.g. "
                         f"{Path(env) / 'spsbench.db'})")
    return Path(env or "results/spsbench.db")


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


def model_display_name(path: str, run_name: str | None = None, step: int | None = None) -> str:
    """The name pages, tables and terminal output give a model; its stored path stays in the provenance.

    `run@step` for a checkpoint of a run; `name (served)` for a model behind an OpenAI server
    (`URL#name`); `smollm2-135m-instruct (embedded)` for the embedded default (its folder in an spsbench
    cache, `~/.cache/spsbench/models/smollm2-135m-instruct`, or in this machine's cache); a hub id as it
    is, also for a folder of the Hugging Face hub cache (`.../models--Org--Name/snapshots/<rev>`);
    `run/checkpoint-N` for a checkpoint folder evaluated without its run's tags; else the folder name.
    Pure string work except for the one comparison with this machine's cache location."""
    if run_name:
        return f"{run_name}@{step}" if step is not None else run_name
    text = str(path)
    if text.startswith(("http://", "https://")) and "#" in text:
        return f"{text.partition('#')[2]} (served)"
    if _HUB_ID.match(text):
        return text
    folder = PurePosixPath(text.replace(os.sep, "/").rstrip("/") or "/")
    if _is_embedded(text, folder):
        return EMBEDDED_NAME
    if hub := _HUB_SNAPSHOT.search(folder.as_posix()):
        return f"{hub.group(1)}/{hub.group(2)}"
    if re.fullmatch(r"checkpoint-\d+", folder.name) and folder.parent.name:
        return f"{folder.parent.name}/{folder.name}"
    return folder.name or text


def _is_embedded(text: str, folder: PurePosixPath) -> bool:
    if folder.name != EMBEDDED_MODEL or folder.parent.name != "models":
        return False
    if folder.parent.parent.name == "spsbench":             # the default cache, on any machine
        return True
    here = _cache_root() / "models" / EMBEDDED_MODEL
    return os.path.normpath(os.path.expanduser(text)) == os.path.normpath(os.path.abspath(here))


def configure_backend_caches() -> None:
    """Point vLLM / inductor / HF caches into our cache unless the user set them."""
    root = cache_dir()
    os.environ.setdefault("VLLM_CACHE_ROOT", str(root / "vllm"))
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(root / "inductor"))
    os.environ.setdefault("TRITON_CACHE_DIR", str(root / "triton"))
