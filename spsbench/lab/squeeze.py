"""`spsbench lab squeeze`: the squeezing effect (paper section 3.1, appendix A, Figure 1) measured exactly.

A random-weight transformers LlamaForCausalLM over a vocabulary of `vocab` tokens emits sequences of
`length` tokens after a one-token prompt, so its whole output distribution (vocab**length sequences,
exactly normalised) is enumerated. A sequence is correct when its token sum is 0 mod `vocab`. The model
is first fitted (full-batch Adam on the exact KL) to one of two starting distributions:

* peaked: one correct sequence holds `dominant` of the mass, the other correct ones share `other_correct`;
* balanced: all correct sequences share 1 - `negatives_mass` equally.

In both, the incorrect sequences hold `negatives_mass`, spread log-uniformly over ~4 orders of magnitude.
Then, from the fitted weights, for every incorrect sequence y- (its probability p is the x axis):

* `grpo`: one SGD step on GRPO's loss for y- alone with advantage -1 (TRL loss_type grpo at the first step:
  ratio 1, no clipping, beta 0: the gradient of -A * mean-token log-prob);
* `irl`: a group of `group_size` rollouts (y- plus samples from the policy) goes through the project's L2TE
  selection (`spsbench.train.sps.l2te.select_l2te`), and one SGD step on the SPS IRL loss
  (`spsbench.train.sps.irl.completion_nll`, token-mean cross-entropy) is taken on the selected rollouts;
* `grpo+irl`: the two in sequence (one SPS iteration in miniature; L2TE scores are the rollout-time ones).

Measured per update: change of the dominant sequence's probability, of the entropy, of the mass on the
other correct sequences, and of p(y-) itself. Plain SGD at one learning rate for every update, so the
updates compare at equal step size.
"""

from __future__ import annotations

import itertools
import math
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from typing import Any

import torch

from spsbench.errors import ConfigError
from spsbench.lab.exact import completion_logprobs, entropy
from spsbench.lab.record import Clock
from spsbench.validate import number

REGIMES = ("peaked", "balanced")
UPDATES = ("grpo", "irl", "grpo+irl")


@dataclass
class SqueezeConfig:
    """Settings of the squeeze experiment (every field is a `--set squeeze.KEY=VALUE` key)."""

    vocab: int = 4                # tokens; sequences are all vocab**length token tuples
    length: int = 3
    hidden: int = 32
    layers: int = 2
    seed: int = 0
    dominant: float = 0.9         # peaked: mass of the dominant correct sequence
    other_correct: float = 0.06   # peaked: mass shared by the other correct sequences
    negatives_mass: float = 0.04  # both: mass of the incorrect sequences (log-uniform spread)
    spread_decades: float = 4.0   # orders of magnitude between the least and most likely incorrect sequence
    fit_steps: int = 300
    fit_lr: float = 0.01
    lr: float = 1e-5              # SGD step of every measured update
    group_size: int = 8           # rollouts per group for L2TE (paper: 8)
    sampling_size: int = 3        # L2TE picks (paper: 3)
    quantile: float = 0.5

    def __post_init__(self) -> None:
        for name in ("vocab", "length", "hidden", "layers", "seed", "fit_steps", "group_size", "sampling_size"):
            number(f"squeeze.{name}", getattr(self, name), low=0, integer=True)
        for name in ("dominant", "other_correct", "negatives_mass", "spread_decades", "fit_lr", "lr", "quantile"):
            number(f"squeeze.{name}", getattr(self, name), low=0)        # finite: lr=nan is refused here
        if self.vocab < 2 or self.length < 1 or self.vocab ** self.length > 20000:
            raise ConfigError(f"squeeze: vocab >= 2, length >= 1 and vocab**length <= 20000 needed, got "
                              f"vocab={self.vocab}, length={self.length}")
        if not 0 < self.negatives_mass < 1 or not 0 < self.dominant < 1 - self.negatives_mass:
            raise ConfigError("squeeze: need 0 < negatives_mass < 1 and 0 < dominant < 1 - negatives_mass")
        if self.group_size < 2 or not 1 <= self.sampling_size <= self.group_size:
            raise ConfigError("squeeze: need group_size >= 2 and 1 <= sampling_size <= group_size")
        if self.lr <= 0 or self.fit_steps < 1 or self.fit_lr <= 0 or self.quantile > 1:
            raise ConfigError("squeeze: lr and fit_lr must be > 0, fit_steps >= 1 and quantile <= 1")


@dataclass
class Space:
    """The closed set: every sequence, which are correct, and the prompt."""

    sequences: list[tuple[int, ...]]
    correct: torch.Tensor          # bool per sequence
    prompt: list[int]


def build_space(cfg: SqueezeConfig) -> Space:
    seqs = list(itertools.product(range(cfg.vocab), repeat=cfg.length))
    correct = torch.tensor([sum(s) % cfg.vocab == 0 for s in seqs])
    return Space(seqs, correct, [0])


def target_distribution(cfg: SqueezeConfig, space: Space, regime: str) -> torch.Tensor:
    """The distribution the model is fitted to (float64, sums to 1)."""
    rng = random.Random(f"squeeze-target:{cfg.seed}")
    correct = space.correct.nonzero().flatten().tolist()
    wrong = space.correct.logical_not().nonzero().flatten().tolist()
    target = torch.zeros(len(space.sequences), dtype=torch.float64)
    spread = torch.logspace(-cfg.spread_decades, 0, len(wrong), dtype=torch.float64)
    order = wrong[:]
    rng.shuffle(order)
    target[order] = spread / spread.sum() * cfg.negatives_mass
    mass = 1.0 - cfg.negatives_mass
    if regime == "peaked":
        dom = correct[rng.randrange(len(correct))]
        rest = [i for i in correct if i != dom]
        target[rest] = cfg.other_correct / len(rest)
        target[dom] = mass - cfg.other_correct
    else:
        target[correct] = mass / len(correct)
    return target


def build_model(cfg: SqueezeConfig):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(cfg.seed)
    config = LlamaConfig(vocab_size=cfg.vocab, hidden_size=cfg.hidden, intermediate_size=2 * cfg.hidden,
                         num_hidden_layers=cfg.layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=64, pad_token_id=None, bos_token_id=0, eos_token_id=0)
    return LlamaForCausalLM(config).float()


def distribution(model, space: Space, grad: bool = False) -> torch.Tensor:
    """The model's exact probabilities of every sequence in the space."""
    with torch.set_grad_enabled(grad):
        logp = completion_logprobs(model, [space.prompt] * len(space.sequences), space.sequences)
    return logp.exp() if not grad else logp


def fit(model, space: Space, target: torch.Tensor, cfg: SqueezeConfig) -> float:
    """Full-batch Adam on KL(target || model); returns the final KL (nats)."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.fit_lr)
    # cosine decay: a high rate early converges in a few hundred steps, a low one late stays stable
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.fit_steps)
    kl = torch.tensor(0.0)
    for _ in range(cfg.fit_steps):
        logp = distribution(model, space, grad=True)
        kl = (target * (target.log() - logp)).sum()
        opt.zero_grad()
        kl.backward()
        opt.step()
        schedule.step()
    return float(kl.detach())


def measures(probs: torch.Tensor, space: Space, dom: int, neg: int) -> dict[str, float]:
    """Where the mass is: the dominant sequence, the other correct ones, the incorrect ones (they sum to 1)."""
    other = space.correct.clone()
    other[dom] = False
    wrong = ~space.correct
    wrong[dom] = False
    return {"p_dom": float(probs[dom]), "entropy": entropy(probs), "other_correct": float(probs[other].sum()),
            "incorrect": float(probs[wrong].sum()), "p_neg": float(probs[neg])}


def grpo_step(model, space: Space, neg: int, lr: float) -> None:
    """One SGD step of GRPO's first-step loss on y- alone: -A * mean token log-prob, A = -1."""
    seq = space.sequences[neg]
    logp = completion_logprobs(model, [space.prompt], [seq])[0]
    loss = (1.0 * logp / len(seq)).float()        # -A * logp / |y| with A = -1
    _sgd(model, loss, lr)


def irl_step(model, space: Space, rows: list[dict[str, Any]], lr: float) -> None:
    """One SGD step of the SPS IRL loss (token-mean cross-entropy) on the L2TE-selected rows."""
    from spsbench.train.sps.irl import completion_nll

    tokens = sum(len(r["completion_ids"]) for r in rows)
    loss = completion_nll(model, rows, pad_id=0) / tokens
    _sgd(model, loss, lr)


def _sgd(model, loss: torch.Tensor, lr: float) -> None:
    model.zero_grad(set_to_none=True)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= lr * p.grad
    model.zero_grad(set_to_none=True)


def l2te_rows(space: Space, probs: torch.Tensor, neg: int, cfg: SqueezeConfig) -> list[dict[str, Any]]:
    """A group: y- plus group_size-1 rollouts sampled from the policy (seeded by y-); L2TE's selection."""
    from spsbench.train.sps.l2te import Scored, select_l2te

    gen = torch.Generator().manual_seed(cfg.seed * 100003 + neg)
    group = [neg] + torch.multinomial(probs.float(), cfg.group_size - 1, replacement=True, generator=gen).tolist()
    scored = [[Scored(math.log(float(probs[i])), bool(space.correct[i])) for i in group]]
    picks = select_l2te(scored, cfg.sampling_size, cfg.quantile, seed=cfg.seed)[0]
    return [{"prompt_ids": list(space.prompt), "completion_ids": list(space.sequences[group[j]])} for j in picks]


def measure_update(model, space: Space, base: torch.Tensor, dom: int, neg: int, update: str,
                   cfg: SqueezeConfig) -> dict[str, float]:
    """Deltas of the measures after one `update` of `model`; its weights are restored afterwards."""
    saved = [p.detach().clone() for p in model.parameters()]
    if update in ("grpo", "grpo+irl"):
        grpo_step(model, space, neg, cfg.lr)
    if update in ("irl", "grpo+irl"):
        irl_step(model, space, l2te_rows(space, base, neg, cfg), cfg.lr)
    after = distribution(model, space)
    with torch.no_grad():
        for p, old in zip(model.parameters(), saved, strict=True):
            p.copy_(old)
    before_m, after_m = measures(base, space, dom, neg), measures(after, space, dom, neg)
    return {f"d_{k}": after_m[k] - before_m[k] for k in before_m}


def run_regime(cfg: SqueezeConfig, regime: str) -> dict[str, Any]:
    """Fit one starting distribution and measure every update on every incorrect sequence."""
    space = build_space(cfg)
    model = build_model(cfg)
    target = target_distribution(cfg, space, regime)
    kl = fit(model, space, target, cfg)
    base = distribution(model, space)
    dom = int(base.argmax())
    rows = []
    for neg in space.correct.logical_not().nonzero().flatten().tolist():
        for update in UPDATES:
            rows.append({"update": update, "neg": neg, "p": _c(float(base[neg])),
                         **{k: _c(x) for k, x in measure_update(model, space, base, dom, neg, update, cfg).items()}})
    start = measures(base, space, dom, dom)
    out = {"regime": regime, "fit_kl": kl, "p_dom": float(base[dom]), "target_p_dom": float(target.max()),
           "dominant": list(space.sequences[dom]), "dominant_correct": bool(space.correct[dom]),
           "entropy": entropy(base), "other_correct": start["other_correct"], "incorrect": start["incorrect"],
           "rows": rows}
    out["flag"] = fit_flag(out)
    return out


def fit_flag(reg: dict[str, Any]) -> str | None:
    """Why a fitted start is not the regime it should be (then it is shown, and left out of the means)."""
    if reg["regime"] == "peaked" and reg["p_dom"] < 0.5 * reg["target_p_dom"]:
        return f"not peaked: p(dominant) {reg['p_dom']:.2f} for a target of {reg['target_p_dom']:.2f}"
    if reg["regime"] == "balanced" and reg["p_dom"] > 2 * reg["target_p_dom"]:
        return f"not balanced: p(dominant) {reg['p_dom']:.2f} for a target of {reg['target_p_dom']:.2f}"
    if reg["regime"] == "peaked" and not reg["dominant_correct"]:
        return "the dominant sequence is an incorrect one"
    return None


def _c(x: float) -> float:
    return float(f"{x:.6g}")


def run_seed(cfg: SqueezeConfig) -> dict[str, Any]:
    """Both regimes from one model seed (`cfg.seed`)."""
    import torch

    torch.manual_seed(cfg.seed)
    return {"seed": cfg.seed, "regimes": [run_regime(cfg, r) for r in REGIMES]}


def run(cfg: SqueezeConfig | None = None, seeds: int = 1, workers: int = 1) -> dict[str, Any]:
    """Model seeds cfg.seed ... cfg.seed + seeds - 1, in `workers` processes; a JSON-able result."""
    cfg = cfg or SqueezeConfig()
    clock = Clock()
    configs = [replace(cfg, seed=cfg.seed + i) for i in range(seeds)]
    if workers <= 1 or seeds == 1:
        results = [run_seed(c) for c in configs]
    else:
        with ProcessPoolExecutor(max_workers=min(workers, seeds), mp_context=get_context("spawn"),
                                 initializer=_one_thread) as pool:
            results = list(pool.map(run_seed, configs))
    return {"config": asdict(cfg), "seeds": results, "workers": min(workers, seeds), **clock.stop()}


def _one_thread() -> None:
    import os

    if not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(1)
