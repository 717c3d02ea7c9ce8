"""Plots: valid non-empty PNGs with the expected number of series, distinguishable styles, a fixed 0–100 %
score axis, bucket edges, the plots `refresh` itself draws (the base model as step 0), and byte-identical
re-renders, in one process and across processes (the leaderboards must not change when the store does not)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spsbench.leaderboards import plots
from spsbench.leaderboards.refresh import refresh
from tests.fixtures.synthetic_store import synthetic_store

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    data = path.read_bytes()
    return len(data) > 1000 and data.startswith(PNG_MAGIC)


def test_bucket_edges():
    assert plots.bucket_counts([0.0, 0.01, 0.25, 0.26, 0.5, 0.75, 0.76, 0.99, 1.0]) == [1, 2, 2, 1, 2, 1]


def test_passk_curves_one_line_per_series(tmp_path):
    s = plots.passk_curves(
        tmp_path / "a.png", "t", {"step 1": {1: 0.1, 2: 0.2, 4: 0.3}, "step 2": {1: 0.2, 2: 0.3}}
    )
    assert s.series == 2 and s.labels == ("step 1", "step 2") and _is_png(s.path)
    assert s.xs == (1.0, 2.0, 4.0)


def test_interval_bands_are_drawn_under_the_lines(tmp_path):
    import matplotlib.pyplot as plt

    seen = {}
    real_close = plt.close

    def keep(fig):                       # look at the axes before the figure is closed
        seen["bands"] = sum(len(ax.collections) for ax in fig.axes)
        real_close(fig)

    plt.close = keep
    try:
        s = plots.passk_curves(tmp_path / "b.png", "t", {"a": {1: 0.1, 2: 0.2}, "b": {1: 0.3, 2: 0.4}},
                               {"a": {1: (0.0, 0.2), 2: (0.1, 0.3)}})
        assert s.series == 2 and seen["bands"] == 1            # one band: only "a" has intervals
        plots.step_curves(tmp_path / "c.png", "t", [0, 10], {"Avg@8": [0.1, 0.2]}, None,
                          {"Avg@8": [(0.0, 0.3), None]})
        assert seen["bands"] == 1                               # a single point: a bar, not a band
    finally:
        plt.close = real_close


def test_paired_differences_one_bar_per_pair_and_metric(tmp_path):
    s = plots.paired_differences(tmp_path / "d.png", "t", {"B − A": [(0.1, 0.02, 0.2), (0.05, -0.01, 0.1)]},
                                 ["Pass@8", "Avg@8"])
    assert s.series == 2 and s.labels == ("B − A",) and _is_png(s.path)


def test_paired_differences_draw_a_point_outside_its_own_shifted_interval(tmp_path):
    """A bias-shifted percentile interval of skewed replicates can exclude its point (stats._diff): the
    plot still draws it (matplotlib refuses a negative error length), found by `spsbench leaderboard`."""
    s = plots.paired_differences(tmp_path / "d.png", "t", {"B − A": [(0.01, 0.02, 0.2)]}, ["Pass@8"])
    assert s.series == 1 and _is_png(s.path)


def test_frontier_curves_one_line_per_run_and_the_base_marked(tmp_path):
    runs = {"grpo (g)": [(0.30, 0.80, "base"), (0.40, 0.70, "100"), (0.50, 0.60, "200")],
            "sps (s)": [(0.30, 0.80, "base"), (0.35, 0.82, "100")]}
    s = plots.frontier_curves(tmp_path / "f.png", "t", 64, runs, (0.30, 0.80))
    assert s.series == 3 and s.labels == ("grpo (g)", "sps (s)", "base model (step 0)") and _is_png(s.path)
    assert s.xs == (30.0, 35.0, 40.0, 50.0)
    assert 55 < s.ylim[0] < 60 and 82 < s.ylim[1] < 90               # fitted to the data, not 0-100
    empty = plots.frontier_curves(tmp_path / "g.png", "t", 8, {})
    assert empty.series == 0 and _is_png(empty.path)


def test_score_axes_are_fixed_to_0_100_percent(tmp_path):
    low = plots.passk_curves(tmp_path / "low.png", "t", {"a": {1: 0.01, 2: 0.02}})
    high = plots.passk_curves(tmp_path / "high.png", "t", {"a": {1: 0.98, 2: 1.0}})
    steps = plots.step_curves(tmp_path / "s.png", "t", [0, 10], {"Avg@4": [0.3, 0.4]})
    assert low.ylim == high.ylim == steps.ylim == plots.SCORE_YLIM
    assert plots.SCORE_YLIM[0] < 0 and plots.SCORE_YLIM[1] > 100  # markers at 0 and 100 are not clipped


def test_coinciding_series_get_distinct_styles(tmp_path):
    same = {1: 0.5, 2: 0.75, 4: 1.0}
    s = plots.passk_curves(tmp_path / "same.png", "t", {f"run {i}": same for i in range(5)})
    assert s.series == 5 and len(set(s.styles)) == 5  # (marker, line style) never repeats


def test_step_curves_skip_missing_points(tmp_path):
    s = plots.step_curves(
        tmp_path / "b.png", "t", [100, 200, 300], {"Pass@8": [0.5, 0.6, 0.7], "Avg@8": [0.2, None, 0.3]}
    )
    assert s.series == 2 and _is_png(s.path)


def test_bucket_histogram_one_bar_group_per_model(tmp_path):
    s = plots.bucket_histogram(
        tmp_path / "c.png", "t", {"base": [0, 0.5, 1], "best": [0.2, 0.5, 1], "last": [1]}
    )
    assert s.series == 3 and _is_png(s.path)


def test_no_figures_left_open(tmp_path):
    import matplotlib.pyplot as plt

    plots.passk_curves(tmp_path / "d.png", "t", {"x": {1: 0.5}})
    plots.passk_curves(tmp_path / "e.png", "t", {})  # nothing to draw: an empty, labelled axis
    assert plt.get_fignums() == []


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    """The synthetic store rendered twice ("one", "two"), and every PlotSummary that `refresh` itself
    produced in the first render, by file name (the plots functions are wrapped, not replaced)."""
    root = tmp_path_factory.mktemp("render")
    store = synthetic_store(root / "spsbench.db")
    summaries = {}
    with pytest.MonkeyPatch.context() as mp:
        for kind in ("passk_curves", "step_curves", "bucket_histogram", "paired_differences", "frontier_curves"):
            real = getattr(plots, kind)

            def record(path, *args, _real=real):
                summaries[Path(path).name] = _real(path, *args)
                return summaries[Path(path).name]

            mp.setattr(plots, kind, record)
        one = refresh(store, root / "one", store_label="results/spsbench.db")
    two = refresh(store, root / "two", store_label="results/spsbench.db")
    return (one, two), root, summaries


@pytest.fixture(scope="module")
def two_renders(renders):
    return renders[:2]


@pytest.fixture(scope="module")
def drawn(renders):
    return renders[2]


def test_refresh_writes_referenced_pngs(two_renders):
    (files, _), root = two_renders
    pngs = [f for f in files if f.suffix == ".png"]
    # 2 runs x 2 tasks x (passk, steps, buckets) + 2 x (passk, paired) comparison plots + 2 task frontiers
    assert len(pngs) == 18
    assert all(_is_png(p) for p in pngs)
    markdown = "".join(p.read_text() for p in (root / "one").rglob("*.md"))
    for p in pngs:
        assert f"plots/{p.name})" in markdown


def test_same_store_gives_byte_identical_files(two_renders):
    (one, two), root = two_renders
    rel_one = [p.relative_to(root / "one") for p in one]
    assert rel_one == [p.relative_to(root / "two") for p in two]
    for rel in rel_one:
        assert (root / "one" / rel).read_bytes() == (root / "two" / rel).read_bytes(), rel


def test_refresh_steps_plot_starts_at_the_base_model(drawn):
    s = drawn["run-sps-qwen-aime25-steps.png"]
    assert s.labels == ("Pass@128", "Avg@128") and s.series == 2
    assert s.xs == (0.0, 100.0, 200.0, 300.0)  # the base model (step 0) and three checkpoints
    assert s.ylim == plots.SCORE_YLIM


def test_refresh_passk_plots_have_every_comparable_row(drawn):
    run = drawn["run-grpo-qwen-aime25-passk.png"]
    # base + 3 checkpoints; the temperature-1.0 evaluation of step 300 has another setting: left out
    assert run.labels == ("base", "step 100", "step 200", "step 300") and len(set(run.styles)) == 4
    assert run.xs == (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0) and run.ylim == plots.SCORE_YLIM
    compare = drawn["compare-Qwen2.5-Math-1.5B-aime25-passk.png"]
    assert compare.labels == ("base", "grpo (grpo-qwen)", "sps (sps-qwen)")
    assert drawn["compare-Qwen2.5-Math-1.5B-arith-passk.png"].xs[-1] == 32.0
    assert drawn["run-sps-qwen-arith-buckets.png"].labels == ("base (first)", "step 300 (best)")
    paired = drawn["compare-Qwen2.5-Math-1.5B-arith-paired.png"]
    assert paired.labels == ("grpo (grpo-qwen) − base", "sps (sps-qwen) − base", "sps (sps-qwen) − grpo (grpo-qwen)")
    assert paired.series == 6                                         # 3 pairs x (Pass@32, Avg@32)
    frontier = drawn["frontier-Qwen2.5-Math-1.5B-aime25.png"]
    assert frontier.labels == ("grpo (grpo-qwen)", "sps (sps-qwen)", "base model (step 0)") and frontier.series == 3
    assert len(frontier.xs) == 7                  # base + 2 x 3 checkpoints (the temperature-1.0 one left out)
    assert len(drawn) == 18


def test_unchanged_plots_are_not_redrawn_and_missing_ones_are(tmp_path):
    store = synthetic_store(tmp_path / "spsbench.db")
    files = [f for f in refresh(store, tmp_path / "lb") if f.suffix == ".png"]
    stamps = {f: f.stat().st_mtime_ns for f in files}
    files[0].unlink()
    refresh(store, tmp_path / "lb")
    assert files[0].is_file() and _is_png(files[0])
    assert all(f.stat().st_mtime_ns == stamps[f] for f in files[1:])
    refresh(store, tmp_path / "lb", plots=False)  # Markdown only: the linked PNGs stay
    assert all(f.is_file() for f in files)


def test_leaderboard_is_byte_identical_across_processes(tmp_path):
    """Two `spsbench leaderboard` processes (different hash seeds) write the same bytes in every file."""
    store = synthetic_store(tmp_path / "results" / "spsbench.db", model_root=tmp_path)
    code = "import sys; from spsbench.cli import main; sys.exit(main(sys.argv[1:]))"
    for name, seed in (("a", "1"), ("b", "2")):  # one after the other: 2 shared cores
        env = dict(os.environ, PYTHONHASHSEED=seed)
        proc = subprocess.run(
            [sys.executable, "-c", code, "leaderboard", "--store", str(store), "--out", name],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
    a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert a == b and sum(p.suffix == ".png" for p in a) == 18
    for rel in a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
