"""Engine tests: HF engine on the tiny random model, OpenAI engine against the loopback stub server,
vLLM on CPU against the converted SmolLM2 (slow)."""

from __future__ import annotations

import socket
import time
from collections import Counter

import pytest

from spsbench.config import SamplingConfig
from spsbench.engines import check_engine_options, engine_class, load_engine
from spsbench.engines.base import GenRequest
from spsbench.errors import CheckpointError, EngineError
from spsbench.system import cpu_auto_dtype
from tests.fixtures.tiny_model import tiny_model
from tests.openai_stub_server import StubServer, StubState


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SPSBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def hf(tiny):
    engine = load_engine("hf", str(tiny), dtype="fp32", batch_size=4, num_threads=1)
    yield engine
    engine.close()


def req(key: str, prompt: str, indices: tuple[int, ...], seed0: int = 100) -> GenRequest:
    return GenRequest(key, prompt, indices, tuple(seed0 + i for i in indices))


def texts(completions) -> dict[tuple[str, int], str]:
    return {(c.key, c.sample_idx): c.text for c in completions}


SAMPLE = SamplingConfig(n=4, temperature=1.0, max_tokens=12, chat_template="off")
GREEDY = SamplingConfig(n=4, temperature=0.0, max_tokens=12, chat_template="off")


# ------------------------------------------------------------------------------------------ HF engine


def test_registry_resolves_engine_classes():
    assert engine_class("hf").name == "hf"
    assert engine_class("openai").name == "openai"
    with pytest.raises(EngineError, match="unknown engine"):
        engine_class("nope")


def test_hf_yields_every_requested_sample_once(hf):
    reqs = [req("a", "1+1=", (0, 1, 2)), req("b", "a longer prompt: 2+2=", (3, 5)), req("c", "x", (7,))]
    out = list(hf.generate(reqs, SAMPLE))
    got = Counter((c.key, c.sample_idx) for c in out)
    assert got == Counter({("a", 0): 1, ("a", 1): 1, ("a", 2): 1, ("b", 3): 1, ("b", 5): 1, ("c", 7): 1})
    for c in out:
        assert c.seed == 100 + c.sample_idx
        assert c.prompt_tokens > 0 and 1 <= c.completion_tokens <= SAMPLE.max_tokens
        assert c.finish_reason in ("stop", "length")


def test_hf_sample_depends_only_on_its_seed(hf):
    reqs = [req("a", "1+1=", tuple(range(6))), req("b", "2+2=", (0, 1))]
    first = texts(hf.generate(reqs, SAMPLE))
    again = texts(hf.generate(reqs, SAMPLE))
    alone = texts(hf.generate([req("a", "1+1=", (4,))], SAMPLE))   # different batch composition
    assert first == again
    assert alone[("a", 4)] == first[("a", 4)]
    assert len({first[("a", i)] for i in range(6)}) > 1, "different seeds should give different samples"


def test_hf_new_seed_changes_sample(hf):
    a = texts(hf.generate([req("a", "1+1=", (0, 1, 2), seed0=1)], SAMPLE))
    b = texts(hf.generate([req("a", "1+1=", (0, 1, 2), seed0=999)], SAMPLE))
    assert a != b


def test_hf_temperature_zero_is_greedy_and_top_p_tiny_matches_it(hf):
    greedy = texts(hf.generate([req("a", "abc", (0, 1, 2))], GREEDY))
    assert len(set(greedy.values())) == 1
    narrow = SamplingConfig(n=3, temperature=1.0, top_p=1e-6, max_tokens=12, chat_template="off")
    assert texts(hf.generate([req("a", "abc", (0, 1, 2))], narrow)) == greedy


def test_hf_per_request_temperature_mixes_greedy_and_sampled_rows_in_one_batch(hf):
    """`spsbench diagnose` sends greedy (temperature 0) and sampled requests together: each row must come
    out as it would in a batch of its own kind, and ids must decode to the text."""
    sampled = [req("s", "1+1=", (0, 1, 2))]
    greedy = [GenRequest("g", "1+1=", (0,), (7,), temperature=0.0)]
    mixed = list(hf.generate(sampled + greedy, SAMPLE))
    assert texts(mixed) == texts(hf.generate(sampled, SAMPLE)) | texts(hf.generate([req("g", "1+1=", (0,), 7)], GREEDY))
    for c in mixed:
        body = [i for i in c.token_ids if i not in hf.eos_ids]
        assert len(c.token_ids) == c.completion_tokens and hf.tokenizer.decode(body, skip_special_tokens=True) == c.text


def test_vllm_and_openai_send_the_per_request_temperature(fake_vllm, tiny, stub):
    from spsbench.engines.base import Sample
    from spsbench.engines.vllm import sample_params

    assert sample_params(Sample("k", "p", 0, 1, temperature=0.0), SAMPLE)["temperature"] == 0.0
    assert sample_params(Sample("k", "p", 0, 1), SAMPLE)["temperature"] == SAMPLE.temperature
    engine = openai(stub)
    list(engine.generate([GenRequest("g", "q", (0,), (3,), temperature=0.0), req("s", "q", (1,))], SAMPLE))
    assert sorted(b["temperature"] for b in stub.state.bodies[-2:]) == [0.0, SAMPLE.temperature]
    engine.close()


def test_hf_max_tokens_respected(hf):
    out = list(hf.generate([req("a", "1+1=", (0, 1, 2, 3))], SamplingConfig(temperature=1.0, max_tokens=3)))
    assert all(c.completion_tokens <= 3 for c in out)
    assert all(c.finish_reason == "length" for c in out if c.completion_tokens == 3)


def test_hf_stop_string_trims_text(hf):
    (base,) = hf.generate([req("a", "abc", (0,))], GREEDY)
    visible = [ch for ch in base.text if ch.strip()]
    assert len(visible) >= 3, f"tiny model produced too little text: {base.text!r}"
    stop = visible[2]
    (cut,) = hf.generate([req("a", "abc", (0,))], SamplingConfig(temperature=0.0, max_tokens=12,
                                                                   stop=(stop,), chat_template="off"))
    assert cut.text == base.text[:base.text.index(stop)]
    assert cut.finish_reason == "stop"
    assert stop not in cut.text
    assert cut.completion_tokens <= base.completion_tokens


def test_hf_chat_template_on_off(hf, tmp_path):
    (off,) = hf.generate([req("a", "hi", (0,))], GREEDY)
    chat_on = SamplingConfig(temperature=0.0, max_tokens=12, chat_template="on")
    (on,) = hf.generate([req("a", "hi", (0,))], chat_on)
    (auto,) = hf.generate([req("a", "hi", (0,))], SamplingConfig(temperature=0.0, max_tokens=12))
    assert on.prompt_tokens > off.prompt_tokens        # template adds role markers
    assert auto.prompt_tokens == on.prompt_tokens
    plain = load_engine("hf", str(tiny_model(tmp_path / "plain", chat=False)), dtype="fp32")
    (auto_plain,) = plain.generate([req("a", "hi", (0,))], SamplingConfig(temperature=0.0, max_tokens=4))
    assert auto_plain.prompt_tokens == off.prompt_tokens
    with pytest.raises(EngineError, match="no chat template"):
        list(plain.generate([req("a", "hi", (0,))], SamplingConfig(max_tokens=4, chat_template="on")))
    plain.close()


def test_hf_describe_and_bad_options(hf, tiny):
    info = hf.describe()
    assert info["engine"] == "hf" and info["model"] == str(tiny.resolve())
    assert len(info["weights_hash"]) == 64 and info["dtype"] == "float32"
    assert "torch" in info["versions"] and "transformers" in info["versions"]
    with pytest.raises(EngineError, match="unknown option"):
        load_engine("hf", str(tiny), bogus=1)
    with pytest.raises(EngineError, match="dtype"):
        load_engine("hf", str(tiny), dtype="int3")


def test_hf_mismatched_seeds_rejected(hf):
    with pytest.raises(EngineError, match="seeds"):
        list(hf.generate([GenRequest("a", "x", (0, 1), (5,))], SAMPLE))


def test_hf_missing_model_folder(tmp_path):
    with pytest.raises(EngineError, match="does not exist"):
        load_engine("hf", str(tmp_path / "nope" / "model"))


def copy_of(tiny, tmp_path):
    import shutil

    return shutil.copytree(tiny, tmp_path / "ckpt")


def test_hf_config_that_does_not_match_the_weights_is_one_line(tiny, tmp_path, capfd):
    import json

    from spsbench.models import check_loadable

    ckpt = copy_of(tiny, tmp_path)
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps(config | {"hidden_size": 64, "intermediate_size": 128}))
    check_loadable(ckpt)                                # the file checks cannot see it
    capfd.readouterr()
    with pytest.raises(CheckpointError, match=r"do not match the shapes in config.json \(e.g. .*checkpoint "
                                              r"\[.*32\], config \[.*64\]") as info:
        load_engine("hf", str(ckpt), dtype="fp32")
    assert "\n" not in str(info.value) and str(ckpt) in str(info.value)
    assert "LOAD REPORT" not in capfd.readouterr().err   # transformers' multi-line report is silenced


def test_hf_weights_missing_a_tensor_is_refused_not_randomly_filled(tiny, tmp_path):
    from safetensors.torch import load_file, save_file

    ckpt = copy_of(tiny, tmp_path)
    weights = load_file(ckpt / "model.safetensors")
    weights.pop("model.layers.1.mlp.up_proj.weight")
    save_file(weights, ckpt / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="1 weight tensor.*missing.*model.layers.1.mlp.up_proj.weight"):
        load_engine("hf", str(ckpt), dtype="fp32")


def test_hf_safetensors_error_is_one_line(tiny, tmp_path):
    import json
    import struct

    from spsbench.models import check_loadable

    ckpt = copy_of(tiny, tmp_path)
    path = ckpt / "model.safetensors"
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    first = next(k for k in header if k != "__metadata__")
    header[first]["dtype"] = "Q9"                       # valid JSON, offsets intact, unknown dtype
    text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= length
    path.write_bytes(raw[:8] + text.ljust(length) + raw[8 + length:])   # same header size, space padded
    check_loadable(ckpt)
    with pytest.raises(CheckpointError, match="cannot load the model: SafetensorError") as info:
        load_engine("hf", str(ckpt), dtype="fp32")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("engine", "options", "message"), [
    ("hf", {"batch_size": "abc"}, "option batch_size must be an integer >= 1, got 'abc'"),
    ("hf", {"batch_size": 0}, "option batch_size must be an integer >= 1, got 0"),
    ("hf", {"num_threads": 1.5}, "option num_threads must be an integer >= 1"),
    ("hf", {"trust_remote_code": "yes please"}, "option trust_remote_code must be true or false"),
    ("vllm", {"gpu_memory_utilization": 1.5}, "option gpu_memory_utilization must be a number > 0 and <= 1"),
    ("vllm", {"enforce_eager": 3}, "option enforce_eager must be true or false"),
    ("openai", {"concurrency": "many"}, "option concurrency must be an integer >= 1"),
    ("openai", {"endpoint": "responses"}, "option endpoint must be auto | chat | completions"),
    ("auto", {"chunk_size": -1}, "engine auto: option chunk_size must be an integer >= 1"),
    ("auto", {"concurrency": 2}, "engine auto: unknown option"),
])
def test_engine_option_values_are_checked_up_front(engine, options, message):
    with pytest.raises(EngineError, match=message.replace("(", "\\(").replace("|", "\\|")):
        check_engine_options(engine, options)


def test_engine_option_values_are_converted_and_none_means_auto():
    assert check_engine_options("hf", {"batch_size": 8, "num_threads": None}) == {"batch_size": 8,
                                                                                  "num_threads": None}
    assert check_engine_options("openai", {"timeout": 5}) == {"timeout": 5.0}
    with pytest.raises(EngineError, match="batch_size must be"):
        check_engine_options("hf", {"batch_size": None})     # no automatic batch size


def test_hf_bad_option_value_is_an_engine_error_not_a_value_error(tiny):
    with pytest.raises(EngineError, match="batch_size must be an integer"):
        load_engine("hf", str(tiny), batch_size="abc")


# ------------------------------------------------------------------------------------------ OpenAI engine


@pytest.fixture
def stub():
    with StubServer(StubState()) as server:
        yield server


def openai(server, **options):
    return load_engine("openai", server.state.model, base_url=server.url, backoff=0.01, **options)


def test_openai_chat_and_completions_endpoints(stub):
    engine = openai(stub)
    out = list(engine.generate([req("a", "two plus two", (0, 1, 2)), req("b", "hi", (4,))], SAMPLE))
    assert sorted((c.key, c.sample_idx) for c in out) == [("a", 0), ("a", 1), ("a", 2), ("b", 4)]
    assert all(p == "/v1/completions" for p in stub.state.paths)   # chat_template=off -> raw completions
    by = {(c.key, c.sample_idx): c for c in out}
    assert by[("a", 1)].text == "seed=101: two plus two"            # per-sample seed reached the server
    assert by[("a", 1)].prompt_tokens == 3 and by[("a", 1)].completion_tokens == 4
    list(engine.generate([req("a", "q", (0,))], SamplingConfig(max_tokens=4)))   # auto -> chat endpoint
    assert stub.state.paths[-1] == "/v1/chat/completions"
    assert stub.state.bodies[-1]["messages"] == [{"role": "user", "content": "q"}]
    engine.close()


def test_openai_max_tokens_and_stop(stub):
    engine = openai(stub)
    (c,) = engine.generate([req("a", "w1 w2 w3 w4 w5", (0,))], SamplingConfig(max_tokens=3))
    assert c.finish_reason == "length" and c.completion_tokens == 3
    (s,) = engine.generate([req("a", "w1 w2 STOP w3", (0,))], SamplingConfig(max_tokens=9, stop=("STOP",)))
    assert s.finish_reason == "stop" and "STOP" not in s.text
    assert stub.state.bodies[-1]["stop"] == ["STOP"]


def test_openai_retries_429_500_and_dropped_connection(stub):
    stub.state.faults = [429, 500]
    stub.state.drop = 1
    engine = openai(stub)
    (c,) = engine.generate([req("a", "retry me", (0,))], SAMPLE)
    assert c.text == "seed=100: retry me"
    assert stub.state.requests == 4                # dropped + 429 + 500 + success


def test_openai_gives_up_after_max_retries(stub):
    stub.state.faults = [503] * 10
    engine = openai(stub, max_retries=2)
    with pytest.raises(EngineError, match="after 3 attempts.*503"):
        list(engine.generate([req("a", "x", (0,))], SAMPLE))
    assert stub.state.requests == 3


def test_openai_client_error_is_not_retried(stub):
    stub.state.faults = [400]
    engine = openai(stub)
    with pytest.raises(EngineError, match="HTTP 400.*injected fault"):
        list(engine.generate([req("a", "x", (0,))], SAMPLE))
    assert stub.state.requests == 1


def test_openai_concurrency_limit_respected(stub):
    stub.state.delay = 0.05
    engine = openai(stub, concurrency=3)
    out = list(engine.generate([req(f"p{i}", "x", (0, 1)) for i in range(9)], SAMPLE))
    assert len(out) == 18
    assert stub.state.max_in_flight == 3             # the limit is reached and never exceeded


def test_openai_unreachable_server_fails_fast():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]                    # closed once the block ends: nothing listens there
    url = f"http://127.0.0.1:{port}/v1"
    start = time.perf_counter()
    with pytest.raises(EngineError, match=f"cannot reach server at {url}"):
        load_engine("openai", "m", base_url=url)
    assert time.perf_counter() - start < 5


def test_openai_unknown_model_named(stub):
    with pytest.raises(EngineError, match="'other' is not served.*stub-model"):
        load_engine("openai", "other", base_url=stub.url)


def test_openai_endpoint_option_and_contradictions(stub):
    engine = openai(stub, endpoint="completions")
    list(engine.generate([req("a", "q", (0,))], SamplingConfig(max_tokens=4)))      # auto template
    assert stub.state.paths == ["/v1/completions"] and stub.state.bodies[-1]["prompt"] == "q"
    with pytest.raises(EngineError, match="endpoint=completions contradicts chat_template=on"):
        list(engine.generate([req("a", "q", (0,))], SamplingConfig(max_tokens=4, chat_template="on")))
    chat = openai(stub, endpoint="chat")
    with pytest.raises(EngineError, match="endpoint=chat contradicts chat_template=off"):
        list(chat.generate([req("a", "q", (0,))], SAMPLE))
    assert chat.describe()["endpoint"] == "chat"


def test_openai_auto_falls_back_to_completions_without_a_chat_template(capsys):
    with StubServer(StubState(chat_template=False)) as server:
        engine = openai(server)
        out = list(engine.generate([req("a", "two plus two", (0, 1)), req("b", "hi", (0,))],
                                   SamplingConfig(max_tokens=8)))
        paths = list(server.state.paths)
        assert sorted(c.text for c in out)[0].startswith("seed=")
        list(engine.generate([req("c", "x", (0,))], SamplingConfig(max_tokens=8)))
        assert server.state.paths[-1] == "/v1/completions"     # learned once, no chat attempt any more
        with pytest.raises(EngineError, match="HTTP 400.*chat template"):    # on: no silent raw fallback
            list(engine.generate([req("d", "x", (0,))], SamplingConfig(max_tokens=8, chat_template="on")))
    assert paths.count("/v1/completions") == 3 and 1 <= paths.count("/v1/chat/completions") <= 3
    assert capsys.readouterr().err.count("has no chat template") == 1


def test_openai_neutral_sampling_extras_only_for_vllm_or_on_request(stub):
    list(openai(stub).generate([req("a", "q", (0,))], SAMPLE))
    assert "top_k" not in stub.state.bodies[-1]                      # an unknown server gets plain OpenAI
    list(openai(stub, neutral_sampling="on").generate([req("a", "q", (0,))], SAMPLE))
    assert stub.state.bodies[-1]["top_k"] == -1 and stub.state.bodies[-1]["repetition_penalty"] == 1.0
    with StubServer(StubState(owned_by="vllm")) as server:
        engine = openai(server)
        list(engine.generate([req("a", "q", (0,))], SAMPLE))
        body = server.state.bodies[-1]
        assert (body["top_k"], body["min_p"], body["repetition_penalty"]) == (-1, 0.0, 1.0)
        assert engine.describe()["sampling_extras"]["top_k"] == -1
        list(openai(server, neutral_sampling="off").generate([req("a", "q", (0,))], SAMPLE))
        assert "top_k" not in server.state.bodies[-1]


def test_openai_stub_backed_by_tiny_hf_model(hf):
    with StubServer(StubState(engine=hf)) as server:
        engine = openai(server)
        out = texts(engine.generate([req("a", "1+1=", (0, 1))], SAMPLE))
        direct = texts(hf.generate([req("a", "1+1=", (0, 1))], SAMPLE))
    assert out == direct                             # same seeds, same model, same text through HTTP


# ------------------------------------------------------------------------------------------ vLLM (slow)


@pytest.mark.slow
def test_vllm_cpu_on_default_model(monkeypatch):
    pytest.importorskip("vllm")
    monkeypatch.delenv("SPSBENCH_CACHE")             # reuse the converted default model of the repo cache
    from spsbench.models import default_model_path

    engine = load_engine("vllm", str(default_model_path()), chunk_size=5)
    sampling = SamplingConfig(n=3, temperature=0.7, max_tokens=24, chat_template="auto")
    reqs = [req("a", "What is 2+3?", (0, 1, 2)), req("b", "Name a color.", (0, 1, 2))]
    first = list(engine.generate(reqs, sampling))
    assert sorted((c.key, c.sample_idx) for c in first) == [(k, i) for k in "ab" for i in range(3)]
    assert all(c.text.strip() and c.completion_tokens > 0 and c.prompt_tokens > 5 for c in first)
    assert texts(engine.generate(reqs, sampling)) == texts(first)          # seeds reproducible
    greedy = texts(engine.generate(reqs[:1], SamplingConfig(n=3, temperature=0, max_tokens=12)))
    assert len(set(greedy.values())) == 1
    info = engine.describe()
    assert info["engine"] == "vllm" and info["dtype"] == cpu_auto_dtype() and len(info["weights_hash"]) == 64
    engine.close()


# ---------------------------------------------------------------------------------------- vLLM (fast, faked)


class _FakeLLM:
    """Stands in for vllm.LLM: records calls, answers with the seed so tests can check routing."""

    def __init__(self, model, **kwargs):
        self.model, self.kwargs, self.calls = model, kwargs, []

    def get_tokenizer(self):
        from tests.fixtures.tiny_model import tiny_tokenizer

        return tiny_tokenizer()

    def generate(self, prompts, params, use_tqdm=True):
        from types import SimpleNamespace as NS

        self.calls.append(len(prompts))
        return [NS(prompt_token_ids=p["prompt_token_ids"],
                   outputs=[NS(text=f"seed {sp.seed}", token_ids=[1, 2], finish_reason="length")])
                for p, sp in zip(prompts, params, strict=True)]


@pytest.fixture
def fake_vllm(monkeypatch):
    import types

    from spsbench.engines import vllm as vllm_engine
    from tests.fake_vllm import install

    module = install(monkeypatch, types.SimpleNamespace(LLM=_FakeLLM,
                                                         SamplingParams=lambda **kw: types.SimpleNamespace(**kw)))
    monkeypatch.setattr(vllm_engine, "_cuda_available", lambda: False)
    monkeypatch.setattr(vllm_engine, "busy_cpus", lambda: 1.0)        # a shared machine: cpu_threads=auto unbinds
    for var in ("VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_NUM_OF_RESERVED_CPU", "VLLM_ENABLE_V1_MULTIPROCESSING",
                "VLLM_CPU_OMP_THREADS_BIND", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    return module


def test_vllm_cpu_defaults_and_chunked_streaming(fake_vllm, tiny):
    import os

    engine = load_engine("vllm", str(tiny), chunk_size=4)
    kwargs = engine.llm.kwargs
    assert kwargs["dtype"] == cpu_auto_dtype() and kwargs["enforce_eager"] is True
    assert kwargs["max_num_batched_tokens"] == 8192 and "gpu_memory_utilization" not in kwargs
    assert kwargs["enable_chunked_prefill"] is False          # the per-request-seed crash on CPU
    assert os.environ["VLLM_CPU_KVCACHE_SPACE"] == "2" and os.environ["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"
    assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
    assert os.environ["VLLM_CPU_OMP_THREADS_BIND"] == "nobind"        # auto on a busy machine: unbound
    engine.close()
    assert "VLLM_CPU_OMP_THREADS_BIND" not in os.environ
    engine = load_engine("vllm", str(tiny), chunk_size=4)
    stream = engine.generate([req("a", "x", tuple(range(6))), req("b", "yy", (2, 3))], SAMPLE)
    first = next(stream)
    assert engine.llm.calls == [4]                   # only the first chunk ran before the first yield
    rest = list(stream)
    assert engine.llm.calls == [4, 4]
    out = {(c.key, c.sample_idx): c for c in [first, *rest]}
    assert len(out) == 8 and out[("b", 3)].text == "seed 103"
    assert out[("b", 3)].prompt_tokens == 2 and out[("b", 3)].completion_tokens == 2


def test_vllm_user_env_and_options_win(fake_vllm, tiny, monkeypatch):
    import os

    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "7")
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "0-1")
    engine = load_engine("vllm", str(tiny), dtype="fp32", enforce_eager=False, max_num_batched_tokens=1024)
    assert os.environ["VLLM_CPU_KVCACHE_SPACE"] == "7" and os.environ["VLLM_CPU_OMP_THREADS_BIND"] == "0-1"
    assert engine.llm.kwargs["dtype"] == "float32" and engine.llm.kwargs["enforce_eager"] is False
    assert engine.llm.kwargs["max_num_batched_tokens"] == 1024
    with pytest.raises(EngineError, match="unknown option"):
        load_engine("vllm", str(tiny), gpu_util=0.5)


def test_vllm_cpu_threads_unbinds_and_restores(fake_vllm, tiny, monkeypatch):
    import os

    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    before = torch.get_num_threads()
    engine = load_engine("vllm", str(tiny), cpu_threads=1)
    assert os.environ["VLLM_CPU_OMP_THREADS_BIND"] == "nobind" and os.environ["OMP_NUM_THREADS"] == "1"
    assert torch.get_num_threads() == 1
    engine.close()
    assert "VLLM_CPU_OMP_THREADS_BIND" not in os.environ and os.environ["OMP_NUM_THREADS"] == "2"
    assert torch.get_num_threads() == before


# ------------------------------------------------------------------------------------------ auto


def test_auto_prefers_vllm_and_splits_options_by_engine(fake_vllm, tiny):
    engine = load_engine("auto", str(tiny), chunk_size=3, batch_size=2)      # batch_size is hf's
    assert engine.name == "vllm" and engine.chunk_size == 3
    engine.close()


def test_auto_falls_back_to_hf_when_vllm_cannot_start(fake_vllm, tiny, monkeypatch, capsys):
    import os

    import torch

    def skip_set_num_threads(n):
        pass

    def broken(model, **kwargs):
        # What vLLM's CPU worker does in-process before it can fail: 1 thread, and torch.set_num_threads
        # replaced by a no-op for the whole process.
        torch.set_num_threads(1)
        monkeypatch.setattr(torch, "set_num_threads", skip_set_num_threads)
        raise RuntimeError("no memory for the KV cache")

    monkeypatch.setattr(fake_vllm, "LLM", broken)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.delenv("VLLM_CACHE_ROOT", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        engine = load_engine("auto", str(tiny), chunk_size=3, batch_size=2)
        assert engine.name == "hf" and engine.batch_size == 2
        assert "vLLM could not start" in capsys.readouterr().err
        # hf must not inherit vLLM's 1 thread / OMP_NUM_THREADS=1 / unbound-thread settings
        assert torch.get_num_threads() == 2 and engine.describe()["num_threads"] == 2
        assert torch.set_num_threads is not skip_set_num_threads
        assert os.environ["OMP_NUM_THREADS"] == "2"
        for var in ("VLLM_CPU_OMP_THREADS_BIND", "VLLM_CPU_KVCACHE_SPACE", "VLLM_ENABLE_V1_MULTIPROCESSING",
                    "VLLM_CACHE_ROOT"):
            assert var not in os.environ, var
        engine.close()
    finally:
        torch.set_num_threads(threads)


def test_auto_without_vllm_is_hf_and_unknown_options_are_refused(tiny, monkeypatch):
    import spsbench.engines as engines

    monkeypatch.setattr(engines, "vllm_installed", lambda: False)
    engine = load_engine("auto", str(tiny))
    assert engine.name == "hf"
    engine.close()
    with pytest.raises(EngineError, match="engine auto: unknown option"):
        load_engine("auto", str(tiny), batchsize=2)


@pytest.mark.parametrize("flags, dtype", [({"avx2", "fma"}, "float32"), ({"avx512f", "avx512bw"}, "float32"),
                                          ({"avx512f", "avx512_bf16"}, "bfloat16"), ({"amx_bf16"}, "bfloat16")])
def test_cpu_auto_dtype_is_bf16_only_where_native(flags, dtype):
    assert cpu_auto_dtype(flags) == dtype


def test_engines_follow_the_cpu_auto_dtype(fake_vllm, tiny, monkeypatch):
    """On an AVX2-only CPU bf16 ran 3-4x slower than fp32: `auto` must give fp32 there, bf16 with AVX512-BF16."""
    import torch

    from spsbench import system
    from spsbench.engines import hf

    for flags, want in (({"avx2"}, "float32"), ({"avx512_bf16"}, "bfloat16")):
        monkeypatch.setattr(system, "cpu_flags", lambda flags=flags: set(flags))
        assert load_engine("vllm", str(tiny)).llm.kwargs["dtype"] == want
        assert hf._pick_dtype("auto", torch.device("cpu")) == getattr(torch, want)


def test_cpu_threads_auto_binds_all_cores_only_on_a_quiet_machine():
    from spsbench.engines.vllm import resolve_cpu_threads

    assert resolve_cpu_threads("auto", busy=0.0, cores=2) == 0          # vLLM pins one thread per core
    assert resolve_cpu_threads("auto", busy=1.0, cores=2) == 1          # one core taken: 1 unbound thread
    assert resolve_cpu_threads("auto", busy=5.0, cores=2) == 1
    assert resolve_cpu_threads("auto", busy=1.0, cores=8) == 7
    assert resolve_cpu_threads(3) == 3 and resolve_cpu_threads("0") == 0
    for bad in ("abc", -1):
        with pytest.raises(EngineError, match="cpu_threads must be auto or an integer"):
            resolve_cpu_threads(bad)


def test_busy_cpus_counts_other_runnable_tasks(monkeypatch, tmp_path):
    from spsbench import system

    loadavg = tmp_path / "loadavg"
    loadavg.write_text("3.10 2.00 1.50 3/412 12345\n")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda path, *a, **k: real_open(loadavg if path == "/proc/loadavg" else path, *a, **k))
    assert system.busy_cpus(samples=3, interval=0) == 2.0              # 3 runnable, one of them us
    loadavg.write_text("garbage")
    assert system.busy_cpus(samples=1, interval=0) == 0.0
