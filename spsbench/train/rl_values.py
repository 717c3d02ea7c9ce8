"""What a recipe's `rl` section may hold: every value typed against its field of TRL's `GRPOConfig`, and the
settings whose bad values used to pass `--dry-run` and fail only after the model loaded (a learning rate of
nan, a completion length of 0, `max_steps: abc`, `save_steps: 0`) checked for range.

`check_rl` runs when a TrainConfig is built (`train.config`), so `--dry-run`, `--diff` and the run refuse the
same values with the same line. What only TRL itself knows (enum names such as `lr_scheduler_type`, its own
combination rules) is checked when the GRPOConfig is built (`train.args.grpo_args`), before any weight
loads, by the run and the plan alike (`train.preflight.prepare`).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import types
import typing
from typing import Any

from spsbench.errors import ConfigError
from spsbench.validate import number

# (low, low_open, high, integer) per key: the values TRL, transformers or torch accept and use as meant. A
# value outside is refused here instead of failing mid-run (or, worse, training with it).
RANGES: dict[str, tuple[float | None, bool, float | None, bool]] = {
    "learning_rate": (0, False, None, False),
    "max_completion_length": (1, False, None, True),
    "num_generations": (2, False, None, True),          # GRPO's advantage needs two completions per prompt
    "num_generations_eval": (2, False, None, True),
    "per_device_train_batch_size": (1, False, None, True),
    "gradient_accumulation_steps": (1, False, None, True),
    "steps_per_generation": (1, False, None, True),
    "generation_batch_size": (1, False, None, True),
    "num_iterations": (1, False, None, True),
    "num_train_epochs": (0, True, None, False),
    "save_steps": (0, True, None, False),
    "logging_steps": (0, True, None, False),
    "save_total_limit": (1, False, None, True),
    "temperature": (0, True, None, False),
    "top_p": (0, True, 1, False),
    "top_k": (0, False, None, True),
    "min_p": (0, False, 1, False),
    "repetition_penalty": (0, True, None, False),
    "beta": (0, False, None, False),
    "epsilon": (0, False, None, False),
    "epsilon_high": (0, False, None, False),
    "delta": (0, True, None, False),
    "weight_decay": (0, False, None, False),
    "warmup_steps": (0, False, None, False),
    "max_grad_norm": (0, False, None, False),
    "adam_beta1": (0, False, 1, False),
    "adam_beta2": (0, False, 1, False),
    "adam_epsilon": (0, True, None, False),
    "seed": (0, False, None, True),
    "vllm_gpu_memory_utilization": (0, True, 1, False),
    "vllm_max_model_length": (1, False, None, True),
    "ddp_timeout": (1, False, None, True),
    "top_entropy_quantile": (0, False, 1, False),
}

# String settings TRL 1.16 checks only where it uses them, mid-run (GRPOTrainer: "Unknown loss type: ...");
# tests/test_train_seams.py pins that the trainer handles each of these values and GRPOConfig's help names them.
CHOICES: dict[str, tuple[Any, ...]] = {
    "loss_type": ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo"),
    "importance_sampling_level": ("token", "sequence"),
    "scale_rewards": ("group", "batch", "none", True, False),
    "vllm_mode": ("server", "colocate"),
    "vllm_importance_sampling_mode": ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask"),
    "multi_objective_aggregation": ("sum_then_normalize", "normalize_then_sum"),
    "vllm_model_impl": ("transformers", "vllm"),
}


@functools.cache
def grpo_config_fields() -> dict[str, dataclasses.Field]:
    """Fields of TRL's GRPOConfig (valid keys of the `rl` section)."""
    from trl import GRPOConfig

    return {f.name: f for f in dataclasses.fields(GRPOConfig) if f.init}


@functools.cache
def grpo_config_types() -> dict[str, Any]:
    from trl import GRPOConfig

    return typing.get_type_hints(GRPOConfig)


def check_rl(rl: dict[str, Any]) -> dict[str, Any]:
    """`rl` with each value checked against its GRPOConfig type and range (an integral float where an int is
    meant, e.g. YAML's `1e3`, becomes that int); one ConfigError line naming `rl.<key>` otherwise."""
    types_ = grpo_config_types()
    out = {}
    for key, value in rl.items():
        if key in CHOICES:
            if not any(value == c and type(value) is type(c) for c in CHOICES[key]):
                raise ConfigError(f"rl.{key}: must be one of {', '.join(_show(c) for c in CHOICES[key])}, "
                                  f"got {type(value).__name__} {value!r:.60}")
            out[key] = value
            continue
        value = typed(f"rl.{key}", value, types_.get(key, Any))
        if key in RANGES and value is not None:
            low, low_open, high, integer = RANGES[key]
            number(f"rl.{key}", value, low=low, low_open=low_open, high=high, integer=integer)
        out[key] = value
    _check_steps(out)
    return out


def _check_steps(rl: dict[str, Any]) -> None:
    steps = rl.get("max_steps")
    if steps is not None and steps != -1 and steps < 1:
        raise ConfigError(f"rl.max_steps: must be an integer >= 1, or -1 to train rl.num_train_epochs, got {steps}")
    for key in ("save_steps", "logging_steps"):
        value = rl.get(key)
        if value is not None and value > 1 and value != int(value):
            raise ConfigError(f"rl.{key}: above 1 it must be a whole number of steps (below 1: a share of "
                              f"max_steps), got {value}")


def typed(name: str, value: Any, hint: Any) -> Any:
    """`value` if it is of type `hint` (TRL's annotation); else one ConfigError line naming `name`."""
    ok, converted = _match(value, hint)
    if not ok:
        raise ConfigError(f"{name}: must be {_describe(hint)}, got {type(value).__name__} {value!r:.60}")
    return converted


def _match(value: Any, hint: Any) -> tuple[bool, Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is typing.Any:
        return True, value
    if origin in (typing.Union, types.UnionType):
        for member in args:
            ok, converted = _match(value, member)
            if ok:
                return True, converted
        return False, value
    if hint is type(None):
        return value is None, value
    if origin is typing.Literal:
        return value in args, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        if isinstance(value, float) and math.isfinite(value) and value == int(value):
            return True, int(value)          # YAML 1.1's 1e3 (train.config turns it into a float)
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return ok, float(value) if ok else value
    if hint is str:
        return isinstance(value, str), value
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False, value
        inner = args[0] if args else Any
        parts = [_match(v, inner) for v in value]
        return all(ok for ok, _ in parts), [v for _, v in parts]
    if origin is dict or hint is dict:
        return isinstance(value, dict), value
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return isinstance(value, hint), value
    return True, value             # a library class (ParallelismConfig, ...): transformers checks it


def _show(choice: Any) -> str:
    return ("true" if choice else "false") if isinstance(choice, bool) else str(choice)


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        names = [_describe(a) for a in args if not (isinstance(a, type) and issubclass(a, enum.Enum))]
        return " or ".join(dict.fromkeys(names))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    return {bool: "true or false", int: "an integer", float: "a finite number", str: "a string",
            type(None): "null"}.get(hint, "a list" if origin in (list, tuple) or hint in (list, tuple)
                                     else "a mapping" if origin is dict or hint is dict else getattr(hint, "__name__", str(hint)))
