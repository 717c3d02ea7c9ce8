"""Reading an EvalScope run folder (versions 1.0 to 1.14) into plain records; no store, no grading.

A run is `<WORK_DIR>/<YYYYMMDD_HHMMSS>/` with `configs/task_config.yaml` (`task_config_<hash>.yaml` in
1.0-1.4), `predictions/<model>/<bench>_<subset>.jsonl` and `reviews/<model>/<bench>_<subset>.jsonl`.
Rows are appended as requests finish, so they come out of order and an index may appear twice: the
later row wins, as in EvalScope's own cache. Prediction rows have kept one shape since 1.0; review rows
have three (<= 1.7: `input` + string `target`; 1.8-1.10: `messages`; >= 1.11: `target` is a list).
Every malformed input is an InteropError naming the file (and line and field: `evalscope_check` types
every value read); files that are not regular files (a FIFO, a device) are refused without opening them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spsbench.interop import InteropError
from spsbench.interop import evalscope_check as check

USABLE_STATUSES = ("success", "fallback")       # EvalScope ScoreStatus values whose score counts


@dataclass(frozen=True)
class RunConfig:
    """What a run's task_config says about the model, sampling and benchmarks."""

    path: Path
    version: str                     # evalscope_version, or "unknown" (not written by some versions)
    model: str                       # model_id, else model (a path or hub id)
    api_url: str | None
    generation: dict[str, Any]
    repeats: int
    datasets: tuple[str, ...]
    dataset_args: dict[str, Any]


@dataclass(frozen=True)
class Attempt:
    """One prediction row (the last one written for its index)."""

    index: int
    messages: tuple[tuple[str, str], ...]    # (role, text) of the messages sent to the model
    text: str                                # the answer: text parts of the first choice, newline-joined
    reasoning: str                           # the server's reasoning_content parts ('' when none)
    stop_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    error: str | None                        # the request failed (no usable output)
    metadata: dict[str, Any] = field(default_factory=dict)
    line: int = 0                            # line in its predictions file (for messages)


@dataclass(frozen=True)
class Review:
    """EvalScope's verdict on one index (the last review row written for it)."""

    index: int
    target: str | None
    extracted: str | None
    verdict: str                 # correct | incorrect | the score's status when unusable | missing
    layout: str                  # <=1.7 | 1.8-1.10 | >=1.11
    line: int = 0                # line in its reviews file (for messages)


@dataclass
class SubsetFile:
    bench: str
    subset: str
    predictions_path: Path
    attempts: dict[int, Attempt]
    reviews: dict[int, Review] | None         # None: no review file (the run stopped before reviewing)
    duplicates: int = 0                       # rows overwritten by a later row with the same index


@dataclass
class Run:
    path: Path
    config: RunConfig
    model_folder: str
    files: list[SubsetFile]


# --------------------------------------------------------------------------- folders


def find_runs(work_dir: str | Path) -> list[Path]:
    """The run folder itself, or every `<timestamp>/` run inside a WORK_DIR, oldest first."""
    path = Path(work_dir).expanduser()
    if not path.is_dir():
        raise InteropError(f"{path}: no such folder")
    if _is_run(path):
        return [path]
    runs = sorted(child for child in path.iterdir() if child.is_dir() and _is_run(child))
    if not runs:
        raise InteropError(f"{path} is not an EvalScope run folder: it has no configs/task_config*.yaml with a "
                           "predictions/ folder, and no <timestamp>/ run folders that do")
    return runs


def _is_run(path: Path) -> bool:
    return (path / "predictions").is_dir() and config_file(path) is not None


def config_file(run: Path) -> Path | None:
    configs = run / "configs"
    plain = configs / "task_config.yaml"
    if plain.exists() or plain.is_symlink():      # whatever it is: read_config refuses a non-regular file
        return plain
    hashed = sorted(configs.glob("task_config_*.yaml")) if configs.is_dir() else []
    return hashed[-1] if hashed else None


def read_run(path: Path) -> Run:
    """Config, predictions and reviews of one run folder (one model folder)."""
    config = read_config(config_file(path) or path / "configs" / "task_config.yaml")
    models = sorted(p for p in (path / "predictions").iterdir() if p.is_dir())
    if len(models) != 1:
        found = ", ".join(p.name for p in models) or "none"
        raise InteropError(f"{path}/predictions: expected one model folder, found {found}")
    folder = models[0]
    files = [read_subset(p, path / "reviews" / folder.name / p.name, config)
             for p in sorted(folder.glob("*.jsonl"))]
    _check_orphan_reviews(path / "reviews" / folder.name, folder)
    if not files:
        raise InteropError(f"{folder}: no prediction files (<bench>_<subset>.jsonl)")
    return Run(path, config, folder.name, files)


def _check_orphan_reviews(reviews: Path, predictions: Path) -> None:
    for review in sorted(reviews.glob("*.jsonl")) if reviews.is_dir() else []:
        if not (predictions / review.name).is_file():
            raise InteropError(f"{review}: review file without its predictions ({predictions / review.name} "
                               "is missing)")


# --------------------------------------------------------------------------- config


def read_config(path: Path) -> RunConfig:
    """The task config, every field spsbench uses type-checked (one line naming the field otherwise)."""
    text = "".join(line for _, line in check.lines(path, "the EvalScope task config"))
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InteropError(f"{path}: not a readable EvalScope task config ({first})") from None
    if not isinstance(raw, dict) or not (raw.get("model_id") or raw.get("model")):
        raise InteropError(f"{path}: not an EvalScope task config (no model_id / model)")
    at = _locator(path, text)
    key = "model_id" if raw.get("model_id") else "model"
    model = raw[key]
    if not isinstance(model, str) or not model.strip():
        check.fail(at(key), key, "a model name", model)
    datasets = raw.get("datasets") or []
    if not isinstance(datasets, list) or not datasets or not all(isinstance(d, str) and d.strip() for d in datasets):
        check.fail(at("datasets"), "datasets", "a non-empty list of benchmark names", datasets)
    repeats = raw.get("repeats", 1)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        check.fail(at("repeats"), "repeats", "a positive integer", repeats)
    args = check.mapping(raw.get("dataset_args"), at("dataset_args"), "dataset_args")
    for bench, value in args.items():
        check.mapping(value, at(f"dataset_args.{bench}"), f"dataset_args.{bench}")
    version = check.scalar_text(raw.get("evalscope_version"), at("evalscope_version"), "evalscope_version")
    api_url = check.opt_text(raw.get("api_url"), at("api_url"), "api_url")
    return RunConfig(path, version or "unknown", model, api_url or None, generation(raw.get("generation_config"), at),
                     repeats, tuple(datasets), dict(args))


def generation(value: Any, at: Callable[[str], str]) -> dict[str, Any]:
    """generation_config with the sampling fields spsbench reads checked (the rest kept as it is)."""
    gen = dict(check.mapping(value, at("generation_config"), "generation_config"))
    for key, low, high in (("temperature", 0.0, None), ("top_p", 0.0, 1.0)):
        check.opt_number(gen.get(key), at(f"generation_config.{key}"), f"generation_config.{key}", low=low, high=high)
    for key in ("max_tokens", "max_new_tokens"):
        check.opt_int(gen.get(key), at(f"generation_config.{key}"), f"generation_config.{key}", low=1)
    check.opt_int(gen.get("seed"), at("generation_config.seed"), "generation_config.seed", low=None)
    for key in ("stop_seqs", "stop"):
        field = f"generation_config.{key}"
        for i, item in enumerate(check.sequence(gen.get(key), at(field), field)):
            if not isinstance(item, str) or not item:
                check.fail(at(field), f"{field}[{i}]", "a non-empty string", item)
    return gen


def _locator(path: Path, text: str) -> Callable[[str], str]:
    """field -> `path:line` of that key in the YAML (its parent's line, or just `path`, when not found)."""
    found: dict[str, int] = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        root = None

    def walk(node: Any, prefix: str, depth: int) -> None:
        if not isinstance(node, yaml.MappingNode) or depth > 2:
            return
        for key, value in node.value:
            name = f"{prefix}{key.value}"
            found.setdefault(name, key.start_mark.line + 1)
            walk(value, name + ".", depth + 1)

    walk(root, "", 0)

    def at(field: str) -> str:
        parts = field.split(".")
        line = next((found[".".join(parts[:i])] for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in found),
                    None)
        return f"{path}:{line}" if line else str(path)

    return at


def split_name(stem: str, datasets: tuple[str, ...], path: Path) -> tuple[str, str]:
    """`math_500_Level 1` -> (`math_500`, `Level 1`): the longest configured benchmark name that prefixes it."""
    for bench in sorted(datasets, key=len, reverse=True):
        if stem.startswith(f"{bench}_"):
            return bench, stem[len(bench) + 1:]
    raise InteropError(f"{path}: file name does not start with a benchmark of this run "
                       f"({', '.join(datasets)}) followed by _<subset>")


# --------------------------------------------------------------------------- rows


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-empty line; a line that is not a JSON object is an error."""
    for number, line in check.lines(path, "an EvalScope rows file"):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InteropError(f"{path}:{number}: not a JSON line ({exc.msg}); a truncated write? remove or "
                               "repair the line and import again") from None
        if not isinstance(row, dict):
            raise InteropError(f"{path}:{number}: not an EvalScope row (a JSON {check.show(row)}, not an object)")
        check.index(row, f"{path}:{number}")
        yield number, row


def read_subset(predictions: Path, reviews: Path, config: RunConfig) -> SubsetFile:
    bench, subset = split_name(predictions.stem, config.datasets, predictions)
    attempts: dict[int, Attempt] = {}
    rows = 0
    for number, row in read_jsonl(predictions):
        attempts[row["index"]] = parse_prediction(row, f"{predictions}:{number}", number)
        rows += 1
    if not rows:
        raise InteropError(f"{predictions}: no prediction rows (an empty file); remove it or import the complete run")
    verdicts = None
    if reviews.exists() or reviews.is_symlink():
        check.regular_file(reviews, "an EvalScope reviews file")
        verdicts = {}
        for number, row in read_jsonl(reviews):
            if row["index"] not in attempts:
                raise InteropError(f"{reviews}:{number}: review of index {row['index']} has no prediction row "
                                   f"in {predictions}")
            verdicts[row["index"]] = parse_review(row, f"{reviews}:{number}", number)
    return SubsetFile(bench, subset, predictions, attempts, verdicts, rows - len(attempts))


def parse_prediction(row: dict[str, Any], where: str, line: int = 0) -> Attempt:
    output = check.mapping(row.get("model_output"), where, "model_output")
    choices = check.sequence(output.get("choices"), where, "model_output.choices")
    first = check.mapping(choices[0], where, "model_output.choices[0]") if choices else {}
    message = check.mapping(first.get("message"), where, "model_output.choices[0].message")
    text, reasoning = check.text_parts(message.get("content"), where, "model_output.choices[0].message.content")
    usage = check.mapping(output.get("usage"), where, "model_output.usage")
    tokens = [check.opt_int(usage.get(k), where, f"model_output.usage.{k}") for k in ("input_tokens", "output_tokens")]
    inputs = []
    for i, m in enumerate(check.sequence(row.get("messages"), where, "messages")):
        m = check.mapping(m, where, f"messages[{i}]")
        role = check.opt_text(m.get("role"), where, f"messages[{i}].role")
        if role != "assistant":
            inputs.append((str(role), check.text_parts(m.get("content"), where, f"messages[{i}].content")[0]))
    error = check.opt_text(output.get("error"), where, "model_output.error") or (None if choices else "no output")
    stop = check.opt_text(first.get("stop_reason"), where, "model_output.choices[0].stop_reason")
    metadata = dict(check.mapping(row.get("metadata"), where, "metadata"))
    return Attempt(row["index"], tuple(inputs), text, reasoning, stop, *tokens, error, metadata, line)


def parse_review(row: dict[str, Any], where: str, line: int = 0) -> Review:
    sample = row.get("sample_score")
    if not isinstance(sample, dict) or not isinstance(sample.get("score"), dict):
        raise InteropError(f"{where}: review row without sample_score.score")
    score = sample["score"]
    raw_target = row.get("target")
    layout = "<=1.7" if "input" in row else (">=1.11" if isinstance(raw_target, list) else "1.8-1.10")
    extracted = check.scalar_text(score.get("extracted_prediction"), where, "sample_score.score.extracted_prediction")
    return Review(row["index"], check.target(raw_target, where), extracted, _verdict(score, where), layout, line)


def _verdict(score: dict[str, Any], where: str) -> str:
    field = "sample_score.score."
    status = check.opt_text(score.get("status"), where, field + "status") or "success"
    if status not in USABLE_STATUSES:
        return status
    value = check.mapping(score.get("value"), where, field + "value")
    main = check.opt_text(score.get("main_score_name"), where, field + "main_score_name")
    key = main if main in value else next((k for k in ("acc", "accuracy") if k in value), None)
    key = key or next(iter(value), None)
    if key is None:
        return "missing"
    number = check.opt_number(value[key], where, f"{field}value.{key}", bools=True)
    return "correct" if number is not None and number >= 1.0 - 1e-9 else "incorrect"
