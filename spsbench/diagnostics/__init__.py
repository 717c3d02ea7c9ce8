"""Diagnostics the paper uses beyond scores: squeezing (greedy-path log-probability), token entropy and
the diversity of samples. `run` orchestrates `spsbench diagnose` into the store, `model_stats` runs the
model (torch, lazily), `similarity` is the pure diversity measure the leaderboards also read.
"""
