"""Shared configuration dataclasses: the sampling config every engine honours, and seed derivation.

A sample's seed depends only on (base seed, problem id, sample index), so a resumed evaluation
regenerates exactly the missing samples with the seeds they would have had.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from spsbench.errors import ConfigError
from spsbench.validate import check_fields, number


@dataclass(frozen=True)
class SamplingConfig:
    """How completions are sampled; means the same thing in every engine."""

    n: int = field(default=16, metadata={"help": "Completions per problem."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature (paper eval: 0.7)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass, in (0, 1]."})
    max_tokens: int = field(default=512, metadata={"help": "Max new tokens per completion."})
    seed: int = field(default=0, metadata={"help": "Base seed; per-sample seeds derive from it."})
    stop: tuple[str, ...] = field(default=(), metadata={"help": "Stop strings."})
    chat_template: str = field(
        default="auto",
        metadata={"help": "'auto' uses the model's chat template if it has one, 'on' forces it, 'off' sends raw text."},
    )

    def __post_init__(self) -> None:
        # Non-finite numbers are refused here, before any model loads: NaN compares false with every bound,
        # and an infinite temperature used to run to a crash, leaving a `running` evaluation behind.
        check_fields(self, "sampling.")
        number("sampling.n", self.n, low=1, integer=True)
        number("sampling.temperature", self.temperature, low=0)
        number("sampling.top_p", self.top_p, low=0, low_open=True, high=1)
        number("sampling.max_tokens", self.max_tokens, low=1, integer=True)
        if self.chat_template not in ("auto", "on", "off"):
            raise ConfigError(f"sampling.chat_template: must be auto|on|off, got {self.chat_template!r}")
        if isinstance(self.stop, str) or not all(isinstance(s, str) and s for s in self.stop):
            raise ConfigError(f"sampling.stop: must be a list of non-empty strings, got {self.stop!r:.60}")
        object.__setattr__(self, "stop", tuple(self.stop))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"stop": list(self.stop)}

    def identity(self) -> dict[str, Any]:
        """Fields that make two evaluations comparable/resumable (n excluded: more samples extend a run)."""
        d = self.to_dict()
        d.pop("n")
        return d

    def key(self) -> str:
        """Stable short hash of `identity()`; used by the store to match resumable evaluations."""
        blob = json.dumps(self.identity(), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def sample_seed(base_seed: int, problem_id: str, sample_idx: int) -> int:
    """Deterministic 31-bit seed for one sample, independent of batching and process."""
    h = hashlib.sha256(f"{base_seed}:{problem_id}:{sample_idx}".encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF
