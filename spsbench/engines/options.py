"""Engine options: declared per engine as `Opt`s, checked (names, types, ranges) before anything loads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spsbench.errors import EngineError


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
