"""The lab's results are data in the repository: a fresh clone's `spsbench lab page` rebuilds the committed
`leaderboards/lab/` byte for byte, and the committed page answers the frontier question with what the
issue asks for (a peaked base, GRPO's Pass@256 change with its interval, the frontier plot, the verdict at
matched Pass@1 with a paired interval, the mass flow)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from spsbench import paths
from spsbench.lab import record
from spsbench.lab import view as v

DATA = paths.REPO_ROOT / "results" / "lab"
PAGE = paths.REPO_ROOT / "leaderboards" / "lab"


def test_fresh_clone_rebuilds_the_committed_lab_page(tmp_path):
    """git clone -> `spsbench lab page` -> `git status` clean (Markdown and PNGs, byte for byte)."""
    if not (paths.REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(paths.REPO_ROOT), str(clone)], check=True)
    assert (clone / "results" / "lab" / "dynamics-main.json.gz").is_file()
    env = {k: val for k, val in os.environ.items() if not k.startswith("SPSBENCH_")} | {"PYTHONPATH": str(clone)}
    subprocess.run([sys.executable, "-m", "spsbench.cli", "lab", "page"], cwd=clone, env=env, check=True,
                   capture_output=True)
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    assert status.stdout == ""


def test_committed_page_answers_the_frontier_question():
    sessions = record.load_sessions(DATA)
    main = next(s for s in sessions if s["tag"] == "main")
    view = v.SessionView(main)
    assert len(view.seeds) >= 6 and {"grpo", "sps", "grpo-slow"} <= set(view.labels)
    assert max(v.pass_k(b, 256) for b in view.bases()) < 0.99                          # a peaked base
    text = (PAGE / "README.md").read_text()
    d256 = v.change_from_base(view, "grpo", lambda p: v.pass_k(p, 256))
    assert "GRPO" in text and f"{100 * d256[0]:+.1f} [{100 * d256[1]:+.1f}, {100 * d256[2]:+.1f}] points" in text
    assert "![frontier](main-frontier.png)" in text and (PAGE / "main-frontier.png").is_file()
    m = v.matched_rows(view, "sps", 256)
    assert m["diff"] is not None and f"{100 * m['diff'][0]:+.1f} [{100 * m['diff'][1]:+.1f}" in text
    assert "### Where the mass goes" in text and "| sps | IRL phase at step" in text
    assert "**The lab's current answer**" in text
    assert "Warm-ups and all measurements included." in text and "CPU time" in text      # time and CPU stated
