"""L2TE (Low-Likelihood Trajectory Emphasis, paper section 4.1): which rollouts the IRL phase imitates.

Pure Python, no torch, so it is tested on hand-built groups. Per prompt group (the `num_generations`
completions of one prompt), with N = its incorrect rollouts sorted by sequence log-prob, lowest first:

* len(N) >= sampling_size: the pool is the lowest max(sampling_size, ceil(quantile * len(N))) of N
  (the paper: "we sample from the lower quantile of trajectories"), and `sampling_size` rollouts are
  drawn from it uniformly without replacement by an RNG seeded with (seed, phase, group index), so
  a selection is reproducible. quantile 0 means "the sampling_size least likely negatives".
* len(N) < sampling_size: all of N, topped up with correct rollouts, lowest log-prob first (the paper
  adds positives "whenever the number of available negative samples is insufficient").

A correct rollout is never picked while enough negatives exist. The score is whatever log-prob the
caller passes (spsbench: the sum over completion tokens by default, `sps.l2te_logprob`). Ties in
log-prob are broken by position in the group. Picks are returned lowest log-prob first.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import NamedTuple


class Scored(NamedTuple):
    """One rollout as L2TE sees it."""

    logp: float      # sequence log-probability under the policy (sum or mean over completion tokens)
    correct: bool    # graded correct by the task's grader


def _ascending(group: Sequence[Scored], indices: list[int]) -> list[int]:
    return sorted(indices, key=lambda i: (group[i].logp, i))


def group_rng(seed: int, phase: int, group_index: int) -> random.Random:
    """The RNG of one group's draw: a string seed is hashed with SHA-512, stable across Python runs."""
    return random.Random(f"l2te:{seed}:{phase}:{group_index}")


def select_group(group: Sequence[Scored], sampling_size: int, quantile: float,
                 rng: random.Random | None = None) -> list[int]:
    """Indices (into `group`) of the rollouts L2TE keeps, lowest log-prob first."""
    negatives = _ascending(group, [i for i, r in enumerate(group) if not r.correct])
    if len(negatives) < sampling_size:
        positives = _ascending(group, [i for i, r in enumerate(group) if r.correct])
        return negatives + positives[: sampling_size - len(negatives)]
    pool = negatives[: max(sampling_size, math.ceil(quantile * len(negatives)))]
    picks = (rng or random.Random(0)).sample(pool, sampling_size)
    return _ascending(group, picks)


def select_l2te(groups: Sequence[Sequence[Scored]], sampling_size: int, quantile: float, seed: int = 0,
                phase: int = 0, first_group: int = 0) -> list[list[int]]:
    """L2TE over many prompt groups: one list of within-group indices per group.

    `first_group` is the global index of `groups[0]` (a rank's offset), so the draw of a group does
    not depend on how groups are spread over ranks.
    """
    if sampling_size < 1:
        raise ValueError(f"sampling_size must be >= 1, got {sampling_size}")
    if not 0 <= quantile <= 1:
        raise ValueError(f"quantile must be in [0, 1], got {quantile}")
    return [select_group([Scored(*r) for r in group], sampling_size, quantile,
                         group_rng(seed, phase, first_group + g))
            for g, group in enumerate(groups)]
