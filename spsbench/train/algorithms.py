"""The algorithm table: every training algorithm `spsbench train` runs, by name, and what each one is.

This is the one place that says which algorithms exist and how they differ; the recipe loading
(`train.config`), the schedule (`train.plan`), the checks before weights load (`train.preflight`), the trainer
assembly (`train.run`), the `spsbench train --algo/--base` choices, `--list-keys` and the lab's arms all ask
it. An entry names its trainer as a lazy "module:object" string, so reading the table imports neither torch
nor TRL. docs/architecture.md ("How to add") says how to add one.

Two kinds of entry:
* an RL algorithm (grpo, dapo, gspo): a trainer class and a recipe of TRL settings; `layers_sps` when SPS
  may be layered on it (it is then a valid `--base`);
* a layer (sps): its trainer is a function from the base algorithm's class to the layered class, its own
  settings are a recipe section (`section`), and the run's RL settings come from its base's recipe.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT = "grpo"        # the algorithm of a run that names none (TrainConfig.algo's default)


@dataclass(frozen=True)
class Algorithm:
    """One row of the table (see the module docstring)."""

    name: str
    trainer: str                        # "module:object": the trainer class; for a layer, base class -> class
    recipe: str                         # its defaults: a file in recipes/ (an absolute path is taken as is)
    layers_sps: bool = False            # SPS may be layered on it: a valid `--base`
    layer: bool = False                 # layered over a base algorithm (`--base`), whose recipe goes first
    default_base: str | None = None     # a layer's base when none is given
    section: str | None = None          # its own recipe section (a TrainConfig field), read only by runs that
                                        # use the algorithm and passed to its trainer as the keyword of that name
    whole_groups: bool = False          # each rank must hold whole prompt groups (it selects within groups)
    # the settings that make a run this algorithm whatever its label says (`check_settings_algorithm`):
    # dotted recipe keys -> value; an algorithm with none is what a run matching no signature trains
    signature: Mapping[str, Any] = field(default_factory=dict)
    check: str | None = None            # "module:function(config)": refuses what it cannot run, before weights load


ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in (
    # GRPO (Shao et al., 2024): TRL's GRPOTrainer with the paper's settings
    Algorithm("grpo", "spsbench.train.trainer:SpsbenchGRPOTrainer", "grpo.yaml", layers_sps=True),
    # DAPO (Yu et al., 2025): clip-higher, token-level loss, dynamic sampling (not in TRL)
    Algorithm("dapo", "spsbench.train.trainer:DynamicSamplingTrainer", "dapo.yaml", layers_sps=True,
              signature={"dynamic_sampling.enabled": True}),
    # GSPO (Zheng et al., 2025): sequence-level importance ratio, a configuration of TRL's trainer
    Algorithm("gspo", "spsbench.train.trainer:SpsbenchGRPOTrainer", "gspo.yaml", layers_sps=True,
              signature={"rl.importance_sampling_level": "sequence"}),
    # SPS (paper Algorithm 1): RL phases of the base algorithm, IRL phases on the rollouts L2TE picks
    Algorithm("sps", "spsbench.train.sps.trainer:with_sps", "sps.yaml", layer=True, default_base="grpo",
              section="sps", whole_groups=True, check="spsbench.train.args:refuse_sharding_for_sps"),
)}


def names() -> tuple[str, ...]:
    """Every algorithm, in table order (the `--algo` choices)."""
    return tuple(ALGORITHMS)


def bases() -> tuple[str, ...]:
    """The algorithms SPS may be layered on (the `--base` choices)."""
    return tuple(name for name, a in ALGORITHMS.items() if a.layers_sps)


def layers() -> tuple[str, ...]:
    """The algorithms layered over a base (the only ones a `base` is for)."""
    return tuple(name for name, a in ALGORITHMS.items() if a.layer)


def known(name: Any) -> bool:
    """Whether `name` (a value read from a recipe, of any type) is an algorithm of the table."""
    return isinstance(name, str) and name in ALGORITHMS


def load_object(spec: str) -> Any:
    """The object a "module:object" string names (imported now: the trainer modules import torch and TRL)."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def trainer_class(algo: str, base: str | None = None) -> type:
    """The trainer class of `algo` (a layer composed over its base's class)."""
    algorithm = ALGORITHMS[algo]
    if not algorithm.layer:
        return load_object(algorithm.trainer)
    return load_object(algorithm.trainer)(trainer_class(base or algorithm.default_base or DEFAULT))
