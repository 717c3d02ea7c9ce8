"""The RL reward is the evaluation grader: same verdicts, clear errors."""

import pytest

from spsbench.errors import TrainingError
from spsbench.train.reward import check_kind, completion_text, make_reward_fn


def test_reward_uses_the_real_grader_on_chat_completions():
    fn = make_reward_fn("math", "arith")
    completions = [[{"role": "assistant", "content": "so \\boxed{12}"}],
                   [{"role": "assistant", "content": "\\boxed{13}"}],
                   [{"role": "assistant", "content": "no idea"}]]
    assert fn(prompts=[None] * 3, completions=completions, answer=["12"] * 3) == [1.0, 0.0, 0.0]
    assert fn.__name__ == "arith_math"


def test_grader_that_cannot_reward_is_refused():
    with pytest.raises(TrainingError, match="cannot give a reward"):
        check_kind("code_exec", "humaneval")


def test_grader_crash_becomes_one_line(monkeypatch):
    def boom(*args, **kwargs):
        raise ValueError("bad gold")

    monkeypatch.setattr("spsbench.grading.reward", boom)
    with pytest.raises(TrainingError, match="reward function for task 'arith' failed: ValueError: bad gold"):
        make_reward_fn("math", "arith")(prompts=["p"], completions=["x"], answer=["1"])


def test_completion_text_accepts_plain_strings_only_or_chat():
    assert completion_text("abc") == "abc"
    with pytest.raises(TrainingError):
        completion_text(42)
