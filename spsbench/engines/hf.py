"""The Hugging Face transformers engine: batched, left-padded decoding with a KV cache, on CPU or GPU.

It runs its own small sampling loop instead of `model.generate` for two reasons:

* per-sample seeds: `generate` draws every row from one global RNG, so a sample's text would depend on
  which other samples share its batch. Here each row draws from its own `torch.Generator` seeded with the
  sample's seed, so the random stream of a sample depends only on its seed. (Logits can still differ in
  the last float bits with batch composition / padding, so bit-identical text is guaranteed for the same
  batch composition and near-certain otherwise; vLLM has the same caveat.)
* identical sampling semantics to vLLM and OpenAI servers: temperature + top_p only (no hidden top_k from
  a model's generation_config), temperature 0 = greedy, stop strings trimmed from the text.

Finished rows are dropped from the batch (and the KV cache) so long tails do not pay for done samples.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
from collections.abc import Iterable, Iterator
from typing import Any

from spsbench.config import SamplingConfig
from spsbench.engines.base import Completion, GenRequest, Sample, flatten, local_identity
from spsbench.engines.chat import encode_prompt, eos_token_ids, trim_at_stop
from spsbench.engines.local import LocalEngine
from spsbench.engines.options import Opt, check_options
from spsbench.errors import CheckpointError, EngineError, one_line
from spsbench.models import resolve_model
from spsbench.system import cpu_auto_dtype, package_versions

OPTIONS: dict[str, Any] = {
    "dtype": "auto",        # auto (bf16 on GPUs and on CPUs with native bf16, else fp32) | bf16 | fp16 | fp32
    "batch_size": 16,       # samples decoded together
    "device": "auto",       # auto | cpu | cuda | cuda:N
    "trust_remote_code": False,
    # torch intra-op threads (process-wide). None keeps torch's default. Measured on 2 shared cores:
    # when other processes compete for the cores, 1 thread ran ~8x faster than 2 (OpenMP spin-waits).
    "num_threads": None,
}
KINDS: dict[str, Opt] = {
    "dtype": Opt(str, choices=("auto", "bf16", "bfloat16", "fp16", "float16", "fp32", "float32")),
    "batch_size": Opt(int, low=1),
    "device": Opt(str),
    "trust_remote_code": Opt(bool),
    "num_threads": Opt(int, low=1, nullable=True),
}
DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16",
          "fp32": "float32", "float32": "float32"}


class HFEngine(LocalEngine):
    """transformers AutoModelForCausalLM behind the Engine interface."""

    name = "hf"
    OPTIONS = OPTIONS
    KINDS = KINDS

    def __init__(self, model: str, **options: Any) -> None:
        opts = check_options(self.name, options, OPTIONS, KINDS)
        import torch

        self._prev_threads = torch.get_num_threads()
        if opts["num_threads"] is not None:
            torch.set_num_threads(int(opts["num_threads"]))
        self.torch = torch
        self.model_id = resolve_model(model)
        self.device = _pick_device(str(opts["device"]))
        self.dtype = _pick_dtype(str(opts["dtype"]), self.device)
        self.batch_size = int(opts["batch_size"])
        remote = bool(opts["trust_remote_code"])
        self.tokenizer, self.model = _load(self.model_id, self.dtype, self.device, remote)
        self.pad_id = _pad_id(self.tokenizer, self.model)
        self.eos_ids = eos_token_ids(self.model.config, self.model.generation_config, self.tokenizer)
        self._identity: dict[str, Any] | None = None

    # ------------------------------------------------------------------ Engine interface

    def describe(self) -> dict:
        if self._identity is None:
            self._identity = local_identity(self.model_id)
        return {"engine": self.name, **self._identity, "dtype": str(self.dtype).removeprefix("torch."),
                "device": str(self.device), "batch_size": self.batch_size,
                "num_threads": self.torch.get_num_threads(),
                "versions": package_versions("spsbench", "torch", "transformers")}

    def generate(self, requests: Iterable[GenRequest], sampling: SamplingConfig) -> Iterator[Completion]:
        samples = flatten(requests)
        encoded = {p: encode_prompt(self.tokenizer, p, sampling.chat_template)
                   for p in {s.prompt for s in samples}}
        # Similar prompt lengths together: less padding. The order does not affect a sample's RNG stream.
        samples.sort(key=lambda s: (len(encoded[s.prompt]), s.key, s.sample_idx))
        for start in range(0, len(samples), self.batch_size):
            batch = samples[start:start + self.batch_size]
            yield from self._generate_batch(batch, [encoded[s.prompt] for s in batch], sampling)

    def close(self) -> None:
        self.model = None
        gc.collect()
        self.torch.set_num_threads(self._prev_threads)   # num_threads is process-wide; undo it

    # ------------------------------------------------------------------ decoding loop

    def _generate_batch(self, batch: list[Sample], prompts: list[list[int]],
                        sampling: SamplingConfig) -> Iterator[Completion]:
        torch = self.torch
        input_ids, mask = _left_pad(torch, prompts, self.pad_id, self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        gens = [torch.Generator(device=self.device).manual_seed(s.seed) for s in batch]
        tokens: list[list[int]] = [[] for _ in batch]
        reasons: list[str | None] = [None] * len(batch)
        active = list(range(len(batch)))
        scores = _Scores(len(batch)) if any(s.scores for s in batch) else None
        with torch.inference_mode():
            out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                             use_cache=True, logits_to_keep=1)
            cache, last_pos = out.past_key_values, positions[:, -1]
            for step in range(sampling.max_tokens):
                nxt = self._sample(out.logits[:, -1, :], [gens[i] for i in active],
                                   [batch[i].temperature_in(sampling) for i in active], sampling)
                if scores is not None:
                    scores.add(torch, out.logits[:, -1, :], nxt, active)
                for i, token in zip(active, nxt.tolist(), strict=True):   # one device sync per step
                    reasons[i] = self._append(tokens[i], token, sampling, step)
                keep = [row for row, i in enumerate(active) if reasons[i] is None]
                if not keep:
                    break
                if len(keep) < len(active):
                    sel = torch.tensor(keep, device=self.device)
                    cache.batch_select_indices(sel)
                    mask, last_pos, nxt = mask[sel], last_pos[sel], nxt[sel]
                    active = [active[row] for row in keep]
                mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
                last_pos = last_pos + 1
                out = self.model(input_ids=nxt[:, None], attention_mask=mask, position_ids=last_pos[:, None],
                                 past_key_values=cache, use_cache=True)
        for i, s in enumerate(batch):
            completion = self._completion(s, len(prompts[i]), tokens[i], reasons[i] or "length", sampling)
            yield scores.attach(completion, i) if scores is not None and s.scores else completion

    def _sample(self, logits: Any, gens: list[Any], temps: list[float], sampling: SamplingConfig) -> Any:
        """One token per row; a row at temperature 0 is greedy (rows may differ: `GenRequest.temperature`)."""
        torch = self.torch
        logits = logits.float()
        greedy = logits.argmax(dim=-1)
        if not any(temps):
            return greedy
        scaled = logits / torch.tensor([t or 1.0 for t in temps], device=logits.device)[:, None]
        if sampling.top_p < 1.0:
            scaled = _top_p_filter(torch, scaled, sampling.top_p)
        probs = torch.softmax(scaled, dim=-1)
        # One draw per row from that row's own generator: a sample's randomness depends only on its seed.
        return torch.stack([torch.multinomial(probs[row], 1, generator=g)[0] if t else greedy[row]
                            for row, (g, t) in enumerate(zip(gens, temps, strict=True))])

    def _append(self, toks: list[int], token: int, sampling: SamplingConfig, step: int) -> str | None:
        """Add a token; return the finish reason once the sample is done, else None."""
        toks.append(token)
        if token in self.eos_ids:
            return "stop"
        if sampling.stop and self._tail_has_stop(toks, sampling.stop):
            return "stop"
        return "length" if step + 1 >= sampling.max_tokens else None

    def _tail_has_stop(self, toks: list[int], stops: tuple[str, ...]) -> bool:
        # Decoding only a tail window keeps the check O(1) per step; a stop string spans at most
        # len(stop) tokens, plus slack for tokens that decode to partial characters.
        window = max(len(s) for s in stops) + 8
        tail = self.tokenizer.decode(toks[-window:], skip_special_tokens=False)
        return any(s in tail for s in stops)

    def _completion(self, s: Sample, n_prompt: int, toks: list[int], reason: str,
                    sampling: SamplingConfig) -> Completion:
        body = toks[:-1] if toks and toks[-1] in self.eos_ids else toks
        text = self.tokenizer.decode(body, skip_special_tokens=True)
        text, _ = trim_at_stop(text, sampling.stop)
        return Completion(key=s.key, sample_idx=s.sample_idx, seed=s.seed, text=text,
                          prompt_tokens=n_prompt, completion_tokens=len(toks), finish_reason=reason,
                          token_ids=tuple(toks))


class _Scores:
    """Per row of a batch: each generated token's log-prob and the entropy of the distribution it came from
    (raw logits, temperature 1, float32), for requests with GenRequest.scores (diagnose)."""

    def __init__(self, rows: int) -> None:
        self.logprobs: list[list[float]] = [[] for _ in range(rows)]
        self.entropies: list[list[float]] = [[] for _ in range(rows)]

    def add(self, torch: Any, logits: Any, chosen: Any, active: list[int]) -> None:
        logp = torch.log_softmax(logits.float(), dim=-1)
        token = logp.gather(-1, chosen[:, None]).squeeze(-1).tolist()
        entropy = (-(logp.exp() * logp).sum(-1)).tolist()
        for i, lp, h in zip(active, token, entropy, strict=True):
            self.logprobs[i].append(lp)
            self.entropies[i].append(h)

    def attach(self, completion: Completion, row: int) -> Completion:
        return dataclasses.replace(completion, token_logprobs=tuple(self.logprobs[row]),
                                   token_entropies=tuple(self.entropies[row]))


# ---------------------------------------------------------------------- helpers


def _pick_device(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EngineError(f"engine hf: device {name!r} requested but CUDA is not available")
    return torch.device(name)


def _pick_dtype(name: str, device: Any) -> Any:
    import torch

    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return getattr(torch, cpu_auto_dtype())     # bf16 only where the CPU computes it natively
    if name not in DTYPES:
        raise EngineError(f"engine hf: dtype must be auto|bf16|fp16|fp32, got {name!r}")
    return getattr(torch, DTYPES[name])


# What a checkpoint that passed the file checks can still raise while loading: transformers (OSError,
# ValueError, KeyError), torch (RuntimeError: size mismatch, bad storage), safetensors (SafetensorError:
# bad dtype or offsets in the header), a malformed config (TypeError, AttributeError). Each becomes one line.
LOAD_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, KeyError, RuntimeError, TypeError,
                                                AttributeError, ImportError)


def _load(model_id: str, dtype: Any, device: Any, trust_remote_code: bool) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(model_id, trust_remote_code=trust_remote_code)
            # Mismatched shapes are loaded (randomly initialised) and reported in `info` rather than raised
            # after a multi-line report, so the one-line error below can name the tensors.
            model, info = AutoModelForCausalLM.from_pretrained(
                model_id, dtype=dtype, trust_remote_code=trust_remote_code, output_loading_info=True,
                ignore_mismatched_sizes=True)
    except (*LOAD_ERRORS, _safetensor_error()) as exc:
        raise _load_error(model_id, exc) from exc
    check_loading_info(model_id, info, bool(getattr(model.config, "tie_word_embeddings", False)))
    return tokenizer, model.to(device).eval()


def check_loading_info(model_id: str, info: dict[str, Any], tied: bool) -> None:
    """Refuse a model whose weights do not cover its config: transformers would silently fill the gaps
    with random values and the evaluation would score noise. Only a tied lm_head may be absent."""
    mismatched = sorted(info.get("mismatched_keys") or (), key=lambda m: m[0])
    if mismatched:
        key, ckpt, model = mismatched[0]
        raise _checkpoint_error(model_id, f"{len(mismatched)} weight tensor(s) do not match the shapes in "
                                          f"config.json (e.g. {key}: checkpoint {list(ckpt)}, config "
                                          f"{list(model)})")
    missing = sorted(k for k in info.get("missing_keys") or () if not (tied and k.endswith("lm_head.weight")))
    if missing:
        raise _checkpoint_error(model_id, f"{len(missing)} weight tensor(s) the config needs are missing from "
                                          f"the weight files (e.g. {missing[0]})")


def _load_error(model_id: str, exc: BaseException) -> Exception:
    text = one_line(exc)
    return _checkpoint_error(model_id, f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def _checkpoint_error(model_id: str, reason: str) -> Exception:
    """CheckpointError for a local folder (a run-folder scan skips it), EngineError for a hub id."""
    from pathlib import Path

    if Path(model_id).is_dir():
        return CheckpointError(f"{model_id}: cannot load the model: {reason}")
    return EngineError(f"engine hf: cannot load model {model_id!r}: {reason}")


def _safetensor_error() -> type[BaseException]:
    try:
        from safetensors import SafetensorError
    except ImportError:  # pragma: no cover - safetensors ships with transformers
        return OSError
    return SafetensorError


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers prints a multi-line load report for a bad checkpoint (the caller raises one line
    instead) and a "Loading weights" bar for a good one (spsbench draws its own progress)."""
    from transformers.utils import logging as hf_logging

    before, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)
        if bars:
            hf_logging.enable_progress_bar()


def _pad_id(tokenizer: Any, model: Any) -> int:
    for value in (tokenizer.pad_token_id, model.generation_config.pad_token_id, tokenizer.eos_token_id):
        if isinstance(value, int):
            return value
    return 0   # padded positions are masked out, so any valid id works


def _left_pad(torch: Any, prompts: list[list[int]], pad_id: int, device: Any) -> tuple[Any, Any]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[row, width - len(p):] = 1
    return ids.to(device), mask.to(device)


def _top_p_filter(torch: Any, logits: Any, top_p: float) -> Any:
    """Keep the smallest set of tokens whose probability mass reaches top_p (always keeps the top one)."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    drop = probs.cumsum(dim=-1) - probs > top_p
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
