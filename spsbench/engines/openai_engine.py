"""The OpenAI-compatible HTTP engine: any model served by vLLM, SGLang, TGI, ... over /v1.

One HTTP request per sample (n=1 with the sample's `seed`), at most `concurrency` in flight, results
yielded as they arrive. 429, 5xx and connection errors are retried with exponential backoff + jitter
(honouring Retry-After); other 4xx answers are user errors and fail at once. The server is probed
(`GET /models`) on start so an unreachable URL fails fast with one line naming it.

chat_template auto|on sends the prompt as a user message to /chat/completions (the server applies the
model's template); off sends raw text to /completions.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from spsbench.config import SamplingConfig
from spsbench.engines.base import Completion, GenRequest
from spsbench.engines.common import Sample, check_options, flatten, package_versions
from spsbench.errors import EngineError

OPTIONS: dict[str, Any] = {
    "base_url": "http://127.0.0.1:8000/v1",
    "api_key": None,             # default: $OPENAI_API_KEY, else "EMPTY" (what local servers accept)
    "concurrency": 8,            # max requests in flight
    "max_retries": 5,            # retries per sample on 429 / 5xx / connection errors
    "backoff": 0.5,              # first retry delay in seconds (doubles each retry, with jitter)
    "max_backoff": 30.0,
    "timeout": 600.0,            # seconds for one completion (long reasoning traces)
    "connect_timeout": 5.0,
}
RETRY_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OpenAIEngine:
    """An OpenAI-compatible server behind the Engine interface; `model` is the served model name."""

    name = "openai"

    def __init__(self, model: str, **options: Any) -> None:
        import httpx

        opts = check_options(self.name, options, OPTIONS)
        if int(opts["concurrency"]) < 1 or int(opts["max_retries"]) < 0:
            raise EngineError("engine openai: concurrency must be >= 1 and max_retries >= 0")
        self.model = model
        self.base_url = str(opts["base_url"]).rstrip("/")
        self.concurrency = int(opts["concurrency"])
        self.max_retries = int(opts["max_retries"])
        self.backoff, self.max_backoff = float(opts["backoff"]), float(opts["max_backoff"])
        api_key = opts["api_key"] or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.client = httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(float(opts["timeout"]), connect=float(opts["connect_timeout"])),
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
        )
        self._httpx = httpx
        self.served = self._probe()

    # ------------------------------------------------------------------ Engine interface

    def describe(self) -> dict:
        root = next((m.get("root") for m in self.served if m.get("id") == self.model), None)
        return {"engine": self.name, "model": self.model, "weights_hash": "", "base_url": self.base_url,
                "served_root": root, "versions": package_versions("spsbench", "httpx")}

    def generate(self, requests: Iterable[GenRequest], sampling: SamplingConfig) -> Iterator[Completion]:
        samples = iter(flatten(requests))
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="spsbench-openai")
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
        self.client.close()

    # ------------------------------------------------------------------ internals

    def _fill(self, pool: ThreadPoolExecutor, pending: set[Future], samples: Iterator[Sample],
              sampling: SamplingConfig) -> None:
        # The pool's worker count is the concurrency limit; the small queue keeps workers busy without
        # materialising thousands of futures.
        while len(pending) < 2 * self.concurrency:
            sample = next(samples, None)
            if sample is None:
                return
            pending.add(pool.submit(self._complete, sample, sampling))

    def _probe(self) -> list[dict]:
        try:
            resp = self.client.get("/models", timeout=self.client.timeout.connect or 5.0)
        except self._httpx.HTTPError as exc:
            raise EngineError(f"engine openai: cannot reach server at {self.base_url} "
                              f"({type(exc).__name__}: {exc}); is it running?") from None
        if resp.status_code != 200:
            raise EngineError(f"engine openai: {self.base_url}/models answered HTTP {resp.status_code}: "
                              f"{_error_text(resp)}")
        served = [m for m in _json(resp).get("data", []) if isinstance(m, dict)]
        names = [m.get("id") for m in served]
        if names and self.model not in names:
            raise EngineError(f"engine openai: model {self.model!r} is not served at {self.base_url}; "
                              f"served: {', '.join(map(str, names))}")
        return served

    def _complete(self, sample: Sample, sampling: SamplingConfig) -> Completion:
        chat = sampling.chat_template != "off"
        path, body = ("/chat/completions", _chat_body(self.model, sample, sampling)) if chat else \
            ("/completions", _completion_body(self.model, sample, sampling))
        data = self._post_with_retries(path, body)
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] if chat else choice["text"]
        except (KeyError, IndexError, TypeError):
            raise EngineError(f"engine openai: malformed response from {self.base_url}{path}") from None
        usage = data.get("usage") or {}
        return Completion(key=sample.key, sample_idx=sample.sample_idx, seed=sample.seed, text=text or "",
                          prompt_tokens=int(usage.get("prompt_tokens") or 0),
                          completion_tokens=int(usage.get("completion_tokens") or 0),
                          finish_reason=choice.get("finish_reason") or "stop")

    def _post_with_retries(self, path: str, body: dict) -> dict:
        for attempt in range(self.max_retries + 1):
            try:
                return self._post_once(path, body)
            except _Retryable as exc:
                if attempt == self.max_retries:
                    raise EngineError(f"engine openai: {self.base_url}{path} failed after "
                                      f"{attempt + 1} attempts: {exc}") from None
                time.sleep(self._delay(attempt, exc.retry_after))
        raise AssertionError("unreachable")

    def _post_once(self, path: str, body: dict) -> dict:
        try:
            resp = self.client.post(path, json=body)
        except self._httpx.TransportError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from None
        if resp.status_code == 200:
            return _json(resp)
        if resp.status_code in RETRY_STATUS:
            raise _Retryable(f"HTTP {resp.status_code}: {_error_text(resp)}", _retry_after(resp))
        raise EngineError(f"engine openai: {self.base_url}{path} answered HTTP {resp.status_code}: "
                          f"{_error_text(resp)}")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        # Full jitter spreads retries from many threads so they do not hit the server in lockstep.
        return min(self.max_backoff, self.backoff * 2 ** attempt) * (0.5 + random.random() / 2)


def _sampling_fields(sampling: SamplingConfig, sample: Sample) -> dict[str, Any]:
    body: dict[str, Any] = {"max_tokens": sampling.max_tokens, "temperature": sampling.temperature,
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
