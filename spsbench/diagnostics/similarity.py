"""Diversity of completions (paper Table 4): mean pairwise Jaccard similarity of word 3-gram sets.

Pure functions (no torch): `spsbench.diagnostics.model_stats` stores the value as the `pairwise_similarity` diagnostic.
Words and punctuation marks are tokens, case is kept; a text shorter than 3 tokens is one shingle.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from spsbench.errors import SpsbenchError

WORD_RE = re.compile(r"\w+|[^\w\s]")
SHINGLE = 3


def shingles(text: str, size: int = SHINGLE) -> frozenset[tuple[str, ...]]:
    """Word n-grams (words and punctuation marks are tokens; case kept). Short texts give one shingle."""
    words = WORD_RE.findall(text)
    if len(words) < size:
        return frozenset([tuple(words)])
    return frozenset(tuple(words[i : i + size]) for i in range(len(words) - size + 1))


def jaccard(a: frozenset, b: frozenset) -> float:
    union = len(a | b)
    return 1.0 if union == 0 else len(a & b) / union


def pairwise_similarity(texts: Sequence[str]) -> float | None:
    """Mean Jaccard similarity of word-3-gram sets over all pairs; None for fewer than two texts."""
    sets = [shingles(t) for t in texts]
    pairs = [jaccard(a, b) for a, b in itertools.combinations(sets, 2)]
    return sum(pairs) / len(pairs) if pairs else None


def group_counts(groups: dict[str, list[str]]) -> dict[str, int]:
    """What a similarity over `groups` covers: problems with >= 2 completions, most completions of one."""
    return {
        "problems": sum(len(texts) > 1 for texts in groups.values()),
        "completions_per_problem": max((len(texts) for texts in groups.values()), default=0),
    }


def similarity_by_problem(groups: dict[str, list[str]]) -> tuple[float, dict[str, Any]]:
    """Mean over problems (with >= 2 completions) of `pairwise_similarity`."""
    per = {pid: s for pid, texts in sorted(groups.items()) if (s := pairwise_similarity(texts)) is not None}
    if not per:
        raise SpsbenchError("pairwise similarity needs at least two completions of one problem")
    return sum(per.values()) / len(per), {"measure": f"jaccard_word{SHINGLE}gram", **group_counts(groups)}


def group_samples(samples: Iterable[dict[str, Any]], limit: int | None = None) -> dict[str, list[str]]:
    """Store samples -> {problem_id: completions in sample order}, first `limit` problems by id."""
    groups: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for s in samples:
        groups[str(s["problem_id"])].append((int(s["sample_idx"]), str(s["completion"])))
    keep = sorted(groups)[:limit] if limit else sorted(groups)
    return {pid: [text for _, text in sorted(groups[pid])] for pid in keep}
