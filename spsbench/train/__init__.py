"""`spsbench train`: GRPO, DAPO, GSPO and SPS on TRL's GRPOTrainer (trl==1.16.0).

Modules: config (recipe dataclasses + loading), l2te (pure L2TE selection), reward (the grader as a
TRL reward), data (task -> dataset), trainer (GRPO-family trainer + DAPO dynamic sampling), sps (the SPS
layer), callbacks (checkpoint evaluation, run info), run (assembly). Importing this package is cheap.
"""
