"""math-verify calls: parse the gold and the extracted answer, compare them, classify what went wrong.

Runs inside grader worker processes (and in-process for `grade()`). math-verify is imported on first
use, never at module import. Its own SIGALRM timeouts are disabled (they return a silent "wrong"); we
set a soft interval timer of our own instead, raised as a BaseException so no library `except
Exception` swallows it. Work stuck in C code (huge integer powers) ignores signals: only the pool's
watchdog, which kills the worker, stops it.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from spsbench.grading.extract import normalize_answer

# A verification job: (mode, answer, gold). mode "math": `answer` is the extracted, normalised answer;
# mode "lenient": `answer` is the whole completion (after the think rule) for math-verify's own extraction.
Job = tuple[str, str, str]
# (outcome value, extracted answer when the verifier found it, detail)
Result = tuple[str, "str | None", str]


class SoftTimeout(BaseException):
    """Our interval timer fired (BaseException: math-verify and sympy catch Exception broadly)."""


@contextmanager
def soft_limit(seconds: float | None) -> Iterator[None]:
    """Raise SoftTimeout after `seconds` (main thread only; elsewhere no limit, the watchdog remains)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):  # noqa: ARG001 - signal handler signature
        raise SoftTimeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))   # setitimer: sub-second, unlike signal.alarm
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_job(job: Job, timeout_s: float | None) -> Result:
    """Verify one job; every failure becomes an outcome, never an exception."""
    try:
        with soft_limit(timeout_s):
            return _verify(job)
    except SoftTimeout:
        return "grader_timeout", None, f"math-verify did not finish within {timeout_s:g} s"
    except RecursionError:
        return "grader_error", None, "math-verify hit the recursion limit (deeply nested answer)"
    except Exception as exc:  # noqa: BLE001 - a grader failure is an outcome, reported with its cause
        return "grader_error", None, f"{type(exc).__name__}: {str(exc)[:200]}"


@lru_cache(maxsize=1)
def _mv():
    """Import math-verify once, quietly (it warns once per process that timeouts are disabled)."""
    import math_verify
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    for name in ("math_verify", "latex2sympy2_extended"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return math_verify, (LatexExtractionConfig(), ExprExtractionConfig())


def _parse(text: str):
    mv, config = _mv()
    return mv.parse(text, extraction_config=config, parsing_timeout=None, raise_on_error=True)


@lru_cache(maxsize=4096)
def _parse_gold(gold: str):
    """Golds repeat for every sample of a problem: parse each once per process."""
    return _parse(f"${normalize_answer(gold)}$")


def _compare(gold_parsed, pred_parsed) -> tuple[bool, str]:
    """Strict compare that surfaces errors; retried leniently so one failing pair cannot hide a match."""
    mv, _ = _mv()
    try:
        return bool(mv.verify(gold_parsed, pred_parsed, timeout_seconds=None, raise_on_error=True)), ""
    except Exception as exc:  # noqa: BLE001 - decide below whether it mattered
        if mv.verify(gold_parsed, pred_parsed, timeout_seconds=None, raise_on_error=False):
            return True, ""
        return False, f"{type(exc).__name__}: {str(exc)[:200]}"


def _verify(job: Job) -> Result:
    mode, answer, gold = job
    gold_parsed = _parse_gold(gold)
    if not gold_parsed:
        return "grader_error", None, f"gold answer {gold!r} is not parsable by math-verify"
    extracted = None
    if mode == "lenient":
        pred_parsed = _parse(answer)
        if not pred_parsed:
            return "no_answer", None, "math-verify found no answer (lenient extraction)"
        extracted = str(pred_parsed[-1])
    else:
        pred_parsed = _parse(f"${answer}$")
        if not pred_parsed:
            return "incorrect", None, "math-verify could not parse the extracted answer"
    ok, error = _compare(gold_parsed, pred_parsed)
    if error:
        return "grader_error", extracted, f"comparison failed: {error}"
    detail = f"parsed {str(pred_parsed[0])[:100]} vs gold {str(gold_parsed[0])[:100]}"
    return ("correct" if ok else "incorrect"), extracted, detail
