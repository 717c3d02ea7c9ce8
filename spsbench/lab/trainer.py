"""The lab's instrumented trainers: the product's trainer class (whatever `spsbench.train.run.trainer_class`
selects: GRPO, SPS over GRPO, DAPO, GSPO), subclassed to

* probe the policy exactly while it trains (`Probes`, `spsbench.lab.measure.probe`): every `every` steps,
  at every phase boundary, and for SPS just before and just after each IRL phase (the probe runs inside
  `run_irl_phase`, around the product's own phase). A probe reads the model without gradients and draws no
  random numbers, so a probed run trains exactly like an unprobed one;
* keep only the positive or only the negative advantages (the mechanism controls `grpo-pos`, `grpo-neg`):
  after TRL computed the group-normalised advantages, the others are set to 0, so each control's
  policy-gradient term is exactly its part of GRPO's (one optimizer step per generation batch: ratio 1).
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from spsbench.lab import measure

ROUND = 6          # significant digits of stored measures (float noise below that is not a measurement)


def compact(value: float) -> float:
    return float(f"{value:.{ROUND}g}")


class Probes:
    """The exact measurements of one run, in the order they were taken (the base is point 0)."""

    def __init__(self, layout: measure.Layout, base: dict[str, Any], every: int, boundary: int,
                 tau: float = measure.TAU) -> None:
        self.layout, self.every, self.boundary, self.tau = layout, every, boundary, tau
        self.last_dom = self.anchor_dom = self.base_dom = base["dom"]
        self.points: list[dict[str, Any]] = []
        self.last_step = 0
        self.log: list[dict[str, float]] = []            # per-step reward and entropy as TRL logs them
        self.advantages = {"nonzero": 0, "dropped": 0}   # rollouts with a non-zero advantage / set to 0

    def due(self, step: int, max_steps: int) -> bool:
        return step > self.last_step and (step % self.every == 0 or step % self.boundary == 0 or step == max_steps)

    def take(self, model: Any, step: int, when: str) -> dict[str, Any]:
        """Measure now. `when`: rl (after an RL step), pre / post (around an IRL phase at this step)."""
        m = measure.probe(model, self.layout, self.tau, {"prev_dom": self.last_dom, "anchor_dom": self.anchor_dom,
                                                          "base_dom": self.base_dom})
        self.last_dom = m.pop("dom")
        if when == "post" or (when == "rl" and step % self.boundary == 0):
            self.anchor_dom = self.last_dom          # a new segment starts here (mass flow)
        self.points.append(stored(m, step, when))
        self.last_step = step
        return self.points[-1]


def stored(m: dict[str, Any], step: int, when: str) -> dict[str, Any]:
    """A probe as committed data: per-problem lists, floats to ROUND significant digits."""
    out: dict[str, Any] = {"step": step, "when": when}
    for key, values in m.items():
        if key == "dom":
            continue
        out[key] = [int(v) if isinstance(v, bool) else compact(v) if isinstance(v, float) else v for v in values]
    return out


class _ProbeClock(TrainerCallback):
    """Probes after the optimizer step (after the SPS phase clock: at a phase step SPS has probed already)."""

    def __init__(self, trainer: Any, probes: Probes) -> None:
        self.trainer, self.probes = trainer, probes

    def on_step_end(self, args, state, control, **kwargs):
        if self.probes.due(state.global_step, state.max_steps):
            self.probes.take(self.trainer.model, state.global_step, "rl")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "reward" in logs:
            self.probes.log.append({"step": state.global_step, **{k: compact(float(logs[k]))
                                                                  for k in ("reward", "entropy") if k in logs}})


def mask_advantages(advantages: Any, keep: str) -> tuple[Any, int]:
    """(advantages with the other sign set to 0, how many non-zero ones were dropped)."""
    if keep == "all":
        return advantages, 0
    drop = advantages < 0 if keep == "positive" else advantages > 0
    return advantages.masked_fill(drop, 0.0), int(drop.sum())


def lab_trainer(advantages: str = "all", probes: Probes | None = None):
    """`wrap` for `spsbench.train.run.train`: the selected trainer class, instrumented."""

    def wrap(base: type) -> type:
        class LabTrainer(base):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.lab_counts = probes.advantages if probes is not None else {"nonzero": 0, "dropped": 0}
                if probes is not None:
                    self.add_callback(_ProbeClock(self, probes))

            def _generate_and_score_completions(self, inputs):
                output = super()._generate_and_score_completions(inputs)
                if self.model.training:
                    adv = output["advantages"]
                    self.lab_counts["nonzero"] += int((adv != 0).sum())
                    output["advantages"], dropped = mask_advantages(adv, advantages)
                    self.lab_counts["dropped"] += dropped
                return output

            if hasattr(base, "run_irl_phase"):
                def run_irl_phase(self):
                    step = self.state.global_step
                    if probes is not None:
                        probes.take(self.model, step, "pre")
                    record = super().run_irl_phase()
                    if probes is not None:
                        probes.take(self.model, step, "post")
                    return record

        LabTrainer.__name__ = LabTrainer.__qualname__ = f"Lab{base.__name__}"
        return LabTrainer

    return wrap
