"""Several OpenAI-compatible servers of one model behind the OpenAI engine: which server takes the next
request, and what happens when one stops answering.

Each request goes to the live server with the fewest requests in flight (at most `per_server` each). A
server that fails at the connection level (refused, reset, timed out) is set aside for a back-off that
doubles with each consecutive failure, and the failed request is retried on another server at once; a
server that answers again is trusted again. Requests carry their sample's seed, so which server answers
a sample does not change it: the result does not depend on how many servers there were.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spsbench.errors import EngineError

# Where an OpenAI-compatible server is looked for when no base_url is given (`spsbench serve`'s default).
DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"


@dataclass(eq=False)
class Server:
    url: str
    client: Any                        # httpx.Client with this server's base URL
    in_flight: int = 0
    failures: int = 0                  # consecutive connection failures
    down_until: float = 0.0            # time.monotonic() before which no request is sent here
    answered: int = 0                  # requests this server answered (any HTTP status)


def split_urls(text: str) -> list[str]:
    """`URL1,URL2,...` as a list of base URLs (no trailing slash); one-line EngineError for a bad list."""
    urls = [u.strip().rstrip("/") for u in str(text).split(",")]
    bad = [u for u in urls if not u.startswith(("http://", "https://"))]
    if bad:
        raise EngineError(f"engine openai: base_url must be http(s):// URLs separated by commas, got {text!r}")
    if len(set(urls)) != len(urls):
        raise EngineError(f"engine openai: base_url lists a server twice: {text!r}")
    return urls


class ServerPool:
    """Hands out servers to request threads; thread-safe."""

    def __init__(self, urls: list[str], make_client: Callable[[str], Any], per_server: int,
                 backoff: float, max_backoff: float) -> None:
        self.servers = [Server(url, make_client(url)) for url in urls]
        self.per_server, self.backoff, self.max_backoff = per_server, backoff, max_backoff
        self._cond = threading.Condition()

    def __len__(self) -> int:
        return len(self.servers)

    def acquire(self, avoid: set[Server] | frozenset[Server] = frozenset()) -> Server:
        """A server with a free slot, preferring live ones not in `avoid`; blocks until one is free."""
        with self._cond:
            while True:
                now = time.monotonic()
                free = [s for s in self.servers if s.in_flight < self.per_server]
                live = [s for s in free if s.down_until <= now]
                choice = [s for s in live if s not in avoid] or live
                if choice:
                    server = min(choice, key=lambda s: s.in_flight)
                    server.in_flight += 1
                    return server
                self._cond.wait(self._wait_time(free, now))

    def release(self, server: Server, connection_failed: bool = False) -> None:
        """Give the slot back; a connection failure sets the server aside, any answer trusts it again."""
        with self._cond:
            server.in_flight -= 1
            if connection_failed:
                server.failures += 1
                delay = min(self.max_backoff, self.backoff * 2 ** (server.failures - 1))
                server.down_until = time.monotonic() + delay
            else:
                server.failures, server.down_until = 0, 0.0
                server.answered += 1
            self._cond.notify_all()

    def close(self) -> None:
        for server in self.servers:
            server.client.close()

    def _wait_time(self, free: list[Server], now: float) -> float | None:
        """How long to sleep when nothing is available: until the first set-aside server may be retried."""
        waiting = [s.down_until - now for s in free if s.down_until > now]
        return max(0.001, min(waiting)) if waiting else None
