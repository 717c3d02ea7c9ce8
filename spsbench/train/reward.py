"""The RL reward: the evaluation grader (`spsbench.grading.reward`), wrapped as a TRL reward function.

One grader for evaluation and training: a completion earns 1.0 exactly when `spsbench eval` would
count it correct. A grader that raises stops training with one clear TrainingError (the CLI prints it
and exits non-zero; checkpoints already written stay).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spsbench import grading
from spsbench.errors import SpsbenchError, TrainingError

KINDS = grading.GRADERS          # every grader gives a reward: 1.0 exactly when it grades correct


def completion_text(completion: Any) -> str:
    """TRL passes chat completions as [{"role": "assistant", "content": ...}] and plain ones as str."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    raise TrainingError(f"reward: unexpected completion format {type(completion).__name__}")


def check_kind(kind: str, task: str) -> None:
    """Refuse a task whose grader cannot produce a reward, before any model is loaded."""
    if kind not in KINDS:
        raise TrainingError(f"task {task!r}: grader {kind!r} cannot give a reward (rewardable: {', '.join(KINDS)})")


def make_reward_fn(kind: str, task: str = "task") -> Callable[..., list[float]]:
    """A TRL reward function grading completions against the dataset's `answer` (and `choices`) column."""
    check_kind(kind, task)

    def grader_reward(prompts, completions, answer, choices=None, **_: Any) -> list[float]:
        texts = [completion_text(c) for c in completions]
        try:
            rewards = grading.reward(texts, list(answer), kind=kind, choices=choices)
        except SpsbenchError:
            raise
        except Exception as exc:  # noqa: BLE001 - any grader failure ends the run with one line
            raise TrainingError(f"reward function for task {task!r} failed: {type(exc).__name__}: {exc}") from exc
        rewards = [float(r) for r in rewards]
        if len(rewards) != len(texts):
            raise TrainingError(f"reward function for task {task!r} returned {len(rewards)} rewards "
                                f"for {len(texts)} completions")
        return rewards

    grader_reward.__name__ = f"{task}_{kind}"     # TRL logs rewards/<name>/mean
    return grader_reward
