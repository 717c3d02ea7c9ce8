"""Helpers shared by the engines: prompt rendering (chat template auto|on|off), stop-string trimming,
request flattening, option validation and package versions for provenance.

Every local engine renders prompts to token ids with `encode_prompt`, so the HF and vLLM engines see
exactly the same prompt tokens for the same SamplingConfig.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from spsbench.engines.base import GenRequest
from spsbench.errors import EngineError


@dataclass(frozen=True)
class Sample:
    """One sample to generate: a request's prompt with one sample index and its seed."""

    key: str
    prompt: str
    sample_idx: int
    seed: int


def flatten(requests: Iterable[GenRequest]) -> list[Sample]:
    """Expand requests into one Sample per (request, sample index), checking seeds match indices."""
    samples: list[Sample] = []
    for req in requests:
        if len(req.sample_indices) != len(req.seeds):
            raise EngineError(f"request {req.key!r}: {len(req.sample_indices)} sample indices but "
                              f"{len(req.seeds)} seeds")
        pairs = zip(req.sample_indices, req.seeds, strict=True)
        samples.extend(Sample(req.key, req.prompt, i, s) for i, s in pairs)
    return samples


def uses_chat_template(tokenizer: Any, mode: str) -> bool:
    """auto: the model's template if it has one; on: required; off: raw prompt text."""
    has = bool(getattr(tokenizer, "chat_template", None))
    if mode == "on" and not has:
        raise EngineError("chat_template=on but the model's tokenizer has no chat template")
    return has and mode != "off"


def render_prompt(tokenizer: Any, prompt: str, mode: str) -> str:
    """The prompt as text the model sees (chat template applied with a generation prompt, or raw)."""
    if not uses_chat_template(tokenizer, mode):
        return prompt
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                         add_generation_prompt=True, tokenize=False)


def encode_prompt(tokenizer: Any, prompt: str, mode: str) -> list[int]:
    """Token ids of the rendered prompt. A chat template already holds its own special tokens."""
    templated = uses_chat_template(tokenizer, mode)
    text = render_prompt(tokenizer, prompt, mode)
    return list(tokenizer(text, add_special_tokens=not templated)["input_ids"])


def trim_at_stop(text: str, stops: Iterable[str]) -> tuple[str, bool]:
    """Cut `text` before the earliest stop string; report whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def eos_token_ids(*sources: Any) -> set[int]:
    """Union of eos ids declared by model config, generation config and tokenizer (ints or lists)."""
    ids: set[int] = set()
    for src in sources:
        value = getattr(src, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids


def check_options(engine: str, options: dict[str, Any], allowed: dict[str, Any]) -> dict[str, Any]:
    """Merge `options` over defaults in `allowed`; unknown options are a one-line EngineError."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise EngineError(f"engine {engine}: unknown option(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(sorted(allowed))}")
    return allowed | options


def package_versions(*names: str) -> dict[str, str]:
    """Installed versions of `names` (missing packages are left out)."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def local_identity(model: str) -> dict[str, Any]:
    """Path and weights hash for a local folder; just the id for a hub model."""
    from pathlib import Path

    from spsbench.models import weights_hash

    if Path(model).is_dir():
        return {"model": model, "weights_hash": weights_hash(model)}
    return {"model": model, "weights_hash": ""}
