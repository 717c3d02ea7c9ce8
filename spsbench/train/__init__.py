"""`spsbench train`: GRPO, DAPO, GSPO and SPS on TRL's GRPOTrainer (trl==1.16.0).

Modules: algorithms (the algorithm table: every algorithm by name, its trainer, recipe and what layers on
what), config (recipe dataclasses + loading), reward (the grader as a TRL reward), data (task -> dataset),
trainer (GRPO-family trainer + DAPO dynamic sampling), sps (the SPS layer: its config, trainer, L2TE),
callbacks (checkpoint evaluation, run info), run (assembly). Importing this package is cheap.
"""
