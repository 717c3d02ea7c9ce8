"""The OpenAI-compatible HTTP engine: any model served by vLLM, SGLang, TGI, ... over /v1.

One HTTP request per sample (n=1 with the sample's `seed`), at most `concurrency` in flight per server,
results yielded as they arrive. 429, 5xx and connection errors are retried with exponential backoff +
jitter (honouring Retry-After); other 4xx answers are user errors and fail at once. Every server is
probed (`GET /models`) on start so an unreachable URL fails fast with one line naming it.

Several servers of the same model (`base_url` = `URL1,URL2,...`, e.g. one `spsbench serve` per GPU node)
share the samples (spsbench.engines.servers): each request goes to the least busy live server, and a
request whose server stops answering is retried on another one at once, so a server dying midway loses
and duplicates nothing. Each sample keeps its own seed, so the result does not depend on the number of
servers.

Endpoint (option `endpoint`, with the sampling config's chat_template):

* chat_template off -> /completions with the raw prompt; on -> /chat/completions (the server applies
  the model's template). A contradicting `endpoint` (off + chat, on + completions) is refused.
* chat_template auto + endpoint auto means what it means for the local engines, "the chat template
  if the model has one": /chat/completions first, and if the server answers that the model has no
  chat template (vLLM: HTTP 400 "... chat template ..."), /completions with the raw prompt for this and
  every later sample, with one warning line. endpoint=chat or endpoint=completions forces one.

Sampling semantics: spsbench's local engines sample with temperature + top_p only. A vLLM server
(>= 0.8, `--generation-config auto`, its default) also applies the model's generation_config.json
defaults to every field a request leaves out, e.g. top_k=20 or repetition_penalty=1.05 on many
instruct models, so the same temperature/top_p would sample differently. Option `neutral_sampling`:
auto (default) sends top_k=-1, min_p=0, repetition_penalty=1 when the server says it is vLLM
(`owned_by: vllm` in GET /models), which accepts those extra fields; on always sends them (for
servers known to accept them); off never does (strict OpenAI servers refuse unknown fields). Starting
vLLM with `--generation-config vllm` also removes the model's defaults.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from spsbench.config import SamplingConfig
from spsbench.engines.base import (
    Completion,
    EngineBase,
    GenRequest,
    ModelIdentity,
    PromptCounter,
    Sample,
    flatten,
)
from spsbench.engines.options import Opt, check_options
from spsbench.engines.server_card import ServerPromptCounter
from spsbench.engines.servers import DEFAULT_BASE_URL, Server, ServerPool, split_urls
from spsbench.errors import ConfigError, EngineError
from spsbench.quiet import warn
from spsbench.system import package_versions

OPTIONS: dict[str, Any] = {
    "base_url": DEFAULT_BASE_URL,   # or URL1,URL2,...: servers of the same model share the samples
    "api_key": None,             # default: $OPENAI_API_KEY, else "EMPTY" (what local servers accept)
    "concurrency": 8,            # max requests in flight per server
    "max_retries": 5,            # retries per sample on 429 / 5xx / connection errors
    "backoff": 0.5,              # first retry delay in seconds (doubles each retry, with jitter)
    "max_backoff": 30.0,
    "timeout": 600.0,            # seconds for one completion (long reasoning traces)
    "connect_timeout": 5.0,
    "endpoint": "auto",          # auto | chat | completions (see the module docstring)
    "neutral_sampling": "auto",  # auto | on | off: neutral top_k/min_p/repetition_penalty extras for vLLM
}
KINDS: dict[str, Opt] = {
    "base_url": Opt(str),
    "api_key": Opt(str, nullable=True),
    "concurrency": Opt(int, low=1),
    "max_retries": Opt(int, low=0),
    "backoff": Opt(float, low=0),
    "max_backoff": Opt(float, low=0),
    "timeout": Opt(float, low=0, above=True),
    "connect_timeout": Opt(float, low=0, above=True),
    "endpoint": Opt(str, choices=("auto", "chat", "completions")),
    "neutral_sampling": Opt(str, choices=("auto", "on", "off")),
}
# Values that switch off every sampling knob besides temperature/top_p on a vLLM server (overriding the
# model's generation_config defaults); vLLM accepts them as extra request fields.
NEUTRAL_EXTRAS: dict[str, Any] = {"top_k": -1, "min_p": 0.0, "repetition_penalty": 1.0}
RETRY_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))


class _NoChatTemplate(Exception):
    """The server cannot apply a chat template for this model (endpoint auto falls back to /completions)."""


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OpenAIEngine(EngineBase):
    """An OpenAI-compatible server behind the Engine interface; `model` is the served model name."""

    name = "openai"
    served = True
    OPTIONS = OPTIONS
    KINDS = KINDS

    @classmethod
    def identify(cls, model: str | None, options: Mapping[str, Any]) -> ModelIdentity:
        """'<first base_url>#<served name>': several servers of one model (URL1,URL2,...) give the same
        samples as one, so an evaluation continues whichever servers are added or dropped after it."""
        if not model:
            raise ConfigError(f"engine {cls.name} needs MODEL: the model name the server serves")
        base = str(options.get("base_url", DEFAULT_BASE_URL)).split(",")[0].strip().rstrip("/")
        return ModelIdentity(f"{base}#{model}", "")

    @classmethod
    def model_to_load(cls, stored: str) -> str:
        return stored.partition("#")[2]

    @classmethod
    def prompt_counter(cls, model_path: str, options: Mapping[str, Any]) -> PromptCounter:
        return ServerPromptCounter(cls.model_to_load(model_path), options)

    def __init__(self, model: str, **options: Any) -> None:
        import httpx

        opts = check_options(self.name, options, OPTIONS, KINDS)
        self.model = model
        urls = split_urls(opts["base_url"])
        self.base_url = ",".join(urls)
        self.concurrency = int(opts["concurrency"])
        self.max_retries = int(opts["max_retries"])
        self.backoff, self.max_backoff = float(opts["backoff"]), float(opts["max_backoff"])
        api_key = opts["api_key"] or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.connect_timeout = float(opts["connect_timeout"])

        def client(url: str) -> Any:
            return httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {api_key}"},
                timeout=httpx.Timeout(float(opts["timeout"]), connect=self.connect_timeout),
                limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency))

        self.pool = ServerPool(urls, client, self.concurrency, self.backoff, self.max_backoff)
        self._httpx = httpx
        self.endpoint = str(opts["endpoint"])
        self._no_chat_template = False        # learned from the server in endpoint=auto
        self.cards = [self._probe(server) for server in self.pool.servers][0]     # GET /models of the first
        self.extras = NEUTRAL_EXTRAS if _wants_neutral(str(opts["neutral_sampling"]), self.cards, model) else {}

    # ------------------------------------------------------------------ Engine interface

    def describe(self) -> dict:
        root = next((m.get("root") for m in self.cards if m.get("id") == self.model), None)
        return {"engine": self.name, "model": self.model, "weights_hash": "", "base_url": self.base_url,
                "servers": len(self.pool), "served_root": root, "endpoint": self.endpoint,
                "sampling_extras": dict(self.extras),
                "versions": package_versions("spsbench", "httpx")}

    def generate(self, requests: Iterable[GenRequest], sampling: SamplingConfig) -> Iterator[Completion]:
        _check_endpoint(self.endpoint, sampling.chat_template)
        samples = iter(flatten(requests))
        pool = ThreadPoolExecutor(self.concurrency * len(self.pool), thread_name_prefix="spsbench-openai")
        pending: set[Future] = set()
        try:
            self._fill(pool, pending, samples, sampling)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
                self._fill(pool, pending, samples, sampling)
        finally:
            # Also runs if the consumer stops early or a sample failed: drop the queue, leave nothing running.
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self.pool.close()

    # ------------------------------------------------------------------ internals

    def _fill(self, pool: ThreadPoolExecutor, pending: set[Future], samples: Iterator[Sample],
              sampling: SamplingConfig) -> None:
        # The pool's worker count is the concurrency limit; the small queue keeps workers busy without
        # materialising thousands of futures.
        while len(pending) < 2 * self.concurrency * len(self.pool):
            sample = next(samples, None)
            if sample is None:
                return
            pending.add(pool.submit(self._complete, sample, sampling))

    def _probe(self, server: Server) -> list[dict]:
        try:
            resp = server.client.get("/models", timeout=self.connect_timeout)
        except self._httpx.HTTPError as exc:
            raise EngineError(f"engine openai: cannot reach server at {server.url} "
                              f"({type(exc).__name__}: {exc}); is it running?") from None
        if resp.status_code != 200:
            raise EngineError(f"engine openai: {server.url}/models answered HTTP {resp.status_code}: "
                              f"{_error_text(resp)}")
        served = [m for m in _json(resp).get("data", []) if isinstance(m, dict)]
        names = [m.get("id") for m in served]
        if names and self.model not in names:
            raise EngineError(f"engine openai: model {self.model!r} is not served at {server.url}; "
                              f"served: {', '.join(map(str, names))}")
        return served

    def _uses_chat(self, sampling: SamplingConfig) -> bool:
        if sampling.chat_template == "off" or self.endpoint == "completions":
            return False
        return self.endpoint == "chat" or sampling.chat_template == "on" or not self._no_chat_template

    def _complete(self, sample: Sample, sampling: SamplingConfig) -> Completion:
        chat = self._uses_chat(sampling)
        try:
            return self._request(sample, sampling, chat)
        except _NoChatTemplate:
            if not self._no_chat_template:
                self._no_chat_template = True     # threads may race here; the warning is cosmetic
                warn(f"{self.model!r} has no chat template on {self.base_url}; sending raw prompts to "
                     "/completions (chat_template=auto)")
            return self._request(sample, sampling, False)

    def _request(self, sample: Sample, sampling: SamplingConfig, chat: bool) -> Completion:
        path, body = ("/chat/completions", _chat_body(self.model, sample, sampling)) if chat else \
            ("/completions", _completion_body(self.model, sample, sampling))
        body |= self.extras
        auto = chat and self.endpoint == "auto" and sampling.chat_template == "auto"
        data, url = self._post_with_retries(path, body, fallback=auto)
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] if chat else choice["text"]
        except (KeyError, IndexError, TypeError):
            raise EngineError(f"engine openai: malformed response from {url}{path}") from None
        usage = data.get("usage") or {}
        return Completion(key=sample.key, sample_idx=sample.sample_idx, seed=sample.seed, text=text or "",
                          prompt_tokens=int(usage.get("prompt_tokens") or 0),
                          completion_tokens=int(usage.get("completion_tokens") or 0),
                          finish_reason=choice.get("finish_reason") or "stop")

    def _post_with_retries(self, path: str, body: dict, fallback: bool = False) -> tuple[dict, str]:
        """POST to the least busy server; a failure moves the request to a server it has not failed on yet
        at once, and waits out the back-off only once every server has failed it."""
        tried: set[Server] = set()
        for attempt in range(self.max_retries + 1):
            server = self.pool.acquire(avoid=tried)
            try:
                return self._post_once(server, path, body, fallback), server.url
            except _Retryable as exc:
                if attempt == self.max_retries:
                    raise EngineError(f"engine openai: {server.url}{path} failed after "
                                      f"{attempt + 1} attempts: {exc}") from None
                tried.add(server)
                if len(tried) == len(self.pool):
                    tried.clear()
                    time.sleep(self._delay(attempt, exc.retry_after))
        raise AssertionError("unreachable")

    def _post_once(self, server: Server, path: str, body: dict, fallback: bool = False) -> dict:
        """One POST on `server`; its slot is released whatever happens, marking it down if it did not answer."""
        try:
            resp = server.client.post(path, json=body)
        except self._httpx.TransportError as exc:
            self.pool.release(server, connection_failed=True)
            raise _Retryable(f"{type(exc).__name__}: {exc}") from None
        except BaseException:
            self.pool.release(server)
            raise
        self.pool.release(server)
        if resp.status_code == 200:
            return _json(resp)
        if fallback and resp.status_code == 400 and "chat template" in _error_text(resp).lower():
            raise _NoChatTemplate
        if resp.status_code in RETRY_STATUS:
            raise _Retryable(f"HTTP {resp.status_code}: {_error_text(resp)}", _retry_after(resp))
        raise EngineError(f"engine openai: {server.url}{path} answered HTTP {resp.status_code}: "
                          f"{_error_text(resp)}")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        # Full jitter spreads retries from many threads so they do not hit the server in lockstep.
        return min(self.max_backoff, self.backoff * 2 ** attempt) * (0.5 + random.random() / 2)


def _check_endpoint(endpoint: str, chat_template: str) -> None:
    if (endpoint, chat_template) in (("chat", "off"), ("completions", "on")):
        raise EngineError(f"engine openai: endpoint={endpoint} contradicts chat_template={chat_template} "
                          "(the chat endpoint always applies the model's template; completions never does)")


def _wants_neutral(mode: str, served: list[dict], model: str) -> bool:
    """Whether to send NEUTRAL_EXTRAS: on, or auto and the server reports itself as vLLM."""
    if mode != "auto":
        return mode == "on"
    owners = {str(m.get("owned_by", "")).lower() for m in served if m.get("id") == model}
    return "vllm" in owners


def _sampling_fields(sampling: SamplingConfig, sample: Sample) -> dict[str, Any]:
    body: dict[str, Any] = {"max_tokens": sampling.max_tokens, "temperature": sample.temperature_in(sampling),
                            "top_p": sampling.top_p, "seed": sample.seed, "n": 1}
    if sampling.stop:
        body["stop"] = list(sampling.stop)
    return body


def _chat_body(model: str, sample: Sample, sampling: SamplingConfig) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": sample.prompt}],
            **_sampling_fields(sampling, sample)}


def _completion_body(model: str, sample: Sample, sampling: SamplingConfig) -> dict[str, Any]:
    return {"model": model, "prompt": sample.prompt, **_sampling_fields(sampling, sample)}


def _json(resp: Any) -> dict:
    try:
        data = resp.json()
    except ValueError:
        raise EngineError(f"engine openai: {resp.request.url} returned non-JSON "
                          f"({resp.text[:80]!r})") from None
    return data if isinstance(data, dict) else {}


def _error_text(resp: Any) -> str:
    try:
        err = resp.json().get("error")
        msg = err.get("message") if isinstance(err, dict) else err
    except (ValueError, AttributeError):
        msg = None
    return " ".join(str(msg or resp.text or resp.reason_phrase).split())[:200]


def _retry_after(resp: Any) -> float | None:
    try:
        return max(0.0, float(resp.headers.get("retry-after", "")))
    except ValueError:
        return None
