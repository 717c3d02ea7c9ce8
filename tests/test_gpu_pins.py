"""The GPU install pins (constraints-gpu.txt): the report checks on made-up resolutions, and (slow) the
real resolution against PyPI by scripts/check_gpu_pins.py."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check_gpu_pins.py"


@pytest.fixture(scope="module")
def pins_script():
    spec = importlib.util.spec_from_file_location("check_gpu_pins", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def good_resolution() -> dict[str, dict]:
    pypi = "https://files.pythonhosted.org/packages/x/"
    return {
        "torch": {"version": "2.13.0", "url": pypi + "torch.whl", "requires": ["nvidia-nccl-cu13==2.29.7"]},
        "vllm": {"version": "0.31.0", "url": pypi + "vllm.whl", "requires": ["torch==2.13.0"]},
        "trl": {"version": "1.16.0", "url": pypi + "trl.whl",
                "requires": ['vllm<=0.31.0,>=0.22.0; extra == "vllm"', "transformers>=4.56.2"]},
        "spsbench": {"version": "0.1.0", "url": "file:///work/spsbench", "requires": []},
    }


def test_pins_file_is_read_with_exact_torch(pins_script):
    pins = pins_script.exact_pins()
    assert pins["torch"] == "2.13.0" and pins["vllm"] == "0.31.0" and "deepspeed" in pins
    assert pins_script.check(good_resolution(), {"torch": "2.13.0", "vllm": "0.31.0"}) == []


def test_local_cpu_torch_and_out_of_range_vllm_are_reported(pins_script):
    found = good_resolution()
    found["torch"] = {"version": "2.13.0+cpu", "url": "file:///opt/wheels/torch-2.13.0+cpu.whl", "requires": []}
    found["vllm"]["version"] = "0.32.0"
    problems = "\n".join(pins_script.check(found, {"vllm": "0.31.0"}))
    assert "local build 2.13.0+cpu" in problems and "requires no CUDA packages" in problems
    assert "not the registry" in problems and "from a local folder, not the registry: torch" in problems
    assert "vllm 0.32.0 is outside trl 1.16.0's range" in problems
    assert "vllm: pinned 0.31.0, resolved 0.32.0" in problems


def test_registry_env_drops_local_pip_configuration(pins_script, monkeypatch):
    monkeypatch.setenv("PIP_FIND_LINKS", "/opt/wheels")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "file:///opt/pypi/simple")
    monkeypatch.setenv("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")
    env = pins_script.registry_env()
    assert "PIP_FIND_LINKS" not in env and "PIP_EXTRA_INDEX_URL" not in env
    assert env["PIP_CERT"] == "/etc/ssl/certs/ca-certificates.crt" and env["PIP_CONFIG_FILE"] == "/dev/null"


def _pypi_reachable() -> bool:
    try:
        urllib.request.urlopen("https://pypi.org/simple/trl/", timeout=10).close()
    except OSError:
        return False
    return True


@pytest.mark.slow
def test_gpu_pins_resolve_from_pypi(tmp_path):
    """~2 min: pip resolves the whole setup-gpu set (225 packages) from PyPI."""
    if not _pypi_reachable():
        pytest.skip("PyPI is not reachable from here")
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--report", str(report)], capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: the setup-gpu set resolves" in done.stdout
    assert "torch              2.13.0\n" in done.stdout and "vllm               0.31.0\n" in done.stdout
    assert report.stat().st_size > 10_000
