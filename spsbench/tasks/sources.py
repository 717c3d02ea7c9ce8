"""Task data: reading rows (local JSONL/JSON/Parquet, built-in generator, Hugging Face hub + cache) and
turning one row into a Problem (column mapping, declarative answer extraction, deterministic mc shuffle).

`datasets` is imported only when a hub task has neither `--data` nor a cached copy, so offline use and
`import spsbench.tasks` never pay for it. Hub rows are cached as JSONL under
`<cache>/tasks/NAME-VERSION.jsonl`, which is also what `spsbench tasks` counts.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from pathlib import Path
from typing import Any

from spsbench.errors import TaskError, one_line
from spsbench.io import atomic_write_lines
from spsbench.tasks import arith
from spsbench.tasks.spec import Problem, TaskSpec, fill_template
from spsbench.validate import one_line_gold, read_text

LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")


# ----------------------------------------------------------------------------------------------------
# Reading rows


def load_rows(spec: TaskSpec, data: str | Path | None = None) -> tuple[list[dict[str, Any]], str]:
    """Raw rows for a task and a label naming where they came from (used in error messages)."""
    if data is not None:
        return read_local(Path(data), what=f"--data {spec.name}"), str(data)
    kind = spec.source_kind
    if kind == "builtin":
        return arith.generate(arith.config_from_source(spec.source)), f"builtin:{spec.source['builtin']}"
    if kind == "file":
        path = _source_file(spec)
        return read_local(path, what=f"{spec.path}: source.file"), str(path)
    cache = spec.cache_path()
    if cache.is_file():
        return read_local(cache, what=f"cached copy of {spec.name}"), str(cache)
    rows = _load_hub(spec)
    _write_cache(cache, rows)
    return rows, spec.source_label()


def read_local(path: Path, what: str = "data file") -> list[dict[str, Any]]:
    """Rows of a .jsonl, .json (a list of objects, or JSON lines) or .parquet file."""
    if not path.is_file():
        raise TaskError(f"{what}: file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in LOCAL_SUFFIXES:
        raise TaskError(f"{what}: {path}: unsupported file type {suffix!r} (use {', '.join(LOCAL_SUFFIXES)})")
    rows = _read_parquet(path, what) if suffix == ".parquet" else _read_json(path, what)
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise TaskError(f"{what}: {path}: row {index} is a {type(row).__name__}, expected an object")
    return rows


def _read_json(path: Path, what: str) -> list[Any]:
    text = read_text(path, what, error=TaskError)     # unreadable, a folder, not UTF-8: one line
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
            return data if isinstance(data, list) else [data]
        except json.JSONDecodeError:
            pass  # `datasets.Dataset.to_json` writes JSON lines even into a .json file
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise TaskError(f"{what}: {path}:{lineno}: invalid JSON ({exc.msg})") from None
    return rows


def _read_parquet(path: Path, what: str) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several types for corrupt files; report one line
        raise TaskError(f"{what}: {path}: cannot read Parquet ({type(exc).__name__}: {exc})") from None


def _source_file(spec: TaskSpec) -> Path:
    path = Path(spec.source["file"]).expanduser()
    if not path.is_absolute() and spec.path is not None:
        path = spec.path.parent / path  # relative to the task YAML, so a task folder can be moved
    return path


def _load_hub(spec: TaskSpec) -> list[dict[str, Any]]:
    src = spec.source
    hint = f"pass --data {spec.name}=path/to/file.jsonl (or .parquet) with the hub's columns"
    try:
        import datasets
    except ImportError:
        raise TaskError(f"task {spec.name}: the 'datasets' package is not installed; {hint}") from None
    try:
        ds = datasets.load_dataset(src["hub"], src.get("config"), split=src["split"], revision=src["revision"])
    except Exception as exc:  # offline, gated, renamed...: datasets raises many types; keep it to one line
        first = one_line(exc, 200)
        raise TaskError(f"task {spec.name}: cannot load {src['hub']} from the Hugging Face hub "
                        f"({type(exc).__name__}: {first}); offline? {hint}") from None
    return [dict(row) for row in ds]


def _write_cache(path: Path, rows: list[dict[str, Any]]) -> None:
    """Atomic write, so an interrupted download never leaves a truncated cache that looks complete."""
    atomic_write_lines(path, [json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows])


def known_count(spec: TaskSpec) -> int | None:
    """#problems without downloading anything: built-in count, local file or cached rows; else None."""
    kind = spec.source_kind
    if kind == "builtin":
        return arith.config_from_source(spec.source).count
    path = _source_file(spec) if kind == "file" else spec.cache_path()
    if not path.is_file():
        return None
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if path.suffix.lower() == ".jsonl":  # counting lines is enough and avoids parsing 14k MMLU rows
        return sum(1 for line in read_text(path, f"task {spec.name}", error=TaskError).splitlines() if line.strip())
    try:
        return len(read_local(path))
    except TaskError:
        return None


# ----------------------------------------------------------------------------------------------------
# One row -> one Problem


def row_to_problem(spec: TaskSpec, row: dict[str, Any], index: int, label: str) -> Problem:
    text = str(_column(spec, row, "problem", index, label))
    pid = str(_column(spec, row, "id", index, label)) if "id" in spec.columns else str(index)
    raw_answer = _column(spec, row, "answer", index, label)
    meta: dict[str, Any] = {"row": index}
    for column in spec.meta_columns:
        meta[column] = _get(spec, row, column, "meta_columns", index, label)
    if spec.grader != "mc":
        answer = extract_answer(spec, raw_answer, index, label)
        return Problem(id=pid, prompt=fill_template(spec, text), answer=answer, meta=meta)
    choices, gold = _mc_options(spec, row, raw_answer, index, label)
    if spec.shuffle_choices:
        order = shuffle_order(len(choices), text)
        choices, gold = [choices[i] for i in order], order.index(gold)
    choices_t = tuple(choices)
    return Problem(id=pid, prompt=fill_template(spec, text, choices_t), answer=string.ascii_uppercase[gold],
                   choices=choices_t, meta=meta)


def _column(spec: TaskSpec, row: dict[str, Any], key: str, index: int, label: str) -> Any:
    return _get(spec, row, spec.columns[key], f"columns.{key}", index, label)


def _get(spec: TaskSpec, row: dict[str, Any], column: str, field: str, index: int, label: str) -> Any:
    if column not in row:
        # a column name may hold a newline or control characters: shown quoted, the message stays one line
        available = ", ".join(str(c) if str(c).isprintable() else repr(c) for c in row) or "none"
        raise TaskError(f"{spec.path}: {field}: column {column!r} not found in {label} "
                        f"(row {index}; available: {available})")
    value = row[column]
    if value is None:
        raise TaskError(f"{spec.path}: {field}: column {column!r} is empty in row {index} of {label}")
    return value


def extract_answer(spec: TaskSpec, raw: Any, index: int, label: str) -> str:
    """Gold answer string: answer_regex capture (if any), answer_remove applied, stripped."""
    text = str(raw)
    if spec.answer_regex:
        match = re.search(spec.answer_regex, text)
        if match is None:
            raise TaskError(f"{spec.path}: answer_regex: no match in row {index} of {label} "
                            f"(answer {text[:60]!r})")
        text = match.group(1)
    for piece in spec.answer_remove:
        text = text.replace(piece, "")
    text = text.strip()
    if not text:
        raise TaskError(f"{spec.path}: columns.answer: empty gold answer in row {index} of {label}")
    return one_line_gold(f"{spec.path}: columns.answer: row {index} of {label}", text, error=TaskError)


def _mc_options(spec: TaskSpec, row: dict[str, Any], raw: Any, index: int, label: str) -> tuple[list[str], int]:
    """Options in dataset order and the 0-based index of the right one."""
    where = f"row {index} of {label}"
    if spec.distractor_columns:
        wrong = [str(_get(spec, row, c, "distractor_columns", index, label)).strip()
                 for c in spec.distractor_columns]
        return [str(raw).strip(), *wrong], 0
    options = _column(spec, row, "choices", index, label)
    if not isinstance(options, (list, tuple)) or len(options) < 2:
        raise TaskError(f"{spec.path}: columns.choices: expected a list of >= 2 options in {where}")
    if len(options) > 26:
        raise TaskError(f"{spec.path}: columns.choices: more than 26 options in {where}")
    choices = [str(option).strip() for option in options]
    return choices, _gold_index(spec, choices, raw, where)


def _gold_index(spec: TaskSpec, choices: list[str], raw: Any, where: str) -> int:
    fmt = spec.answer_format
    if fmt == "index":
        ok = (isinstance(raw, int) and not isinstance(raw, bool)) or (isinstance(raw, str) and raw.isdigit())
        gold = int(raw) if ok else -1
    elif fmt == "letter":
        letter = str(raw).strip().upper()
        gold = string.ascii_uppercase.find(letter) if len(letter) == 1 else -1
    else:
        gold = choices.index(str(raw).strip()) if str(raw).strip() in choices else -1
    if not 0 <= gold < len(choices):
        raise TaskError(f"{spec.path}: columns.answer: {raw!r} is not a valid {fmt} for "
                        f"{len(choices)} choices in {where}")
    return gold


def shuffle_order(n: int, key: str) -> list[int]:
    """Deterministic permutation of range(n) seeded by sha256(key).

    Fisher-Yates driven by sha256 (not Python's salted hash() nor `random`, whose algorithms may change
    between versions) so a rerun, a regrade or another machine presents the same order.
    """
    order = list(range(n))
    seed = hashlib.sha256(key.encode("utf-8")).hexdigest()
    for i in range(n - 1, 0, -1):
        draw = int.from_bytes(hashlib.sha256(f"{seed}:{i}".encode()).digest()[:8], "big")
        j = draw % (i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def build_problems(spec: TaskSpec, rows: list[dict[str, Any]], label: str) -> list[Problem]:
    """Apply the column mapping, answer extraction, mc shuffle and template to raw rows."""
    if not rows:
        raise TaskError(f"{spec.path}: source: dataset is empty ({label})")
    problems, seen = [], {}
    for index, row in enumerate(rows):
        problem = row_to_problem(spec, row, index, label)
        if problem.id in seen:
            raise TaskError(f"{spec.path}: columns.id: duplicate problem id {problem.id!r} "
                            f"(rows {seen[problem.id]} and {index} of {label})")
        seen[problem.id] = index
        problems.append(problem)
    return problems
