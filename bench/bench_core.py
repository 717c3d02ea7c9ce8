"""Evaluation-core speed: grading throughput and cache hit rate on 10k synthetic AIME-style outputs, and
pass@k over 10^6 (n, c, k) triples. Targets: >= 500 samples/s on 2 cores; pass@k 10^6 triples < 1 s.

Each target gets a PASS/FAIL line (a report, not an assertion: the 2 cores are shared, so a FAIL can be
load; rerun before believing it). Alone: `python -m bench core` (or `python -m bench.bench_core`).
"""

from __future__ import annotations

import time

import numpy as np

from spsbench.grading import GradeRequest, GraderPool, GradingPolicy
from spsbench.metrics import pass_at_k, report_ks, summarize

SAMPLES = 10_000
PROBLEMS = 30
GRADING_TARGET = 500          # samples/s on typical outputs, 2 workers
PASS_AT_K_TARGET = 1.0        # seconds for 10^6 (n, c, k) triples
FILLER = ("We consider the residues modulo $7$ and note that $a^2 + b^2 \\equiv 0$. "
          "Then $\\frac{n(n+1)}{2} = 3k$, so by the pigeonhole principle there are at least $\\binom{5}{2}$ pairs. ")


def synthetic_outputs(seed: int = 0) -> list[GradeRequest]:
    """AIME-like: 30 problems, ~1.5 kB of reasoning each, 30% right, wrong answers cluster (as real models' do),
    10% with no box, 3% stopped inside an unclosed <think>, a few written with `1\\,000` or a period."""
    rng = np.random.default_rng(seed)
    golds = rng.integers(0, 1000, PROBLEMS)
    wrong = rng.integers(0, 1000, (PROBLEMS, 8))
    requests = []
    for i in range(SAMPLES):
        p = i % PROBLEMS
        roll = rng.random()
        answer = golds[p] if roll < 0.3 else wrong[p, rng.integers(0, 8)] if roll < 0.8 else rng.integers(0, 1000)
        text = FILLER * int(rng.integers(6, 14))
        style = rng.random()
        if style < 0.10:
            ending = f"so I think it is {answer}."
        elif style < 0.13:
            text, ending = "<think>" + text, f"maybe \\boxed{{{answer}}}"
        elif style < 0.18:
            ending = f"The answer is $\\boxed{{{answer}.}}$"
        else:
            ending = f"Therefore the answer is $\\boxed{{{answer}}}$."
        requests.append(GradeRequest(text + ending, str(golds[p])))
    return requests


def _grading(console) -> None:
    requests = synthetic_outputs()
    start = time.perf_counter()
    with GraderPool(workers=2, policy=GradingPolicy()) as pool:
        pool.grade(GradeRequest("\\boxed{1}", "1"))
        startup = time.perf_counter() - start
        start = time.perf_counter()
        grades = pool.grade_many(requests, progress=True)
        warm = time.perf_counter() - start
        hits, graded = pool.stats["cache_hits"], pool.stats["graded"] - 1
        unique = [GradeRequest(f"\\boxed{{{i}}}", str(i % 997)) for i in range(2000)]   # every answer new
        start = time.perf_counter()
        pool.grade_many(unique)
        cold = time.perf_counter() - start
    correct = sum(g.correct for g in grades) / len(grades)
    rate = len(requests) / warm
    console.print(f"grading {len(requests)} AIME-style outputs: [bold]{rate:,.0f} samples/s[/] "
                  f"(cache hit rate {hits / graded:.1%}, accuracy {correct:.1%}; pool start {startup:.2f} s)")
    console.print(f"verifying {len(unique)} distinct answers (no cache help): {len(unique) / cold:,.0f} answers/s")
    verdict(console, rate >= GRADING_TARGET, "grading typical outputs",
            f"{rate:,.0f} samples/s", f">= {GRADING_TARGET} samples/s")


def _metrics(console) -> None:
    rng = np.random.default_rng(0)
    n = rng.integers(1, 1025, 1_000_000)
    c = rng.integers(0, n + 1)
    k = np.minimum(n, 2 ** rng.integers(0, 11, n.size))
    start = time.perf_counter()
    pass_at_k(n, c, k)
    powers = time.perf_counter() - start
    k_any = rng.integers(1, n + 1)
    start = time.perf_counter()
    pass_at_k(n, c, k_any)
    anyk = time.perf_counter() - start
    console.print(f"pass@k over 10^6 (n, c, k) triples: [bold]{powers:.3f} s[/] with power-of-two k, "
                  f"{anyk:.3f} s with arbitrary k (target < 1 s)")
    verdict(console, powers < PASS_AT_K_TARGET, "pass@k, 10^6 triples, power-of-two k",
            f"{powers:.3f} s", f"< {PASS_AT_K_TARGET:g} s")
    verdict(console, anyk < PASS_AT_K_TARGET, "pass@k, 10^6 triples, arbitrary k",
            f"{anyk:.3f} s", f"< {PASS_AT_K_TARGET:g} s")
    start = time.perf_counter()
    summarize([128] * 30, rng.integers(0, 129, 30), report_ks(128), n_boot=1000, seed=0)
    console.print(f"summarize 30 problems x 1000 bootstraps x 8 ks: {time.perf_counter() - start:.3f} s")


def verdict(console, ok: bool, what: str, figure: str, target: str) -> None:
    """One greppable line per target: `PASS <what>: <figure> (target <target>)`."""
    mark = "[green]PASS[/]" if ok else "[red]FAIL[/]"
    console.print(f"{mark} {what}: {figure} (target {target})")


def run(console) -> None:
    _metrics(console)
    _grading(console)


if __name__ == "__main__":
    from rich.console import Console

    run(Console())
