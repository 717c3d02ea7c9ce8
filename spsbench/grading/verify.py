"""math-verify calls: parse the gold and the extracted answer, compare them, classify what went wrong.

Runs inside grader worker processes (and in-process for `grade()`). math-verify is imported on first
use, never at module import. Its own SIGALRM timeouts are disabled (whole seconds only, main thread
only, and they return a silent "wrong"); we set a sub-second interval timer of our own instead, raised
as a BaseException so no library `except Exception` swallows it.

Why a signal and not a timer thread: CPython's big-integer arithmetic (`9^{9^{9^{9}}}`) holds the GIL
for its whole run and only polls for signals, so a timer thread never gets to run. Signals reach only
the main thread, so off it (or when the caller has its own interval timer running) there is no soft
limit: `soft_limit_available()` says so and `grade()` sends the work to a worker process instead. Work
stuck in C code that polls nothing is stopped only by the pool's watchdog, which kills the worker.

An exception raised at an arbitrary point can interrupt sympy half-way through a lazy import (measured:
`module 'sympy' has no attribute 'assumptions'` on every later answer). So the slow first steps run
once untimed (`warm_up`), and a process in which the timer has fired is never trusted again: a worker
is replaced, and `grade()` verifies in a worker process from then on.
"""

from __future__ import annotations

import logging
import re
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


# The first parse (parser tables) and the first power comparison (sympy imports combinatorics and
# physics) cost ~0.8 s; run untimed so no job pays for them, and no timeout interrupts an import.
_WARM_UP = (("33", "33"), ("2^{3^{2}}", "33"))
_interrupted = False      # set once our timer has fired in this process: its sympy state is suspect


class SoftTimeout(BaseException):
    """Our interval timer fired (BaseException: math-verify and sympy catch Exception broadly)."""


def soft_limit_available() -> bool:
    """Our timer needs the main thread (signals go there), an idle ITIMER_REAL (a caller's own `alarm()`
    or `setitimer()`, e.g. pytest-timeout's, would be cancelled by ours), and a process in which it has
    not fired yet (see the module docstring)."""
    return (not _interrupted and threading.current_thread() is threading.main_thread()
            and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0))


@contextmanager
def soft_limit(seconds: float) -> Iterator[None]:
    """Raise SoftTimeout after `seconds` (sub-second allowed). RuntimeError where no timer is possible:
    never a silent run without a limit."""
    if not soft_limit_available():
        raise RuntimeError("no soft time limit here (not the main thread, the caller's interval timer is "
                           "running, or a timeout already fired in this process): grade through GraderPool")

    def on_alarm(signum, frame):  # noqa: ARG001 - signal handler signature
        raise SoftTimeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))   # setitimer: sub-second, unlike signal.alarm
    try:
        yield
    finally:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        finally:                          # even if the timer fired just now: never leave our handler behind
            signal.signal(signal.SIGALRM, previous)


def run_job(job: Job, timeout_s: float) -> Result:
    """Verify one job; every failure becomes an outcome, never an exception."""
    global _interrupted
    warm_up()
    try:
        with soft_limit(timeout_s):
            return _verify(job)
    except SoftTimeout:
        _interrupted = True
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


@lru_cache(maxsize=1)
def warm_up() -> None:
    """Run the slow first verifications once, with no timer (see _WARM_UP). Never raises."""
    for answer, gold in _WARM_UP:
        try:
            _verify(("math", answer, gold))
        except Exception:  # noqa: BLE001 - warming up only; a real job reports its own errors
            continue


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


# Integers longer than this are compared as digit strings: Python refuses int(str) past 4300 digits
# (sys.get_int_max_str_digits), so sympy could not even read a 5,000-digit answer.
LONG_INTEGER_DIGITS = 1000
INTEGER_RE = re.compile(r"[-+]?\d+")


def _long_integers(answer: str, gold: str) -> Result | None:
    """The verdict for two integer literals when one is too long for sympy; None otherwise."""
    a, g = answer.strip(), normalize_answer(gold).strip()
    if not (INTEGER_RE.fullmatch(a) and INTEGER_RE.fullmatch(g)) or max(len(a), len(g)) <= LONG_INTEGER_DIGITS:
        return None

    def canon(text: str) -> str:
        sign, digits = ("-" if text[0] == "-" else ""), text.lstrip("+-").lstrip("0") or "0"
        return (sign if digits != "0" else "") + digits

    same = canon(a) == canon(g)
    return ("correct" if same else "incorrect"), None, f"compared as {len(a)}- and {len(g)}-digit integers"


def _verify(job: Job) -> Result:
    mode, answer, gold = job
    if mode != "lenient" and (verdict := _long_integers(answer, gold)) is not None:
        return verdict
    gold_parsed = _parse_gold(gold)
    if not gold_parsed:
        return "grader_error", None, f"gold answer {gold!r} is not parsable by math-verify"
    if all(isinstance(x, str) for x in gold_parsed):     # only the raw text came back: no expression in it
        return "grader_error", None, f"gold answer {gold[:60]!r} is malformed: math-verify found no expression in it"
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
