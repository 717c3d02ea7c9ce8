"""L2TE (Low-Likelihood Trajectory Emphasis, paper section 4.1): which rollouts the IRL phase imitates.

Pure Python, no torch, so it is tested on hand-built groups. Per prompt group (the `num_generations`
completions of one prompt), ranked by sequence log-probability under the policy, lowest first:

1. incorrect rollouts that lie in the group's lower `quantile` (by rank: the ceil(quantile * n)
   least likely rollouts of the group), lowest log-prob first;
2. when those are fewer than `sampling_size`, top up with correct rollouts, lowest log-prob first
   (the paper adds positives "whenever the number of available negative samples is insufficient");
3. then, if still short, the remaining incorrect rollouts (likely ones), lowest first.

Ties in log-probability are broken by position in the group, so selection is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple


class Scored(NamedTuple):
    """One rollout as L2TE sees it."""

    logp: float      # sequence log-probability (sum of completion-token log-probs) under the policy
    correct: bool    # graded correct by the task's grader


def select_group(group: Sequence[Scored], sampling_size: int, quantile: float) -> list[int]:
    """Indices (into `group`) of the rollouts L2TE keeps, in priority order."""
    order = sorted(range(len(group)), key=lambda i: (group[i].logp, i))
    lower = set(order[: max(1, math.ceil(quantile * len(group)))])
    tiers = (
        [i for i in order if i in lower and not group[i].correct],
        [i for i in order if group[i].correct],
        [i for i in order if i not in lower and not group[i].correct],
    )
    return [i for tier in tiers for i in tier][:sampling_size]


def select_l2te(groups: Sequence[Sequence[Scored]], sampling_size: int, quantile: float) -> list[list[int]]:
    """L2TE over many prompt groups: one list of within-group indices per group."""
    if sampling_size < 1:
        raise ValueError(f"sampling_size must be >= 1, got {sampling_size}")
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    return [select_group([Scored(*r) for r in group], sampling_size, quantile) for group in groups]
