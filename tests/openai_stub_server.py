"""A small real HTTP server speaking the OpenAI completions / chat-completions protocol, for loopback tests.

Answers come from a deterministic echo (default) or from any spsbench engine (e.g. HFEngine on the tiny
model). Fault injection (`faults`: HTTP statuses returned before normal answers, `drop`: connections
closed without an answer), a per-request `delay`, and counters (requests, paths, bodies, max requests in
flight) let tests check retries and the concurrency limit against a real socket. `chat_template=False`
answers chat requests like vLLM serving a model without a chat template (HTTP 400); `owned_by` is the
model card's owner (vLLM reports "vllm").

Run standalone: `python tests/openai_stub_server.py --port 8000 [--model-path FOLDER]`.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class StubState:
    model: str = "stub-model"
    faults: list[int] = field(default_factory=list)   # statuses to answer with first, in order
    drop: int = 0                                      # connections to close without answering first
    delay: float = 0.0
    engine: Any = None                                 # optional spsbench engine to generate real text
    chat_template: bool = True                         # False: /chat/completions answers 400 like vLLM
    owned_by: str = "stub"
    max_model_len: int | None = None                  # reported on the model card when set (vLLM does)
    tokenize: bool = True                              # False: no POST /tokenize (a server other than vLLM)
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    paths: list[str] = field(default_factory=list)
    bodies: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self, path: str, body: dict) -> tuple[int | None, bool]:
        with self.lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.paths.append(path)
            self.bodies.append(body)
            if self.drop:
                self.drop -= 1
                return None, True
            return (self.faults.pop(0) if self.faults else None), False

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1


def echo_text(prompt: str, seed: int | None, max_tokens: int, stop: list[str]) -> tuple[str, int, str]:
    """Deterministic 'generation': words of the prompt after a seed tag; one word = one token."""
    words = [f"seed={seed}:", *prompt.split()]
    finish = "length" if len(words) > max_tokens else "stop"
    text = " ".join(words[:max_tokens])
    for s in stop:
        if s and s in text:
            text, finish = text[:text.index(s)], "stop"
    return text, len(text.split()), finish


def generate(state: StubState, prompt: str, body: dict, chat: bool) -> tuple[str, int, int, str]:
    """(text, prompt_tokens, completion_tokens, finish_reason) for one request."""
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else list(stop)
    if state.engine is None:
        text, ntok, finish = echo_text(prompt, body.get("seed"), int(body.get("max_tokens", 16)), stop)
        return text, len(prompt.split()), ntok, finish
    from spsbench.config import SamplingConfig
    from spsbench.engines.base import GenRequest

    sampling = SamplingConfig(n=1, temperature=float(body.get("temperature", 1.0)),
                              top_p=float(body.get("top_p", 1.0)), max_tokens=int(body.get("max_tokens", 16)),
                              stop=tuple(stop), chat_template="on" if chat else "off")
    with state.lock:   # local engines are not thread-safe
        request = GenRequest("stub", prompt, (0,), (int(body.get("seed") or 0),))
        (c,) = state.engine.generate([request], sampling)
    return c.text, c.prompt_tokens, c.completion_tokens, c.finish_reason


class Handler(BaseHTTPRequestHandler):
    state: StubState   # set on the subclass made by `serve`
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:   # keep test output clean
        pass

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/") != "/v1/models":
            return self._send(404, {"error": {"message": f"no route {self.path}"}})
        card = {"id": self.state.model, "object": "model", "root": "/stub", "owned_by": self.state.owned_by}
        if self.state.max_model_len is not None:
            card["max_model_len"] = self.state.max_model_len
        self._send(200, {"object": "list", "data": [card]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path.rstrip("/") == "/tokenize" and self.state.tokenize:
            return self._tokenize(body)
        fault, drop = self.state.enter(self.path, body)
        try:
            if drop:
                self.close_connection = True
                self.connection.shutdown(2)
                return
            time.sleep(self.state.delay)
            if fault is not None:
                return self._send(fault, {"error": {"message": f"injected fault {fault}"}})
            self._answer(body)
        finally:
            self.state.leave()

    def _tokenize(self, body: dict) -> None:
        """vLLM's POST /tokenize: {"count", "max_model_len", "tokens"} for a prompt or chat messages."""
        chat = "messages" in body
        if chat and not self.state.chat_template:
            return self._send(400, {"error": {"message": "no chat template"}})
        text = body["messages"][-1]["content"] if chat else body.get("prompt", "")
        if self.state.engine is None:
            tokens = list(range(len(text.split())))
        else:
            from spsbench.engines.chat import encode_prompt

            tokens = encode_prompt(self.state.engine.tokenizer, text, "on" if chat else "off")
        self._send(200, {"count": len(tokens), "max_model_len": self.state.max_model_len, "tokens": tokens})

    def _answer(self, body: dict) -> None:
        if body.get("model") != self.state.model:
            return self._send(404, {"error": {"message": f"model {body.get('model')!r} not found"}})
        chat = self.path.endswith("/chat/completions")
        if chat and not self.state.chat_template:   # vLLM's answer for a tokenizer without a template
            return self._send(400, {"error": {"message": "As of transformers v4.44, default chat template is no "
                                              "longer allowed, so you must provide a chat template if the "
                                              "tokenizer does not define one.", "code": 400}})
        if chat:
            prompt = body["messages"][-1]["content"]
        elif self.path.endswith("/completions"):
            prompt = body["prompt"]
        else:
            return self._send(404, {"error": {"message": f"no route {self.path}"}})
        text, n_prompt, n_comp, finish = generate(self.state, prompt, body, chat)
        choice = {"index": 0, "finish_reason": finish}
        choice |= {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
        self._send(200, {"id": "stub", "object": "chat.completion" if chat else "text_completion",
                         "model": self.state.model, "choices": [choice],
                         "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_comp,
                                   "total_tokens": n_prompt + n_comp}})


class StubServer:
    """The server running in a background thread; `url` is its /v1 base URL."""

    def __init__(self, state: StubState | None = None, port: int = 0) -> None:
        self.state = state or StubState()
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        # A short poll interval makes shutdown (and so each test's teardown) quick.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def __enter__(self) -> StubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", default="stub-model", help="served model name")
    parser.add_argument("--model-path", help="answer with HFEngine on this model folder instead of echo")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    engine = None
    if args.model_path:
        from spsbench.engines.hf import HFEngine

        engine = HFEngine(args.model_path)
    with StubServer(StubState(model=args.model, engine=engine, delay=args.delay), port=args.port) as server:
        print(f"serving {args.model} at {server.url}", flush=True)
        server.thread.join()


if __name__ == "__main__":
    main()
