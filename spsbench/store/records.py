"""The records that cross into the store, owned here so every layer above passes them whole.

`ModelTags` (defined beside the rows that carry it, `rows.py`) is a checkpoint's training provenance:
the one definition of run name, step, algorithm and base model; `EvalKey` is the identity under which the
store keeps an evaluation; `Scores` (Avg@n and Pass@k as `metrics.Interval`s, outcome counts, chance
floors) is what an evaluation scores, converted to and from the store's `ScoreRow`s in one place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from spsbench.metrics import Interval, Summary
from spsbench.store.rows import ModelTags, ScoreRow


@dataclass(frozen=True)
class EvalKey:
    """The identity of a stored evaluation. n is not part of it: raising n extends an evaluation and
    lowering it scores a subset. `task_digest` is what the task is (problems, gold answers, prompts,
    grader: `spsbench.tasks.identity`), so a task changed under the same name and version is new;
    '' is a legacy evaluation stored before digests."""

    model_id: int
    task: str
    task_version: str
    grader_policy: str
    sampling_key: str
    task_digest: str = ""


def _pass_k(metric: str, k: int) -> int | None:
    """The k of a Pass@k row: 'pass@k' with k in the k column, or (older stores) 'pass@8' spelled out."""
    if metric == "pass@k":
        return int(k)
    m = re.fullmatch(r"pass@(\d+)", metric)
    return int(m.group(1)) if m else None


@dataclass
class Scores:
    """Avg@n and Pass@k with intervals, outcome counts and (multiple choice) the chance floor."""

    n: int
    avg: Interval | None = None
    pass_at_k: dict[int, Interval] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    chance_pass_at_k: dict[int, float] = field(default_factory=dict)
    problems: int | None = None

    @classmethod
    def from_summary(cls, summary: Summary, counts: Mapping[str, int],
                     chance: Mapping[int, float] | None = None) -> Scores:
        """From `metrics.summarize` plus the stored outcome counts."""
        return cls(n=summary.n, avg=summary.avg, pass_at_k=dict(summary.pass_at_k), counts=dict(counts),
                   chance_pass_at_k=dict(chance or {}), problems=summary.problems)

    @classmethod
    def from_rows(cls, rows: Sequence[ScoreRow], n: int) -> Scores:
        """From the store's score rows; n is the evaluation's, unless an Avg@n row says which n it scored.
        Older spellings ('avg', 'pass@8' with the k in the name) are read as what they mean."""
        out = cls(n=n)
        for r in rows:
            cell = Interval(float(r.value), r.ci_low, r.ci_high)
            if r.metric in ("avg@n", "avg"):
                out.avg, out.n = cell, int(r.n)
            elif (k := _pass_k(r.metric, r.k)) is not None:
                out.pass_at_k[k] = cell
            elif r.metric.startswith("count:"):
                out.counts[r.metric.removeprefix("count:")] = int(r.value)
            elif r.metric == "chance_pass@k":
                out.chance_pass_at_k[int(r.k)] = float(r.value)
        return out

    def to_rows(self) -> list[ScoreRow]:
        """The store's rows: 'avg@n' (k=0), 'pass@k', 'count:<outcome>' (k=0), 'chance_pass@k'."""
        rows = [ScoreRow("avg@n", 0, self.avg.value, self.avg.ci_low, self.avg.ci_high, self.n)] if self.avg else []
        rows += [ScoreRow("pass@k", k, v.value, v.ci_low, v.ci_high, self.n) for k, v in self.pass_at_k.items()]
        rows += [ScoreRow(f"count:{o}", 0, float(c), None, None, self.n) for o, c in self.counts.items()]
        rows += [ScoreRow("chance_pass@k", k, v, None, None, self.n) for k, v in self.chance_pass_at_k.items()]
        return rows


__all__ = ["EvalKey", "Interval", "ModelTags", "Scores"]
