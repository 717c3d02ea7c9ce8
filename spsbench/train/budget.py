"""The rollout token budget: the longest training prompt plus `rl.max_completion_length` must fit the
policy's context (vLLM colocate: `rl.vllm_max_model_length` when set), checked before the model loads.

A completion length that does not fit is clamped with one warning line (the recipe's value is replaced
by the effective one, which the run info records); a prompt that alone fills the context is one
BudgetError line. `rollout_budget` computes without changing anything (for `spsbench train --dry-run`),
`apply_rollout_budget` clamps the config.
"""

from __future__ import annotations

from typing import Any

from spsbench.engines.budget import Budget, completion_budget, context_length, load_tokenizer, longest_prompt
from spsbench.models import resolve_model
from spsbench.quiet import warn
from spsbench.tasks import load_task
from spsbench.train.config import TrainConfig, grpo_config_fields

WHAT = "rl.max_completion_length"


def max_completion_length(config: TrainConfig) -> int:
    """The recipe's rollout length, or TRL's GRPOConfig default."""
    value = (config.rl or {}).get("max_completion_length")
    return int(value if value is not None else grpo_config_fields()["max_completion_length"].default)


def rollout_budget(config: TrainConfig, tokenizer: Any = None, model_path: str | None = None) -> Budget:
    """Requested vs effective rollout length for this run (tokenizer: the policy's, loaded when None; model_path:
    the resolved policy, resolved here when None)."""
    path = model_path or resolve_model(config.model)
    rl = config.rl or {}
    vllm_len = rl.get("vllm_max_model_length") if rl.get("use_vllm") else None
    context = context_length(path, vllm_len)
    requested = max_completion_length(config)
    if context is None:
        return completion_budget(requested, None, None, WHAT)
    task = load_task(config.task, data=config.data, limit=config.limit)
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(path)
    # The chat template when the tokenizer has one, as train/data.py builds the prompts.
    longest = longest_prompt(tokenizer, [p.prompt for p in task.problems], "auto")
    return completion_budget(requested, context, longest, f"{config.task}: {WHAT}")


def apply_rollout_budget(config: TrainConfig, tokenizer: Any = None) -> Budget:
    """Clamp `rl.max_completion_length` to the context (one warning line); returns the budget."""
    budget = rollout_budget(config, tokenizer)
    if budget.clamped:
        warn(budget.warning(f"{config.task}: {WHAT}"))
        config.rl = {**(config.rl or {}), "max_completion_length": budget.effective}
    return budget
