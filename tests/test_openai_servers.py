"""The OpenAI engine over several servers (`base_url=URL1,URL2`): samples spread over them, results
independent of the number of servers, and a server killed midway loses and duplicates nothing."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from spsbench.config import SamplingConfig, sample_seed
from spsbench.engines import load_engine
from spsbench.engines.base import GenRequest
from spsbench.engines.servers import ServerPool, split_urls
from spsbench.errors import EngineError
from tests.openai_stub_server import StubServer, StubState

STUB = Path(__file__).resolve().parent / "openai_stub_server.py"
SAMPLING = SamplingConfig(n=4, temperature=1.0, max_tokens=12, chat_template="off")


def requests(problems: int = 12, n: int = 4) -> list[GenRequest]:
    return [GenRequest(f"p{i}", f"problem {i} text", tuple(range(n)),
                       tuple(sample_seed(0, f"p{i}", j) for j in range(n))) for i in range(problems)]


def texts(completions) -> dict[tuple[str, int], str]:
    return {(c.key, c.sample_idx): c.text for c in completions}


def engine(urls: list[str], **options):
    return load_engine("openai", "stub-model", base_url=",".join(urls), backoff=0.01, **options)


def test_same_samples_from_one_or_two_servers_and_both_used():
    with StubServer(StubState()) as a, StubServer(StubState()) as b:
        one = texts(engine([a.url]).generate(requests(), SAMPLING))
        a.state.requests = a.state.max_in_flight = 0
        two_servers = engine([a.url, b.url], concurrency=2)
        two = texts(two_servers.generate(requests(), SAMPLING))
        assert two_servers.describe()["servers"] == 2
    assert one == two and len(two) == 48
    assert a.state.requests > 0 and b.state.requests > 0 and a.state.requests + b.state.requests == 48
    assert max(a.state.max_in_flight, b.state.max_in_flight) <= 2          # concurrency is per server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_stub(delay: float) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, str(STUB), "--port", str(port), "--delay", str(delay)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("stub server did not start")


@pytest.fixture
def two_stub_processes():
    procs = []
    try:
        for _ in range(2):
            procs.append(_start_stub(delay=0.1))
        yield procs
    finally:
        for proc, _ in procs:
            proc.kill()
            proc.wait()


def test_server_killed_midway_loses_and_duplicates_nothing(two_stub_processes):
    (alive, url_a), (doomed, url_b) = two_stub_processes
    eng = engine([url_a, url_b], concurrency=3)
    out = []
    for completion in eng.generate(requests(), SAMPLING):
        out.append(completion)
        if len(out) == 12:
            doomed.send_signal(signal.SIGKILL)      # with requests in flight on it
            doomed.wait()
    counts = Counter((c.key, c.sample_idx) for c in out)
    assert len(counts) == 48 and set(counts.values()) == {1}                # nothing lost, nothing twice
    with StubServer(StubState()) as reference:                              # what one healthy server gives
        assert texts(out) == texts(engine([reference.url]).generate(requests(), SAMPLING))
    a, b = eng.pool.servers
    assert 1 <= b.answered < 24 and b.failures >= 1                        # b answered, then its load moved
    assert a.answered + b.answered == 48
    eng.close()


def test_every_server_is_probed_and_bad_lists_are_refused():
    with StubServer(StubState()) as a:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
        with pytest.raises(EngineError, match=f"cannot reach server at {dead}"):
            engine([a.url, dead])
        with StubServer(StubState(model="other")) as b:
            with pytest.raises(EngineError, match=f"'stub-model' is not served at {b.url}"):
                engine([a.url, b.url])
    for bad, why in ((f"{a.url},,{a.url}x", "separated by commas"), ("localhost:8000", "separated by commas"),
                     (f"{a.url},{a.url}/", "lists a server twice")):
        with pytest.raises(EngineError, match=why):
            split_urls(bad)


def test_pool_prefers_the_least_busy_live_server_and_sets_a_failed_one_aside():
    pool = ServerPool(["http://a", "http://b"], lambda url: None, per_server=2, backoff=60, max_backoff=60)
    a, b = pool.servers
    assert (pool.acquire(), pool.acquire()) == (a, b)        # least busy first
    pool.release(b, connection_failed=True)                  # b did not answer: set aside for 60 s
    assert b.failures == 1 and b.down_until > time.monotonic()
    assert pool.acquire() is a                               # b is idle but down; a now holds 2 (full)
    got = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire()))
    waiter.start()
    time.sleep(0.2)
    assert got == []                                         # nothing live with a free slot: it waits
    pool.release(a)
    waiter.join(5)
    assert got == [a]
    b.down_until = 0.0                                       # its back-off is over
    assert pool.acquire(avoid={a}) is b
    pool.release(b)                                          # b answered: trusted again
    assert b.failures == 0 and b.answered == 1


def test_evaluation_continues_whatever_servers_follow_the_first(store_path):
    from spsbench.evaluation.evaluate import evaluate
    from spsbench.evaluation.records import EvalRequest

    sampling = SamplingConfig(n=2, temperature=1.0, max_tokens=8, chat_template="off")
    with StubServer(StubState()) as a, StubServer(StubState()) as b:
        both = f"{a.url},{b.url}"
        request = EvalRequest("stub-model", ["arith"], sampling, engine="openai", store=store_path, limit=3,
                              engine_options={"base_url": both}, progress=False, grader_workers=1)
        first = evaluate(request)
        again = evaluate(request.replace(engine_options={"base_url": a.url}))
    assert first[0].generated == 6 and b.state.requests > 0
    assert again[0].generated == 0 and again[0].eval_id == first[0].eval_id
    assert first[0].model == f"{a.url}#stub-model"
