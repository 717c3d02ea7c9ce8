"""`--set KEY=VALUE` for the lab's own settings dataclasses (squeeze, dynamics), and `--sweep` parsing.

Values are parsed as YAML (numbers, lists, null), unknown keys and wrong types are one ConfigError line.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, TypeVar

import yaml

from spsbench.errors import ConfigError
from spsbench.train.config import FLOAT_RE

T = TypeVar("T")


def parse_value(text: str) -> Any:

    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        return text
    return float(value) if isinstance(value, str) and FLOAT_RE.match(value) else value


def split_item(item: str, flag: str = "--set") -> tuple[str, str]:
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{flag}: expected KEY=VALUE, got {item!r}")
    return key.strip(), text


def apply_overrides(cls: type[T], items: list[str], prefix: str) -> T:
    """An instance of the dataclass `cls` with `items` ("key=value" or "prefix.key=value") applied."""
    names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for item in items:
        key, text = split_item(item)
        key = key.removeprefix(f"{prefix}.")
        if key not in names:
            raise ConfigError(f"--set {item}: unknown {prefix} setting {key!r} (valid: {', '.join(sorted(names))})")
        values[key] = _typed(key, parse_value(text), names[key], item)
    return cls(**values)


def _typed(key: str, value: Any, field: dataclasses.Field, item: str) -> Any:
    default = field.default if field.default is not dataclasses.MISSING else None
    if isinstance(default, bool) and not isinstance(value, bool):
        raise ConfigError(f"--set {item}: {key} must be true or false")
    if isinstance(default, int) and not isinstance(default, bool) and not isinstance(value, int):
        raise ConfigError(f"--set {item}: {key} must be an integer")
    if isinstance(default, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(f"--set {item}: {key} must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"--set {item}: {key} must be a finite number, got {value}")
    return float(value) if isinstance(default, float) else value


def parse_sweep(text: str) -> tuple[str, list[Any]]:
    """`sps.irl_learning_rate=1e-6,1e-5` -> ("sps.irl_learning_rate", [1e-06, 1e-05])."""
    key, values = split_item(text, "--sweep")
    items = [parse_value(v) for v in values.split(",") if v.strip()]
    if len(items) < 2:
        raise ConfigError(f"--sweep {text}: give at least two comma-separated values")
    return key, items
