"""Tests for spsbench.models: loadability checks, weights hash, model resolution, default-model conversion
(including the weight copy that must refuse a partly random model, and `spsbench eval` end to end on the
embedded default, slow)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
import threading
import time

import pytest

from spsbench import models
from spsbench.errors import CheckpointError, EngineError
from tests.fixtures.tiny_model import tiny_model


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("SPSBENCH_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def tiny_src(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def tiny(tiny_src, tmp_path):
    return shutil.copytree(tiny_src, tmp_path / "ckpt")


# ------------------------------------------------------------------------------------------ check_loadable


def test_check_loadable_accepts_complete_save(tiny):
    models.check_loadable(tiny)


def test_check_loadable_missing_config(tiny):
    (tiny / "config.json").unlink()
    with pytest.raises(CheckpointError, match="no config.json"):
        models.check_loadable(tiny)


def test_check_loadable_missing_weights(tiny):
    (tiny / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model weight files"):
        models.check_loadable(tiny)


def test_trainer_state_files_are_not_weights(tiny):
    """A Trainer checkpoint whose weights are missing still holds training_args.bin, optimizer.pt, ...:
    none of them may pass for model weights, nor enter the weights hash."""
    before = models.weights_hash(tiny)
    for name in ("training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth"):
        (tiny / name).write_bytes(b"trainer state")
    assert models.weights_hash(tiny) == before
    (tiny / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model weight files"):
        models.check_loadable(tiny)


def test_check_loadable_partial_sharded_save(tiny):
    (tiny / "model.safetensors").rename(tiny / "model-00001-of-00002.safetensors")
    index = {"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                                            "b": "model-00002-of-00002.safetensors"}}
    (tiny / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="partial save.*model-00002-of-00002.safetensors"):
        models.check_loadable(tiny)


def test_check_loadable_corrupt_header_length(tiny):
    path = tiny / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[:8] = struct.pack("<Q", 10**12)
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt safetensors"):
        models.check_loadable(tiny)


def test_check_loadable_garbage_header(tiny):
    (tiny / "model.safetensors").write_bytes(struct.pack("<Q", 10) + b"not json!!" + b"\0" * 64)
    with pytest.raises(CheckpointError, match="header is not valid JSON"):
        models.check_loadable(tiny)


def test_check_loadable_truncated_file(tiny):
    path = tiny / "model.safetensors"
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size - 100)
    with pytest.raises(CheckpointError, match="truncated safetensors"):
        models.check_loadable(tiny)


def test_check_loadable_tiny_file(tiny):
    (tiny / "model.safetensors").write_bytes(b"\1\2")
    with pytest.raises(CheckpointError, match="corrupt safetensors"):
        models.check_loadable(tiny)


# ------------------------------------------------------------------------------------------ weights_hash


def test_weights_hash_stable_and_cached(tiny):
    first = models.weights_hash(tiny)
    assert len(first) == 64 and models.weights_hash(tiny) == first
    (sidecar,) = (models.paths.cache_dir() / "weights-hash").glob("*.json")
    cached = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps(cached | {"sha256": "from-cache"}))
    assert models.weights_hash(tiny) == "from-cache"          # unchanged sizes+mtimes: no rescan
    weights = tiny / "model.safetensors"
    os.utime(weights, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert models.weights_hash(tiny) == first                 # mtime changed: rescanned, real hash again


def test_weights_hash_changes_with_weights(tiny, tmp_path):
    other = tiny_model(tmp_path / "other", seed=1)
    assert models.weights_hash(tiny) != models.weights_hash(other)
    before = models.weights_hash(tiny)
    shutil.copy(other / "model.safetensors", tiny / "model.safetensors")
    assert models.weights_hash(tiny) != before


def test_weights_hash_no_weights(tmp_path):
    with pytest.raises(CheckpointError, match="no weight files"):
        models.weights_hash(tmp_path)


# ------------------------------------------------------------------------------------------ resolve_model


def test_resolve_local_folder(tiny):
    assert models.resolve_model(str(tiny)) == str(tiny.resolve())


def test_resolve_missing_path(tmp_path):
    with pytest.raises(EngineError, match="does not exist"):
        models.resolve_model(str(tmp_path / "missing" / "deeper"))


def test_resolve_hub_id_offline_not_cached():
    with pytest.raises(EngineError, match="HF_HUB_OFFLINE"):
        models.resolve_model("some-org/some-model")


def test_resolve_hub_id_online(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    assert models.resolve_model("some-org/some-model") == "some-org/some-model"


# ------------------------------------------------------------------------------------------ default model


def test_default_model_without_package(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == models.GGUF_PACKAGE else real(name, *a))
    with pytest.raises(EngineError, match="make setup"):
        models.default_model_path()


def _fake_convert(calls, *, fail=False, delay=0.0):
    def convert(source, out, progress):
        calls.append(out)
        (out / "model.safetensors").write_bytes(b"x")
        time.sleep(delay)
        if fail:
            raise KeyboardInterrupt   # like a kill in the middle of writing
        (out / "config.json").write_text("{}")
    return convert


def test_default_model_killed_conversion_leaves_nothing(monkeypatch):
    calls: list = []
    monkeypatch.setattr(models, "_convert_with_status", _fake_convert(calls, fail=True))
    with pytest.raises(KeyboardInterrupt):
        models.default_model_path()
    root = models.paths.cache_dir() / "models"
    assert not (root / models.DEFAULT_MODEL_NAME).exists()
    assert not list(root.glob(".*tmp-*"))
    monkeypatch.setattr(models, "_convert_with_status", _fake_convert(calls))
    path = models.default_model_path()
    assert (path / "config.json").is_file() and len(calls) == 2


def test_default_model_concurrent_callers_convert_once(monkeypatch):
    calls: list = []
    monkeypatch.setattr(models, "_convert_with_status", _fake_convert(calls, delay=0.3))
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(models.default_model_path())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(results)) == 1 and len(results) == 3
    assert models.resolve_model("default") == str(results[0])


@pytest.mark.slow
def test_default_model_real_conversion():
    start = time.perf_counter()
    path = models.default_model_path(progress=False)
    elapsed = time.perf_counter() - start
    models.check_loadable(path)
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    assert "<|im_start|>assistant" in tok.apply_chat_template([{"role": "user", "content": "hi"}],
                                                              add_generation_prompt=True, tokenize=False)
    assert not list(path.parent.glob(".*tmp-*"))
    print(f"conversion took {elapsed:.1f} s")


# ------------------------------------------------------------------------------------------ weight copy


def _tiny_state(tiny_src):
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(tiny_src)
    blank = AutoModelForCausalLM.from_config(loaded.config)
    return loaded, blank, dict(loaded.state_dict())


def test_copy_weights_accepts_an_exact_match_and_a_missing_tied_head(tiny_src):
    import torch

    loaded, blank, state = _tiny_state(tiny_src)
    state.pop("lm_head.weight", None)                   # tied: the GGUF may not carry it
    models.copy_weights(blank, state, tied=True, source="x.gguf")
    blank.tie_weights()
    for key, value in loaded.state_dict().items():
        assert torch.equal(blank.state_dict()[key], value), key


@pytest.mark.parametrize(("edit", "message"), [
    (lambda st: st.pop("model.layers.1.mlp.up_proj.weight"), r"1 missing \(e.g. model.layers.1.mlp.up_proj.weight\)"),
    (lambda st: st.__setitem__("model.extra.weight", st["model.norm.weight"]), r"1 unexpected \(e.g. model.extra"),
    (lambda st: st.__setitem__("model.norm.weight", st["model.norm.weight"][:4]), "weights do not fit the model"),
])
def test_copy_weights_refuses_what_would_leave_random_weights(tiny_src, edit, message):
    _, blank, state = _tiny_state(tiny_src)
    edit(state)
    with pytest.raises(EngineError, match=message) as info:
        models.copy_weights(blank, state, tied=True, source="x.gguf")
    assert "\n" not in str(info.value)


def test_copy_weights_untied_head_must_be_present(tiny_src):
    _, blank, state = _tiny_state(tiny_src)
    state.pop("lm_head.weight", None)
    with pytest.raises(EngineError, match="missing.*lm_head.weight"):
        models.copy_weights(blank, state, tied=False, source="x.gguf")


@pytest.mark.slow
def test_eval_with_no_model_runs_the_converted_default(monkeypatch, tmp_path, capsys):
    from spsbench import paths
    from spsbench.cli import main
    from spsbench.store import Store

    # The repo's cache: the ~30 s conversion happens once and is reused by later runs and `spsbench eval`.
    monkeypatch.setenv("SPSBENCH_CACHE", str(paths.REPO_ROOT / ".cache"))
    store = tmp_path / "results.db"
    code = main(["eval", "--limit", "2", "--n", "2", "--max-tokens", "16", "--engine", "hf", "--store", str(store),
                 "--quiet", "--no-leaderboard"])
    out = capsys.readouterr().out
    assert code == 0 and "spsbench scores" in out and "Avg@n" in out and "pass@2" in out
    assert models.DEFAULT_MODEL_NAME in out
    path = paths.REPO_ROOT / ".cache" / "models" / models.DEFAULT_MODEL_NAME
    config = json.loads((path / "config.json").read_text())
    assert (config["model_type"], config["hidden_size"], config["num_hidden_layers"]) == ("llama", 576, 30)
    with Store(store) as s:
        [ev] = s.evaluations()
        assert (ev.task, ev.n, ev.engine) == ("arith", 2, "hf") and ev.model_path == str(path)
        assert ev.weights_hash == models.weights_hash(path) and s.count_samples(ev.id) == 4
        texts = [x["completion"] for x in s.samples(ev.id)]
    # A real (not randomly initialised) SmolLM2 writes words; a random one writes token soup.
    assert sum(w.isalpha() for t in texts for w in t.split()) >= 8, texts
