"""What a task is: the TaskSpec read from a `tasks/*.yaml` file (data only, never code), the Problem it
yields, and the validation of every key.

A task file is parsed with `yaml.safe_load` (no tags that build Python objects) and checked against
TaskSpec's fields; every mistake is a one-line TaskError naming the file and the field. The prompt
template is filled with `str.format_map` and only the placeholders {problem}, {choices}, {letters}:
no attribute access, no Jinja, nothing executed. See docs/tasks.md.
"""

from __future__ import annotations

import dataclasses
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spsbench import paths
from spsbench.errors import TaskError
from spsbench.grading.types import GRADERS
from spsbench.tasks import arith
from spsbench.validate import read_text

ANSWER_FORMATS = ("text", "index", "letter")
COLUMN_FIELDS = ("id", "problem", "answer", "choices")
# Prompt placeholders a grader's tasks may use: {problem} for every grader; the options for multiple choice.
TEMPLATE_KEYS = {"mc": ("problem", "choices", "letters")}
BUILTIN_COLUMNS = {"id": "id", "problem": "problem", "answer": "answer"}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Problem:
    id: str                              # unique within the task (string, e.g. "7" or "aime25-07")
    prompt: str                          # user-message text: the task's template already applied
    answer: str                          # gold: LaTeX-ish string for math, a letter ("C") for mc
    choices: tuple[str, ...] | None = None  # mc options in presented (deterministically shuffled) order
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


def _f(help_text: str, yaml_type: str, default: Any = dataclasses.MISSING, required: bool = False) -> Any:
    """A TaskSpec field: help text and YAML type document the key (docs, `spsbench tasks --schema`)."""
    meta = {"help": help_text, "yaml_type": yaml_type, "required": required}
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples / None for defaults")
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TaskSpec:
    """One benchmark as declared by a task YAML file (the keys below are the YAML keys)."""

    name: str = _f("Task name; defaults to the file name (registry files must match it).", "str")
    version: str = _f("Task version; bump it when prompt, data or answers change (results are keyed by it).",
                      "str", required=True)
    grader: str = _f("Grader name: 'math' (math-verify on boxed answers) or 'mc' (letter extraction).",
                     "str", required=True)
    source: dict[str, Any] = _f(
        "Where rows come from: {hub, config, split, revision} | {builtin: arith, seed, count, difficulty}"
        " | {file: path relative to the YAML}.", "mapping", required=True)
    columns: dict[str, str] = _f(
        "Our field -> dataset column: problem, answer (required), id, choices (mc list column).", "mapping")
    prompt_template: str = _f(
        "User message; placeholders {problem}, and for mc {choices} and {letters}. Literal braces: {{ }}.",
        "str", required=True)
    n: int = _f("Default samples per problem.", "int", required=True)
    k: tuple[int, ...] = _f("Default k list for pass@k (each <= n).", "list[int]", required=True)
    description: str = _f("One line shown by `spsbench tasks --show`.", "str", "")
    path: Path | None = None             # the YAML it came from (not a YAML key)
    answer_regex: str | None = _f(
        "Regex with one capture group applied to the answer column (e.g. gsm8k: '####\\s*(.+)').", "str", None)
    answer_remove: tuple[str, ...] = _f("Substrings deleted from the gold answer (e.g. [','] for 1,000).",
                                        "list[str]", ())
    answer_format: str = _f("mc: how the answer column names the right option: text | index | letter.",
                            "str", "text")
    shuffle_choices: bool = _f("mc: shuffle options per question (seed = sha256 of the question text).",
                               "bool", False)
    distractor_columns: tuple[str, ...] = _f(
        "mc: columns holding the wrong options; the answer column holds the right one's text (GPQA).",
        "list[str]", ())
    meta_columns: tuple[str, ...] = _f("Columns copied into Problem.meta (e.g. [subject]).", "list[str]", ())

    @property
    def source_kind(self) -> str:
        """'hub', 'builtin' or 'file'."""
        return next(kind for kind in ("hub", "builtin", "file") if kind in self.source)

    def source_label(self) -> str:
        """Short human description of the source for tables."""
        src = self.source
        if self.source_kind == "builtin":
            return f"builtin:{src['builtin']} ({src.get('difficulty', 'easy')}, seed {src.get('seed', 0)})"
        if self.source_kind == "file":
            return f"file:{src['file']}"
        config = f"/{src['config']}" if src.get("config") not in (None, "default") else ""
        return f"{src['hub']}{config}:{src['split']}"

    def cache_path(self) -> Path:
        """Where hub rows are cached as JSONL (`<cache>/tasks/NAME-VERSION.jsonl`)."""
        return paths.cache_dir() / "tasks" / f"{self.name}-{self.version}.jsonl"


@dataclass
class Task:
    spec: TaskSpec
    problems: list[Problem]
    digest: str = ""        # tasks.identity.task_digest over ALL problems (before --limit); '' = not computed



def schema() -> list[tuple[str, str, bool, str]]:
    """(key, yaml type, required, help) for every task-file key, in declaration order."""
    return [(f.name, f.metadata["yaml_type"], f.metadata["required"], f.metadata["help"])
            for f in dataclasses.fields(TaskSpec) if f.metadata]



def read_spec(path: Path) -> TaskSpec:
    content = read_text(path, "task file", error=TaskError)      # a folder, unreadable, not UTF-8: one line
    try:
        raw = yaml.safe_load(content)
    except yaml.YAMLError as exc:  # includes !!python/object tags: safe_load refuses to build objects
        first = str(exc).strip().splitlines()[0]
        raise TaskError(f"{path}: not a valid task file (data-only YAML): {first}") from None
    if not isinstance(raw, dict):
        raise TaskError(f"{path}: top level must be a mapping of keys (name, version, grader, ...)")
    return _spec_from_mapping(raw, path)


def _spec_from_mapping(raw: dict[str, Any], path: Path) -> TaskSpec:
    def err(key: str, msg: str) -> TaskError:
        return TaskError(f"{path}: {key}: {msg}")

    fields = {f.name: f for f in dataclasses.fields(TaskSpec) if f.metadata}
    for key in raw:
        if key not in fields:
            raise err(str(key), f"unknown key (valid keys: {', '.join(fields)})")
    for name, f in fields.items():
        if f.metadata["required"] and name not in raw:
            raise err(name, "missing required field")
    values = {key: _check_type(key, value, fields[key].metadata["yaml_type"], err) for key, value in raw.items()}
    values["name"] = _check_name(values.get("name"), path, err)
    values["source"] = _check_source(values["source"], err)
    if "builtin" in values["source"]:
        values.setdefault("columns", dict(BUILTIN_COLUMNS))
    elif "columns" not in values:
        raise err("columns", "missing required field")
    _check_semantics(values, err)
    return TaskSpec(path=path, **values)


def _check_type(key: str, value: Any, yaml_type: str, err) -> Any:
    """Type-check one top-level value; lists become tuples, version becomes a string."""
    def bad() -> TaskError:
        return err(key, f"expected {yaml_type}, got {type(value).__name__} {value!r:.60}")

    if yaml_type == "str":
        if key == "version" and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise bad()
        return value
    if yaml_type == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        return value
    if yaml_type == "bool":
        if not isinstance(value, bool):
            raise bad()
        return value
    if yaml_type == "mapping":
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise bad()
        return dict(value)
    item_type = int if yaml_type == "list[int]" else str
    if not isinstance(value, list) or not all(
            isinstance(v, item_type) and not isinstance(v, bool) for v in value):
        raise bad()
    return tuple(value)


def _check_name(name: str | None, path: Path, err) -> str:
    name = name if name is not None else path.stem
    if not NAME_RE.match(name):
        raise err("name", f"{name!r} must be letters, digits, '_', '-' or '.'")
    in_registry = path.resolve().parent == paths.tasks_dir().resolve()
    if in_registry and name != path.stem:
        raise err("name", f"{name!r} must match the file name {path.stem!r} for registry tasks")
    return name


HUB_KEYS = {"hub": str, "config": str, "split": str, "revision": str}
BUILTIN_KEYS = {"builtin": str, "seed": int, "count": int, "difficulty": str, "steps": list, "max_value": int}
FILE_KEYS = {"file": str}


def _check_source(source: dict[str, Any], err) -> dict[str, Any]:
    kinds = [kind for kind in ("hub", "builtin", "file") if kind in source]
    if len(kinds) != 1:
        raise err("source", "needs exactly one of 'hub' (with split, revision), 'builtin' or 'file'")
    allowed = {"hub": HUB_KEYS, "builtin": BUILTIN_KEYS, "file": FILE_KEYS}[kinds[0]]
    for key, value in source.items():
        if key not in allowed:
            raise err(f"source.{key}", f"unknown key for a {kinds[0]} source (valid: {', '.join(allowed)})")
        if key == "config" and value is None:
            continue
        if not isinstance(value, allowed[key]) or isinstance(value, bool):
            raise err(f"source.{key}", f"expected {allowed[key].__name__}, got {type(value).__name__}")
    if kinds[0] == "hub":
        for key in ("split", "revision"):
            if key not in source:
                raise err(f"source.{key}", "missing required field for a hub source")
    if kinds[0] == "builtin":
        _check_builtin(source, err)
    return source


def _check_builtin(source: dict[str, Any], err) -> None:
    if source["builtin"] != "arith":
        raise err("source.builtin", f"unknown built-in generator {source['builtin']!r} (available: arith)")
    try:
        arith.config_from_source(source)
    except ValueError as exc:
        raise err(f"source.{str(exc).split(':')[0]}", str(exc).split(": ", 1)[-1]) from None


def _check_semantics(v: dict[str, Any], err) -> None:
    """Cross-field rules: grader, columns, mc options, template placeholders, n and k."""
    grader = v["grader"]
    if grader not in GRADERS:            # the registry itself: a grader registered later is valid too
        raise err("grader", f"unknown grader {grader!r} (valid: {', '.join(GRADERS)})")
    _check_columns(v, err)
    if v["n"] < 1:
        raise err("n", f"must be >= 1, got {v['n']}")
    if not v["k"] or any(k < 1 for k in v["k"]):
        raise err("k", f"must be a non-empty list of positive integers, got {list(v['k'])}")
    too_big = [k for k in v["k"] if k > v["n"]]
    if too_big:
        raise err("k", f"{too_big[0]} is larger than n={v['n']} (pass@k needs k <= n)")
    v["k"] = tuple(sorted(set(v["k"])))
    if v.get("answer_regex") is not None:
        _check_regex(v["answer_regex"], err)
    _check_template(v["prompt_template"], TEMPLATE_KEYS.get(grader, ("problem",)), err)


def _check_columns(v: dict[str, Any], err) -> None:
    columns, mc = v["columns"], v["grader"] == "mc"
    for key, column in columns.items():
        if key not in COLUMN_FIELDS:
            raise err(f"columns.{key}", f"unknown field (valid: {', '.join(COLUMN_FIELDS)})")
        if not isinstance(column, str) or not column:
            raise err(f"columns.{key}", f"expected a column name, got {column!r}")
    for key in ("problem", "answer"):
        if key not in columns:
            raise err(f"columns.{key}", "missing required field")
    has_list, has_distractors = "choices" in columns, bool(v.get("distractor_columns"))
    fmt = v.get("answer_format", "text")
    if fmt not in ANSWER_FORMATS:
        raise err("answer_format", f"must be one of {', '.join(ANSWER_FORMATS)}, got {fmt!r}")
    if not mc:
        for key in ("distractor_columns", "shuffle_choices"):
            if v.get(key):
                raise err(key, "only valid with grader: mc")
        if has_list or fmt != "text":
            raise err("columns.choices" if has_list else "answer_format", "only valid with grader: mc")
        return
    if has_list == has_distractors:
        raise err("columns.choices", "mc needs either columns.choices (a list column) or distractor_columns")
    if has_distractors and fmt != "text":
        raise err("answer_format", "with distractor_columns the answer column holds the option text: use text")


def _check_regex(pattern: str, err) -> None:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise err("answer_regex", f"invalid regular expression: {exc}") from None
    if compiled.groups != 1:
        raise err("answer_regex", f"needs exactly one capture group, has {compiled.groups}")


def _check_template(template: str, allowed: tuple[str, ...], err) -> None:
    hint = "write literal braces as {{ and }} (e.g. \\boxed{{}})"
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise err("prompt_template", f"{exc}; {hint}") from None
    used = set()
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in allowed or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise err("prompt_template", f"placeholder {shown} not allowed (allowed: "
                                         f"{', '.join('{' + a + '}' for a in allowed)}); {hint}")
        used.add(name)
    for needed in ("problem", "choices"):
        if needed in allowed and needed not in used:
            raise err("prompt_template", f"must contain {{{needed}}}")



def fill_template(spec: TaskSpec, problem: str, choices: tuple[str, ...] | None = None) -> str:
    """The task's template filled in; choices are shown as 'A) ...' lines."""
    values = {"problem": problem}
    if choices is not None:
        letters = string.ascii_uppercase[: len(choices)]
        values["choices"] = "\n".join(f"{letter}) {text}" for letter, text in zip(letters, choices, strict=True))
        values["letters"] = ", ".join(letters)
    return spec.prompt_template.format_map(values)
