"""Training configuration: the dataclasses a recipe YAML is parsed into, and recipe loading/merging.

A recipe has top-level run keys (algo, model, task, ...), an `rl` mapping passed verbatim to TRL's
`GRPOConfig` (so every GRPOConfig field is a valid key and nothing else is; `rl_values` types each value), and
the sections `dynamic_sampling` (below), `sps` (`sps.config`, beside its trainer) and `eval` (`eval_config`).
Layering, later wins:

  recipes/<base>.yaml (sps only) -> recipes/<algo>.yaml or --config FILE -> recipes/cpu-demo.yaml
  (embedded default model only) -> --set key=value flags.

Which algorithms exist, their recipe files, what layers on what and which settings identify each are the
algorithm table's (`train.algorithms`); this module asks it and compares no algorithm names.

A --config file replaces recipes/<algo>.yaml as a whole: an empty one is an error, and the settings of
recipes/<algo>.yaml a partial one leaves at another default are a warning (`TrainConfig.notes`). YAML is read
with a key given twice refused (`yaml_strict`). Every mistake is one ConfigError line naming the file (or
flag) and the key.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spsbench import paths
from spsbench.errors import ConfigError
from spsbench.train import algorithms, yaml_strict
from spsbench.train.algorithms import ALGORITHMS, DEFAULT, Algorithm
from spsbench.train.eval_config import EVAL_GPU_MEMORY_UTILIZATION, EVAL_MODES, EvalConfig  # noqa: F401 - re-exported
from spsbench.train.eval_config import field_with_help as _f
from spsbench.train.rl_values import check_rl, grpo_config_fields
from spsbench.train.sps.config import SPSConfig  # noqa: F401 - re-exported (the section lives beside its trainer)
from spsbench.validate import check_fields, read_text, text

DEMO_RECIPE = "cpu-demo.yaml"
# YAML 1.1 (PyYAML) reads `1e-3` as a string; recipes mean a number.
FLOAT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)$")


@dataclass
class DynamicSamplingConfig:
    """DAPO dynamic sampling: drop prompt groups whose rewards are all equal and refill from new prompts."""

    enabled: bool = _f(False, "Drop zero-variance groups and refill the generation batch with new prompts.")
    max_resample_times: int = _f(3, "Extra generation rounds per batch before giving up and keeping "
                                    "degenerate groups (paper: 3).")
    soft_overlong_cache: int | None = _f(None, "DAPO soft overlong punishment: length penalty ramps over the "
                                               "last N tokens of max_completion_length (paper: 2048); only with enabled: true. null = off.")

    def __post_init__(self) -> None:
        check_fields(self, "dynamic_sampling.")
        if self.max_resample_times < 0:
            raise ConfigError(f"dynamic_sampling.max_resample_times: must be >= 0, got {self.max_resample_times}")
        if self.soft_overlong_cache is not None and self.soft_overlong_cache < 1:
            raise ConfigError(f"dynamic_sampling.soft_overlong_cache: must be >= 1, got {self.soft_overlong_cache}")


@dataclass
class TrainConfig:
    """One training run. `rl` holds TRL GRPOConfig keyword arguments (see `spsbench train --list-keys`)."""

    algo: str = _f(DEFAULT, "Algorithm: {algorithms}.")     # {...}: filled from the table (describe_keys)
    base: str | None = _f(None, "sps only: the RL algorithm SPS is layered on ({bases}).")
    model: str | None = _f(None, "Policy: HF model folder or hub id. null = the embedded SmolLM2-135M.")
    task: str = _f("arith", "Training prompts: task registry name or task YAML path.")
    data: str | None = _f(None, "Local JSONL/Parquet with the task's rows (offline use).")
    limit: int | None = _f(None, "Use only the first N problems of the task.")
    world_size: int | None = _f(None, "Ranks the run is planned for (`--dry-run --set world_size=32` plans a "
                                      "4 x 8 GPU job from a laptop). null = the launcher's WORLD_SIZE, else 1; "
                                      "when set, training under another world size is an error.")
    run_name: str | None = _f(None, "Run name (default: <algo>[-<base>]-<model name>).")
    output_dir: str | None = _f(None, "Run folder (default: runs/<run_name>); checkpoints go in it.")
    rl: dict[str, Any] = _f({}, "TRL GRPOConfig keyword arguments (loss_type, beta, epsilon, ...).")
    optimizer_steps_per_generation: int | None = _f(
        None, "Optimizer steps one generation batch feeds (ms-swift's steps_per_generation; GSPO paper: 4). "
              "Sets TRL's rl.steps_per_generation, which counts micro-steps, to this x "
              "rl.gradient_accumulation_steps. null = TRL's rule (one generation per optimizer step).")
    dynamic_sampling: DynamicSamplingConfig = field(default_factory=DynamicSamplingConfig,
                                                    metadata={"help": "DAPO dynamic sampling."})
    sps: SPSConfig = field(default_factory=SPSConfig, metadata={"help": "SPS layer (algo: sps)."})
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={"help": "Checkpoint evaluation."})
    recipe: str | None = None        # the recipe file(s) it came from (provenance, not a YAML key)
    sps_defaults: tuple[str, ...] = ()   # sps.* keys no layer set (shown by the plan, not a YAML key)
    notes: tuple[str, ...] = ()          # warnings about the settings (the plan lists them, the run prints them)

    def __post_init__(self) -> None:
        check_fields(self, "")
        self.rl = check_rl(self.rl)
        for name in ("task", "model", "data", "run_name", "output_dir"):
            if getattr(self, name) is not None:
                text(name, getattr(self, name))
        if not algorithms.known(self.algo):
            raise ConfigError(f"algo: must be one of {', '.join(algorithms.names())}, got {self.algo!r}")
        if self.algorithm.layer:
            self.base = self.base or self.algorithm.default_base
            if self.base not in algorithms.bases():
                raise ConfigError(f"base: must be one of {', '.join(algorithms.bases())}, got {self.base!r}")
        elif self.base is not None:
            raise ConfigError(f"base: only valid with algo: {' | '.join(algorithms.layers())} (algo is {self.algo!r})")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit: must be >= 1, got {self.limit}")
        if self.world_size is not None and (isinstance(self.world_size, bool) or not isinstance(self.world_size, int)
                                            or self.world_size < 1):
            raise ConfigError(f"world_size: must be an integer >= 1, got {self.world_size!r}")
        self._check_generation_keys()

    def _check_generation_keys(self) -> None:
        steps = self.optimizer_steps_per_generation
        if steps is None:
            return
        if not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"optimizer_steps_per_generation: must be an integer >= 1, got {steps!r}")
        clash = [k for k in ("steps_per_generation", "generation_batch_size") if (self.rl or {}).get(k) is not None]
        if clash:
            raise ConfigError(f"optimizer_steps_per_generation and rl.{clash[0]} both set: keep one (the recipe "
                              f"sets optimizer_steps_per_generation; --set optimizer_steps_per_generation=N "
                              "changes it, --set optimizer_steps_per_generation=null drops it)")

    @property
    def label(self) -> str:
        """'sps+dapo', 'grpo', ... as shown in the store and leaderboards (a layer over its default base: its name)."""
        layered = self.algorithm.layer and self.base != self.algorithm.default_base
        return f"{self.algo}+{self.base}" if layered else self.algo

    @property
    def algorithm(self) -> Algorithm:
        """The run's entry in the algorithm table."""
        return ALGORITHMS[self.algo]

    @property
    def rl_algorithm(self) -> Algorithm:
        """The RL algorithm the run's settings implement: the base under a layer (sps over dapo: dapo)."""
        return ALGORITHMS[self.base] if self.algorithm.layer and self.base else self.algorithm

    @property
    def algorithms(self) -> tuple[Algorithm, ...]:
        """Every algorithm the run is made of: a layer and its base, or the one."""
        return (self.algorithm, self.rl_algorithm) if self.algorithm.layer else (self.algorithm,)

    def uses(self, section: str) -> bool:
        """Whether the run's algorithms own the recipe section `section` (sps): its settings apply to this run."""
        return any(a.section == section for a in self.algorithms)

    @property
    def whole_groups(self) -> bool:
        """Each rank must hold whole prompt groups: an algorithm selects within groups (SPS's L2TE), or dynamic
        sampling drops whole groups."""
        return any(a.whole_groups for a in self.algorithms) or self.dynamic_sampling.enabled


SECTIONS = {"dynamic_sampling": DynamicSamplingConfig, "sps": SPSConfig, "eval": EvalConfig}
NOT_KEYS = ("recipe", "sps_defaults", "notes")      # TrainConfig fields no recipe sets


# ----------------------------------------------------------------------------------------------------
# Loading and merging


def read_yaml(path: Path) -> dict[str, Any]:
    """A recipe file as a mapping; one-line ConfigError on anything else."""
    if not path.exists():
        raise ConfigError(f"recipe not found: {path}")
    content = read_text(path, "recipe")          # a folder, unreadable, not UTF-8: one line
    try:
        raw = yaml_strict.load(content)
    except yaml_strict.DuplicateKeyError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if raw is None:
        raise ConfigError(f"{path}: the recipe is empty; a --config recipe replaces the algorithm's recipe "
                          "(recipes/<algo>.yaml) as a whole, so start from a copy of it, or drop --config")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys (algo, rl, sps, ...)")
    _check_keys(raw, str(path))
    return _numbers(raw)


def _numbers(value: Any) -> Any:
    """Exponent-only floats (`1e-3`) that YAML 1.1 leaves as strings become floats."""
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, str) and FLOAT_RE.match(value):
        return float(value)
    return value


def parse_override(item: str) -> dict[str, Any]:
    """`sps.irl_steps=2` -> {"sps": {"irl_steps": 2}}; the value is parsed as YAML (numbers, lists, null)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set: expected KEY=VALUE (e.g. sps.irl_steps=2), got {item!r}")
    if not text.strip():
        raise ConfigError(f"--set {key.strip()}: needs a value, got an empty string (write null for none)")
    try:
        value = yaml_strict.load(text)
    except yaml_strict.DuplicateKeyError as exc:
        raise ConfigError(f"--set {key.strip()}: {exc}") from None
    except yaml.YAMLError:
        value = text
    out: dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    _check_keys(out, f"--set {item}")
    return _numbers(out)


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of two recipe mappings (sections merge key by key)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(algo: str | None = None, base: str | None = None, config: str | Path | None = None,
                overrides: list[str] | tuple[str, ...] = (), model: str | None = None) -> TrainConfig:
    """Build a TrainConfig from the built-in recipes, a user recipe file and --set overrides."""
    user = read_yaml(Path(config)) if config else {}
    extra = [parse_override(item) for item in overrides]
    algo, base = _flag_or_set("algo", algo, extra), _flag_or_set("base", base, extra)
    if config:
        check_recipe_label(str(config), user, algo, base)
    algo = algo or user.get("algo") or DEFAULT
    if not algorithms.known(algo):
        raise ConfigError(f"--algo: must be one of {', '.join(algorithms.names())}, got {algo!r}")
    layered = ALGORITHMS[algo].layer
    if not layered and (base or user.get("base")):
        where = f"{config}: base: {user['base']}" if user.get("base") and not base else f"--base {base}"
        layer = algorithms.layers()[0]
        raise ConfigError(f"{where}: a base algorithm is only for --algo {layer} ({layer.upper()} is layered on it); "
                          f"this run is {algo}: drop it, or train --algo {layer} --base {base or user.get('base')}")
    layers: list[tuple[str, dict[str, Any]]] = []
    own = (str(config), user) if config else _builtin(algo)
    if layered:
        base = base or own[1].get("base") or ALGORITHMS[algo].default_base
        if base not in algorithms.bases():
            raise ConfigError(f"--base: must be one of {', '.join(algorithms.bases())}, got {base!r}")
        layers.append(_builtin(base))
    layers.append(own)
    wanted_model = model or next((o["model"] for o in reversed(extra) if "model" in o), None) or own[1].get("model")
    if wanted_model is None and not config:
        layers.append(_builtin_file(DEMO_RECIPE))     # the embedded default must finish in minutes on CPU
    raw: dict[str, Any] = {}
    for _, layer in layers:
        raw = merge(raw, layer)
    for item in extra:
        raw = merge(raw, item)
    raw.update(algo=algo, base=base if layered else None)
    if model:
        raw["model"] = model
    notes = recipe_gaps(str(config), [user, *extra], algo, layers[0][1] if layered else {}) if config else ()
    config = from_mapping(raw, recipe=", ".join(name for name, _ in layers), notes=notes)
    check_settings_algorithm(config)
    return config


def _flag_or_set(key: str, flag: str | None, extra: list[dict[str, Any]]) -> str | None:
    """--algo / --base, or the same key given with --set (the last one); both, disagreeing, is an error."""
    given = next((o[key] for o in reversed(extra) if key in o), None)
    if flag and given is not None and given != flag:
        raise ConfigError(f"--{key} {flag} and --set {key}={given} disagree; give one")
    value = flag or given
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"--set {key}: must be a string, got {type(value).__name__} {value!r:.60}")
    return value


def recipe_gaps(path: str, given: list[dict[str, Any]], algo: str, below: dict[str, Any]) -> tuple[str, ...]:
    """A --config recipe replaces recipes/<algo>.yaml as a whole: the keys that file sets and this run leaves
    at another default (TRL's for `rl`, spsbench's for the sections), as one warning. `below`: the base
    algorithm's recipe under sps, which still applies."""
    name, builtin = _builtin(algo)
    covered = set().union(*(_flat(layer) for layer in given), _flat(below))
    gaps = []
    for key, value in _flat(builtin).items():
        if key in covered or key in ("algo", "base"):
            continue
        default = _key_default(key)
        if default != value:
            gaps.append(f"{key} = {default!r} ({Path(name).name}: {value!r})")
    if not gaps:
        return ()
    return (f"{path} replaces {Path(name).name} as a whole and leaves {len(gaps)} of its setting(s) at the "
            f"defaults: {', '.join(gaps)}; set them in the recipe to keep {Path(name).name}'s values",)


def _flat(raw: dict[str, Any]) -> dict[str, Any]:
    """A recipe mapping as `section.key` -> value (top-level keys as they are)."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if (key in SECTIONS or key == "rl") and isinstance(value, dict):
            out |= {f"{key}.{sub}": v for sub, v in value.items()}
        else:
            out[key] = value
    return out


def _key_default(key: str) -> Any:
    """The value a key takes when no layer sets it: TRL's GRPOConfig default for `rl.*`, else spsbench's."""
    section, _, sub = key.rpartition(".")
    if section == "rl":
        return _default(grpo_config_fields()[sub])
    fields = {f.name: f for f in dataclasses.fields(SECTIONS[section] if section else TrainConfig)}
    return _default(fields[sub])


def check_recipe_label(path: str, user: dict[str, Any], algo: str | None, base: str | None) -> None:
    """A recipe file says what it is for (`algo`, and `base` under sps): --algo/--base naming something else
    is an error, not a silent relabelling (`--algo dapo --config grpo-recipe.yaml` trained GRPO as "dapo")."""
    for flag, wanted, key in (("--algo", algo, "algo"), ("--base", base, "base")):
        said = user.get(key)
        if wanted and said and wanted != said:
            what = _recipe_for(user, said)
            raise ConfigError(f"{path} is a recipe for {what} ({key}: {said}) but {flag} is {wanted}: use a {wanted} "
                              f"recipe (recipes/gpu/ has one per algorithm) or drop {flag}")


def _recipe_for(user: dict[str, Any], said: Any) -> Any:
    """What a recipe file says it is for: 'sps over dapo', 'grpo', ..."""
    algo = user.get("algo")
    if algorithms.known(algo) and ALGORITHMS[algo].layer:
        return f"{algo} over {user.get('base', ALGORITHMS[algo].default_base)}"
    return user.get("algo", said)


def settings_algorithm(config: TrainConfig) -> str:
    """The RL algorithm a config's settings implement: the one whose `signature` they match (DAPO = dynamic
    sampling, GSPO = sequence-level importance sampling), else the default, GRPO (the loss type does not
    decide: TRL's default loss for GRPO is "dapo")."""
    matched = [a for a in _signed() if all(_setting(config, k) == v for k, v in a.signature.items())]
    if len(matched) > 1:
        said = " and ".join(f"{', '.join(k if v is True else f'{k}: {v}' for k, v in a.signature.items())} "
                            f"({a.name.upper()})" for a in matched)
        raise ConfigError(f"{config.recipe}: {said} together are neither algorithm; keep one")
    return matched[0].name if matched else DEFAULT


def check_settings_algorithm(config: TrainConfig) -> None:
    """The label (algo, or base under a layer) must match what the settings train: an algorithm with a signature
    needs its settings, one without needs settings matching no signature."""
    implied, wanted = ALGORITHMS[settings_algorithm(config)], config.rl_algorithm
    if implied.name == wanted.name or not (implied.signature or wanted.signature):
        return
    why = _said(implied) if implied.signature else f"neither {' nor '.join(_said(a) for a in _signed())}"
    flag = f"--base {implied.name}" if config.algorithm.layer else f"--algo {implied.name}"
    raise ConfigError(f"{config.recipe}: labelled {config.label} but its settings train {implied.name} ({why}): "
                      f"run it as {flag}, or change the settings")


def _signed() -> list[Algorithm]:
    return [a for a in ALGORITHMS.values() if a.signature]


def _said(algorithm: Algorithm) -> str:
    """An algorithm's signature in words: 'dynamic_sampling.enabled is true'."""
    return " and ".join(f"{k} is {str(v).lower() if isinstance(v, bool) else v}" for k, v in algorithm.signature.items())


def _setting(config: TrainConfig, key: str) -> Any:
    """A dotted recipe key's value in `config` (`rl.*` at TRL's default when the recipe leaves it out)."""
    section, _, sub = key.rpartition(".")
    if section == "rl":
        return config.rl[sub] if sub in config.rl else _key_default(key)
    return getattr(getattr(config, section) if section else config, sub)


def from_mapping(raw: dict[str, Any], recipe: str | None = None, notes: tuple[str, ...] = ()) -> TrainConfig:
    """TrainConfig from an already merged mapping."""
    _check_keys(raw, recipe or "config")
    values = dict(raw)
    try:
        for name, cls in SECTIONS.items():
            values[name] = cls(**(values.get(name) or {}))
        given = set(raw.get("sps") or {})
        unset = tuple(f.name for f in dataclasses.fields(SPSConfig) if f.name not in given)
        return TrainConfig(recipe=recipe, sps_defaults=unset, notes=notes, **values)
    except TypeError as exc:  # wrong type reaching a comparison in __post_init__
        raise ConfigError(f"{recipe}: {exc}") from None


def _builtin(algo: str) -> tuple[str, dict[str, Any]]:
    """The algorithm's own recipe (its `recipe` in the table)."""
    return _builtin_file(ALGORITHMS[algo].recipe)


def _builtin_file(filename: str) -> tuple[str, dict[str, Any]]:
    path = paths.recipes_dir() / filename
    return str(path), read_yaml(path)


def _check_keys(raw: dict[str, Any], where: str) -> None:
    """Unknown keys anywhere in a recipe mapping -> one ConfigError naming `where` and the key."""
    top = {f.name for f in dataclasses.fields(TrainConfig)} - set(NOT_KEYS)
    for key, value in raw.items():
        if key not in top:
            raise ConfigError(f"{where}: unknown key {key!r} (valid: {', '.join(sorted(top))})")
        if key in SECTIONS or key == "rl":
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {key}: expected a mapping, got {type(value).__name__}")
            valid = grpo_config_fields() if key == "rl" else {f.name for f in dataclasses.fields(SECTIONS[key])}
            for sub in value:
                if sub not in valid:
                    hint = "a TRL GRPOConfig field" if key == "rl" else ", ".join(sorted(valid))
                    raise ConfigError(f"{where}: unknown key {key}.{sub} (valid: {hint})")


def describe_keys() -> list[tuple[str, str, str]]:
    """(key, default, help) for every spsbench-owned recipe key, for docs and `--list-keys`."""
    rows = []
    for f in dataclasses.fields(TrainConfig):
        if f.name in NOT_KEYS:
            continue
        if f.name in SECTIONS:
            for sub in dataclasses.fields(SECTIONS[f.name]):
                rows.append((f"{f.name}.{sub.name}", repr(_default(sub)), sub.metadata["help"]))
        else:
            rows.append((f.name, repr(_default(f)), _help(f)))
    return rows


def _help(f: dataclasses.Field) -> str:
    """A top-level key's help; `algo` and `base` list the algorithm table as it is now."""
    text = f.metadata["help"]
    if f.name not in ("algo", "base"):
        return text
    return text.format(algorithms=" | ".join(algorithms.names()), bases=" | ".join(algorithms.bases()))


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    value = f.default_factory()  # type: ignore[misc]
    return "{...}" if dataclasses.is_dataclass(value) else value
