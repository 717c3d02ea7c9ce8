"""The engine interface: turn (prompt, n, seeds) requests into completions, streamed as they finish.

Engines know nothing about tasks, grading or the store. The evaluator hands them only the samples
still missing, each with its own seed (spsbench.config.sample_seed), so resume is exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Protocol

from spsbench.config import SamplingConfig
from spsbench.engines.options import Opt
from spsbench.errors import EngineError
from spsbench.models import weights_hash


@dataclass(frozen=True)
class GenRequest:
    key: str                       # opaque to the engine (the evaluator uses the problem id)
    prompt: str                    # user-message text; the engine applies the chat template per SamplingConfig
    sample_indices: tuple[int, ...]  # which samples of this prompt to produce
    seeds: tuple[int, ...]         # one seed per sample index
    # Overrides sampling.temperature for this request's samples (0 = greedy). `spsbench diagnose` sends
    # its greedy and sampled completions in one batch; evaluations never set it.
    temperature: float | None = None
    # Ask for each generated token's log-probability and the entropy of the distribution it was drawn from
    # (the model's raw logits, temperature 1, in float32), computed by the engine while it generates
    # (`Completion.token_logprobs` / `token_entropies`). Only `spsbench diagnose` sets it; an engine that
    # cannot leaves them empty and diagnose scores the completion itself.
    scores: bool = False


@dataclass(frozen=True)
class Completion:
    key: str
    sample_idx: int
    seed: int
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str             # "stop" | "length" | engine-specific
    # The generated token ids (EOS included when generated), from engines that have them (hf, vllm); ()
    # from a server. Only `spsbench diagnose` reads them: the store keeps the text.
    token_ids: tuple[int, ...] = ()
    # With GenRequest.scores, one per token id when the engine could compute them, else ().
    token_logprobs: tuple[float, ...] = ()
    token_entropies: tuple[float, ...] = ()


class Engine(Protocol):
    name: str                      # what the store records as the engine (EngineBase.name)

    def describe(self) -> dict:
        """Provenance for the store: model path/id, weights hash if local, dtype, package versions."""
        ...

    def generate(self, requests: Iterable[GenRequest], sampling: SamplingConfig) -> Iterator[Completion]:
        """Yield every requested sample exactly once, in any order, as soon as it is ready."""
        ...

    def close(self) -> None:
        ...


class ModelIdentity(NamedTuple):
    """What the store records as the model: a resolved folder or hub id (or a served model's
    '<base_url>#<name>') and the weights hash (empty where there are no local weights)."""

    path: str
    weights_hash: str


class PromptCounter(Protocol):
    """What an engine's model says about the completion budget, before the engine loads."""

    @property
    def context(self) -> int | None:
        """The model's context in tokens; None when unknown (then nothing is clamped)."""
        ...

    def longest(self, prompts: list[str], chat_template: str) -> int | None:
        """Tokens of the longest prompt as the engine will send it; None when it cannot be counted."""
        ...

    def close(self) -> None:
        ...


class EngineBase:
    """What an engine class answers for itself, so no module outside `engines/` names an engine.

    Before anything loads (class methods): its options, the identity the store records for a model
    (`identify`; `model_to_load` turns that back into what the constructor takes), the model's context
    and prompt token counts (`prompt_counter`), and whether the model is served over HTTP (`served`).
    After it loads (instance methods, the `Engine` protocol): `describe`, `generate`, `close`.
    Engines that run the model in this process derive from `engines.local.LocalEngine`."""

    name: ClassVar[str]                      # what the store records as the engine
    served: ClassVar[bool] = False           # True: MODEL is a name on an HTTP server, not weights here
    OPTIONS: ClassVar[dict[str, Any]] = {}   # option -> default (`--engine-opt KEY=VALUE`)
    KINDS: ClassVar[dict[str, Opt]] = {}     # option -> how its value is checked

    @classmethod
    def load(cls, model: str, **options: Any) -> Engine:
        """The loaded engine for `model` (what `spsbench.engines.load_engine` returns)."""
        return cls(model, **options)      # type: ignore[return-value]

    @classmethod
    def option_kinds(cls) -> dict[str, Opt]:
        return cls.KINDS

    @classmethod
    def identify(cls, model: str | None, options: Mapping[str, Any]) -> ModelIdentity:
        raise NotImplementedError(f"engine {cls.name}: identify")

    @classmethod
    def model_to_load(cls, stored: str) -> str:
        """What the constructor takes for a model stored as `stored` (ModelIdentity.path)."""
        return stored

    @classmethod
    def prompt_counter(cls, model_path: str, options: Mapping[str, Any]) -> PromptCounter:
        raise NotImplementedError(f"engine {cls.name}: prompt_counter")


@dataclass(frozen=True)
class Sample:
    """One sample to generate: a request's prompt with one sample index and its seed."""

    key: str
    prompt: str
    sample_idx: int
    seed: int
    temperature: float | None = None   # the request's override of sampling.temperature
    scores: bool = False               # the request asks for per-token log-probs and entropies

    def temperature_in(self, sampling: SamplingConfig) -> float:
        return sampling.temperature if self.temperature is None else self.temperature


def flatten(requests: Iterable[GenRequest]) -> list[Sample]:
    """Expand requests into one Sample per (request, sample index), checking seeds match indices."""
    samples: list[Sample] = []
    for req in requests:
        if len(req.sample_indices) != len(req.seeds):
            raise EngineError(f"request {req.key!r}: {len(req.sample_indices)} sample indices but "
                              f"{len(req.seeds)} seeds")
        pairs = zip(req.sample_indices, req.seeds, strict=True)
        samples.extend(Sample(req.key, req.prompt, i, s, req.temperature, req.scores) for i, s in pairs)
    return samples


def local_identity(model: str) -> dict[str, Any]:
    """Path and weights hash for a local folder; just the id for a hub model."""
    if Path(model).is_dir():
        return {"model": model, "weights_hash": weights_hash(model)}
    return {"model": model, "weights_hash": ""}
