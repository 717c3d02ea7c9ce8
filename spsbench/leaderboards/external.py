"""Our verdicts beside another evaluator's on the same samples: agreement, the disagreeing samples with both
extracted answers, and Pass@k under each grader (for `spsbench results --disagreements` and leaderboards).

Under the other evaluator's verdicts a sample whose score was unusable (EvalScope's `excluded`, a failed
judge, ...) leaves the denominator, as in EvalScope; a problem left with no usable sample drops out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from spsbench.metrics import pass_at_k
from spsbench.store import EvalRow, Scores, Store

USABLE = ("correct", "incorrect")


def _pairs(db: Store, eval_id: int, source: str | None = None) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(our sample, their grade) for every sample the other evaluator graded."""
    theirs = [g for g in db.external_grades(eval_id) if source is None or g["source"].startswith(source)]
    if not theirs:
        return
    ours = {(s["problem_id"], s["sample_idx"]): s for s in db.samples(eval_id)}
    for grade in theirs:
        sample = ours.get((grade["problem_id"], grade["sample_idx"]))
        if sample is not None:
            yield sample, grade


def agree(ours: str, theirs: str) -> bool:
    """Both say correct, or both say not correct (our no_answer/timeout/error count as not correct)."""
    return (ours == "correct") == (theirs == "correct")


def agreement(db: Store, eval_id: int, source: str | None = None) -> tuple[int, int]:
    """(samples where both graders agree, samples both graded)."""
    pairs = list(_pairs(db, eval_id, source))
    return sum(agree(s["outcome"], g["verdict"]) for s, g in pairs), len(pairs)


def disagreements(db: Store, eval_id: int, source: str | None = None) -> Iterator[dict[str, Any]]:
    """One row per sample where the verdicts differ, with both extracted answers."""
    for sample, grade in _pairs(db, eval_id, source):
        if not agree(sample["outcome"], grade["verdict"]):
            yield {"problem_id": sample["problem_id"], "sample_idx": sample["sample_idx"],
                   "ours": sample["outcome"], "ours_extracted": sample["extracted"],
                   "source": grade["source"], "theirs": grade["verdict"], "theirs_extracted": grade["extracted"],
                   "finish_reason": sample["finish_reason"], "completion": sample["completion"]}


def counts_by_problem(rows: list[tuple[str, str]]) -> tuple[list[int], list[int]]:
    """(n_i, c_i) per problem from (problem_id, verdict); unusable verdicts leave the denominator."""
    n: dict[str, int] = {}
    c: dict[str, int] = {}
    for pid, verdict in rows:
        if verdict in USABLE:
            n[pid] = n.get(pid, 0) + 1
            c[pid] = c.get(pid, 0) + (verdict == "correct")
    keys = sorted(n)
    return [n[k] for k in keys], [c[k] for k in keys]


def passk(n: list[int], c: list[int], ks: list[int]) -> dict[int, float]:
    """Mean unbiased Pass@k over problems, for each k <= the fewest samples."""

    if not n:
        return {}
    return {k: float(pass_at_k(n, c, k).mean()) for k in ks if k <= min(n)}


def dual_passk(db: Store, eval_id: int, source: str = "evalscope") -> dict[str, dict[int, float]]:
    """{"spsbench": {k: pass@k}, "<source@version>": {k: pass@k}} on the same samples, every power-of-two k
    (and every k our scores have); empty when the evaluation has no other verdicts. For the leaderboards."""
    pairs = list(_pairs(db, eval_id, source))
    if not pairs:
        return {}
    theirs_name = pairs[0][1]["source"]           # one source (an import and a later cross-check may differ)
    pairs = [(s, g) for s, g in pairs if g["source"] == theirs_name]
    ours_n, ours_c = counts_by_problem([(s["problem_id"], "correct" if s["outcome"] == "correct" else "incorrect")
                                        for s, _ in pairs])
    their_n, their_c = counts_by_problem([(g["problem_id"], g["verdict"]) for _, g in pairs])
    top = max(ours_n + their_n)
    stored = Scores.from_rows(db.scores(eval_id), 0).pass_at_k
    ks = sorted({1 << e for e in range(top.bit_length())} | set(stored))
    return {"spsbench": passk(ours_n, ours_c, ks), theirs_name: passk(their_n, their_c, ks)}


def grader_view(db: Store, eval_id: int) -> tuple[dict[str, dict[int, float]], tuple[int, int]] | None:
    """(Pass@k per grader, (agreeing, graded)) for an evaluation with another evaluator's verdicts, else None."""
    dual = dual_passk(db, eval_id, source="")
    theirs = next((name for name in dual if name != "spsbench"), None)
    return (dual, agreement(db, eval_id, theirs)) if theirs else None


def graders_table(rows: list[tuple[str, tuple[dict[str, dict[int, float]], tuple[int, int]]]]) -> list[str]:
    """Markdown: per (label, grader_view) one line per grader with its Pass@k, and the verdict agreement."""
    if not rows:
        return []
    ks = sorted({k for _, (dual, _) in rows for values in dual.values() for k in values})
    lines = ["| model | grader | " + " | ".join(f"pass@{k}" for k in ks) + " | verdicts agree |",
             "|---|---|" + "--:|" * (len(ks) + 1)]
    for label, (dual, (agreed, total)) in rows:
        for name, values in dual.items():
            cells = " | ".join(f"{100 * values[k]:.1f}" if k in values else "—" for k in ks)
            lines.append(f"| {label} | {name} | {cells} | {agreed}/{total} |")
    return lines


def comparison_markdown(db: Store, evals: list[EvalRow] | None = None) -> list[str]:
    """A markdown section: for every evaluation with another evaluator's verdicts, Pass@k under both graders
    side by side and how often they agree (empty when nothing was imported or cross-checked)."""
    rows = [(f"{ev.model_path} ({ev.task})", view) for ev in (evals if evals is not None else db.evaluations())
            if (view := grader_view(db, ev.id))]
    if not rows:
        return []
    return ["## Graders side by side (imported or cross-checked runs)", "", *graders_table(rows), ""]
