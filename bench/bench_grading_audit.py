"""Grading false-positive audit: >= 10,000 sympy-generated (gold, answer) pairs, equivalent renderings and
near misses (bench/grading_audit.py), graded by our default policy in a 2-worker pool. Targets: false
positives 0, false negatives <= 1%. Then the corpus, ours beside math-verify's own default policy.

A report, not an assertion (like every bench): each target gets a PASS/FAIL line, and every failure
class is listed so that it can become a corpus case. Alone: `python -m bench grading_audit`.
"""

from __future__ import annotations

import time

from bench.bench_core import verdict
from bench.grading_audit import audit_pairs, score_pairs
from bench.grading_corpus import (
    disagreements,
    grade_math_verify_default,
    grade_ours,
    load_corpus,
    verdict_class,
)

PAIRS = 10_000
SEED = 0
FN_TARGET = 0.01


def _audit(console) -> None:
    start = time.perf_counter()
    pairs = audit_pairs(PAIRS, SEED)
    made = time.perf_counter() - start
    start = time.perf_counter()
    score = score_pairs(pairs, workers=2)
    graded = time.perf_counter() - start
    console.print(f"audit: {len(pairs):,} pairs ({score.positives:,} equivalent, {score.negatives:,} near misses; "
                  f"seed {SEED}) generated in {made:.1f} s, graded in {graded:.1f} s")
    verdict(console, not score.false_positives, "audit false positives",
            f"{len(score.false_positives)} / {score.negatives:,} ({score.fp_rate:.3%})", "0")
    verdict(console, score.fn_rate <= FN_TARGET, "audit false negatives",
            f"{len(score.false_negatives)} / {score.positives:,} ({score.fn_rate:.3%})", f"<= {FN_TARGET:.0%}")
    for (kind, family, variant), count in score.classes().most_common(20):
        console.print(f"  {count:5d}  {kind}: {family} written {variant}")
    for pair in score.false_positives[:5]:
        console.print(f"  FP example: gold {pair.gold!r}, completion ...{pair.completion[-80:]!r}")


def _corpus(console) -> None:
    version, cases = load_corpus()
    ours, theirs = grade_ours(cases), grade_math_verify_default(cases)
    agree_ours = sum(o == c.expected for o, c in zip(ours, cases, strict=True))
    agree_mv = sum(t == c.expected for t, c in zip(theirs, cases, strict=True))
    fp_mv = sum(verdict_class(c.expected, t) == "false positive" for t, c in zip(theirs, cases, strict=True))
    console.print(f"corpus v{version}: {len(cases)} cases; ours agree with the expected verdict on {agree_ours}, "
                  f"math-verify's default policy on {agree_mv} ({fp_mv} false positives)")
    verdict(console, agree_ours == len(cases), "corpus verdicts", f"{agree_ours}/{len(cases)}", "all")
    for cls, counts in sorted(disagreements(cases, ours, theirs).items()):
        console.print(f"  {cls}: " + ", ".join(f"{n} {kind}" for kind, n in counts.most_common()))


def run(console) -> None:
    _corpus(console)
    _audit(console)


if __name__ == "__main__":
    from rich.console import Console

    run(Console())
