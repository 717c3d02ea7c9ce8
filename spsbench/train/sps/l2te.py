"""L2TE (Low-Likelihood Trajectory Emphasis, paper section 4.1): which rollouts the IRL phase imitates.

Pure Python, no torch, so it is tested on hand-built groups. Per prompt group (the `num_generations`
completions of one prompt), with N = its incorrect rollouts sorted by sequence log-prob, lowest first:

* len(N) >= sampling_size: the pool is the lowest max(sampling_size, ceil(quantile * len(N))) of N
  (the paper: "we sample from the lower quantile of trajectories"), and `sampling_size` rollouts are
  drawn from it uniformly without replacement by an RNG seeded with (seed, phase, group index), so
  a selection is reproducible. quantile 0 means "the sampling_size least likely negatives".
* len(N) < sampling_size: all of N, topped up with correct rollouts, lowest log-prob first (the paper
  adds positives "whenever the number of available negative samples is insufficient"; `random_topup`
  draws them uniformly instead).

Appendix C.1 says the lower quantile is taken "in each batch": with `thresholds` (sps.quantile_scope
batch) the quantile is cut once over all negatives of a generation batch (`batch_threshold`), and each
group draws from its negatives below that cut (its lowest `sampling_size` negatives when fewer are).

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
                 rng: random.Random | None = None, threshold: float | None = None,
                 random_topup: bool = False) -> list[int]:
    """Indices (into `group`) of the rollouts L2TE keeps, lowest log-prob first.

    `threshold` (quantile_scope batch): the pool is the group's negatives at or below this batch-wide
    quantile of negative log-probs, topped up with its next-lowest negatives when it holds fewer than
    `sampling_size`. `random_topup`: positives are drawn uniformly instead of lowest first."""
    rng = rng or random.Random(0)
    negatives = _ascending(group, [i for i, r in enumerate(group) if not r.correct])
    if len(negatives) < sampling_size:
        positives = _ascending(group, [i for i, r in enumerate(group) if r.correct])
        extra = sampling_size - len(negatives)
        topup = rng.sample(positives, min(extra, len(positives))) if random_topup else positives[:extra]
        return _ascending(group, negatives + topup)
    if threshold is None:
        pool = negatives[: max(sampling_size, math.ceil(quantile * len(negatives)))]
    else:
        below = [i for i in negatives if group[i].logp <= threshold]
        pool = below if len(below) >= sampling_size else negatives[:sampling_size]
    return _ascending(group, rng.sample(pool, sampling_size))


def batch_threshold(negative_logps: Sequence[float], quantile: float) -> float:
    """The lower-`quantile` cut of one batch's negative log-probs: the ceil(quantile x N)-th lowest (-inf when
    that is none, e.g. quantile 0: each group then keeps its `sampling_size` lowest negatives)."""
    ordered = sorted(negative_logps)
    count = math.ceil(quantile * len(ordered))
    return ordered[count - 1] if count else -math.inf


def select_l2te(groups: Sequence[Sequence[Scored]], sampling_size: int, quantile: float, seed: int = 0,
                phase: int = 0, first_group: int = 0, thresholds: Sequence[float] | None = None,
                random_topup: bool = False) -> list[list[int]]:
    """L2TE over many prompt groups: one list of within-group indices per group.

    `first_group` is the global index of `groups[0]` (a rank's offset), so the draw of a group does
    not depend on how groups are spread over ranks. `thresholds` (one per group: its batch's cut from
    `batch_threshold`) switches the quantile from per group to per batch.
    """
    if sampling_size < 1:
        raise ValueError(f"sampling_size must be >= 1, got {sampling_size}")
    if not 0 <= quantile <= 1:
        raise ValueError(f"quantile must be in [0, 1], got {quantile}")
    if thresholds is not None and len(thresholds) != len(groups):
        raise ValueError(f"{len(thresholds)} thresholds for {len(groups)} groups")
    return [select_group([Scored(*r) for r in group], sampling_size, quantile,
                         group_rng(seed, phase, first_group + g),
                         None if thresholds is None else thresholds[g], random_topup)
            for g, group in enumerate(groups)]
