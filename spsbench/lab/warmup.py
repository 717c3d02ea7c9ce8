"""The lab's base policies: a short supervised warm-up of a random tiny Llama on lab-sums demonstrations.

A *peaked* base, as RL finds real models: most demonstrations of a problem (`favourite`, 85 %) are one
fixed favourite completion, and the favourite is a correct decomposition for half of the problems
(`favourite_correct`) and a wrong one for the others. The remaining demonstrations are, with probability
`targeted`, a uniformly drawn correct decomposition and otherwise uniformly random digits, so every
correct answer keeps some mass. The warmed-up model writes the format, puts most of a problem's mass on
its favourite, and still samples other decompositions: Pass@1 well below Pass@256, and on the problems
whose favourite is wrong only exploration (Pass@k at large k) finds the answer. That is the regime where
the paper's squeezing happens; a flat start (`favourite: 0`) is the one where `lab squeeze` finds none.

Seeds: base seed s draws its own favourites (which problems, which completions) and its own initial
weights, so the variability of the base is part of the lab's seed-level intervals (`lab dynamics` runs
seed s of every arm from base s). The loss is the SPS IRL loss itself (`completion_nll`: completion-token
cross-entropy). Each base is cached as a Hugging Face folder under `<cache>/lab/`, keyed by its settings.
"""

from __future__ import annotations

import functools
import json
import random
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from spsbench import paths
from spsbench.errors import ConfigError
from spsbench.lab import model as lab_model
from spsbench.lab import task
from spsbench.lab.record import config_hash
from spsbench.validate import number

VERSION = 2      # bump when the warm-up procedure changes (a new cache folder); 2: peaked bases


@dataclass
class WarmupConfig:
    """Base-policy settings (`--set warmup.KEY=VALUE`); `seed` is set per lab seed."""

    hidden: int = 64
    layers: int = 2
    seed: int = 0
    steps: int = 400
    batch_size: int = 64
    lr: float = 3e-3
    favourite: float = 0.85        # share of a problem's demonstrations that are its favourite completion
    favourite_correct: float = 0.5  # share of problems whose favourite is a correct decomposition
    targeted: float = 0.5          # of the other demonstrations: share that are correct decompositions

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "hidden", "layers", "seed"):
            number(f"warmup.{name}", getattr(self, name), low=0, integer=True)
        if self.hidden < 8 or self.hidden % 4 or self.layers < 1 or self.batch_size < 1:
            raise ConfigError("warmup: hidden must be a multiple of 4 (>= 8), layers >= 1 and batch_size >= 1")
        number("warmup.lr", self.lr, low=0, low_open=True)
        for name in ("favourite", "favourite_correct", "targeted"):
            number(f"warmup.{name}", getattr(self, name), low=0, high=1)


def favourites(seed: int, share_correct: float) -> dict[str, tuple[tuple[int, ...], bool]]:
    """{problem id: (favourite digits, whether they are correct)}: exactly round(share x problems) problems,
    drawn by the seed, have a correct favourite; each favourite is uniform among the correct (or wrong) tuples."""
    rng = random.Random(f"favourite:{seed}")
    probs = task.problems()
    order = list(range(len(probs)))
    rng.shuffle(order)
    correct = set(order[:round(share_correct * len(probs))])
    out = {}
    for i, p in enumerate(probs):
        good = task.correct_decompositions(p.target, p.terms)
        pool = good if i in correct else [d for d in task.digit_tuples(p.terms) if sum(d) != p.target]
        out[p.id] = (rng.choice(pool), i in correct)
    return out


def demonstration(problem: task.SumProblem, rng: random.Random, cfg: WarmupConfig,
                  favourite: tuple[int, ...]) -> str:
    if rng.random() < cfg.favourite:
        digits = favourite
    elif rng.random() < cfg.targeted:
        digits = rng.choice(task.correct_decompositions(problem.target, problem.terms))
    else:
        digits = tuple(rng.randrange(10) for _ in range(problem.terms))
    return task.completion_text(digits)


def cache_folder(cfg: WarmupConfig) -> Path:
    key = config_hash({"warmup": asdict(cfg), "version": VERSION, "rows": task.rows()})
    return paths.cache_dir() / "lab" / f"base-{key}"


def base_model(cfg: WarmupConfig | None = None, log=None) -> Path:
    """The warmed-up base model folder (trained now unless cached)."""
    cfg = cfg or WarmupConfig()
    folder = cache_folder(cfg)
    if (folder / "lab_warmup.json").is_file():
        return folder
    tmp = folder.with_name(folder.name + ".partial")
    loss = train(cfg, tmp)
    (tmp / "lab_warmup.json").write_text(json.dumps({**asdict(cfg), "final_loss": loss}, indent=2) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)
    if log:
        log(f"warm-up: base seed {cfg.seed}, {cfg.steps} supervised steps, final loss {loss:.3f} -> {folder}")
    return folder


def for_seed(cfg: WarmupConfig, seed: int) -> WarmupConfig:
    """The settings of lab seed `seed`'s own base."""
    return replace(cfg, seed=seed)


def describe(cfg: WarmupConfig) -> dict[str, Any]:
    """What the base was trained to prefer, per problem in task order (for the page's subsets)."""
    fav = favourites(cfg.seed, cfg.favourite_correct)
    ids = [p.id for p in task.problems()]
    return {"problems": ids, "favourite": [task.completion_text(fav[i][0]) for i in ids],
            "favourite_correct": [fav[i][1] for i in ids]}


def train(cfg: WarmupConfig, folder: Path) -> float:
    """Supervised warm-up; saves the model and tokenizer to `folder`; returns the last batch loss/token."""
    import torch

    from spsbench.train.sps.irl import completion_nll

    tok = lab_model.lab_tokenizer()
    model = lab_model.new_model(tok, cfg.hidden, cfg.layers, cfg.seed)
    rng = random.Random(f"warmup:{cfg.seed}")
    probs = task.problems()
    fav = favourites(cfg.seed, cfg.favourite_correct)
    prompts = {p.id: lab_model.prompt_ids(tok, p.text) for p in probs}
    ids = functools.lru_cache(maxsize=None)(lambda text: lab_model.completion_ids(tok, text))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    loss_value = float("nan")
    for _ in range(cfg.steps):
        batch = [rng.choice(probs) for _ in range(cfg.batch_size)]
        rows = [{"prompt_ids": prompts[p.id], "completion_ids": ids(demonstration(p, rng, cfg, fav[p.id][0]))}
                for p in batch]
        tokens = sum(len(r["completion_ids"]) for r in rows)
        loss = completion_nll(model, rows, tok.pad_token_id) / tokens
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_value = float(loss.detach())
    lab_model.save(model, tok, folder)
    return loss_value
