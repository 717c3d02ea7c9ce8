"""The cache lives in a user cache folder, never in the source checkout unless asked: $SPSBENCH_CACHE,
else $XDG_CACHE_HOME/spsbench, else ~/.cache/spsbench; the weights-hash records go there too."""

from __future__ import annotations

from pathlib import Path

from spsbench import models, paths


def test_default_is_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("SPSBENCH_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.cache_dir() == tmp_path / "xdg" / "spsbench" and (tmp_path / "xdg" / "spsbench").is_dir()
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert paths.cache_dir() == tmp_path / "home" / ".cache" / "spsbench"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")          # the XDG spec says: ignore a relative one
    assert paths.cache_dir() == tmp_path / "home" / ".cache" / "spsbench"


def test_spsbench_cache_overrides_and_may_ask_for_the_checkout(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("SPSBENCH_CACHE", str(tmp_path / "mine"))
    assert paths.cache_dir() == tmp_path / "mine"
    monkeypatch.setenv("SPSBENCH_CACHE", str(paths.REPO_ROOT / ".cache"))
    assert paths.cache_dir() == paths.REPO_ROOT / ".cache"


def test_weights_hash_records_go_to_the_cache_not_the_checkout(monkeypatch, tmp_path, tiny_model_dir):
    monkeypatch.delenv("SPSBENCH_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    key = models._hash_sidecar(Path(tiny_model_dir).resolve()).name
    models.weights_hash(tiny_model_dir)
    assert (tmp_path / "xdg" / "spsbench" / "weights-hash" / key).is_file()
    assert not (paths.REPO_ROOT / ".cache" / "weights-hash" / key).exists()
