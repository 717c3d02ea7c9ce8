"""Per-model statistics computed with the model itself (torch): log-probabilities and entropies of
completions, greedy decoding and sampling for the squeezing and entropy diagnostics.

torch / transformers are imported lazily, inside the functions that run a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from spsbench.engines.chat import encode_prompt
from spsbench.errors import EngineError, one_line

# ---------------------------------------------------------------------------- model stats


@dataclass
class LoadedModel:
    path: str
    model: Any
    tokenizer: Any
    chat_template: str = "auto"

    def encode(self, prompt: str) -> list[int]:
        return encode_prompt(self.tokenizer, prompt, self.chat_template)

    @property
    def eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        ids = ids if isinstance(ids, list) else [ids]
        return {i for i in ids + [self.tokenizer.eos_token_id] if i is not None}


def load_model(path: str, chat_template: str = "auto") -> LoadedModel:
    """float32 on CPU, eval mode: diagnostics compare log-probs, so no reduced precision."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise EngineError(
            f"diagnose: cannot load model {path!r}: {one_line(exc)}"
        ) from None
    return LoadedModel(path, model.eval(), tokenizer, chat_template)


def _cut(ids: Sequence[int], eos: set[int]) -> list[int]:
    """Generated ids up to and including the first EOS (drops the padding after it)."""
    out = []
    for i in ids:
        out.append(int(i))
        if int(i) in eos:
            break
    return out


def token_stats(
    lm: LoadedModel, prompt_ids: list[int], completion_ids: list[int]
) -> tuple[list[float], list[float]]:
    """Per completion token: its log-probability and the entropy (nats) of the distribution it came from."""
    import torch

    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logits = lm.model(ids).logits[0, len(prompt_ids) - 1 : -1].float()
    logp = torch.log_softmax(logits, dim=-1)
    target = torch.tensor(completion_ids).unsqueeze(-1)
    token_logp = logp.gather(-1, target).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return token_logp.tolist(), entropy.tolist()


def batch_token_stats(
    lm: LoadedModel, prompt_ids: list[int], completions: Sequence[list[int]]
) -> list[tuple[list[float], list[float]]]:
    """`token_stats` for several completions of one prompt in one forward pass (right padding, which a
    causal model never attends to from the real tokens)."""
    import torch

    width = len(prompt_ids) + max(len(c) for c in completions)
    pad = lm.tokenizer.pad_token_id or 0
    rows = [prompt_ids + c + [pad] * (width - len(prompt_ids) - len(c)) for c in completions]
    mask = [[1] * (len(prompt_ids) + len(c)) + [0] * (width - len(prompt_ids) - len(c)) for c in completions]
    with torch.no_grad():
        logits = lm.model(torch.tensor(rows), attention_mask=torch.tensor(mask)).logits.float()
    logp = torch.log_softmax(logits[:, len(prompt_ids) - 1 : -1], dim=-1)
    entropy = -(logp.exp() * logp).sum(-1)
    out = []
    for i, c in enumerate(completions):
        token_logp = logp[i, : len(c)].gather(-1, torch.tensor(c).unsqueeze(-1)).squeeze(-1)
        out.append((token_logp.tolist(), entropy[i, : len(c)].tolist()))
    return out


def _generate(
    lm: LoadedModel,
    prompt_ids: list[int],
    max_tokens: int,
    *,
    n: int = 1,
    temperature: float = 0.0,
    seed: int = 0,
) -> list[list[int]]:
    import torch

    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else next(iter(lm.eos_ids), 0)
    kwargs = (
        {"do_sample": False}
        if temperature == 0
        else {
            "do_sample": True,
            "temperature": temperature,
            "top_p": 1.0,
            "top_k": 0,
            "num_return_sequences": n,
        }
    )
    # The model's generation_config may carry a repetition penalty or top-k/p (Qwen does): the
    # diagnostics are about the raw policy, so switch them off explicitly.
    kwargs["repetition_penalty"] = 1.0
    torch.manual_seed(seed)
    ids = torch.tensor([prompt_ids])
    with torch.no_grad():
        out = lm.model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens, pad_token_id=pad, **kwargs
        )
    return [_cut(seq[len(prompt_ids) :].tolist(), lm.eos_ids) for seq in out]


def greedy_logprob(
    lm: LoadedModel, prompts: Sequence[str], max_tokens: int = 256
) -> tuple[float, dict[str, Any]]:
    """Mean over prompts of the per-token mean log-prob of the model's own greedy completion."""
    per_token, per_seq, lengths = [], [], []
    for prompt in prompts:
        p_ids = lm.encode(prompt)
        c_ids = _generate(lm, p_ids, max_tokens)[0]
        logps, _ = token_stats(lm, p_ids, c_ids)
        per_token.append(sum(logps) / len(logps))
        per_seq.append(sum(logps))
        lengths.append(len(logps))
    return _mean(per_token), {
        "unit": "mean log-prob per token, averaged over prompts",
        "per_sequence_mean": _mean(per_seq),
        "mean_tokens": _mean(lengths),
        "prompts": len(per_token),
        "max_tokens": max_tokens,
    }


def token_entropy(
    lm: LoadedModel,
    prompts: Sequence[str],
    n: int = 4,
    max_tokens: int = 256,
    seed: int = 0,
    temperature: float = 1.0,
) -> tuple[float, dict[str, Any], list[list[str]]]:
    """Mean next-token entropy over all tokens of n sampled completions per prompt; also returns the texts."""
    total, count, texts = 0.0, 0, []
    for i, prompt in enumerate(prompts):
        p_ids = lm.encode(prompt)
        completions = _generate(lm, p_ids, max_tokens, n=n, temperature=temperature, seed=seed + i)
        for _, ent in batch_token_stats(lm, p_ids, completions):
            total, count = total + sum(ent), count + len(ent)
        texts.append([lm.tokenizer.decode(c, skip_special_tokens=True) for c in completions])
    details = {
        "unit": "nats per token, averaged over all sampled tokens",
        "samples_per_prompt": n,
        "sampling_temperature": temperature,
        "tokens": count,
        "prompts": len(prompts),
        "seed": seed,
    }
    return total / max(count, 1), details, texts


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


