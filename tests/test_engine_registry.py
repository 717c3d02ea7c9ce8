"""The engine registry is the one place an engine is named: a class registered with one line of
`spsbench.engines.ENGINES` is a choice of `spsbench eval --engine` (and of `diagnose` when it runs the
model in this process) and evaluates by name, with the identity and budget it answers for itself."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pytest

import spsbench.engines as engines
from spsbench.cli import build_parser, main
from spsbench.config import SamplingConfig
from spsbench.engines.base import Completion, EngineBase, GenRequest, ModelIdentity, flatten
from spsbench.engines.options import Opt
from spsbench.store import Store

HERE = "tests.test_engine_registry"


class _NoBudget:
    """A prompt counter that knows no context: nothing is clamped."""

    context = None

    def longest(self, prompts: list[str], chat_template: str) -> int | None:
        return None

    def close(self) -> None:
        pass


class EchoEngine(EngineBase):
    """The whole of an engine: answers every prompt with the number `answer` (an option), boxed."""

    name = "echo"
    served = True                                  # no weights here: MODEL is a name
    OPTIONS: dict[str, Any] = {"answer": 12}
    KINDS = {"answer": Opt(int)}

    @classmethod
    def identify(cls, model: str | None, options: Mapping[str, Any]) -> ModelIdentity:
        return ModelIdentity(f"echo://{model}", "")

    @classmethod
    def model_to_load(cls, stored: str) -> str:
        return stored.removeprefix("echo://")

    @classmethod
    def prompt_counter(cls, model_path: str, options: Mapping[str, Any]) -> _NoBudget:
        return _NoBudget()

    def __init__(self, model: str, **options: Any) -> None:
        self.model, self.answer = model, (self.OPTIONS | options)["answer"]

    def describe(self) -> dict:
        return {"engine": self.name, "model": self.model, "weights_hash": ""}

    def generate(self, requests: Iterable[GenRequest], sampling: SamplingConfig) -> Iterator[Completion]:
        for s in flatten(requests):
            yield Completion(s.key, s.sample_idx, s.seed, f"\\boxed{{{self.answer}}}", 1, 3, "stop")

    def close(self) -> None:
        pass


class LocalEcho(EchoEngine):
    name = "local-echo"
    served = False


def _choices(command: str) -> list[str]:
    sub = next(a for a in build_parser()._subparsers._group_actions if a.choices)
    action = next(a for a in sub.choices[command]._actions if a.dest == "engine")
    return list(action.choices)


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(engines.ENGINES, "echo", f"{HERE}:EchoEngine")           # the one line
    monkeypatch.setitem(engines.ENGINES, "local-echo", f"{HERE}:LocalEcho")


def test_the_cli_choices_are_the_registry(registered, capsys):
    assert _choices("eval") == ["auto", "vllm", "hf", "openai", "echo", "local-echo"]
    # diagnose scores the model in this process: only the engines that run it here are its choices
    assert _choices("diagnose") == ["auto", "vllm", "hf", "local-echo"]
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert re.search(r"--engine \{auto,vllm,hf,openai,echo,local-echo\}", capsys.readouterr().out)


def test_without_the_line_the_engine_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "m", "--engine", "echo"])
    assert "invalid choice: 'echo'" in capsys.readouterr().err


def test_a_registered_engine_evaluates_by_name(registered, tmp_path, capsys):
    store = tmp_path / "s.db"
    args = ["eval", "m1", "--engine", "echo", "--tasks", "arith", "--limit", "3", "--n", "2", "--store", str(store),
            "--no-leaderboard", "-q"]
    assert main([*args, "--engine-opt", "answer=12"]) == 0
    assert main([*args, "--engine-opt", "answers=12"]) == 2          # its options are checked like any engine's
    assert "engine echo: unknown option(s) answers; allowed: answer" in capsys.readouterr().err
    db = Store(store)
    try:
        [ev] = db.evaluations()
        samples = list(db.samples(ev.id))
    finally:
        db.close()
    assert (ev.engine, ev.model_path, ev.n) == ("echo", "echo://m1", 2)     # as the class identifies them
    assert len(samples) == 6 and {s["completion"] for s in samples} == {"\\boxed{12}"}


def test_every_registered_engine_answers_for_itself():
    """Each registry line names a class whose `name` is its key and whose pre-load answers exist (served
    engines have their own identity and prompt counter; the others inherit LocalEngine's)."""
    from spsbench.engines.local import LocalEngine

    for name in engines.ENGINES:
        engine = engines.engine_class(name)
        assert engine.name == name and issubclass(engine, EngineBase)
        assert engine.served or issubclass(engine, LocalEngine)
        assert set(engine.option_kinds()) >= set(engine.OPTIONS)
    assert engines.engine_names(served=True) == ("openai",)
    assert engines.DEFAULT_ENGINE in engines.ENGINES and engines.DEFAULT_SERVED_ENGINE in engines.engine_names(True)
