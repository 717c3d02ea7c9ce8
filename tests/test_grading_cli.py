"""`spsbench grade`: one completion from a file or stdin, JSONL batches, one-line errors naming file:line."""

from __future__ import annotations

import io
import json

import pytest

from spsbench.cli import main


def test_grade_one_completion_from_a_file(tmp_path, capsys):
    path = tmp_path / "completion.txt"
    path.write_text("<think>hmm \\boxed{7}</think> so the total is \\boxed{1\\,000}.")
    assert main(["grade", "--gold", "1000", str(path)]) == 0
    out = capsys.readouterr().out
    assert "outcome:   correct" in out and "extracted: 1\\,000" in out and "strict" in out


def test_grade_one_from_stdin_as_json(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("Reasoning...\nANSWER: B"))
    assert main(["grade", "--gold", "C", "--kind", "mc", "--choices", "4", "--json", "-"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["outcome"] == "incorrect" and result["extracted"] == "B"


def test_grade_batch_jsonl_to_file(tmp_path, capsys):
    rows = [
        {"id": "a", "completion": "\\boxed{33}", "gold": "33"},
        {"id": "b", "completion": "it is 33", "gold": 33},
        {"id": "c", "completion": "Answer: (B)", "gold": "B", "kind": "mc", "choices": ["1", "2", "3"]},
        {"id": "d", "completion": "\\boxed{9^{9^{9^{9}}}}", "gold": "1"},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    dst = tmp_path / "out.jsonl"
    assert main(["grade", "--jsonl", str(src), "--out", str(dst), "--timeout", "1", "--workers", "1"]) == 0
    out = [json.loads(line) for line in dst.read_text().splitlines()]
    assert [r["id"] for r in out] == ["a", "b", "c", "d"]
    assert [r["outcome"] for r in out] == ["correct", "no_answer", "correct", "grader_timeout"]
    assert out[0]["extracted"] == "33" and out[1]["extracted"] is None
    assert "completion" not in out[0]
    assert "first timed out at 1 s" in out[3]["detail"]                # retried once at 2 s, then final
    err = capsys.readouterr().err
    assert "graded 4" in err and "timeouts 1 (after 1 retries)" in err and ";x=5" in err


@pytest.mark.parametrize("line, message", [
    ("{not json", "in.jsonl:2: not valid JSON"),
    ('{"gold": "1"}', "in.jsonl:2: missing field 'completion'"),
    ('{"completion": "x", "gold": "1", "kind": "code"}', "in.jsonl:2: field 'kind'"),
    ('{"completion": "x", "gold": "A", "kind": "mc", "choices": "four"}', "in.jsonl:2: field 'choices'"),
    ("[1, 2]", "in.jsonl:2: expected a JSON object"),
])
def test_malformed_jsonl_is_one_line_naming_file_and_line(tmp_path, capsys, line, message):
    src = tmp_path / "in.jsonl"
    src.write_text('{"completion": "\\\\boxed{1}", "gold": "1"}\n' + line + "\n")
    assert main(["grade", "--jsonl", str(src)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_user_errors_are_one_line(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "missing.txt"), "--gold", "1"]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["grade", "-"]) == 2
    assert "--gold is required" in capsys.readouterr().err
    assert main(["grade", "--gold", "1", "--timeout", "0", "-"]) == 2
    assert "--timeout: must be > 0, got 0" in capsys.readouterr().err        # the flag is named


def test_sub_second_timeout_and_words_only_anchor(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("Hmm. The answer is not obvious yet."))
    assert main(["grade", "--gold", "42", "--timeout", "0.5", "--json", "-"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["outcome"] == "no_answer" and "only by words" in result["detail"]
    assert ";t=0.5;" in result["policy"]
