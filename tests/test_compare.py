"""`spsbench results --compare / --solved-diff` and the paired sections of the pages, on the synthetic store."""

from __future__ import annotations

from pathlib import Path

import pytest

from spsbench.cli import main
from spsbench.leaderboards.pairs import solved_change
from spsbench.leaderboards.snapshot import Entry, Model, Score, Setting
from tests.fixtures.synthetic_store import synthetic_store


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return synthetic_store(tmp_path_factory.mktemp("cmp") / "s.db")


def test_compare_prints_paired_differences_with_significance(store, capsys):
    assert main(["results", "--store", str(store), "--compare", "grpo-qwen", "sps-qwen", "--task", "arith"]) == 0
    out = capsys.readouterr().out
    assert "## arith: B = sps-qwen@300 vs A = grpo-qwen@200" in out and "12 problems in common" in out
    assert "Avg@32        37.0    43.8  +6.8 [" in out and out.rstrip().endswith("*")   # significant
    assert "Pass@32       75.0   100.0  +25.0 [" in out and "n.s." in out              # not significant


def test_solved_diff_lists_gained_problems_with_pass_rates(store, capsys):
    assert main(["results", "--store", str(store), "--solved-diff", "grpo-qwen@100", "sps-qwen@300",
                 "--task", "arith"]) == 0
    out = capsys.readouterr().out
    assert "Gained 3, lost 0, net +3; exact sign test (McNemar) p = 0.25 (n.s.)" in out
    assert "| gained | p00 | 0.0 |" in out


def test_compare_unknown_names_are_one_line(store, capsys):
    assert main(["results", "--store", str(store), "--compare", "nope", "sps-qwen"]) == 2
    assert "--compare A: no run or model named 'nope'; runs: grpo-qwen, sps-qwen; models: " in capsys.readouterr().err
    assert main(["results", "--store", str(store), "--compare", "checkpoint", "sps-qwen"]) == 2
    assert "names containing it: grpo-qwen@100" in capsys.readouterr().err


def test_solved_change_counts_gains_losses_and_the_sign_test():
    setting = Setting("1", "strict", 4, 0.7, 1.0, 64)
    a = Entry(1, Model(1, "a", ""), "t", setting, Score(0, None, None), {}, {},
              [("p1", 4, 0), ("p2", 4, 2), ("p3", 4, 0), ("p4", 4, 1)])
    b = Entry(2, Model(2, "b", ""), "t", setting, Score(0, None, None), {}, {},
              [("p1", 4, 1), ("p2", 4, 0), ("p3", 4, 3), ("p5", 4, 4)])
    change = solved_change(a, b)
    assert change.problems == 3                                   # p4 and p5 are not paired
    assert [g[0] for g in change.gained] == ["p1", "p3"] and change.gained[1][2] == 0.75
    assert [x[0] for x in change.lost] == ["p2"] and change.p_value == 1.0


def test_half_split_is_fixed_disjoint_and_stable_when_problems_are_added():
    from spsbench.leaderboards.selection import split_halves

    ids = [f"p{i:02d}" for i in range(20)]
    a, b = split_halves(ids)
    assert a.isdisjoint(b) and a | b == set(ids) and len(a) == 10
    assert split_halves(list(reversed(ids))) == (a, b)


def test_selection_without_peeking_is_reported_beside_the_papers_rule(store, tmp_path, capsys):
    assert main(["leaderboard", "--store", str(store), "--out", str(tmp_path), "--no-plots",
                 "--select-on", "aime25"]) == 0
    page = (tmp_path / "comparison.md").read_text()
    section = page.split("### Checkpoint selection", 1)[1]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| grpo-qwen") or
            line.startswith("| sps-qwen")]
    assert len(rows) == 6                  # 2 runs x 2 tasks (half split) + 2 runs on arith (--select-on)
    assert all(float(r[-1].rstrip(" |")) >= 0 for r in rows)        # the best on B is never beaten
    assert "| grpo-qwen | arith | step 200 | 37.0 | aime25 |" in section
    assert main(["leaderboard", "--store", str(store), "--select-on", " , "]) == 2
    assert "--select-on" in capsys.readouterr().err
