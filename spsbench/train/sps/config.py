"""The `sps` section of a recipe: the settings of the SPS layer (paper Algorithm 1), beside its trainer.

Each setting the paper leaves open is a choice listed in `SPS_CHOICES` (the first value is the default), with
its reason in docs/training.md ("Interpretive choices"). Cheap to import: `spsbench.train.config` builds the
section from it, `trainer.SPSTrainer` reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from spsbench.errors import ConfigError
from spsbench.train.eval_config import field_with_help as _f
from spsbench.validate import check_fields, number

L2TE_LOGPROBS = ("sum", "mean")
L2TE_TRUNCATED = ("exclude", "keep")
# sps.* keys with a fixed set of values (the first is the default): each is an interpretive choice the paper
# leaves open, listed with its reason in docs/training.md ("Interpretive choices")
SPS_CHOICES = {"l2te_logprob": L2TE_LOGPROBS, "l2te_truncated": L2TE_TRUNCATED,
               "irl_optimizer_state": ("carry", "reset"), "irl_objective": ("imitate", "repel"),
               "irl_diagnostics": ("light", "full"), "quantile_scope": ("group", "batch"),
               "positive_topup": ("lowest", "random"), "dropped_groups": ("buffer", "skip")}


@dataclass
class SPSConfig:
    """The SPS layer: RL phase of `rl_steps_per_phase` optimizer steps, then an IRL phase (paper Alg. 1)."""

    rl_steps_per_phase: int | str = _f("epoch", "RL optimizer steps between two IRL phases, or `epoch`: one "
                                                 "pass over the training prompts as TRL's dataloader really "
                                                 "yields it (paper Algorithm 1). `spsbench train --dry-run` shows it.")
    allow_no_irl: bool = _f(False, "Let an SPS plan contain no IRL phase (rl_steps_per_phase > max_steps); "
                                   "otherwise that is an error, since the run would be its base algorithm.")
    sampling_size: int = _f(3, "Completions kept per prompt group by L2TE (paper: 3 of 8).")
    quantile: float = _f(0.5, "L2TE: per group, sampling_size incorrect rollouts are drawn from the lowest "
                              "max(sampling_size, ceil(quantile x #incorrect)) by sequence log-prob (0 = the "
                              "least likely ones); correct rollouts only top up groups with too few negatives.")
    l2te_logprob: str = _f("sum", "L2TE's sequence log-prob: sum over completion tokens (favours long "
                                  "completions; the paper does not say) or mean (per token).")
    l2te_truncated: str = _f("exclude", "L2TE and truncated completions (cut at max_completion_length, no EOS): "
                                      "keep (rank them like the others) or exclude (never imitate them).")
    irl_steps: int | str = _f(4, "IRL optimizer steps per phase (paper: 4), or `auto`: as many as it takes to "
                                 "train once on every sequence L2TE selected (ceil(selection / irl_batch_size); the "
                                 "plan shows the coverage either way).")
    irl_batch_size: int = _f(512, "Sequences per IRL optimizer step, over all ranks (paper: 512).")
    irl_micro_batch_size: int = _f(8, "Sequences per forward/backward on one rank (gradient accumulation; each step's "
                                      "rows are sorted by length first, so a micro-batch pads to similar lengths).")
    irl_learning_rate: float = _f(5e-10, "IRL AdamW learning rate (paper: 5e-10).")
    irl_weight_decay: float = _f(0.0, "IRL AdamW weight decay.")
    irl_optimizer_state: str = _f("carry", "carry: the IRL AdamW keeps its moments and step count from one phase "
                                           "to the next (the paper does not say); reset: a fresh AdamW every phase.")
    irl_max_grad_norm: float | None = _f(None, "Clip the IRL gradient to this global norm (the paper states no "
                                               "clipping); null = no clipping.")
    irl_objective: str = _f("imitate", "imitate: minimise the selected completions' NLL, i.e. KL(pi_rollout || pi), "
                                       "what the paper's text describes; repel: maximise it, Eq. 4 as printed "
                                       "(L = -KL, minimised).")
    irl_diagnostics: str = _f("light", "Per-phase checks and measures. light: IRL loss after the update on one "
                                       "micro-batch per rank, weight change from a 1/1021 strided sample, weights "
                                       "checked finite once after the phase; full: loss after on the first IRL "
                                       "batch, exact weight change against a host copy, weights checked after "
                                       "every IRL step. Gradients are checked before every IRL step either way.")
    quantile_scope: str = _f("group", "L2TE's lower quantile over the negatives of each prompt group (group), or "
                                      "over all negatives of each generation batch, on all ranks (batch: Appendix "
                                      "C.1's 'lower quantile of trajectories in each batch').")
    positive_topup: str = _f("lowest", "L2TE, groups with fewer than sampling_size negatives: top up with correct "
                                       "rollouts lowest log-prob first (lowest) or drawn uniformly (random).")
    dropped_groups: str = _f("buffer", "SPS over DAPO: groups dynamic sampling drops (all rewards equal) also "
                                       "enter the IRL buffer (buffer), or only the groups RL trains on (skip).")
    seed: int = _f(0, "Seed of the L2TE draws and the IRL batch order.")

    def __post_init__(self) -> None:
        if self.rl_steps_per_phase != "epoch" and (isinstance(self.rl_steps_per_phase, bool)
                                                   or not isinstance(self.rl_steps_per_phase, int)):
            raise ConfigError(f"sps.rl_steps_per_phase: must be an integer >= 1 or 'epoch', got "
                              f"{self.rl_steps_per_phase!r}")
        if self.irl_steps != "auto" and (isinstance(self.irl_steps, bool) or not isinstance(self.irl_steps, int)):
            raise ConfigError(f"sps.irl_steps: must be an integer or 'auto', got {type(self.irl_steps).__name__} "
                              f"{self.irl_steps!r}")
        check_fields(self, "sps.")
        numbers = ["sampling_size", "irl_batch_size", "irl_micro_batch_size"]
        numbers += ["rl_steps_per_phase"] * (self.rl_steps_per_phase != "epoch") + ["irl_steps"] * (self.irl_steps != "auto")
        for name in numbers:
            if getattr(self, name) < 1:
                raise ConfigError(f"sps.{name}: must be >= 1, got {getattr(self, name)}")
        for name, allowed in SPS_CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"sps.{name}: must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.irl_max_grad_norm is not None:
            number("sps.irl_max_grad_norm", self.irl_max_grad_norm, low=0, low_open=True)
        if not 0 <= self.quantile <= 1:
            raise ConfigError(f"sps.quantile: must be in [0, 1], got {self.quantile}")
        if not 0 <= self.irl_learning_rate < math.inf:
            raise ConfigError(f"sps.irl_learning_rate: must be a finite number >= 0, got {self.irl_learning_rate}")
