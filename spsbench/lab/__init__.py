"""The squeezing lab (`spsbench lab`): small, exactly measurable settings where probability squeezing
(paper section 3.1, appendix A) and what SPS does about it can be seen on a CPU in minutes.

* `squeeze`: one policy-gradient update on a negative sample of probability p, and one SPS IRL update on
  L2TE-selected rollouts, applied to a real transformers model whose whole output distribution over a
  closed set of short sequences is enumerated exactly, over several model seeds (paper Figure 1 as
  measured curves, with where the mass goes).
* `dynamics`: named arms (GRPO, SPS over an IRL-rate grid, slower RL, positive-/negative-only advantages,
  DAPO, GSPO) x paired seeds, each seed from its own peaked base, trained by the product's trainer and
  probed exactly while they train; the page answers whether SPS moves the Pass@1-Pass@k frontier.

Lab-specific: the task (`task`), the bases (`warmup`), the probes and the controls' advantage masks
(`trainer`, `measure`), the arms (`arms`), the statistics (`frontier`, `view`) and the page. Training,
grading, evaluation and the recipes are the product's own code.
"""
