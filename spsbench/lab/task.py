"""The lab task `lab-sums`: write a number as a sum of 2 or 3 digits, e.g. `15=?+?+?` -> `\\boxed{7+5+3}`.

Several distinct correct trajectories per problem (every digit tuple with the right sum: up to 75 of
1000 for 3 digits), and the project's math grader decides correctness (math-verify evaluates the boxed
sum against the gold number), so nothing lab-specific grades anything. The problems are data
(`tasks/lab/sums.jsonl`, registered by `tasks/lab-sums.yaml`); this module generates that file and
enumerates the closed set of well-formed completions for exact measurements.

Tokens (the lab tokenizer, `spsbench.lab.model`): characters, plus `\\boxed{` as one token, so a
well-formed completion is `\\boxed{` d (`+` d){terms-1} `}` <eos>: 6 or 8 tokens.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

from spsbench import paths

TASK = "lab-sums"
DATA_FILE = Path("lab") / "sums.jsonl"       # relative to the task registry folder
TERMS = (2, 3)
BOX = "\\boxed{"


@dataclass(frozen=True)
class SumProblem:
    id: str
    target: int
    terms: int

    @property
    def text(self) -> str:
        return f"{self.target}=" + "+".join("?" * self.terms)


def problems() -> list[SumProblem]:
    """Every target reachable with `terms` digits 0-9, for each number of terms: 19 + 28 = 47 problems."""
    return [SumProblem(f"{t}d{target:02d}", target, t) for t in TERMS for target in range(9 * t + 1)]


def rows() -> list[dict[str, str]]:
    return [{"id": p.id, "problem": p.text, "answer": str(p.target)} for p in problems()]


def write_data(path: Path | None = None) -> Path:
    """(Re)write the task's data file; the committed copy must equal this output (a test checks)."""
    path = path or paths.tasks_dir() / DATA_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows()), encoding="utf-8")
    return path


def digit_tuples(terms: int) -> list[tuple[int, ...]]:
    return list(itertools.product(range(10), repeat=terms))


def completion_text(digits: tuple[int, ...]) -> str:
    return BOX + "+".join(str(d) for d in digits) + "}"


def correct_decompositions(target: int, terms: int) -> list[tuple[int, ...]]:
    return [d for d in digit_tuples(terms) if sum(d) == target]
