"""Per-token statistics of given completions under a model (torch): log-probabilities and entropies,
scored in length-sorted batches, and the two diagnostics built from them.

Generation is not done here: the completions come from an evaluation engine (`diagnostics.sampling`) or
from stored evaluation samples. The engines return these statistics themselves while generating; the
scorer runs only for completions they could not give them for (stored texts, a multi-process vLLM). Scoring runs the model on many (prompt, completion) pairs at once, in
float32, or with its decoder body in bf16 when the engine generated in bf16 (the vocabulary projection,
log-softmax and entropy always in float32; see `load_model`):

* the completions of one prompt (a problem's greedy and sampled ones) share one run of the prompt and its
  KV cache, so each costs only its own tokens (prompts with a chat template are often as long as the
  completions); they are sorted by length and cut into batches of at most `batch_tokens` padded
  tokens, so memory is bounded whatever the number of completions;
* the decoder body runs once per batch, and the vocabulary projection (the largest tensor: positions x
  vocabulary) runs only on completion positions, in chunks of at most `max_logits` elements. A model
  whose body + head do not reproduce its own logits (a custom scaling we do not know) is scored with
  full logits instead: this is checked once per model on a short probe.

torch / transformers are imported lazily, inside the functions that run a model.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from spsbench.engines.chat import encode_prompt
from spsbench.errors import EngineError, one_line
from spsbench.stats import ratio_interval
from spsbench.system import busy_cpus

Pair = tuple[list[int], list[int]]              # (prompt ids, completion ids)
Scored = tuple[list[float], list[float]]        # per completion token: (log-prob, entropy in nats)
BATCH_TOKENS = 8192          # padded tokens per scoring forward (rows x width)
MAX_LOGITS = 1 << 25         # logits elements per projection chunk (128 MB in float32)
CI_METHOD = "95% percentile bootstrap over problems (2000 replicates, seed 0)"


@dataclass
class LoadedModel:
    path: str
    model: Any
    tokenizer: Any
    chat_template: str = "auto"
    _split: Any = field(default=None, repr=False)   # (body, head, cap) once checked; False = full logits
    device: str = "cpu"

    def encode(self, prompt: str) -> list[int]:
        return encode_prompt(self.tokenizer, prompt, self.chat_template)

    @property
    def eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        ids = ids if isinstance(ids, list) else [ids]
        return {i for i in ids + [self.tokenizer.eos_token_id] if i is not None}


def load_model(path: str, chat_template: str = "auto", dtype: str = "float32") -> LoadedModel:
    """The scorer, in eval mode, on the GPU when there is one.

    `dtype` "bfloat16" runs the decoder body in bf16 (as the engine that generated the completions did;
    about 2x faster on CPUs with native bf16) while the vocabulary projection, log-softmax and entropy stay
    in float32: the projection is where bf16 would cost most (a logit of 20 is only known to +-0.06)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise EngineError(f"diagnose: cannot load model {path!r}: {one_line(exc)}") from None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    lm = LoadedModel(path, model.eval().to(device), tokenizer, chat_template, device=device)
    lm._split = _check_split(lm) or False          # checked in float32, before any cast
    if dtype == "bfloat16":
        if lm._split:
            body, head, cap = lm._split
            lm._split = (body, _Float32Head(head), cap)
        model.to(torch.bfloat16)
    return lm


class _Float32Head:
    """The output projection on a float32 copy of its weights, whatever the body's dtype."""

    def __init__(self, head: Any) -> None:
        self.weight = head.weight.detach().float().clone()
        self.bias = None if getattr(head, "bias", None) is None else head.bias.detach().float().clone()

    def __call__(self, hidden: Any) -> Any:
        import torch

        return torch.nn.functional.linear(hidden.float(), self.weight, self.bias)


# ---------------------------------------------------------------------------- scoring


@contextlib.contextmanager
def scoring_threads(busy: float | None = None, cores: int | None = None) -> Iterator[int]:
    """torch CPU threads for the scoring pass, chosen as the vLLM engine's `cpu_threads=auto` chooses them:
    every core on a quiet machine, only the free ones while other processes keep cores busy. OpenMP threads
    spin-wait for a core another process holds: the same 40 completions took 325 s with 2 threads and 52 s
    with 1 on 2 cores at load ~7 (measured). OMP_NUM_THREADS, if set, wins; a GPU is left alone."""
    import torch

    if torch.cuda.is_available() or os.environ.get("OMP_NUM_THREADS"):
        yield torch.get_num_threads()
        return
    cores = cores or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    busy = busy_cpus() if busy is None else busy
    threads = cores if busy < 0.5 else max(1, min(cores, int(cores - busy + 0.5)))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


def score_pairs(
    lm: LoadedModel,
    pairs: Sequence[Pair],
    *,
    batch_tokens: int = BATCH_TOKENS,
    max_logits: int = MAX_LOGITS,
    on_batch: Callable[[int], None] | None = None,
) -> list[Scored]:
    """(log-probs, entropies) of every completion token of every pair, in the order given.

    Pairs that share a prompt (a problem's greedy and sampled completions) are scored together: the prompt
    runs once and its KV cache is shared by the completions, which then cost only their own tokens.
    `on_batch(count)` is called after each forward with the number of pairs it scored (progress)."""
    import torch

    out: list[Scored] = [([], []) for _ in pairs]
    with torch.no_grad():
        for prompt, members in _by_prompt(pairs).items():
            for chunk in _chunks(members, pairs, len(prompt), batch_tokens):
                comps = [pairs[i][1] for i in chunk]
                for i, scored in zip(chunk, _score_group(lm, list(prompt), comps, max_logits), strict=True):
                    out[i] = scored
                if on_batch is not None:
                    on_batch(len(chunk))
    return out


def token_stats(lm: LoadedModel, prompt_ids: list[int], completion_ids: list[int]) -> Scored:
    """Per completion token: its log-probability and the entropy (nats) of the distribution it came from."""
    return score_pairs(lm, [(prompt_ids, completion_ids)])[0]


def _by_prompt(pairs: Sequence[Pair]) -> dict[tuple[int, ...], list[int]]:
    """Indices of the non-empty completions of each distinct prompt, shortest completion first."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (p, c) in enumerate(pairs):
        if c:
            groups.setdefault(tuple(p), []).append(i)
    return {p: sorted(idx, key=lambda i: len(pairs[i][1])) for p, idx in groups.items()}


def _chunks(members: list[int], pairs: Sequence[Pair], prompt_len: int, batch_tokens: int) -> list[list[int]]:
    """Cut one prompt's completions (sorted by length) so rows x (prompt + longest row) <= batch_tokens."""
    chunks: list[list[int]] = []
    for i in members:
        width = prompt_len + len(pairs[i][1])   # sorted: the newest row is the widest
        if chunks and (len(chunks[-1]) + 1) * width <= batch_tokens:
            chunks[-1].append(i)
        else:
            chunks.append([i])
    return chunks


def _score_group(lm: LoadedModel, prompt: list[int], comps: list[list[int]], max_logits: int) -> list[Scored]:
    """The prompt once (its last position predicts every first token), then all completions on a copy of
    its KV cache, right-padded: a causal model never attends to the padding from the real tokens."""
    import torch

    split, dev = _split(lm), lm.device
    run = (lambda **kw: split[0](**kw).last_hidden_state) if split else (lambda **kw: lm.model(**kw).logits)
    first = lm.model(input_ids=torch.tensor([prompt], device=dev), use_cache=True) if not split else split[0](
        input_ids=torch.tensor([prompt], device=dev), use_cache=True)
    last = (first.last_hidden_state if split else first.logits)[0, -1:]
    cache = first.past_key_values
    cache.batch_repeat_interleave(len(comps))
    width, pad = max(len(c) for c in comps), lm.tokenizer.pad_token_id or 0
    ids = torch.tensor([c + [pad] * (width - len(c)) for c in comps], device=dev)
    mask = torch.tensor([[1] * (len(prompt) + len(c)) + [0] * (width - len(c)) for c in comps], device=dev)
    positions = torch.arange(len(prompt), len(prompt) + width, device=dev).expand(len(comps), -1)
    feats = run(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache)
    out = []
    for row, c in enumerate(comps):
        # Token j is predicted by the position before it: the prompt's last one for j = 0.
        predictors = torch.cat([last, feats[row, : len(c) - 1]])
        target = torch.tensor(c, device=dev)
        out.append(_chunked_stats(predictors, target, split[1], split[2], max_logits) if split
                   else _stats(predictors, target))
    return out


def _chunked_stats(hidden: Any, target: Any, head: Any, cap: float | None, max_logits: int) -> Scored:
    """Project to the vocabulary a chunk of positions at a time: positions x vocab is the largest tensor."""
    vocab = head.weight.shape[0]
    step = max(1, max_logits // vocab)
    logps: list[float] = []
    ents: list[float] = []
    for start in range(0, hidden.shape[0], step):
        logits = head(hidden[start:start + step])
        if cap:
            logits = cap * (logits / cap).tanh()
        lp, en = _stats(logits, target[start:start + step])
        logps += lp
        ents += en
    return logps, ents


def _stats(logits: Any, target: Any) -> Scored:
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)
    token_logp = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return token_logp.tolist(), entropy.tolist()


def _split(lm: LoadedModel) -> tuple[Any, Any, float | None] | None:
    """(decoder body, output head, logit soft-cap) when they reproduce the model's logits, else None
    (checked once per model, in float32, by `load_model`)."""
    if lm._split is None:
        lm._split = _check_split(lm) or False
    return lm._split or None


def _check_split(lm: LoadedModel) -> tuple[Any, Any, float | None] | None:
    import torch

    try:
        body, head = lm.model.get_decoder(), lm.model.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    if body is None or head is None or not hasattr(head, "weight"):
        return None
    cap = getattr(lm.model.config, "final_logit_softcapping", None)
    probe = torch.tensor([[0, 1, 2, 3]], device=lm.device).clamp(max=head.weight.shape[0] - 1)
    with torch.no_grad():
        full = lm.model(input_ids=probe).logits.float()
        try:
            mine = head(body(input_ids=probe).last_hidden_state).float()
        except (AttributeError, TypeError):
            return None
        if cap:
            mine = cap * (mine / cap).tanh()
    return (body, head, cap) if torch.allclose(full, mine, atol=1e-4, rtol=1e-4) else None


# ---------------------------------------------------------------------------- the two diagnostics


def greedy_summary(scored: Sequence[Scored]) -> tuple[float, dict[str, Any]]:
    """Mean over prompts of the per-token mean log-prob of each prompt's greedy completion (Table 6),
    with a 95% bootstrap interval over the prompts."""
    kept = [logps for logps, _ in scored if logps]
    per_token = [sum(x) / len(x) for x in kept]
    return _mean(per_token), {
        "unit": "mean log-prob per token, averaged over prompts",
        "per_sequence_mean": _mean([sum(x) for x in kept]),
        "mean_tokens": _mean([len(x) for x in kept]),
        "prompts": len(kept),
        "ci": list(ratio_interval(per_token, [1.0] * len(per_token))),
        "ci_method": CI_METHOD,
    }


def entropy_summary(groups: Sequence[Sequence[Scored]]) -> tuple[float, dict[str, Any]]:
    """Mean next-token entropy over every token of every sampled completion; `groups` holds each
    problem's completions, the unit of its 95% bootstrap interval."""
    sums = [sum(sum(ents) for _, ents in g) for g in groups]
    counts = [sum(len(ents) for _, ents in g) for g in groups]
    return sum(sums) / max(sum(counts), 1), {
        "unit": "nats per token, averaged over all sampled tokens",
        "tokens": sum(counts),
        "ci": list(ratio_interval(sums, counts)),
        "ci_method": CI_METHOD,
    }


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
