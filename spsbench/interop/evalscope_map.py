"""What an EvalScope run means in spsbench's terms: which task each benchmark is, the model identity, the
sampling settings, each problem's id, text, options and gold, and whether its prompts are our task's.

Works without our task's data: the gold comes from the review's target and the problem text (and, for
multiple choice, the options in the order the model saw them) from the stored prompt, parsed with the
benchmark's EvalScope template. If our task's rows are cached locally, problems are matched to our ids
by their text; otherwise EvalScope's own ids (problem_idx, question_id) or the position are used.
"""

from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass
from typing import Any

from spsbench.config import SamplingConfig
from spsbench.errors import ConfigError
from spsbench.interop import InteropError
from spsbench.interop.evalscope_parse import Attempt, RunConfig, SubsetFile
from spsbench.tasks import TaskSpec
from spsbench.tasks import sources as task_data

BENCH_TASKS = {"aime24": "aime24", "aime25": "aime25", "hmmt25": "hmmt_feb25", "hmmt_nov25": "hmmt_nov25",
               "math_500": "math500", "gsm8k": "gsm8k", "mmlu": "mmlu", "gpqa_diamond": "gpqa_diamond"}
MAX_TOKENS_UNSET = 1_000_000      # stored when the run left max_tokens to the server
# Base seed of every imported evaluation: EvalScope derives no per-sample seeds (it sends one fixed seed,
# or none), and a seed no native run uses keeps the evaluation's identity apart from native ones, so
# `spsbench eval` can never resume into an imported evaluation. Setting (and so leaderboards) ignores it.
IMPORTED_SEED = -1
_BOXED = "Please reason step by step, and put your final answer within \\boxed{{}}."
_MC = ("Answer the following multiple choice question. The last line of your response should be of the following "
       "format: 'ANSWER: [LETTER]' (without quotes) where [LETTER] is one of {letters}. Think step by step "
       "before answering.\n\n{question}\n\n{choices}")
_AIME = ("Solve the following math problem step by step. Put your answer inside \\boxed{{}}.\n{question}\n"
         "Remember to put your answer inside \\boxed{{}}.")
# EvalScope 1.14.1's default prompt templates (benchmarks/*/..._adapter.py), compared stripped.
TEMPLATES = {"aime24": _AIME, "aime25": _AIME, "hmmt25": "Problem:\n{question}\n" + _BOXED,
             "hmmt_nov25": "Problem:\n{question}\n" + _BOXED, "math_500": "{question}\n" + _BOXED,
             "gsm8k": "{question}\n" + _BOXED, "mmlu": _MC, "gpqa_diamond": _MC}
_OPTION = re.compile(r"^([A-Z])\) ?(.*)$")


@dataclass(frozen=True)
class ImportedProblem:
    id: str
    text: str                                # problem text as parsed from the prompt (whole prompt if unparsed)
    prompt: str                              # the user message EvalScope sent (kept as it was)
    gold: str
    choices: tuple[str, ...] | None          # mc: options in the order the model saw them
    native: bool                             # the prompt is exactly what our task would send


def task_for(bench: str, config: RunConfig) -> str:
    """Our task name for an EvalScope benchmark (BrUMO is an hmmt25-style run on local BrUMO data)."""
    if bench not in BENCH_TASKS:
        raise InteropError(f"{config.path}: benchmark {bench!r} has no spsbench task (supported: "
                           f"{', '.join(sorted(BENCH_TASKS))})")
    args = config.dataset_args.get(bench) or {}
    source = " ".join(str(args.get(key) or "") for key in ("local_path", "dataset_id")).lower()
    if bench == "hmmt25" and "brumo" in source:
        return "brumo25"
    return BENCH_TASKS[bench]


def model_identity(config: RunConfig, name: str | None = None) -> str:
    """`<api_url>#<model>` for a served model (as `spsbench eval --engine openai` stores it), else its path."""
    model = name or config.model
    if not config.api_url:
        return model
    base = re.sub(r"/(chat/)?completions/?$", "", str(config.api_url).rstrip("/"))
    return f"{base}#{model}"


def sampling(config: RunConfig) -> tuple[Any, list[str]]:
    """(SamplingConfig with n = repeats, warnings) from the run's generation_config (seed: IMPORTED_SEED;
    the seed EvalScope sent, if any, is each sample's stored seed)."""

    gen, warnings = config.generation, []
    temperature = gen.get("temperature")
    if temperature is None:
        warnings.append("generation_config sets no temperature: EvalScope then sends 0 (greedy)")
    if float(temperature or 0) == 0 and config.repeats > 1:
        warnings.append(f"temperature 0 with repeats={config.repeats}: the repeats are not independent samples "
                        "and Pass@k means little")
    if gen.get("seed") is not None and config.repeats > 1:
        warnings.append(f"generation_config.seed={gen['seed']} is sent on every repeat: the repeats are not "
                        "independent samples and Pass@k means little")
    max_tokens = gen.get("max_tokens") or gen.get("max_new_tokens")
    if not max_tokens:
        warnings.append(f"generation_config sets no max_tokens (the server's default); stored as {MAX_TOKENS_UNSET}")
    try:
        cfg = SamplingConfig(n=config.repeats, temperature=float(temperature or 0), top_p=float(gen.get("top_p") or 1),
                             max_tokens=int(max_tokens or MAX_TOKENS_UNSET), seed=IMPORTED_SEED,
                             stop=tuple(gen.get("stop_seqs") or gen.get("stop") or ()), chat_template="on")
    except (ConfigError, TypeError, ValueError) as exc:
        raise InteropError(f"{config.path}: generation_config: {exc}") from None
    return cfg, warnings


# --------------------------------------------------------------------------- problems


def template_regex(template: str) -> re.Pattern:
    """An EvalScope template as a regex with groups question, choices (starting at 'A) ') and letters."""
    parts = []
    for literal, name, _, _ in string.Formatter().parse(template.strip()):
        parts.append(re.escape(literal))
        if name == "question":
            parts.append(r"(?P<question>[\s\S]*?)")
        elif name == "choices":
            parts.append(r"(?P<choices>A\)[\s\S]*)")
        elif name == "letters":
            parts.append(r"(?P<letters>[A-Z](?:, ?[A-Z])*)")
        elif name is not None:
            parts.append(r"[\s\S]*?")
    return re.compile("".join(parts))


def parse_options(block: str) -> tuple[str, ...] | None:
    """'A) x\\nB) y' -> ('x', 'y'); a line not starting an option continues the previous one."""
    options: list[str] = []
    for line in block.strip().split("\n"):
        m = _OPTION.match(line)
        if m and m.group(1) == string.ascii_uppercase[len(options)]:
            options.append(m.group(2))
        elif options:
            options[-1] += "\n" + line
        else:
            return None
    return tuple(options) if len(options) >= 2 else None


def split_prompt(bench: str, prompt: str, config: RunConfig) -> tuple[str, tuple[str, ...] | None] | None:
    """(question, options) parsed with the run's template for this benchmark; None if the prompt differs."""
    template = (config.dataset_args.get(bench) or {}).get("prompt_template") or TEMPLATES.get(bench)
    if not template:
        return None
    m = template_regex(template).fullmatch(prompt.strip())
    if not m:
        return None
    groups = m.groupdict()
    choices = parse_options(groups["choices"]) if groups.get("choices") else None
    return groups.get("question", prompt).strip(), choices


def trailing_options(prompt: str) -> tuple[str, ...] | None:
    """Options at the end of a prompt whose template is unknown: from the last line starting 'A) '."""
    start = prompt.rfind("\nA)")
    return parse_options(prompt[start + 1:]) if start >= 0 else None


def user_prompt(attempt: Attempt) -> str:
    users = [text for role, text in attempt.messages if role == "user"]
    return users[-1] if users else ""


def problem_id(sub: SubsetFile, attempt: Attempt, group: int, by_text: dict[str, str], text: str,
               several: bool) -> str:
    """Our id when the problem text is known to our cached task data, else EvalScope's id, else its position."""
    ours = by_text.get(normalize(text))
    if ours is not None:
        return ours
    meta = attempt.metadata
    for key in META_IDS:
        if meta.get(key) not in (None, ""):
            if isinstance(meta[key], (dict, list)):
                raise InteropError(f"{sub.predictions_path}:{attempt.line}: metadata.{key}: expected an id (text or "
                                   f"a number), got {type(meta[key]).__name__} {str(meta[key])[:40]}")
            return str(meta[key])
    return f"{sub.subset}/{group}" if several else str(group)


META_IDS = ("problem_idx", "question_id", "id", "unique_id")


def check_group(sub: SubsetFile, group: int, attempts: list[Attempt], repeats: int) -> None:
    """The rows that `index // repeats` makes one problem must be one problem: the same prompt, the same
    id in their metadata, reviews with the same gold. A config whose `repeats` differs from the rows'
    (which would merge problems, or keep 2 of 8 completions) fails here, naming the first row that differs."""
    first = attempts[0]
    span = f"problem {group} (indices {group * repeats}..{group * repeats + repeats - 1} under repeats={repeats})"
    hint = "does the config's repeats match the rows?"
    for a in attempts[1:]:
        if a.messages != first.messages:
            raise InteropError(f"{sub.predictions_path}:{a.line}: messages: the prompt of index {a.index} differs from "
                               f"index {first.index}'s, though both are {span}; {hint}")
        for key in META_IDS:
            if a.metadata.get(key) != first.metadata.get(key):
                raise InteropError(f"{sub.predictions_path}:{a.line}: metadata.{key}: {a.metadata.get(key)!r} differs "
                                   f"from index {first.index}'s {first.metadata.get(key)!r}, though both are {span}; "
                                   f"{hint}")
    reviews = [r for a in attempts if (r := (sub.reviews or {}).get(a.index)) is not None and r.target]
    for r in reviews[1:]:
        if r.target != reviews[0].target:
            path = sub.predictions_path.parent.parent.parent / "reviews" / sub.predictions_path.parent.name
            raise InteropError(f"{path / sub.predictions_path.name}:{r.line}: target: {r.target!r} for index {r.index} "
                               f"differs from {reviews[0].target!r} for index {reviews[0].index}, though both are "
                               f"{span}: which is the gold answer?")


def check_distinct_prompts(sub: SubsetFile, firsts: dict[int, Attempt], repeats: int) -> None:
    """Two problems of one file with the same prompt: most likely one problem cut in two by a `repeats`
    smaller than the attempts per problem (it would be stored as two problems, or lose samples)."""
    seen: dict[tuple, tuple[int, Attempt]] = {}
    for group, attempt in sorted(firsts.items()):
        if attempt.messages in seen:
            other, first = seen[attempt.messages]
            raise InteropError(f"{sub.predictions_path}:{attempt.line}: messages: index {attempt.index} (problem {group}) "
                               f"repeats the prompt of index {first.index} (problem {other}) under repeats={repeats}: "
                               "does the config's repeats match the rows? (a benchmark holding one question twice "
                               "cannot be imported)")
        seen[attempt.messages] = (group, attempt)


def normalize(text: str) -> str:
    return " ".join(str(text).split())


def prompt_digest(prompts: list[tuple[str, str]]) -> str:
    """8 hex of sha256 over (problem id, prompt) pairs: the task version suffix of non-native prompts."""
    blob = "\n\x00".join(f"{pid}\x00{prompt}" for pid, prompt in sorted(prompts))
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def cached_ids(spec: TaskSpec) -> dict[str, str]:
    """normalised problem text -> our problem id, from our task's rows if they are cached locally (no hub)."""

    path = spec.cache_path() if spec.source_kind == "hub" else None
    if path is None or not path.is_file():
        return {}
    try:
        rows = task_data.read_local(path)
    except Exception:  # noqa: BLE001 - a broken cache only costs the id mapping
        return {}
    column, id_column = spec.columns["problem"], spec.columns.get("id")
    return {normalize(r.get(column, "")): str(r[id_column]) if id_column else str(i)
            for i, r in enumerate(rows) if r.get(column)}
