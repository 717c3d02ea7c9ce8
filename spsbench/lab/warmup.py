"""The lab's base policy: a short supervised warm-up of a random tiny Llama on lab-sums demonstrations.

A demonstration is a well-formed completion whose digits are, with probability `targeted`, a uniformly
drawn correct decomposition of the target, and otherwise uniformly random digits. The warmed-up model
writes the format, knows a little about which digits fit which target and samples many different
decompositions: it solves most problems at Pass@256 and few at Pass@1, the regime where squeezing
matters. The loss is the SPS IRL loss itself (`spsbench.train.sps.irl.completion_nll`: completion-token
cross-entropy). The result is cached as a Hugging Face folder under `<cache>/lab/`, keyed by the settings.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from spsbench import paths
from spsbench.errors import ConfigError
from spsbench.lab import model as lab_model
from spsbench.lab import task
from spsbench.lab.record import config_hash

VERSION = 1      # bump when the warm-up procedure changes (a new cache folder)


@dataclass
class WarmupConfig:
    """Base-policy settings (`--set warmup.KEY=VALUE`)."""

    hidden: int = 64
    layers: int = 2
    seed: int = 0
    steps: int = 600
    batch_size: int = 64
    lr: float = 3e-3
    targeted: float = 0.5          # share of demonstrations that are correct decompositions

    def __post_init__(self) -> None:
        if self.hidden < 8 or self.hidden % 4 or self.layers < 1:
            raise ConfigError("warmup: hidden must be a multiple of 4 (>= 8) and layers >= 1")
        if self.steps < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError("warmup: steps >= 0, batch_size >= 1 and lr > 0 needed")
        if not 0 <= self.targeted <= 1:
            raise ConfigError(f"warmup: targeted must be in [0, 1], got {self.targeted}")


def demonstration(problem: task.SumProblem, rng: random.Random, targeted: float) -> str:
    if rng.random() < targeted:
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
        log(f"warm-up: {cfg.steps} supervised steps, final loss {loss:.3f} -> {folder}")
    return folder


def train(cfg: WarmupConfig, folder: Path) -> float:
    """Supervised warm-up; saves the model and tokenizer to `folder`; returns the last batch loss/token."""
    import torch

    from spsbench.train.sps.irl import completion_nll

    tok = lab_model.lab_tokenizer()
    model = lab_model.new_model(tok, cfg.hidden, cfg.layers, cfg.seed)
    rng = random.Random(f"warmup:{cfg.seed}")
    probs = task.problems()
    prompts = {p.id: lab_model.prompt_ids(tok, p.text) for p in probs}
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    loss_value = float("nan")
    for _ in range(cfg.steps):
        batch = [rng.choice(probs) for _ in range(cfg.batch_size)]
        rows = [{"prompt_ids": prompts[p.id],
                 "completion_ids": lab_model.completion_ids(tok, demonstration(p, rng, cfg.targeted))} for p in batch]
        tokens = sum(len(r["completion_ids"]) for r in rows)
        loss = completion_nll(model, rows, tok.pad_token_id) / tokens
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_value = float(loss.detach())
    lab_model.save(model, tok, folder)
    return loss_value
