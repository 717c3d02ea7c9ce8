"""Built-in `arith` task: procedurally generated arithmetic word problems with integer answers.

Owns the generator behind `source: {builtin: arith, ...}` in `tasks/arith.yaml`. It needs no download,
so it is the offline default for demos, tests and CI. Problems are deterministic in (seed, count,
difficulty): only `random.Random.random()` is used because Python guarantees that method's sequence
for a given integer seed across versions, whereas `randrange`/`choice` may change.

Difficulty = number of operations and size of the numbers:
  easy    1 step, numbers 2-9, add/subtract      (default: SmolLM2-135M-Instruct solves some, not all;
                                                  figures in tasks/arith.yaml)
  medium  1-2 steps, numbers 2-20, add/subtract
  hard    2-3 steps, numbers 2-50, plus multiplication ("buys 3 bags with 6 apples each")
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

GENERATOR_VERSION = "1"  # bump when the generated text or answers change (it is part of the task version)

LEVELS: dict[str, dict[str, Any]] = {
    "easy": {"steps": (1, 1), "max_value": 9, "ops": ("add", "sub")},
    "medium": {"steps": (1, 2), "max_value": 20, "ops": ("add", "sub")},
    "hard": {"steps": (2, 3), "max_value": 50, "ops": ("add", "sub", "mul")},
}

NAMES = ("Tom", "Anna", "Ben", "Maria", "Sam", "Lily", "Omar", "Zoe", "Leo", "Nina", "Raj", "Emma")
PRONOUN = {"Tom": "he", "Ben": "he", "Sam": "he", "Omar": "he", "Leo": "he", "Raj": "he"}
ITEMS = ("apples", "marbles", "stickers", "pencils", "cookies", "books", "coins", "stamps", "shells", "cards")
CONTAINERS = ("bags", "boxes", "packs", "jars")

ADD_PHRASES = ("buys {b} more {items}", "finds {b} more {items}", "gets {b} more {items} from a friend")
SUB_PHRASES = ("gives {b} {items} to a friend", "loses {b} {items}", "sells {b} {items}")


@dataclass(frozen=True)
class ArithConfig:
    """Parameters of the generator; every field can be set under `source:` in the task YAML."""

    seed: int = field(default=0, metadata={"help": "Generator seed; same seed, same problems."})
    count: int = field(default=64, metadata={"help": "Number of problems."})
    difficulty: str = field(default="easy", metadata={"help": "easy | medium | hard (see module docstring)."})
    steps: tuple[int, int] | None = field(
        default=None, metadata={"help": "Override: [min, max] number of operations after the first quantity."}
    )
    max_value: int | None = field(default=None, metadata={"help": "Override: largest number in a problem."})

    def __post_init__(self) -> None:
        if self.difficulty not in LEVELS:
            raise ValueError(f"difficulty: must be one of {', '.join(LEVELS)}, got {self.difficulty!r}")
        if not 1 <= self.count <= 100_000:
            raise ValueError(f"count: must be in 1..100000, got {self.count}")
        if self.steps is not None:
            lo, hi = self.steps
            if not 1 <= lo <= hi <= 10:
                raise ValueError(f"steps: need 1 <= min <= max <= 10, got {list(self.steps)}")
        if self.max_value is not None and not 2 <= self.max_value <= 10**6:
            raise ValueError(f"max_value: must be in 2..1000000, got {self.max_value}")

    def level(self) -> dict[str, Any]:
        """The difficulty preset with this config's overrides applied."""
        level = dict(LEVELS[self.difficulty])
        if self.steps is not None:
            level["steps"] = tuple(self.steps)
        if self.max_value is not None:
            level["max_value"] = self.max_value
        return level


class _Rng:
    """Integer draws built on `random()` only, whose sequence Python keeps stable across versions."""

    def __init__(self, seed: int) -> None:
        self._r = random.Random(seed)

    def randint(self, lo: int, hi: int) -> int:
        return lo + int(self._r.random() * (hi - lo + 1))

    def pick(self, options: tuple[str, ...]) -> str:
        return options[self.randint(0, len(options) - 1)]


def _step(rng: _Rng, op: str, total: int, top: int, words: dict[str, str]) -> tuple[str, int]:
    """One operation as a sentence, and the new running total."""
    pronoun = words["pronoun"].capitalize()
    if op == "sub" and total >= 2:
        b = rng.randint(1, min(total - 1, top))
        return f"{pronoun} {rng.pick(SUB_PHRASES).format(b=b, **words)}.", total - b
    if op == "mul":
        bags, each = rng.randint(2, max(2, min(9, top))), rng.randint(2, max(2, min(12, top)))
        return f"{pronoun} buys {bags} {words['container']} with {each} {words['items']} each.", total + bags * each
    b = rng.randint(2, top)
    return f"{pronoun} {rng.pick(ADD_PHRASES).format(b=b, **words)}.", total + b


def make_problem(rng: _Rng, level: dict[str, Any]) -> tuple[str, int]:
    """One word problem and its integer answer."""
    name = rng.pick(NAMES)
    words = {"items": rng.pick(ITEMS), "container": rng.pick(CONTAINERS), "pronoun": PRONOUN.get(name, "she")}
    top = level["max_value"]
    total = rng.randint(2, top)
    sentences = [f"{name} has {total} {words['items']}."]
    for _ in range(rng.randint(*level["steps"])):
        sentence, total = _step(rng, rng.pick(level["ops"]), total, top, words)
        sentences.append(sentence)
    sentences.append(f"How many {words['items']} does {name} have now?")
    return " ".join(sentences), total


def generate(config: ArithConfig) -> list[dict[str, Any]]:
    """Rows with the columns `id`, `problem`, `answer` (answer as a decimal string)."""
    rng, level = _Rng(config.seed), config.level()
    rows = []
    for i in range(config.count):
        problem, answer = make_problem(rng, level)
        rows.append({"id": str(i), "problem": problem, "answer": str(answer)})
    return rows


def config_from_source(source: dict[str, Any]) -> ArithConfig:
    """The generator settings a task file's `source: {builtin: arith, ...}` names (ValueError if invalid)."""
    params = {k: v for k, v in source.items() if k != "builtin"}
    if "steps" in params:
        steps = params["steps"]
        if not isinstance(steps, list | tuple) or len(steps) != 2 or \
                not all(isinstance(s, int) and not isinstance(s, bool) for s in steps):
            raise ValueError(f"steps: expected [min, max] integers, got {steps!r}")
        params["steps"] = tuple(steps)
    return ArithConfig(**params)
