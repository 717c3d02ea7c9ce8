"""Plots: valid non-empty PNGs with the expected number of series, bucket edges, and byte-identical
re-renders (the leaderboards must not change when the store does not)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spsbench import plots
from spsbench.leaderboard import refresh
from spsbench.leaderboard_demo import synthetic_store

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
    assert plt.get_fignums() == []


@pytest.fixture(scope="module")
def two_renders(tmp_path_factory):
    root = tmp_path_factory.mktemp("render")
    store = synthetic_store(root / "spsbench.db")
    return [refresh(store, root / name, store_label="results/spsbench.db") for name in ("one", "two")], root


def test_refresh_writes_referenced_pngs(two_renders):
    (files, _), root = two_renders
    pngs = [f for f in files if f.suffix == ".png"]
    assert len(pngs) == 14  # 2 runs x 2 tasks x (passk, steps, buckets) + 2 comparison plots
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
