"""Hand-written EvalScope run folders in the 1.14, 1.8 and 1.0 layouts, for the import tests.

Shapes follow EvalScope 1.14.1's `api/evaluator/cache.py` (ModelResult / ReviewResult) and the older
review rows (<= 1.7: `input` + string `target`; 1.8-1.10: `messages` + string `target`). Verdicts are
what EvalScope's graders give, including its known quirks: two boxes joined and scored wrong, an unboxed
"I think it is 70" scored right, a length stop scored 0.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

MC = ("Answer the following multiple choice question. The last line of your response should be of the following "
      "format: 'ANSWER: [LETTER]' (without quotes) where [LETTER] is one of A,B,C,D. Think step by step before "
      "answering.\n\n{q}\n\n{o}")
AIME = ("\nSolve the following math problem step by step. Put your answer inside \\boxed{{}}.\n{q}\n"
        "Remember to put your answer inside \\boxed{{}}.")
BOXED = "{q}\nPlease reason step by step, and put your final answer within \\boxed{{}}."
REPEATS = 4

# (problem, gold, [(text, reasoning, stop_reason, evalscope verdict, evalscope extracted)] x 4)
AIME_PROBLEMS = [
    ("Find the number of pairs of integers that sum to 140 with both halves equal; give the half.", "70", [
        ("So \\boxed{70}.", "", "stop", 1.0, "70"),
        ("I think it is 70", "", "stop", 1.0, "70"),                       # unboxed: EvalScope right, us not
        ("Either \\boxed{71} or \\boxed{70}.", "", "stop", 0.0, "71,70"),  # two boxes: EvalScope joins them
        ("Let me compute 70 + \\boxed{7", "", "max_tokens", 0.0, ""),      # length stop
    ]),
    ("Compute 17 * 12.", "204", [
        ("\\boxed{204}", "First 17*10 = 170, then \\boxed{34} more.", "stop", 1.0, "204"),  # reasoning part
        ("\\boxed{204}", "", "stop", 1.0, "204"),
        ("\\boxed{214}", "", "stop", 0.0, "214"),
        ("\\boxed{204}", "", "stop", 1.0, "204"),
    ]),
    ("What is 2 + 3?", "5", [
        ("\\boxed{6}", "", "stop", 0.0, "6"),
        ("\\boxed{6}", "", "stop", 0.0, "6"),
        ("\\boxed{4}", "", "stop", 0.0, "4"),
        ("\\boxed{6}", "", "stop", 0.0, "6"),
    ]),
]
GPQA = [
    ("Which particle is a lepton?", ("Proton", "Electron", "Neutron", "Pion"), "B", [
        ("Electrons are leptons.\nANSWER: B", 1.0, "B"), ("ANSWER: A", 0.0, "A"),
        ("ANSWER: B", 1.0, "B"), ("It is B", 1.0, "B")]),
    ("Which gas is noble?", ("Argon", "Oxygen", "Nitrogen", "Hydrogen"), "A", [
        ("ANSWER: C", 0.0, "C"), ("ANSWER: A", 1.0, "A"), ("ANSWER: A", 1.0, "A"), ("ANSWER: A", 1.0, "A")]),
]
MATH500 = [
    ("test/algebra/1.json", "Simplify $\\frac{6}{3}$.", "2", ["\\boxed{2}", "\\boxed{2}", "\\boxed{3}", "\\boxed{2}"]),
    ("test/prealgebra/7.json", "What is $1+1$?", "2", ["\\boxed{2}", "\\boxed{2}", "\\boxed{2}", "\\boxed{2}"]),
]


def _prediction(index: int, prompt: str, text: str, reasoning: str = "", stop: str = "stop",
                metadata: dict | None = None, error: str | None = None) -> dict:
    content: list | str = text
    if reasoning:
        content = [{"type": "reasoning", "reasoning": reasoning, "redacted": False}, {"type": "text", "text": text}]
    choices = [] if error else [{"message": {"role": "assistant", "content": content, "source": "generate"},
                                 "stop_reason": stop}]
    return {"index": index, "model": "stub-model",
            "model_output": {"model": "stub-model", "choices": choices, "error": error,
                             "usage": {"input_tokens": 40, "output_tokens": 12, "total_tokens": 52}, "time": 0.1},
            "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": content}],
            "metadata": metadata or {}}


def _review(layout: str, index: int, prompt: str, target: str, key: str, value: float, extracted: str,
            text: str, status: str = "success") -> dict:
    score = {"value": {} if status != "success" else {key: value}, "extracted_prediction": extracted,
             "prediction": text, "explanation": None, "metadata": {}, "main_score_name": None}
    sample = {"score": score, "sample_id": index, "group_id": index // REPEATS, "sample_metadata": {}}
    if layout == "1.14":
        score["status"] = status
        sample["generation_index"] = index % REPEATS
        return {"index": index, "target": [target], "messages": [{"role": "user", "content": prompt}],
                "sample_score": sample}
    if layout == "1.8":
        return {"index": index, "target": target, "messages": [{"role": "user", "content": prompt}],
                "sample_score": sample}
    return {"index": index, "input": prompt, "target": target, "sample_score": sample}


def aime_rows(layout: str, errored: bool = False) -> tuple[list[dict], list[dict]]:
    """`errored`: every request of the last problem failed (EvalScope then excludes its scores)."""
    preds, reviews = [], []
    for p, (question, gold, attempts) in enumerate(AIME_PROBLEMS):
        prompt = AIME.format(q=question)
        failed = errored and p == len(AIME_PROBLEMS) - 1
        for r, (text, reasoning, stop, verdict, extracted) in enumerate(attempts):
            index = p * REPEATS + r
            preds.append(_prediction(index, prompt, text, reasoning, stop, error="timeout" if failed else None))
            reviews.append(_review(layout, index, prompt, gold, "acc", verdict, extracted, text,
                                   status="excluded" if failed else "success"))
    return preds, reviews


def gpqa_rows(layout: str) -> tuple[list[dict], list[dict]]:
    preds, reviews = [], []
    for p, (question, options, gold, attempts) in enumerate(GPQA):
        block = "\n".join(f"{'ABCD'[i]}) {o}" for i, o in enumerate(options))
        prompt = MC.format(q=question, o=block)
        for r, (text, verdict, extracted) in enumerate(attempts):
            index = p * REPEATS + r
            preds.append(_prediction(index, prompt, text, metadata={"correct_answer": options["ABCD".index(gold)]}))
            reviews.append(_review(layout, index, prompt, gold, "accuracy", verdict, extracted, text))
    return preds, reviews


def math500_rows(layout: str) -> tuple[list[dict], list[dict]]:
    preds, reviews = [], []
    for p, (qid, question, gold, texts) in enumerate(MATH500):
        prompt = BOXED.format(q=question)
        for r, text in enumerate(texts):
            index = p * REPEATS + r
            preds.append(_prediction(index, prompt, text, metadata={"question_id": qid, "solution": "..."}))
            correct = text == f"\\boxed{{{gold}}}"
            reviews.append(_review(layout, index, prompt, gold, "acc", float(correct), text[7:-1], text))
    return preds, reviews


def config_text(layout: str, *, generation: str | None = None, datasets: tuple[str, ...] = ("aime25",
                "gpqa_diamond", "math_500"), extra: str = "") -> str:
    gen = generation if generation is not None else "  temperature: 0.7\n  top_p: 1.0\n  max_tokens: 256\n"
    version = {"1.14": "1.14.1", "1.8": "1.8.2", "1.0": "1.0.1"}[layout]
    lines = ["model: stub-model", "model_id: stub-model", "api_url: http://127.0.0.1:8011/v1/chat/completions",
             "eval_type: openai_api", f"repeats: {REPEATS}", "datasets:", *(f"- {d}" for d in datasets),
             "dataset_args: {}", "generation_config:" + ("\n" + gen.rstrip("\n") if gen else " {}"),
             f"evalscope_version: {version}", "seed: 42", "limit: null"]
    return "\n".join(lines) + "\n" + extra


def _write_jsonl(path: Path, rows: list[dict], shuffle_seed: int | None = 0, first: tuple[dict, ...] = ()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    if shuffle_seed is not None:                     # rows land as requests finish: out of order
        random.Random(shuffle_seed).shuffle(rows)
    rows = [*first, *rows]                           # earlier rows for an index that is written again later
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def write_run(root: Path, layout: str = "1.14", *, stamp: str = "20260101_120000", reports: bool = True,
              generation: str | None = None, duplicate: bool = True, errored: bool = False) -> Path:
    """A run folder `root/<stamp>` with aime25 (3 x 4), gpqa_diamond (2 x 4) and math_500 `Level 1` (2 x 4)."""
    run = root / stamp
    config = run / "configs" / ("task_config_3f2a1b.yaml" if layout == "1.0" else "task_config.yaml")
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(config_text(layout, generation=generation), encoding="utf-8")
    for name, (preds, reviews) in {"aime25_default": aime_rows(layout, errored), "gpqa_diamond_default": gpqa_rows(layout),
                                   "math_500_Level 1": math500_rows(layout)}.items():
        first = ()
        if duplicate and name == "aime25_default":   # index 6 written twice: the later row wins
            first = (_prediction(6, preds[6]["messages"][0]["content"], "\\boxed{999}"),)
        _write_jsonl(run / "predictions" / "stub-model" / f"{name}.jsonl", preds, first=first)
        _write_jsonl(run / "reviews" / "stub-model" / f"{name}.jsonl", reviews, shuffle_seed=1)
    if reports:
        (run / "reports" / "stub-model").mkdir(parents=True, exist_ok=True)
        (run / "reports" / "stub-model" / "aime25.json").write_text("{}", encoding="utf-8")
    return run
