"""An evaluation's effective completion budget, resolved per task before the engine loads.

The engine says what its model's context is and how long the prompts are (`EngineBase.prompt_counter`:
the model's config and tokenizer for the engines that run it here, the server's card and /tokenize for a
served one); when either is unknown nothing is clamped. The longest prompt of the whole task counts, not
of a `--limit` subset, so the effective budget (part of the evaluation's identity) is the same for every
subset and a longer run extends a shorter one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from spsbench import quiet
from spsbench.config import SamplingConfig
from spsbench.engines import engine_class
from spsbench.engines.budget import completion_budget
from spsbench.tasks import Task


class BudgetResolver:
    """For one evaluate() call: the context and a token counter, each looked up at most once."""

    def __init__(self, engine: str, model_path: str, options: dict[str, Any]) -> None:
        self.counter = engine_class(engine).prompt_counter(model_path, options)

    def sampling_for(self, task: Task, sampling: SamplingConfig, warn: bool = True) -> SamplingConfig:
        """`sampling` with max_tokens clamped to what fits after the task's longest prompt (one warning)."""
        if self.counter.context is None:
            return sampling
        longest = self.counter.longest([p.prompt for p in task.problems], sampling.chat_template)
        if longest is None:
            return sampling
        budget = completion_budget(sampling.max_tokens, self.counter.context, longest,
                                   f"{task.spec.name}: max_tokens")
        if not budget.clamped:
            return sampling
        if warn:
            quiet.warn(budget.warning(f"{task.spec.name}: max_tokens"))
        return dataclasses.replace(sampling, max_tokens=budget.effective)

    def close(self) -> None:
        self.counter.close()


__all__ = ["BudgetResolver"]
