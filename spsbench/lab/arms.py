"""The lab's arms by name: `recipes/lab/arms/<name>.yaml`, each an algorithm, the recipe keys it changes
and (mechanism controls) which advantages it keeps.

An arm file has exactly these keys:

    about: one line for the page
    algo: an algorithm of spsbench.train.algorithms (grpo, sps, dapo, gspo; SPS is layered over GRPO)
    advantages: all | positive | negative   (optional, default all; see spsbench.lab.trainer)
    recipe: {rl: {...}, sps: {...}, ...}    (optional: recipe keys, applied like `spsbench train --set`)

A run's TrainConfig layers, later wins: recipes/<algo>.yaml -> recipes/lab/dynamics.yaml -> the arm's
`recipe` -> `--set` / `--sweep` items -> the run's seed, name and folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

from spsbench import paths
from spsbench.errors import ConfigError
from spsbench.train import algorithms
from spsbench.validate import read_text

ARMS_DIR = "lab/arms"
ADVANTAGES = ("all", "positive", "negative")
SECTIONS = ("rl", "sps", "eval", "dynamic_sampling")


@dataclass
class Arm:
    """One arm of the lab (`recipes/lab/arms/<name>.yaml`)."""

    name: str
    algo: str
    about: str = ""
    advantages: str = "all"
    recipe: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not algorithms.known(self.algo):
            raise ConfigError(f"lab arm {self.name}: algo must be one of {', '.join(algorithms.names())}, "
                              f"got {self.algo!r}")
        if self.advantages not in ADVANTAGES:
            raise ConfigError(f"lab arm {self.name}: advantages must be one of {', '.join(ADVANTAGES)}, "
                              f"got {self.advantages!r}")
        if self.advantages != "all" and algorithms.ALGORITHMS[self.algo].layer:
            raise ConfigError(f"lab arm {self.name}: an advantage mask is a GRPO control, not an "
                              f"{self.algo.upper()} arm")
        if not isinstance(self.recipe, dict):
            raise ConfigError(f"lab arm {self.name}: recipe must be a mapping of recipe keys")

    def overrides(self) -> list[str]:
        """The arm's recipe keys as `--set` items."""
        return flatten(self.recipe)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def available() -> list[str]:
    """Every arm name under recipes/lab/arms/, sorted."""
    return sorted(p.stem for p in (paths.recipes_dir() / ARMS_DIR).glob("*.yaml"))


def load_arm(name: str) -> Arm:
    """The arm `name`; one ConfigError line for an unknown name or a malformed file."""
    path = paths.recipes_dir() / ARMS_DIR / f"{name}.yaml"
    if not name or "/" in name or not path.is_file():
        raise ConfigError(f"lab: unknown arm {name!r} (arms: {', '.join(available())}; recipes/{ARMS_DIR}/)")
    try:
        raw = yaml.safe_load(read_text(path, "lab arm")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping (about, algo, advantages, recipe)")
    unknown = sorted(set(raw) - {"about", "algo", "advantages", "recipe"})
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} (valid: about, algo, advantages, recipe)")
    return Arm(name=name, **{k: v for k, v in raw.items() if v is not None})


def load_arms(names: list[str]) -> list[Arm]:
    if len(set(names)) != len(names):
        raise ConfigError(f"lab: an arm is named twice in {','.join(names)}")
    return [load_arm(n) for n in names]


def flatten(mapping: dict[str, Any], prefix: str = "") -> list[str]:
    """A recipe mapping as `--set` items (sections recursed, values JSON so YAML reads them back)."""
    out = []
    for key, value in mapping.items():
        if isinstance(value, dict) and not prefix and key in SECTIONS:
            out += flatten(value, f"{key}.")
        else:
            out.append(f"{prefix}{key}={json.dumps(value)}")
    return out
