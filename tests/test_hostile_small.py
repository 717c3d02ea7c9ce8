"""Issue 23, classes 8 and 9: a gold answer with a line break (every kind of line break, from every place a
gold comes from), a model id with a line break in the Markdown tables (any text in a cell), `serve
--vllm-args` that would make the printed URL wrong (every spelling of the server's own options),
`$SPSBENCH_STORE` set to a folder (every command that reads the store), and `spsbench serve` waiting for
the processes its server leaves behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spsbench.errors import TaskError
from spsbench.leaderboards.markdown import cell, table
from spsbench.tasks import load_task
from spsbench.validate import LINE_BREAKS
from tests.fixtures.synthetic_store import synthetic_store
from tests.hostile import HYPO, fails

ROOT = Path(__file__).resolve().parent.parent

# ------------------------------------------------------------------ a gold with a line break


@pytest.mark.parametrize("brk", LINE_BREAKS, ids=[repr(b) for b in LINE_BREAKS])
def test_a_gold_with_a_line_break_is_refused_wherever_it_comes_from(tmp_path, capsys, brk):
    gold = f"4{brk}2"
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"id": "1", "problem": "What is 6 * 7?", "answer": gold}) + "\n")
    task = tmp_path / "t.yaml"
    task.write_text(textwrap.dedent(f"""\
        name: mine
        version: "1"
        grader: math
        source: {{file: {data}}}
        columns: {{id: id, problem: problem, answer: answer}}
        prompt_template: "{{problem}}"
        n: 1
        k: [1]
        """))
    with pytest.raises(TaskError, match="holds a line break"):
        load_task(task)
    fails(capsys, ["eval", "--task-file", str(task), "--store", str(tmp_path / "s.db"), "--no-leaderboard"],
          "columns.answer: row 0", "holds a line break")
    assert not (tmp_path / "s.db").exists()
    fails(capsys, ["grade", "--gold", gold, str(data)], "--gold: the gold answer", "holds a line break")
    batch = tmp_path / "batch.jsonl"
    batch.write_text(json.dumps({"completion": "\\boxed{6}", "gold": gold}) + "\n")
    fails(capsys, ["grade", "--jsonl", str(batch)], "batch.jsonl:1: field 'gold'", "holds a line break")


# ------------------------------------------------------------------ any text in a Markdown cell


@HYPO
@given(text=st.text(max_size=30))
def test_property_any_model_id_stays_in_its_table_row(text):
    lines = table(["model", "score"], [[text, "1.0"], ["other", "2.0"]])
    page = "\n".join(lines)
    assert len(page.splitlines()) == 4                       # header, rule, two rows: nothing broke a row
    assert all(line.startswith("| ") and line.endswith(" |") for line in page.splitlines())
    assert cell(text).count("|") == cell(text).count("\\|")   # every pipe escaped


def test_a_model_id_with_line_breaks_keeps_the_leaderboard_tables_whole(tmp_path):
    import sqlite3

    from spsbench.leaderboards.refresh import refresh

    store = synthetic_store(tmp_path / "s.db", n=4, problems=6)
    con = sqlite3.connect(store)
    con.execute("UPDATE models SET path = ? WHERE path = '/models/other-7b'", ("/models/other\nnew|line\r\u2028x",))
    con.commit()
    con.close()
    for page in refresh(store, tmp_path / "boards", plots=False):
        if page.suffix != ".md":
            continue
        lines = page.read_text().splitlines()
        for before, line in zip(lines, lines[1:], strict=False):
            assert not (before.startswith("|") and line and not line.startswith("|")), (page.name, before, line)


# ------------------------------------------------------------------ serve --vllm-args


OWN = ["--port 9999", "--port=9999", "--por 9999", "--host 0.0.0.0", "--host=::", "--served-model-name x",
       "--served-model-name=x", "--served 7", "--uds /tmp/s"]


@pytest.mark.parametrize("extra", OWN)
def test_serve_refuses_vllm_args_that_would_make_the_printed_url_wrong(capsys, tiny_model_dir, extra):
    fails(capsys, ["serve", str(tiny_model_dir), "--dry-run", f"--vllm-args={extra}"],
          "--vllm-args: ", "use spsbench serve's own --")


def test_serve_passes_other_vllm_args_and_prints_the_url_it_serves(capsys, tiny_model_dir):
    from spsbench.cli import main

    assert main(["serve", str(tiny_model_dir), "--dry-run", "--port", "8125", "--vllm-args=--max-num-seqs 2 "
                 "--portable-flag-of-the-future 1"]) == 0
    out, err = capsys.readouterr()
    assert "--port 8125" in out and out.count("--port ") == 1 and "http://127.0.0.1:8125/v1" in err


# ------------------------------------------------------------------ $SPSBENCH_STORE set to a folder


@pytest.mark.parametrize("argv", [["results"], ["leaderboard"], ["publish", "--all"],
                                  ["results", "--compare", "a", "b"], ["eval", "--limit", "1"]])
@pytest.mark.parametrize("value", ["folder", "folder/"])
def test_spsbench_store_set_to_a_folder_is_named_as_such(capsys, monkeypatch, tmp_path, argv, value):
    (tmp_path / "folder").mkdir()
    monkeypatch.setenv("SPSBENCH_STORE", str(tmp_path / value))
    fails(capsys, argv, "$SPSBENCH_STORE: ", "is a folder; it names the store file")


def test_an_empty_spsbench_store_is_the_default(monkeypatch, tmp_path):
    from spsbench import paths

    monkeypatch.setenv("SPSBENCH_STORE", "")
    assert paths.default_store_path() == Path("results/spsbench.db")


# ------------------------------------------------------------------ serve waits for its engine processes


SERVER = textwrap.dedent("""\
    import subprocess, sys, time
    # A server that leaves its engine process behind: the engine outlives it by 1.5 s.
    engine = f"import time; time.sleep(1.5); open({sys.argv[1]!r}, 'w').close()"
    subprocess.Popen([sys.executable, "-c", engine])
    time.sleep(0.2)
    """)
PARENT = textwrap.dedent("""\
    import subprocess, sys, time
    from spsbench.engines import vllm_server
    assert vllm_server.become_subreaper()
    server = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]])
    server.wait()
    left = vllm_server.children()
    start = time.monotonic()
    signalled = vllm_server.reap_children(grace=float(sys.argv[3]))
    print(len(left), round(time.monotonic() - start, 1), len(signalled), len(vllm_server.children()))
    """)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a child subreaper is a Linux feature")
@pytest.mark.parametrize("grace", [10.0, 0.3])
def test_serve_waits_for_the_engine_processes_its_server_leaves_behind(tmp_path, grace):
    done_file = tmp_path / "engine-finished"
    out = subprocess.run([sys.executable, "-c", PARENT, SERVER, str(done_file), str(grace)], capture_output=True,
                         text=True, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    orphans, waited, signalled, after = out.stdout.split()
    assert orphans == "1"                       # re-parented to us when the server exited, still running
    assert after == "0"                         # nothing left: reaped
    if grace > 2:
        assert signalled == "0" and done_file.exists() and float(waited) >= 1.0     # it finished; we waited
    else:
        assert signalled == "1" and not done_file.exists()                           # stopped after the grace
