"""Data parallelism for the offline vLLM engine (`data_parallel_size` > 1): that many `vllm.LLM` replicas
on one node, each in its own process on its own `tensor_parallel_size` GPUs, sharing the samples.

`vllm.LLM(data_parallel_size=N)` refuses to start in one process ("not supported for single-process
usage and may hang"); vLLM's offline recipe is one process per rank, each generating its own share of
the prompts, which is what this module does. Its DP group (VLLM_DP_* variables) only synchronises
mixture-of-experts layers and would make every rank wait for the slowest at each step, so the replicas
here are independent engines: a replica that finishes a chunk takes the next one. Each sample keeps its
own seed, so the samples do not depend on the number of replicas (up to the float differences vLLM
shows between batch compositions). `spsbench serve --engine-opt data_parallel_size=N` uses vLLM's own
server-side data parallelism instead.

Replicas are spawned (not forked: CUDA and vLLM's threads do not survive a fork) and end when the pool
is closed or this process exits (their pipe closes).
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
from collections.abc import Iterable, Iterator
from multiprocessing.connection import Connection, wait
from typing import Any

from spsbench.engines.vllm_common import Result, output_fields, unbound_threads_env
from spsbench.errors import EngineError

# The module providing LLM and SamplingParams in the replica processes (tests substitute a fake).
VLLM_MODULE = "vllm"
# One job: (job id, prompt token ids per sample, SamplingParams keyword arguments per sample).
Job = tuple[int, list[list[int]], list[dict[str, Any]]]


def replica_devices(dp: int, tp: int, visible: list[str]) -> list[str]:
    """CUDA_VISIBLE_DEVICES of each replica: consecutive groups of `tp` of the visible GPUs."""
    if dp * tp > len(visible):
        raise EngineError(f"engine vllm: data_parallel_size {dp} x tensor_parallel_size {tp} needs {dp * tp} "
                          f"GPUs, {len(visible)} visible")
    return [",".join(visible[r * tp:(r + 1) * tp]) for r in range(dp)]


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def replica_envs(dp: int, tp: int, on_cpu: bool, cores: int | None = None) -> list[dict[str, str]]:
    """Per-replica environment: its GPUs, or on CPU an equal share of the cores as unbound threads."""
    if not on_cpu:
        return [{"CUDA_VISIBLE_DEVICES": d} for d in replica_devices(dp, tp, visible_gpus())]

    cores = cores or len(os.sched_getaffinity(0))
    return [unbound_threads_env(max(1, cores // dp)) for _ in range(dp)]


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"


def _worker(conn: Connection, model_id: str, kwargs: dict[str, Any], env: dict[str, str], module: str) -> None:
    """One replica: start vllm.LLM, then answer jobs until told to stop or the parent goes away."""
    os.environ.update(env)
    try:
        vllm = importlib.import_module(module)
        llm = vllm.LLM(model=model_id, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as one line
        conn.send(("error", _first_line(exc)))
        return
    conn.send(("ready", None))
    while True:
        try:
            job = conn.recv()
        except EOFError:             # the parent exited without closing the pool
            return
        if job is None:
            return
        conn.send(_run_job(vllm, llm, job))


def _run_job(vllm: Any, llm: Any, job: Job) -> tuple[str, Any]:
    job_id, prompts, params = job
    try:
        outputs = llm.generate([{"prompt_token_ids": p} for p in prompts],
                               [vllm.SamplingParams(**p) for p in params], use_tqdm=False)
        return "ok", (job_id, [output_fields(out) for out in outputs])
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as one line
        return "error", _first_line(exc)


class ReplicaPool:
    """`dp` vLLM replicas in spawned processes; `run` spreads jobs over them and yields results as they come."""

    def __init__(self, model_id: str, kwargs: dict[str, Any], envs: list[dict[str, str]]) -> None:
        ctx = mp.get_context("spawn")
        self.workers: list[tuple[Any, Connection]] = []
        self.jobs_done = [0] * len(envs)
        try:
            for env in envs:
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_worker, args=(child, model_id, kwargs, env, VLLM_MODULE),
                                   name="spsbench-vllm-replica")
                proc.start()
                child.close()
                self.workers.append((proc, parent))
            for rank, (_, conn) in enumerate(self.workers):
                self._expect(conn, rank, "ready")
        except BaseException:
            self.close()
            raise

    def __len__(self) -> int:
        return len(self.workers)

    def run(self, jobs: Iterable[Job]) -> Iterator[tuple[int, list[Result]]]:
        """(job id, results) for every job, in completion order; a free replica takes the next job."""
        pending = iter(jobs)
        busy: dict[Connection, int] = {}
        for rank, (_, conn) in enumerate(self.workers):
            if not self._send_next(pending, conn, busy, rank):
                break
        try:
            while busy:
                for conn in wait(list(busy)):
                    rank = busy.pop(conn)
                    job_id, results = self._expect(conn, rank, "ok")
                    self.jobs_done[rank] += 1
                    yield job_id, results
                    self._send_next(pending, conn, busy, rank)
        except GeneratorExit:
            for conn in busy:        # the consumer stopped early: let the jobs in flight finish, unread
                conn.recv()
            raise
        except BaseException:
            self.close(timeout=5)    # a failed or interrupted replica leaves the others mid-job
            raise

    def close(self, timeout: float = 60.0) -> None:
        for _, conn in self.workers:
            try:
                conn.send(None)
            except (OSError, ValueError):
                pass
        for proc, conn in self.workers:
            proc.join(timeout)
            if proc.is_alive():
                proc.kill()
                proc.join()
            conn.close()
        self.workers = []

    def _send_next(self, pending: Iterator[Job], conn: Connection, busy: dict[Connection, int], rank: int) -> bool:
        job = next(pending, None)
        if job is None:
            return False
        conn.send(job)
        busy[conn] = rank
        return True

    def _expect(self, conn: Connection, rank: int, kind: str) -> Any:
        try:
            got, payload = conn.recv()
        except EOFError:
            raise EngineError(f"engine vllm: replica {rank} exited unexpectedly") from None
        if got != kind:
            raise EngineError(f"engine vllm: replica {rank}: {payload}")
        return payload
