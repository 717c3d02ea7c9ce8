"""How exact the engine's own per-token numbers are, which `spsbench diagnose` uses instead of a second pass.

The bench_diagnose setting (16 arith problems, greedy + 4 samples at temperature 1, <= 96 tokens) is generated
once by the engine with `GenRequest.scores`, then the same token ids are scored again by the float32 scorer
(`diagnostics.model_stats`, transformers, float32 throughout). Printed: per-token max and mean |difference|
of the greedy path's log-probs and of the sampled positions' entropies, and the difference this makes to the
two diagnostics (greedy_logprob, token_entropy). SPSBENCH_BENCH_ENGINE (default auto) and SPSBENCH_BENCH_DTYPE
(the engine's dtype option, default auto: bf16 only on CPUs with native bf16) choose the engine.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from bench.bench_diagnose import MAX_TOKENS, PROBLEMS, N, cpu_name
from bench.bench_eval import _model

# Reported, with a verdict against these bounds (what "exact enough" means for a diagnostic whose
# differences between checkpoints are ~0.01-0.1 nats): per diagnostic value.
BOUND = {"float32": 1e-3, "bfloat16": 2e-2}


def run(console: Any) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    engine_name = os.environ.get("SPSBENCH_BENCH_ENGINE", "auto")
    dtype = os.environ.get("SPSBENCH_BENCH_DTYPE", "auto")
    with tempfile.TemporaryDirectory() as tmp:
        model, label = _model(Path(tmp))
        greedy, samples, info = _generate(model, engine_name, dtype)
        reference = _reference(model, greedy, samples)
    lp = _compare(greedy, reference["greedy"], kind=0)
    ent = _compare(samples, reference["samples"], kind=1)
    console.print(f"model: {label}; engine {info['engine']} ({info['dtype']}); CPU: {cpu_name()}; reference: the "
                  "float32 scorer on the same token ids")
    bound = BOUND.get(str(info["dtype"]), BOUND["bfloat16"])
    for name, (worst, mean, metric_delta, tokens) in (("greedy log-prob", lp), ("token entropy", ent)):
        console.print(f"{name}: {tokens} tokens, per token max |Δ| {worst:.2e}, mean |Δ| {mean:.2e}; the diagnostic "
                      f"differs by {metric_delta:.2e} (bound {bound:g}) {_verdict(metric_delta <= bound)}")


def _generate(model: str, engine_name: str, dtype: str) -> tuple[list[Any], list[Any], dict[str, Any]]:
    from transformers import AutoTokenizer

    from spsbench.diagnostics.sampling import draw
    from spsbench.diagnostics.settings import DiagConfig
    from spsbench.engines import load_engine
    from spsbench.tasks import load_task

    cfg = DiagConfig(n=N, max_tokens=MAX_TOKENS, limit=PROBLEMS)
    problems = load_task("arith", limit=PROBLEMS).problems
    tokenizer = AutoTokenizer.from_pretrained(model)
    engine = load_engine(engine_name, model, dtype=dtype)
    try:
        info = engine.describe()
        greedy, samples = draw(engine, problems, cfg.sampling(), tokenizer, tokenizer.eos_token_id, greedy=True)
    finally:
        engine.close()
    return [(p, d) for p, d in zip(problems, greedy, strict=True)], \
        [(p, d) for p, d in zip(problems, samples, strict=True)], info


def _reference(model: str, greedy: list[Any], samples: list[Any]) -> dict[str, list[Any]]:
    from spsbench.diagnostics.model_stats import load_model, score_pairs, scoring_threads

    lm = load_model(model, dtype="float32")
    out = {}
    for kind, drawn in (("greedy", greedy), ("samples", samples)):
        pairs = [(lm.encode(p.prompt), ids) for p, d in drawn for ids in d.ids]
        with scoring_threads():
            out[kind] = score_pairs(lm, pairs)
    return out


def _compare(engine: list[Any], reference: list[Any], kind: int) -> tuple[float, float, float, int]:
    """(max |Δ| per token, mean |Δ| per token, |Δ| of the diagnostic, tokens) for log-probs (kind 0, the
    per-token mean averaged over sequences) or entropies (kind 1, the mean over all tokens)."""
    mine = [list(x) for _, d in engine for x in (d.logprobs if kind == 0 else d.entropies)]
    ref = [r[kind] for r in reference]
    deltas = [abs(a - b) for m, r in zip(mine, ref, strict=True) for a, b in zip(m, r, strict=True)]
    value = _per_sequence_mean if kind == 0 else _per_token_mean
    return max(deltas, default=0.0), sum(deltas) / max(1, len(deltas)), abs(value(mine) - value(ref)), len(deltas)


def _per_sequence_mean(seqs: list[list[float]]) -> float:
    """greedy_logprob: the per-token mean of each sequence, averaged over sequences."""
    kept = [s for s in seqs if s]
    return sum(sum(s) / len(s) for s in kept) / max(1, len(kept))


def _per_token_mean(seqs: list[list[float]]) -> float:
    """token_entropy: the mean over every token of every sequence."""
    return sum(map(sum, seqs)) / max(1, sum(map(len, seqs)))


def _verdict(ok: bool) -> str:
    return "[green]PASS[/]" if ok else "[red]FAIL[/]"
