"""The paper's diagnostics of squeezing and diversity, written into the results store.

Owned by the leaderboard work. Three metrics per (model, task), stored with `Store.add_diagnostic`:

* `greedy_logprob` (paper Table 6): each model greedily decodes every prompt; the value is the mean over
  prompts of the **per-token mean** log-probability of that greedy completion under the same model
  (raw logits, temperature 1; the EOS token counts when generated). The per-sequence sum is kept in
  details. Higher (less negative) = more probability squeezed onto the greedy path.
* `token_entropy`: mean entropy (nats) of the model's full next-token distribution (temperature 1) at
  every position of `n` sampled completions per prompt (sampled at temperature 1, as in RL rollouts),
  averaged over all sampled tokens. Lower = sharper policy.
* `pairwise_similarity` (paper Table 4): for each problem, the mean Jaccard similarity of the word
  3-gram sets of every pair of its completions, averaged over problems; in [0, 1], lower = more
  diverse. Computed from the completions already in the store when the model was evaluated on the task
  (no model needed), otherwise from the completions sampled for `token_entropy`.

torch / transformers are imported lazily, inside the functions that run a model.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spsbench.errors import EngineError, SpsbenchError

WORD_RE = re.compile(r"\w+|[^\w\s]")
SHINGLE = 3


# ---------------------------------------------------------------------------- diversity


def shingles(text: str, size: int = SHINGLE) -> frozenset[tuple[str, ...]]:
    """Word n-grams (words and punctuation marks are tokens; case kept). Short texts give one shingle."""
    words = WORD_RE.findall(text)
    if len(words) < size:
        return frozenset([tuple(words)])
    return frozenset(tuple(words[i : i + size]) for i in range(len(words) - size + 1))


def jaccard(a: frozenset, b: frozenset) -> float:
    union = len(a | b)
    return 1.0 if union == 0 else len(a & b) / union


def pairwise_similarity(texts: Sequence[str]) -> float | None:
    """Mean Jaccard similarity of word-3-gram sets over all pairs; None for fewer than two texts."""
    sets = [shingles(t) for t in texts]
    pairs = [jaccard(a, b) for a, b in itertools.combinations(sets, 2)]
    return sum(pairs) / len(pairs) if pairs else None


def similarity_by_problem(groups: dict[str, list[str]]) -> tuple[float, dict[str, Any]]:
    """Mean over problems (with >= 2 completions) of `pairwise_similarity`."""
    per = {pid: s for pid, texts in sorted(groups.items()) if (s := pairwise_similarity(texts)) is not None}
    if not per:
        raise SpsbenchError("pairwise similarity needs at least two completions of one problem")
    value = sum(per.values()) / len(per)
    return value, {
        "measure": f"jaccard_word{SHINGLE}gram",
        "problems": len(per),
        "completions_per_problem": max(len(t) for t in groups.values()),
    }


def group_samples(samples: Iterable[dict[str, Any]], limit: int | None = None) -> dict[str, list[str]]:
    """Store samples -> {problem_id: completions in sample order}, first `limit` problems by id."""
    groups: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for s in samples:
        groups[str(s["problem_id"])].append((int(s["sample_idx"]), str(s["completion"])))
    keep = sorted(groups)[:limit] if limit else sorted(groups)
    return {pid: [text for _, text in sorted(groups[pid])] for pid in keep}


# ---------------------------------------------------------------------------- model stats


@dataclass
class LoadedModel:
    path: str
    model: Any
    tokenizer: Any
    chat_template: str = "auto"

    def encode(self, prompt: str) -> list[int]:
        from spsbench.engines.common import encode_prompt

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
            f"diagnose: cannot load model {path!r}: {str(exc).strip().splitlines()[0]}"
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


# ---------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    path: str
    run_name: str | None = None
    step: int | None = None
    algo: str | None = None
    base_model: str | None = None
    is_base: bool = False


def resolve_targets(target: str, known: Sequence[Any], base: str | None) -> list[Target]:
    """A run name in the store, a run folder with checkpoint-*/ subfolders, or one model; base model first."""
    found = [
        Target(m.path, m.run_name, m.step, m.algo, m.base_model)
        for m in sorted(known, key=lambda m: (m.step or 0, m.id))
        if m.run_name == target
    ]
    folder = Path(target)
    if not found and folder.is_dir():
        from spsbench.scan import checkpoints, run_tags

        # The trainer's run info names the run, its algorithm and its base model (diagnosed alongside).
        tags = [(p, run_tags(folder, step)) for step, p in checkpoints(folder)]
        found = [Target(str(p.resolve()), t.run_name, t.step, t.algo, t.base_model) for p, t in tags]
    if not found:
        from spsbench.models import resolve_model

        found = [Target(resolve_model(target))]
    return _base_targets(base, found) + found


def _base_targets(explicit: str | None, found: list[Target]) -> list[Target]:
    """--base, else the run's recorded base model when it can be loaded here (a hub id may not be cached)."""
    from spsbench.models import resolve_model

    if explicit:
        return [Target(resolve_model(explicit), is_base=True)]
    recorded = next((t.base_model for t in found if t.base_model), None)
    if recorded is None:
        return []
    try:
        return [Target(resolve_model(recorded), is_base=True)]
    except EngineError:
        return []


def _model_id(store: Any, known: Sequence[Any], t: Target) -> int:
    """Reuse the store's row for this path (keeps its run tags); otherwise register the model."""
    for m in known:
        if m.path == t.path and (m.run_name == t.run_name or t.run_name is None):
            return int(m.id)
    from spsbench.models import weights_hash

    digest = weights_hash(t.path) if Path(t.path).is_dir() else ""
    return int(
        store.upsert_model(
            t.path, digest, run_name=t.run_name, step=t.step, algo=t.algo, base_model=t.base_model
        )
    )


def _stored_completions(
    store: Any, model_id: int, task: str, limit: int | None
) -> dict[str, list[str]] | None:
    """Completions of this model's largest finished evaluation of `task`, grouped by problem."""
    evals = [e for e in store.evaluations(status="done") if e.model_id == model_id and e.task == task]
    if not evals:
        return None
    ev = max(evals, key=lambda e: (e.n, -e.id))
    return group_samples(store.samples(ev.id), limit)


# ---------------------------------------------------------------------------- orchestration


@dataclass(frozen=True)
class DiagResult:
    path: str
    model_id: int
    task: str
    metric: str
    value: float
    details: dict[str, Any]


def run_diagnostics(
    target: str,
    tasks: Sequence[str],
    store: Any,
    known: Sequence[Any],
    *,
    n: int = 4,
    data: dict[str, str] | None = None,
    limit: int | None = None,
    base: str | None = None,
    max_tokens: int = 256,
    seed: int = 0,
    progress: bool = True,
) -> list[DiagResult]:
    """Compute the three diagnostics for every target model × task and add them to the store."""
    from spsbench.models import check_loadable
    from spsbench.tasks import load_task

    loaded = {t: load_task(t, data=(data or {}).get(t), limit=limit) for t in tasks}
    targets = resolve_targets(target, known, base)
    results: list[DiagResult] = []
    with _progress(progress, len(targets) * len(tasks)) as advance:
        for t in targets:
            model_id = _model_id(store, known, t)
            if Path(t.path).is_dir():  # a partial checkpoint save -> one clear line, not a traceback
                check_loadable(t.path)
            lm = load_model(t.path)
            for task, spec in loaded.items():
                prompts = [p.prompt for p in spec.problems]
                results += _diagnose_one(store, lm, model_id, task, prompts, n, max_tokens, seed, limit)
                advance(f"{Path(t.path).name} · {task}")
    return results


def _diagnose_one(
    store: Any,
    lm: LoadedModel,
    model_id: int,
    task: str,
    prompts: list[str],
    n: int,
    max_tokens: int,
    seed: int,
    limit: int | None,
) -> list[DiagResult]:
    greedy, g_details = greedy_logprob(lm, prompts, max_tokens)
    entropy, e_details, sampled = token_entropy(lm, prompts, n, max_tokens, seed)
    groups = _stored_completions(store, model_id, task, limit)
    source = "store"
    if not groups or all(len(v) < 2 for v in groups.values()):
        groups, source = {str(i): texts for i, texts in enumerate(sampled)}, "sampled for token_entropy"
    sim, s_details = similarity_by_problem(groups) if any(len(v) > 1 for v in groups.values()) else (None, {})
    out = [
        DiagResult(lm.path, model_id, task, "greedy_logprob", greedy, g_details),
        DiagResult(lm.path, model_id, task, "token_entropy", entropy, e_details),
    ]
    if sim is not None:
        out.append(
            DiagResult(lm.path, model_id, task, "pairwise_similarity", sim, s_details | {"source": source})
        )
    for r in out:
        store.add_diagnostic(r.model_id, r.task, r.metric, r.value, r.details)
    return out


class _progress:
    """Rich progress bar over model × task steps (silent when disabled)."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total, self.bar = enabled, total, None

    def __enter__(self):
        if self.enabled:
            from rich.progress import Progress

            self.bar = Progress(transient=True)
            self.bar.start()
            self.task = self.bar.add_task("diagnostics", total=self.total)
        return self.advance

    def advance(self, label: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=label)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
