"""Facts about this machine and its packages: installed versions (provenance), CPU features that decide
the CPU dtype, how busy the CPUs are right now (thread counts); and `restored_environ`, the one way a
change to this process's environment is undone."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import time
from collections.abc import Iterable, Iterator


@contextlib.contextmanager
def restored_environ(keys: Iterable[str]) -> Iterator[dict[str, str | None]]:
    """Snapshot `keys` of os.environ (yielded: key -> value, None when unset) and put them back on exit,
    whatever the body set or removed, also when it raises."""
    saved = {key: os.environ.get(key) for key in keys}
    try:
        yield dict(saved)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def package_versions(*names: str) -> dict[str, str]:
    """Installed versions of `names` (missing packages are left out)."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def cpu_flags() -> set[str]:
    """The CPU feature flags Linux reports (empty where /proc/cpuinfo does not exist)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_fast_bf16(flags: set[str] | None = None) -> bool:
    """Whether the CPU computes bf16 matmuls natively (AVX512-BF16 or AMX).

    Measured side by side (`make bench`, bench_engines): on a CPU with them SmolLM2 generated ~1.8x faster
    in bf16 than fp32; on an AVX2-only AMD EPYC, oneDNN has no bf16 matmul, vLLM falls back to torch
    linears and bf16 ran 2.9x (transformers) to 4x (vLLM) slower than fp32. So `dtype=auto` picks bf16
    on CPU only when this is true.
    """
    flags = cpu_flags() if flags is None else flags
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def cpu_auto_dtype(flags: set[str] | None = None) -> str:
    """`dtype=auto` on CPU: "bfloat16" where bf16 is native, else "float32"."""
    return "bfloat16" if cpu_has_fast_bf16(flags) else "float32"


def busy_cpus(samples: int = 5, interval: float = 0.1) -> float:
    """How many CPUs other processes keep busy right now: runnable tasks from /proc/loadavg, minus this one.

    The 1-minute load average lags by about a minute (right after training steps it still counts them),
    so this samples the instantaneous runnable count a few times and takes the median.
    """
    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as fh:
                counts.append(int(fh.read().split()[3].split("/")[0]))
        except (OSError, IndexError, ValueError):
            return 0.0
        if i + 1 < samples:
            time.sleep(interval)
    counts.sort()
    return max(0.0, counts[len(counts) // 2] - 1.0)
