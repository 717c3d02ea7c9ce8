"""Leaderboard refresh cost (the trainer refreshes after every evaluation) and similarity cost.

Figures: a full refresh (Markdown + every PNG) vs a refresh whose plot inputs are unchanged (PNGs
skipped via plots/.inputs.json) vs Markdown only, on the synthetic store; and pairwise similarity for
128 completions of ~300 words (8,128 pairs), the paper's n.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(console) -> None:
    from spsbench.diagnostics.similarity import pairwise_similarity
    from spsbench.leaderboards.refresh import refresh
    from tests.fixtures.synthetic_store import synthetic_store

    with tempfile.TemporaryDirectory() as tmp:
        store = synthetic_store(Path(tmp) / "s.db", n=128, problems=30)
        out = Path(tmp) / "lb"
        full = _timed(lambda: refresh(store, out))
        cached = _timed(lambda: refresh(store, out))
        markdown = _timed(lambda: refresh(store, out, plots=False))
    console.print(
        f"refresh, synthetic store (2 runs x 3 checkpoints x 2 tasks, n=128, 30 problems): "
        f"full {full:.2f} s, unchanged plots {cached:.2f} s ({full / cached:.1f}x faster), "
        f"Markdown only {markdown:.2f} s"
    )
    rng = random.Random(0)
    words = [f"w{i}" for i in range(400)]
    texts = [" ".join(rng.choice(words) for _ in range(300)) for _ in range(128)]
    secs = _timed(lambda: pairwise_similarity(texts))
    console.print(f"pairwise similarity, 128 completions x 300 words: {secs:.2f} s per problem")
