"""The lab's results as data in the repository: `results/lab/` (committed, like `results/published/`).

* `squeeze.json.gz`: the latest `lab squeeze` result (every seed, every measured update);
* `dynamics-<tag>.json.gz`: one `lab dynamics` session per tag (`main` is the default run; the IRL grid and
  the mechanism controls are further tags), every probe of every run of every seed.

Files are gzip (mtime 0) of JSON with sorted keys, so the same result is the same bytes; `lab page` reads
only this folder, so a fresh clone rebuilds `leaderboards/lab/` byte for byte. The lab store
(`results/lab.db`, not committed) holds only the product evaluator's sampled cross-check, whose scores
are copied into the session.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spsbench.errors import ConfigError
from spsbench.io import atomic_target
from spsbench.store import Interval, Scores

SQUEEZE_FILE = "squeeze.json.gz"
DYNAMICS_PREFIX = "dynamics-"
SUFFIX = ".json.gz"
MAIN_TAG = "main"


def sampled_record(scores: Scores, n: int, rounded: Callable[[float], float]) -> dict[str, Any]:
    """The product evaluator's scores of a base as a session keeps them: Avg@n with its interval, Pass@n and
    the outcome counts (`sampled_scores` reads them back)."""
    avg, top = scores.avg, scores.pass_at_k.get(n)

    def num(x: float | None) -> float | None:
        return rounded(x) if x is not None else None

    return {"n": n, "avg": num(avg.value) if avg else None, "avg_low": num(avg.ci_low) if avg else None,
            "avg_high": num(avg.ci_high) if avg else None, "pass_n": num(top.value) if top else None,
            "counts": dict(scores.counts)}


def sampled_scores(data: dict[str, Any] | None) -> Scores | None:
    """A session's `sampled` record as the store's `Scores` (None: no cross-check was run)."""
    if not data or data.get("avg") is None:
        return None
    n = int(data["n"])
    top = {n: Interval(data["pass_n"])} if data.get("pass_n") is not None else {}
    return Scores(n, Interval(data["avg"], data.get("avg_low"), data.get("avg_high")), top,
                  dict(data.get("counts") or {}))


def default_store() -> Path:
    """`results/lab.db`, or $SPSBENCH_LAB_STORE (the sampled cross-check evaluations)."""
    return Path(os.environ.get("SPSBENCH_LAB_STORE", "results/lab.db"))


def default_data() -> Path:
    """`results/lab/`, or $SPSBENCH_LAB_DATA."""
    return Path(os.environ.get("SPSBENCH_LAB_DATA", "results/lab"))


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """Deterministic gzip JSON (no timestamp, no file name in the header), replaced atomically."""
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as fh:
        fh.write(raw)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(path) as tmp:
        Path(tmp).write_bytes(buf.getvalue())
    return path


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(gzip.decompress(path.read_bytes()))
    except (OSError, EOFError, ValueError) as exc:
        raise ConfigError(f"{path}: not a lab result file ({type(exc).__name__}: {exc})") from None


def save_squeeze(data_dir: str | Path, result: dict[str, Any]) -> Path:
    return write_json(Path(data_dir) / SQUEEZE_FILE, result)


def load_squeeze(data_dir: str | Path) -> dict[str, Any] | None:
    path = Path(data_dir) / SQUEEZE_FILE
    return read_json(path) if path.is_file() else None


def session_path(data_dir: str | Path, tag: str) -> Path:
    return Path(data_dir) / f"{DYNAMICS_PREFIX}{tag}{SUFFIX}"


def save_session(data_dir: str | Path, session: dict[str, Any]) -> Path:
    return write_json(session_path(data_dir, session["tag"]), session)


def load_sessions(data_dir: str | Path) -> list[dict[str, Any]]:
    """Every stored dynamics session, `main` first, then by tag."""
    files = sorted(Path(data_dir).glob(f"{DYNAMICS_PREFIX}*{SUFFIX}")) if Path(data_dir).is_dir() else []
    sessions = [read_json(f) for f in files]
    return sorted(sessions, key=lambda s: (s["tag"] != MAIN_TAG, s["tag"]))


class Clock:
    """Wall time, CPU time (this process and its finished children: worker processes and their graders)
    and load averages of one experiment: what the page says it took, and on what."""

    def __init__(self) -> None:
        self.start, self.cpu0, self.load_before = time.perf_counter(), _cpu(), os.getloadavg()

    def stop(self) -> dict[str, Any]:
        return {"seconds": time.perf_counter() - self.start, "cpu_seconds": _cpu() - self.cpu0,
                "load_before": list(self.load_before), "load_after": list(os.getloadavg()), "cpu": cpu_model(),
                "cpus": os.cpu_count()}


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timing_text(data: dict[str, Any]) -> str:
    """One sentence: wall time, CPU time, workers, CPU model and the load the numbers were measured under."""
    if "seconds" not in data:
        return ""
    cpu = data.get("cpu_seconds")
    workers = data.get("workers", 1)
    return (f"Wall time {data['seconds'] / 60:.1f} min" + (f", CPU time {cpu / 60:.1f} min" if cpu is not None else "")
            + f" ({workers} worker process{'es' if workers != 1 else ''}, one torch thread each) on {data['cpu']} "
            f"({data['cpus']} CPUs); load average {data['load_before'][0]:.1f} before and {data['load_after'][0]:.1f} "
            "after (other processes shared the cores" + (f"; on {workers} free cores the wall time would be about "
                                                         f"{cpu / 60 / max(1, workers):.1f} min" if cpu else "") + ").")


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo, as `lscpu` shows it), or 'unknown CPU'."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"
