"""Reading an EvalScope run folder (versions 1.0 to 1.14) into plain records; no store, no grading.

A run is `<WORK_DIR>/<YYYYMMDD_HHMMSS>/` with `configs/task_config.yaml` (`task_config_<hash>.yaml` in
1.0-1.4), `predictions/<model>/<bench>_<subset>.jsonl` and `reviews/<model>/<bench>_<subset>.jsonl`.
Rows are appended as requests finish, so they come out of order and an index may appear twice: the
later row wins, as in EvalScope's own cache. Prediction rows have kept one shape since 1.0; review rows
have three (<= 1.7: `input` + string `target`; 1.8-1.10: `messages`; >= 1.11: `target` is a list).
Every malformed input is an InteropError naming the file (and line).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spsbench.interop import InteropError

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


@dataclass(frozen=True)
class Review:
    """EvalScope's verdict on one index (the last review row written for it)."""

    index: int
    target: str | None
    extracted: str | None
    verdict: str                 # correct | incorrect | the score's status when unusable | missing
    layout: str                  # <=1.7 | 1.8-1.10 | >=1.11


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
    if (configs / "task_config.yaml").is_file():
        return configs / "task_config.yaml"
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
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InteropError(f"{path}: not a readable EvalScope task config ({first})") from None
    if not isinstance(raw, dict) or not (raw.get("model_id") or raw.get("model")):
        raise InteropError(f"{path}: not an EvalScope task config (no model_id / model)")
    datasets = raw.get("datasets") or []
    if not isinstance(datasets, list) or not datasets:
        raise InteropError(f"{path}: datasets: expected a non-empty list of benchmark names")
    repeats = raw.get("repeats", 1)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise InteropError(f"{path}: repeats: expected a positive integer, got {repeats!r}")
    model = raw.get("model_id") or raw.get("model")
    return RunConfig(path, str(raw.get("evalscope_version") or "unknown"), str(model),
                     raw.get("api_url") or None, dict(raw.get("generation_config") or {}), repeats,
                     tuple(str(d) for d in datasets), dict(raw.get("dataset_args") or {}))


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
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InteropError(f"{path}: cannot read ({exc})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InteropError(f"{path}:{number}: not a JSON line ({exc.msg}); a truncated write? remove or "
                               "repair the line and import again") from None
        if not isinstance(row, dict) or not isinstance(row.get("index"), int):
            raise InteropError(f"{path}:{number}: not an EvalScope row (no integer 'index')")
        yield number, row


def read_subset(predictions: Path, reviews: Path, config: RunConfig) -> SubsetFile:
    bench, subset = split_name(predictions.stem, config.datasets, predictions)
    attempts: dict[int, Attempt] = {}
    rows = 0
    for number, row in read_jsonl(predictions):
        attempts[row["index"]] = parse_prediction(row, f"{predictions}:{number}")
        rows += 1
    verdicts = None
    if reviews.is_file():
        verdicts = {}
        for number, row in read_jsonl(reviews):
            if row["index"] not in attempts:
                raise InteropError(f"{reviews}:{number}: review of index {row['index']} has no prediction row "
                                   f"in {predictions}")
            verdicts[row["index"]] = parse_review(row, f"{reviews}:{number}")
    return SubsetFile(bench, subset, predictions, attempts, verdicts, rows - len(attempts))


def _text(content: Any) -> tuple[str, str]:
    """(text, reasoning) of a message content: a string, or a list of typed parts."""
    if isinstance(content, str):
        return content, ""
    if not isinstance(content, list):
        return "", ""
    texts = [str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"]
    reasons = [str(p.get("reasoning", "")) for p in content if isinstance(p, dict) and p.get("type") == "reasoning"]
    return "\n".join(texts), "\n".join(reasons)


def parse_prediction(row: dict[str, Any], where: str) -> Attempt:
    output = row.get("model_output")
    if output is not None and not isinstance(output, dict):
        raise InteropError(f"{where}: model_output: expected an object")
    output = output or {}
    choices = output.get("choices") or []
    message = choices[0].get("message", {}) if choices and isinstance(choices[0], dict) else {}
    text, reasoning = _text(message.get("content"))
    usage = output.get("usage") or {}
    inputs = tuple((str(m.get("role")), _text(m.get("content"))[0]) for m in row.get("messages") or []
                   if isinstance(m, dict) and m.get("role") != "assistant")
    error = output.get("error") or (None if choices else "no output")
    stop = choices[0].get("stop_reason") if choices and isinstance(choices[0], dict) else None
    return Attempt(row["index"], inputs, text, reasoning, stop, usage.get("input_tokens"),
                   usage.get("output_tokens"), error, dict(row.get("metadata") or {}))


def parse_review(row: dict[str, Any], where: str) -> Review:
    sample = row.get("sample_score")
    if not isinstance(sample, dict) or not isinstance(sample.get("score"), dict):
        raise InteropError(f"{where}: review row without sample_score.score")
    score = sample["score"]
    target = row.get("target")
    layout = "<=1.7" if "input" in row else (">=1.11" if isinstance(target, list) else "1.8-1.10")
    if isinstance(target, list):
        target = next((str(t).strip() for t in target if str(t).strip()), None)
    target = str(target).strip() if target is not None else None
    extracted = score.get("extracted_prediction")
    return Review(row["index"], target or None, None if extracted is None else str(extracted),
                  _verdict(score), layout)


def _verdict(score: dict[str, Any]) -> str:
    status = str(score.get("status") or "success")
    if status not in USABLE_STATUSES:
        return status
    value = score.get("value") or {}
    main = score.get("main_score_name")
    key = main if main in value else next((k for k in ("acc", "accuracy") if k in value), None)
    key = key or next(iter(value), None)
    if key is None:
        return "missing"
    return "correct" if float(value[key]) >= 1.0 - 1e-9 else "incorrect"
