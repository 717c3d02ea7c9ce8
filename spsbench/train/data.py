"""Training prompts from the task registry, as the `datasets.Dataset` TRL's GRPOTrainer expects.

Columns: `prompt` (chat messages when the tokenizer has a chat template, else the raw text), `answer`
(the gold the grader compares against), `choices` (multiple-choice tasks only) and `problem_id`.
The prompt text is exactly what `spsbench eval` sends, so training and evaluation see the same task.
"""

from __future__ import annotations

from typing import Any

from spsbench.tasks import load_task
from spsbench.train.reward import check_kind


def build_dataset(task: str, tokenizer: Any, data: str | None = None, limit: int | None = None):
    """(dataset, grader kind) for a registered task name or task YAML path."""
    from datasets import Dataset

    loaded = load_task(task, data=data, limit=limit)
    check_kind(loaded.spec.grader, loaded.spec.name)
    chat = getattr(tokenizer, "chat_template", None) is not None
    rows: dict[str, list[Any]] = {"prompt": [], "answer": [], "problem_id": []}
    has_choices = any(p.choices for p in loaded.problems)
    if has_choices:
        rows["choices"] = []
    for problem in loaded.problems:
        rows["prompt"].append([{"role": "user", "content": problem.prompt}] if chat else problem.prompt)
        rows["answer"].append(problem.answer)
        rows["problem_id"].append(problem.id)
        if has_choices:
            rows["choices"].append(list(problem.choices or ()))
    return Dataset.from_dict(rows), loaded.spec.grader
