"""Write failures and odd environments (issue 23, class 5): an unwritable results/, results/published/ or
leaderboards/ folder, a file-size limit hit while writing an export, a page, a plot or an `--out` file, a
home folder that cannot be entered, a C locale with a non-ASCII path, a file name that is not UTF-8. Each
ends in one line (exit 2), and nothing half-written is left: a file is whole (new or as it was before) or
absent, and no temporary file remains.

Real conditions, in a real `spsbench` process: `resource.setrlimit(RLIMIT_FSIZE)` and, for permissions,
folders with mode 555/000 (as root the child drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH first, so the
modes apply to it as to any user). The generator is the table: every writing command x every failure.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from spsbench.store.published import read_file
from tests.fixtures.synthetic_store import synthetic_store

ROOT = Path(__file__).resolve().parent.parent
PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2
FSIZE = 36 * 1024           # above SQLite's 32 KiB -shm file, below a plot, a big export, the samples export


def _child_limits(fsize: int | None, no_dac: bool):
    def apply() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        if no_dac and os.geteuid() == 0:      # root would ignore the folder modes: drop the two capabilities
            libc = ctypes.CDLL(None, use_errno=True)
            for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
                libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    return apply


def spsbench(argv: list, cwd: Path, *, fsize: int | None = None, no_dac: bool = False,
             env: dict | None = None) -> subprocess.CompletedProcess:
    """A real `spsbench` process in `cwd`; `env` entries set to None are removed."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SPSBENCH_", "XDG_"))}
    base |= {"PYTHONPATH": str(ROOT), "SPSBENCH_CACHE": str(cwd / "cache"), "HOME": str(cwd / "home")}
    base = {k: v for k, v in (base | (env or {})).items() if v is not None}
    return subprocess.run([sys.executable, "-m", "spsbench.cli", *argv], cwd=cwd, env=base,
                          capture_output=True, timeout=300, preexec_fn=_child_limits(fsize, no_dac))


def one_line(done: subprocess.CompletedProcess, *pieces: str) -> str:
    err = done.stderr.decode("utf-8", "replace").strip()
    assert done.returncode == 2, (done.returncode, err)
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for piece in pieces:
        assert piece in err, err
    return err


def leftovers(folder: Path) -> list[Path]:
    """Temporary files of an interrupted atomic write (spsbench.io names them .<name>.<pid>.<tid>.tmp)."""
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("writes")
    synthetic_store(root / "results" / "spsbench.db")                       # plots of 27-60 KB
    synthetic_store(root / "results" / "big.db", n=16, paper_n=256, problems=24)   # exports of 38 KB
    row = {"completion": "ANSWER: B", "gold": "B", "kind": "mc", "choices": ["one", "two", "three", "four"]}
    (root / "batch.jsonl").write_text("".join(json.dumps(row | {"id": i}) + "\n" for i in range(600)))
    (root / "home").mkdir()
    os.chmod(root, 0o777)
    return root


@pytest.fixture
def denied(work):
    """A folder the child may not write into (mode 555), restored afterwards."""
    folder = work / "readonly"
    folder.mkdir(exist_ok=True)
    os.chmod(folder, 0o555)
    check = subprocess.run([sys.executable, "-c", f"open({str(folder / 'x')!r}, 'w')"], capture_output=True,
                           preexec_fn=_child_limits(None, True))
    if check.returncode == 0:
        os.chmod(folder, 0o755)
        pytest.skip("cannot drop the permission override here (no CAP_SETPCAP)")
    yield folder
    os.chmod(folder, 0o755)


STORE = ["--store", "results/spsbench.db"]

# command -> (argv with OUT for the output, which files it writes (relative to OUT), message on a size limit)
WRITERS = {
    "results --out": (["results", *STORE, "--samples", "--out", "{out}/samples.jsonl"], "--out: cannot write"),
    "publish": (["publish", "--store", "results/big.db", "--all", "--out", "{out}/pub"], "cannot write"),
    "leaderboard": (["leaderboard", *STORE, "--out", "{out}/boards"], "leaderboards: cannot write"),
    "grade --out": (["grade", "--jsonl", "batch.jsonl", "--out", "{out}/samples.jsonl"], "--out: cannot write"),
}


@pytest.mark.parametrize("command", sorted(WRITERS))
def test_a_file_size_limit_is_one_line_and_leaves_every_file_whole(work, tmp_path, command):
    argv, message = WRITERS[command]
    out = tmp_path / "out"
    out.mkdir()
    (out / "samples.jsonl").write_text("the previous export\n")
    done = spsbench([a.format(out=out) for a in argv], work, fsize=FSIZE)
    one_line(done, message, "File too large")
    assert leftovers(out) == []
    assert (out / "samples.jsonl").read_text() == "the previous export\n"        # untouched, not cut
    for export in (out / "pub").glob("*.jsonl.gz"):
        read_file(export)                                                         # each one whole
    for png in (out / "boards").rglob("*.png"):
        assert png.read_bytes().endswith(b"IEND\xaeB`\x82")                      # each plot whole


@pytest.mark.parametrize("command", [*sorted(WRITERS), "eval", "compare --out"])
def test_an_unwritable_folder_is_one_line_before_any_work(work, denied, command):
    argv, _ = WRITERS.get(command, (None, None))
    if command == "eval":
        argv = ["eval", "--store", "{out}/results/x.db", "--engine", "hf", "--limit", "1", "--n", "1"]
    if command == "compare --out":
        argv = ["results", *STORE, "--compare", "grpo-qwen", "sps-qwen", "--out", "{out}/cmp.txt"]
    done = spsbench([a.format(out=denied) for a in argv], work, no_dac=True)
    err = one_line(done, str(denied))
    assert "not writable" in err or "Permission denied" in err, err
    assert list(denied.iterdir()) == []


def test_a_store_in_an_unwritable_folder_says_why_it_cannot_be_opened(work, denied, tmp_path):
    shutil.copy(work / "results" / "spsbench.db", tmp_path / "s.db")
    os.chmod(denied, 0o755)
    shutil.copy(tmp_path / "s.db", denied / "s.db")
    os.chmod(denied / "s.db", 0o666)
    os.chmod(denied, 0o555)
    done = spsbench(["leaderboard", "--store", str(denied / "s.db"), "--out", str(tmp_path / "b")], work,
                    no_dac=True)
    one_line(done, "its folder is not writable (SQLite writes its -wal and -shm files beside it)")


def test_a_home_that_cannot_be_entered(work, denied, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    os.chmod(home, 0)
    env = {"HOME": str(home), "SPSBENCH_CACHE": None}
    try:
        one_line(spsbench(["tasks"], work, no_dac=True, env=env),
                 "cache folder: cannot create folder", "Permission denied", "set SPSBENCH_CACHE to a writable folder")
        # What needs no cache still works: the leaderboard (matplotlib warns, visibly, and uses a temp folder).
        done = spsbench(["leaderboard", *STORE, "--out", str(tmp_path / "b"), "--no-plots"], work, no_dac=True,
                        env=env)
        assert done.returncode == 0, done.stderr
    finally:
        os.chmod(home, 0o755)


def test_an_out_that_is_a_device_is_written_into_never_replaced(work):
    done = spsbench(["results", *STORE, "--out", "/dev/null"], work)
    assert done.returncode == 0, done.stderr
    assert Path("/dev/null").is_char_device()
    done = spsbench(["results", *STORE, "--out", "/dev/full"], work)
    one_line(done, "--out: cannot write /dev/full: No space left on device")
    assert Path("/dev/full").is_char_device()


# ------------------------------------------------------------------ locales and file names


@pytest.fixture(scope="module")
def accented(work) -> Path:
    folder = work / "café"
    folder.mkdir(exist_ok=True)
    shutil.copy(work / "results" / "spsbench.db", folder / "s.db")
    return folder


def test_a_c_locale_with_a_non_ascii_path(work, accented):
    args = ["results", "--store", str(accented / "s.db"), "--compare", "grpo-qwen", "sps-qwen", "--task", "arith"]
    done = spsbench(args, work, env={"LC_ALL": "C", "LANG": "C"})        # Python's UTF-8 mode: it just works
    assert done.returncode == 0 and b"## arith" in done.stdout, done.stderr
    done = spsbench(["leaderboard", "--store", str(accented / "s.db"), "--out", str(accented / "b"), "--no-plots"],
                    work, env={"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0"})
    one_line(done, "holds bytes that are not UTF-8 text", "the locale's encoding is ascii",
             "LC_ALL=C.UTF-8) or PYTHONUTF8=1")
    assert not (accented / "b").exists()


def test_a_file_name_that_is_not_utf8(work, tmp_path):
    latin1 = os.fsencode(str(tmp_path)) + b"/caf\xe9.db"
    shutil.copy(work / "results" / "spsbench.db", latin1)
    done = spsbench(["results", "--store", latin1], work)
    one_line(done, "--store: b'", "caf\\xe9.db'", "holds bytes that are not UTF-8 text")
