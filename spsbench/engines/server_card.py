"""What an OpenAI-compatible server says about a served model before the engine starts: its card
(GET /models: `max_model_len` from vLLM, the `root` folder it serves) and prompt token counts.

Prompts are counted with the server's POST /tokenize (vLLM), with the same endpoint choice the engine
makes (chat messages or a raw prompt), else with the tokenizer of the card's `root` when that is a
local folder. A server that reports a context but cannot count prompts is said once: max_tokens is then
not checked against the context.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spsbench import quiet
from spsbench.engines.budget import load_tokenizer, longest_prompt
from spsbench.engines.servers import DEFAULT_BASE_URL


class ServerPromptCounter:
    """A served model's context and prompt lengths; nothing is asked of the server before `context`."""

    def __init__(self, model: str, options: Mapping[str, Any]) -> None:
        self.model, self.options = model, options
        self.base_url = str(options.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        self.endpoint = str(options.get("endpoint") or "auto")
        self._warned_uncounted = False

    @property
    def context(self) -> int | None:
        value = self.card.get("max_model_len")
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    def longest(self, prompts: list[str], chat_template: str) -> int | None:
        longest = self._count(prompts, chat_template)
        if longest is None and not self._warned_uncounted:
            self._warned_uncounted = True
            quiet.warn(f"{self.base_url} reports a {self.context}-token context but cannot count prompt tokens "
                       "(no /tokenize, no local tokenizer): max_tokens is not checked against it")
        return longest

    def close(self) -> None:
        if "client" in self.__dict__:
            self.client.close()

    @functools.cached_property
    def client(self) -> Any:
        import httpx

        key = self.options.get("api_key") or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        return httpx.Client(headers={"Authorization": f"Bearer {key}"},
                            timeout=float(self.options.get("connect_timeout") or 5.0) * 6)

    @functools.cached_property
    def card(self) -> dict[str, Any]:
        """The model's card from GET /models ({} when unreachable: the engine reports that itself)."""
        try:
            data = self.client.get(f"{self.base_url}/models").json().get("data", [])
        except Exception:  # noqa: BLE001 - the engine's own probe gives the one-line error
            return {}
        return next((m for m in data if isinstance(m, dict) and m.get("id") == self.model), {})

    def _count(self, prompts: list[str], chat_template: str) -> int | None:
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
