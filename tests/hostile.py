"""What every hostile-input test file shares (tests/test_hostile_*.py): the CLI-fails-in-one-line check,
the one-line-error check, the Hypothesis settings, and generators of arbitrary JSON-like values."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from spsbench.cli import main
from spsbench.errors import SpsbenchError

# No example database: a test run must not write into the checkout (.hypothesis/).
HYPO = settings(max_examples=25, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 40), st.floats(allow_nan=True),
                    st.text(max_size=12))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=6)


def fails(capsys, argv: list[str], *expected: str) -> str:
    """Run the CLI: exit 2 and exactly one stderr line holding every expected piece."""
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for piece in expected:
        assert piece in err, err
    return err


def one_line_error(exc: BaseException) -> None:
    assert isinstance(exc, SpsbenchError), repr(exc)
    assert "\n" not in str(exc) and str(exc).strip(), repr(exc)


def outcome_of(call) -> object:
    """The call's result, or None after a one-line SpsbenchError; anything else fails the property."""
    try:
        return call()
    except SpsbenchError as exc:
        one_line_error(exc)
        return None


def run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one in-process CLI call; any exception but a SpsbenchError (which the CLI
    turns into exit 2) fails the test with its traceback."""
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    """The one `spsbench CMD: error: ...` line of a refusal's stderr (asserting it is the only line)."""
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and ": error: " in lines[0] and "Traceback" not in err, err[-2000:]
    return lines[0].split(": error: ", 1)[1]


def tree(folder) -> dict[str, tuple[int, int]]:
    """Every file under `folder` (relative path -> size, mtime in ns): equal snapshots mean nothing was written,
    replaced or removed."""
    import os
    from pathlib import Path

    folder = Path(folder)
    if not folder.exists():
        return {}
    out = {}
    for path in sorted(folder.rglob("*")):
        st = os.stat(path)
        out[str(path.relative_to(folder))] = (st.st_size if path.is_file() else -1, st.st_mtime_ns)
    return out


def counts(store: Path) -> tuple[int, int]:
    """(evaluations, samples) in a store; (0, 0) when it was never created."""
    if not store.exists():
        return (0, 0)
    con = sqlite3.connect(store)
    try:
        return tuple(con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("evaluations", "samples"))
    finally:
        con.close()
