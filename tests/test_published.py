"""Published results: the deterministic export, pages rebuilt from it alone, its merge with a local
store (nothing counted twice, nothing published lost), `spsbench publish`, and a fresh clone of the
repository reproducing the committed leaderboards byte for byte."""

from __future__ import annotations

import gzip
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from spsbench import paths
from spsbench.cli import main
from spsbench.leaderboards.refresh import refresh
from spsbench.store.published import read_published
from tests.fixtures.synthetic_store import synthetic_store

STORE = "results/spsbench.db"


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A project folder (the working directory) with the synthetic store as its default store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPSBENCH_STORE", raising=False)
    monkeypatch.delenv("SPSBENCH_PUBLISHED", raising=False)
    monkeypatch.delenv("SPSBENCH_LEADERBOARDS", raising=False)
    synthetic_store(tmp_path / STORE, model_root=tmp_path)
    return tmp_path


def _pages(folder: Path) -> dict[str, str]:
    """Every page, with the source it names (header, index) written the same way."""
    return {p.relative_to(folder).as_posix(): p.read_text().replace("results/published", STORE)
            for p in sorted(folder.rglob("*.md"))}


def test_export_is_byte_deterministic_and_plain_gzip_jsonl(project):
    assert main(["publish", "--all"]) == 0
    files = sorted((project / "results/published").glob("*.jsonl.gz"))
    first = {f.name: f.read_bytes() for f in files}
    shutil.rmtree(project / "results/published")
    assert main(["publish", "--all"]) == 0
    assert {f.name: f.read_bytes() for f in sorted((project / "results/published").glob("*.jsonl.gz"))} == first
    assert len(files) == 16 and all(data[4:8] == b"\0\0\0\0" for data in first.values())  # gzip mtime 0
    head = gzip.decompress(first[files[0].name]).decode().splitlines()[0]
    assert '"kind": "evaluation"' in head and str(project) not in head        # no machine path


def test_pages_from_the_export_alone_equal_the_pages_from_the_store(project):
    refresh(STORE, project / "from-store", plots=False, published=False)
    assert main(["publish", "--all"]) == 0
    (project / STORE).rename(project / "elsewhere.db")
    shutil.rmtree(project / "runs")                          # a clone has no run folders either
    refresh(STORE, project / "from-export", plots=False)
    assert _pages(project / "from-export") == _pages(project / "from-store")
    assert "from results/published;" in (project / "from-export/README.md").read_text()


def test_local_store_adds_to_the_export_and_counts_nothing_twice(project):
    assert main(["publish", "--task", "arith"]) == 0
    assert len(read_published(project / "results/published")) == 7
    refresh(STORE, project / "lb", plots=False)
    index = (project / "lb/README.md").read_text()
    assert "16 finished evaluations" in index                 # 7 published + 16 local, 7 of them the same
    assert "from results/published + results/spsbench.db;" in index


def test_a_local_evaluation_with_more_samples_replaces_the_published_one(project):
    assert main(["publish", "--task", "arith", "--model", "other"]) == 2   # no arith eval of other-7b
    assert main(["publish", "--eval", "1"]) == 0
    con = sqlite3.connect(project / STORE)                    # the local one gains samples (n 128 -> 256)
    con.execute("UPDATE evaluations SET n = 256 WHERE id = 1")
    con.commit()
    con.close()
    refresh(STORE, project / "lb", plots=False)
    assert "from results/spsbench.db;" not in (project / "lb/README.md").read_text()
    assert "results/published + results/spsbench.db" in (project / "lb/README.md").read_text()


def test_publish_needs_a_selection_and_a_store(project, capsys):
    assert main(["publish"]) == 2
    assert "choose what to publish" in capsys.readouterr().err
    assert main(["publish", "--all", "--store", "nowhere.db"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["publish", "--eval", "x"]) == 2
    assert "--eval" in capsys.readouterr().err


def test_a_broken_export_file_is_one_line(project, capsys):
    folder = project / "results/published"
    folder.mkdir(parents=True)
    (folder / "bad.jsonl.gz").write_bytes(b"not gzip")
    assert main(["leaderboard", "--no-plots"]) == 2
    assert "not a readable export" in capsys.readouterr().err


def test_no_store_and_no_export_is_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["leaderboard"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_fresh_clone_reproduces_the_committed_leaderboards(tmp_path):
    """git clone of this repository -> `spsbench leaderboard` -> nothing changed (pages and plots).
    Fails when a change to the pages was committed without regenerating `leaderboards/` (~9 s here)."""
    repo = paths.REPO_ROOT
    if not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPSBENCH_")} | {"PYTHONPATH": str(clone)}
    subprocess.run([sys.executable, "-m", "spsbench.cli", "leaderboard"], cwd=clone, env=env, check=True,
                   capture_output=True)
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    assert status.stdout == ""


def test_published_models_carry_their_names_and_old_exports_stay_readable(tmp_path, monkeypatch):
    """The export records the display name this machine gives (it knows its cache); a clone whose cache
    is elsewhere still shows it; an export written before names existed is named by the same rule."""
    import json

    from spsbench.store.published import write_records

    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    for var in ("SPSBENCH_STORE", "SPSBENCH_PUBLISHED", "SPSBENCH_LEADERBOARDS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SPSBENCH_CACHE", str(tmp_path / "my-cache"))   # not the default location
    base = str(tmp_path / "my-cache" / "models" / "smollm2-135m-instruct")
    synthetic_store(project / STORE, model_root=project, base_model=base)
    assert main(["publish", "--all"]) == 0
    heads = {p.head["model"]["path"]: p.head["model"] for p in read_published(project / "results/published")}
    assert heads[paths.display_path(base)]["name"] == "smollm2-135m-instruct (embedded)"
    assert heads["runs/sps-qwen/checkpoint-300"]["name"] == "sps-qwen@300"
    assert heads["runs/sps-qwen/checkpoint-300"]["base_name"] == "smollm2-135m-instruct (embedded)"
    (project / STORE).unlink()
    monkeypatch.setenv("SPSBENCH_CACHE", str(tmp_path / "other-cache"))    # a clone on another machine
    refresh(STORE, project / "lb", plots=False)
    assert "## Base model `smollm2-135m-instruct (embedded)`" in (project / "lb/comparison.md").read_text()
    for path in sorted((project / "results/published").glob("*.jsonl.gz")):     # strip the names: an old export
        records = [json.loads(line) for line in gzip.decompress(path.read_bytes()).decode().splitlines()]
        for key in ("name", "base_name"):
            records[0]["model"].pop(key)
        write_records(path, records)
    refresh(STORE, project / "lb", plots=False)
    comparison = (project / "lb/comparison.md").read_text()
    assert "## Base model `smollm2-135m-instruct`" in comparison                  # the folder-name rule
    assert "| sps | sps-qwen | arith |" in comparison
def test_sps_checkpoints_before_the_first_irl_phase_stay_marked_in_pages_from_the_export(project):
    """The trainer's spsbench_checkpoint.json says how many IRL phases ran before each SPS checkpoint; the
    export carries it (a clone has no run folders), so the comparison page marks the same checkpoints."""
    import json

    for step in (100, 200, 300):              # the synthetic SPS run's checkpoints (paths in its store)
        folder = project / "runs" / "sps-qwen" / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / paths.CHECKPOINT_INFO).write_text(json.dumps({"step": step, "irl_phases": 0}))
    refresh(STORE, project / "from-store", plots=False, published=False)
    comparison = (project / "from-store/comparison.md").read_text()
    assert "‡" in comparison and "(before any IRL phase)" in comparison
    assert main(["publish", "--all"]) == 0
    (project / STORE).rename(project / "elsewhere.db")
    shutil.rmtree(project / "runs")
    refresh(STORE, project / "from-export", plots=False)
    assert _pages(project / "from-export") == _pages(project / "from-store")
