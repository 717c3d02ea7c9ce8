"""How a name a user types picks stored models (`--model`, `--compare A B`, `--solved-diff A B`).

Tiers, the first that matches anything wins: (1) an exact name: the model's path as stored or as the
pages show it, its short name, its run name or `run@step`; (2) a path tail on a component boundary
(`Qwen2.5-Math-1.5B` for `Qwen/Qwen2.5-Math-1.5B`, `served` for `http://host/v1#served`); (3) only
where the caller allows it (a filter, whose help says "contains"), any part of the path or run name.
So an exact path that is a prefix of another still selects only itself, and a short name never picks
a model whose path merely contains it when another model is named exactly that. A caller that needs
one model lists the candidates when a name selects several (`ambiguous`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from spsbench.errors import ConfigError


@dataclass(frozen=True)
class Candidate:
    key: int                          # the id of what the caller selects (a model, an evaluation)
    label: str                        # how it is listed in a message
    names: frozenset[str]             # exact names
    path: str                         # where tails and parts are looked for

    @classmethod
    def of(cls, key: int, label: str, path: str, *names: str | None) -> Candidate:
        return cls(key, label, frozenset(n for n in (path, label, *names) if n), path)


def tier_of(name: str, c: Candidate, loose: bool) -> int | None:
    """1 exact, 2 path tail, 3 a part (only when `loose`), None no match."""
    if name in c.names:
        return 1
    if c.path.endswith(("/" + name, "#" + name)):
        return 2
    if loose and any(name in n for n in (c.path, *c.names)):
        return 3
    return None


def matches(name: str, candidates: Iterable[Candidate], loose: bool = False) -> list[Candidate]:
    """The candidates of the best tier `name` reaches (empty when none)."""
    tiers: dict[int, list[Candidate]] = {}
    for c in candidates:
        t = tier_of(name, c, loose)
        if t is not None:
            tiers.setdefault(t, []).append(c)
    return tiers[min(tiers)] if tiers else []


def listing(labels: Iterable[str], limit: int = 8) -> str:
    items = sorted(set(labels))
    return ", ".join(items[:limit]) + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def ambiguous(flag: str, name: str, found: Sequence[Candidate]) -> ConfigError:
    return ConfigError(f"{flag}: {name!r} names {len(found)} models: {listing(c.label for c in found)}; "
                       "give one of these names")
