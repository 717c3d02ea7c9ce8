"""Helpers shared by the engines: prompt rendering (chat template auto|on|off), stop-string trimming,
request flattening, option validation and package versions for provenance.

Every local engine renders prompts to token ids with `encode_prompt`, so the HF and vLLM engines see
exactly the same prompt tokens for the same SamplingConfig.
"""

from __future__ import annotations

import importlib.metadata
import time
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


@dataclass(frozen=True)
class Opt:
    """How one engine option is checked: its type, an optional lower bound or list of choices.

    Values come from YAML on the command line (`--engine-opt batch_size=abc` arrives as the string
    'abc'), so each is checked here and turned into a one-line EngineError, never a ValueError later.
    """

    kind: type                       # int | float | bool | str
    low: float | None = None         # smallest allowed value (ints and floats)
    above: bool = False              # True: the value must be strictly greater than `low`
    high: float | None = None        # largest allowed value
    choices: tuple[str, ...] = ()
    nullable: bool = False           # None (an empty `KEY=`) means "pick automatically"

    def describe(self) -> str:
        if self.choices:
            return " | ".join(self.choices)
        name = {int: "an integer", float: "a number", bool: "true or false", str: "text"}[self.kind]
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.above else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"<= {self.high:g}")
        return name + (f" {' and '.join(bounds)}" if bounds else "")


def _convert(value: Any, opt: Opt) -> Any:
    """`value` as `opt.kind`, or raise ValueError (bools are never numbers, numbers never bools)."""
    if opt.kind is bool:
        if isinstance(value, bool):
            return value
        raise ValueError
    if opt.kind is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ValueError
    if isinstance(value, bool):
        raise ValueError
    if opt.kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError
        return int(value)             # also '12' from Python callers; 'abc' raises ValueError
    return float(value)


def check_option(engine: str, key: str, value: Any, opt: Opt) -> Any:
    """One option's value converted to its kind; a bad value is a one-line EngineError naming it."""
    if value is None and opt.nullable:
        return None
    expected = f"engine {engine}: option {key} must be {opt.describe()}, got {value!r}"
    try:
        out = _convert(value, opt)
    except (TypeError, ValueError):
        raise EngineError(expected) from None
    if opt.choices and out not in opt.choices:
        raise EngineError(expected)
    if opt.low is not None and (out < opt.low or (opt.above and out == opt.low)):
        raise EngineError(expected)
    if opt.high is not None and out > opt.high:
        raise EngineError(expected)
    return out


def check_options(engine: str, options: dict[str, Any], allowed: dict[str, Any],
                  kinds: dict[str, Opt] | None = None) -> dict[str, Any]:
    """Merge `options` over defaults in `allowed`; unknown options or bad values are a one-line EngineError."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise EngineError(f"engine {engine}: unknown option(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(sorted(allowed))}")
    kinds = kinds or {}
    checked = {k: check_option(engine, k, v, kinds[k]) if k in kinds else v for k, v in options.items()}
    return allowed | checked


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


def cpu_flags() -> set[str]:
    """The CPU feature flags Linux reports (empty where /proc/cpuinfo does not exist)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_fast_bf16(flags: set[str] | None = None) -> bool:
    """Whether the CPU computes bf16 matmuls natively (AVX512-BF16 or AMX).

    Measured side by side (`make bench`, bench_engines): on a CPU with them SmolLM2 generated ~1.8x faster
    in bf16 than fp32; on an AVX2-only AMD EPYC, oneDNN has no bf16 matmul, vLLM falls back to torch
    linears and bf16 ran 2.9x (transformers) to 4x (vLLM) slower than fp32. So `dtype=auto` picks bf16
    on CPU only when this is true.
    """
    flags = cpu_flags() if flags is None else flags
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def cpu_auto_dtype(flags: set[str] | None = None) -> str:
    """`dtype=auto` on CPU: "bfloat16" where bf16 is native, else "float32"."""
    return "bfloat16" if cpu_has_fast_bf16(flags) else "float32"


def busy_cpus(samples: int = 5, interval: float = 0.1) -> float:
    """How many CPUs other processes keep busy right now: runnable tasks from /proc/loadavg, minus this one.

    The 1-minute load average lags by about a minute (right after training steps it still counts them),
    so this samples the instantaneous runnable count a few times and takes the median.
    """
    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as fh:
                counts.append(int(fh.read().split()[3].split("/")[0]))
        except (OSError, IndexError, ValueError):
            return 0.0
        if i + 1 < samples:
            time.sleep(interval)
    counts.sort()
    return max(0.0, counts[len(counts) // 2] - 1.0)
