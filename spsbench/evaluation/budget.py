"""An evaluation's effective completion budget, resolved per task before the engine loads.

The context comes from the model's config (hf, vllm, auto; vLLM's `max_model_len` option wins) or, for
an OpenAI-compatible server, from the `max_model_len` its GET /models card reports (vLLM does; others
leave it unknown, and then nothing is clamped). Prompts are counted with the model's tokenizer and chat
template: locally as the engines encode them, on a server with its POST /tokenize (vLLM), else with
the tokenizer of the card's `root` when that is a local folder. The longest prompt of the whole task
counts, not of a `--limit` subset, so the effective budget (part of the evaluation's identity) is the
same for every subset and a longer run extends a shorter one.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any

from spsbench import quiet
from spsbench.config import SamplingConfig
from spsbench.engines.budget import completion_budget, context_length, load_tokenizer, longest_prompt
from spsbench.tasks import Task

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"


class BudgetResolver:
    """For one evaluate() call: the context and a token counter, each looked up at most once."""

    def __init__(self, engine: str, model_path: str, options: dict[str, Any]) -> None:
        self.engine, self.model_path, self.options = engine, model_path, options
        self._warned_uncounted = False

    def sampling_for(self, task: Task, sampling: SamplingConfig, warn: bool = True) -> SamplingConfig:
        """`sampling` with max_tokens clamped to what fits after the task's longest prompt (one warning)."""
        if self.context is None:
            return sampling
        longest = self._count([p.prompt for p in task.problems], sampling.chat_template)
        if longest is None:
            return sampling
        budget = completion_budget(sampling.max_tokens, self.context, longest, f"{task.spec.name}: max_tokens")
        if not budget.clamped:
            return sampling
        if warn:
            quiet.warn(budget.warning(f"{task.spec.name}: max_tokens"))
        return dataclasses.replace(sampling, max_tokens=budget.effective)

    @functools.cached_property
    def context(self) -> int | None:
        if self.engine == "openai":
            return self._server.context
        return context_length(self.model_path, self.options.get("max_model_len"))

    def _count(self, prompts: list[str], chat_template: str) -> int | None:
        if self.engine != "openai":
            return longest_prompt(self._tokenizer, prompts, chat_template)
        longest = self._server.longest(prompts, chat_template)
        if longest is None and not self._warned_uncounted:
            self._warned_uncounted = True
            quiet.warn(f"{self._server.base_url} reports a {self.context}-token context but cannot count prompt tokens "
                       "(no /tokenize, no local tokenizer): max_tokens is not checked against it")
        return longest

    def close(self) -> None:
        if "_server" in self.__dict__:
            self._server.client.close()

    @functools.cached_property
    def _tokenizer(self) -> Any:
        return load_tokenizer(self.model_path, bool(self.options.get("trust_remote_code", False)))

    @functools.cached_property
    def _server(self) -> _Server:
        return _Server(self.model_path.partition("#")[2], self.options)


class _Server:
    """What an OpenAI-compatible server says about a served model's context and prompt lengths."""

    def __init__(self, model: str, options: dict[str, Any]) -> None:
        import httpx

        self.model = model
        self.base_url = str(options.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        key = options.get("api_key") or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.endpoint = str(options.get("endpoint") or "auto")
        self.client = httpx.Client(headers={"Authorization": f"Bearer {key}"},
                                   timeout=float(options.get("connect_timeout") or 5.0) * 6)
        self.card = self._card()

    @property
    def context(self) -> int | None:
        value = self.card.get("max_model_len")
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    def _card(self) -> dict[str, Any]:
        """The model's card from GET /models ({} when unreachable: the engine reports that itself)."""
        try:
            data = self.client.get(f"{self.base_url}/models").json().get("data", [])
        except Exception:  # noqa: BLE001 - the engine's own probe gives the one-line error
            return {}
        return next((m for m in data if isinstance(m, dict) and m.get("id") == self.model), {})

    def longest(self, prompts: list[str], chat_template: str) -> int | None:
        counts = [self._tokenize(p, chat_template) for p in sorted(set(prompts))]
        if counts and None not in counts:
            return max(c for c in counts if c is not None)
        root = self.card.get("root")
        if isinstance(root, str) and Path(root).is_dir():
            return longest_prompt(load_tokenizer(root), prompts, chat_template)
        return None

    def _tokenize(self, prompt: str, chat_template: str) -> int | None:
        """vLLM's POST /tokenize (at the server root, beside /v1) with the engine's endpoint choice."""
        root = self.base_url.removesuffix("/v1")
        chat = chat_template != "off" and self.endpoint != "completions"
        bodies = [{"model": self.model, "messages": [{"role": "user", "content": prompt}],
                   "add_generation_prompt": True}] if chat else []
        if chat_template == "auto" and self.endpoint == "auto" or not chat:
            bodies.append({"model": self.model, "prompt": prompt})   # a model without a chat template
        for body in bodies:
            try:
                resp = self.client.post(f"{root}/tokenize", json=body)
                if resp.status_code == 200:
                    return int(resp.json()["count"])
            except Exception:  # noqa: BLE001 - no /tokenize: fall back to a local tokenizer, or unknown
                return None
        return None


__all__ = ["BudgetResolver"]
