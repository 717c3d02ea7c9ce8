"""The squeezing lab (`spsbench lab`): small, exactly measurable settings where probability squeezing
(paper section 3.1, appendix A) and what SPS does about it can be seen on a CPU in minutes.

* `squeeze`: one policy-gradient update on a negative sample of probability p, and one SPS IRL update on
  L2TE-selected rollouts, applied to a real transformers model whose whole output distribution over a
  closed set of short sequences is enumerated exactly (paper Figure 1 as measured curves).
* `dynamics`: GRPO / SPS / DAPO / GSPO runs of the project's trainer from a warmed-up tiny base policy on
  a synthetic task with several correct trajectories per problem, evaluated by the project's evaluator
  into a lab store, with exact Pass@k from enumerated probabilities beside the sampled one.

Only the task (`spsbench.lab.task`) and the base-model warm-up (`spsbench.lab.warmup`) are lab-specific;
training, grading, evaluation and the store are the product's own code.
"""
