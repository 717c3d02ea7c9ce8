"""Shared fixtures: a session-wide tiny HF model folder, a fresh store path, and a fake engine.

The fake engine satisfies the Engine protocol without torch: each sample's text depends only on its
seed (some seeds answer correctly), so store and resume logic can be tested in milliseconds. Tests of
the real pipeline use the HF engine on the tiny model instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")   # no test may reach a hub


@pytest.fixture(autouse=True)
def _no_writes_into_the_repo(tmp_path_factory, monkeypatch):
    """Default store and leaderboards go to a scratch folder: a test that relies on a default must never
    overwrite the project's `results/` or `leaderboards/` (a test run once replaced the committed boards)."""
    scratch = tmp_path_factory.mktemp("defaults")
    monkeypatch.setenv("SPSBENCH_STORE", str(scratch / "results" / "spsbench.db"))
    monkeypatch.setenv("SPSBENCH_LEADERBOARDS", str(scratch / "leaderboards"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random-weight Llama + char tokenizer saved as a real HF folder (shared, do not modify)."""
    from tests.fixtures.tiny_model import tiny_model

    return tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def store_path(tmp_path) -> Path:
    return tmp_path / "results" / "spsbench.db"


class FakeEngine:
    """Deterministic per seed: '\\boxed{<answer>}' for seeds divisible by 3, else a wrong box or prose."""

    name = "fake"

    def __init__(self, answers: dict[str, str] | None = None) -> None:
        self.answers = answers or {}
        self.generated: list[tuple[str, int]] = []

    def describe(self) -> dict:
        return {"engine": self.name, "model": "fake"}

    def generate(self, requests: Iterable, sampling) -> Iterator:
        from spsbench.engines.base import Completion

        for req in requests:
            for idx, seed in zip(req.sample_indices, req.seeds, strict=True):
                self.generated.append((req.key, idx))
                yield Completion(req.key, idx, seed, self.text(req.key, seed), 10, 5, "stop")

    def text(self, key: str, seed: int) -> str:
        if seed % 3 == 0:
            return f"so \\boxed{{{self.answers.get(key, '0')}}}"
        return "I think \\boxed{-12345}" if seed % 3 == 1 else "no idea"

    def close(self) -> None:
        pass


class FakeFactory:
    """engine_factory for `evaluate`: records every engine it creates."""

    def __init__(self, answers: dict[str, str] | None = None) -> None:
        self.answers = answers
        self.engines: list[FakeEngine] = []

    def __call__(self, engine: str, model_path: str) -> FakeEngine:
        eng = FakeEngine(self.answers)
        self.engines.append(eng)
        return eng

    @property
    def generated(self) -> list[tuple[str, int]]:
        return [pair for e in self.engines for pair in e.generated]


@pytest.fixture
def fake_factory():
    """A FakeFactory that answers `arith` problems with their gold answers (for 1 seed in 3)."""
    from spsbench.tasks import load_task

    answers = {p.id: p.answer for p in load_task("arith").problems}
    return FakeFactory(answers)


@pytest.fixture
def plain_fake_factory():
    """A FakeFactory whose correct-looking answers are '0' (for tasks other than arith)."""
    return FakeFactory()
