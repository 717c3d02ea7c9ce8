"""The `eval` section of a recipe: evaluation of every saved checkpoint by the spsbench evaluator."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spsbench.config import SamplingConfig
from spsbench.engines import ENGINES, accepts_option
from spsbench.errors import ConfigError
from spsbench.validate import check_fields, number, text

EVAL_MODES = ("inline", "watch")
# vLLM's share of a GPU when it evaluates beside training (eval.engine vllm/auto and no
# eval.engine_options.gpu_memory_utilization): the policy, its optimizer state and a colocated rollout
# vLLM (TRL's vllm_gpu_memory_utilization default 0.3) already hold the rest; vLLM's own 0.9 cannot fit.
EVAL_GPU_MEMORY_UTILIZATION = 0.3


def field_with_help(default: Any, help: str) -> Any:
    """A dataclass field with its help text (`spsbench train --list-keys`)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


_f = field_with_help


@dataclass
class EvalConfig:
    """Evaluation of every saved checkpoint by the spsbench evaluator (same store as `spsbench eval`)."""

    enabled: bool = _f(True, "Evaluate each checkpoint when it is saved.")
    mode: str = _f("inline", "inline: the training process evaluates each checkpoint (callback); watch: it "
                             "does not, a second process runs `spsbench eval RUN --watch` with the sampling "
                             "recorded in the run folder's spsbench_run.json.")
    base: bool = _f(True, "Also evaluate the base model before the first step, with the same settings (the "
                          "step-0 point and the comparison table's base row; reused from the store when there).")
    tasks: list[str] = _f(["arith"], "Tasks to evaluate on (registry names or task YAML paths).")
    n: int = _f(8, "Samples per problem (paper: 128).")
    k: list[int] = _f([], "Extra k values for pass@k (powers of two up to n are always reported).")
    temperature: float = _f(SamplingConfig.temperature, "Sampling temperature (paper eval: 0.7).")
    top_p: float = _f(SamplingConfig.top_p, "Nucleus sampling mass.")
    max_tokens: int = _f(256, "Max new tokens per evaluation sample.")
    seed: int = _f(SamplingConfig.seed, "Base sampling seed.")
    engine: str = _f("hf", f"Generation engine for evaluation: {' | '.join(ENGINES)}.")
    engine_options: dict[str, Any] = _f({}, "Engine options, like `spsbench eval --engine-opt`. For vllm and "
                                            f"auto, gpu_memory_utilization defaults to {EVAL_GPU_MEMORY_UTILIZATION} "
                                            "(beside the training job on the same GPU), not vLLM's 0.9.")
    isolate: bool = _f(True, "Evaluate in a child process (own memory, threads and engine; the training "
                             "process is untouched). false: in the training process.")
    store: str | None = _f(None, "Results store path (default: the `spsbench eval` default store).")
    limit: int | None = _f(None, "Evaluate only the first N problems of each task.")
    data: dict[str, str] = _f({}, "Local data files per task name (offline use), like `spsbench eval --data`.")

    def __post_init__(self) -> None:
        if isinstance(self.tasks, str):
            self.tasks = [t.strip() for t in self.tasks.split(",") if t.strip()]
        check_fields(self, "eval.")
        if self.n < 1:
            raise ConfigError(f"eval.n: must be >= 1, got {self.n}")
        if any(k > self.n for k in self.k):
            raise ConfigError(f"eval.k: {max(self.k)} is larger than eval.n={self.n}")
        if isinstance(self.tasks, str):
            self.tasks = [t.strip() for t in self.tasks.split(",") if t.strip()]
        if self.mode not in EVAL_MODES:
            raise ConfigError(f"eval.mode: must be one of {', '.join(EVAL_MODES)}, got {self.mode!r}")
        if accepts_option(self.engine, "gpu_memory_utilization"):
            self.engine_options = {"gpu_memory_utilization": EVAL_GPU_MEMORY_UTILIZATION, **(self.engine_options or {})}
        self._check_values()

    @property
    def in_training(self) -> bool:
        """Whether the training process evaluates checkpoints itself (not off, not left to a watcher)."""
        return self.enabled and self.mode == "inline"

    def sampling(self) -> dict[str, Any]:
        """The checkpoint evaluations' setting, as recorded in the run info for `spsbench eval RUN`."""
        return {"tasks": list(self.tasks), "n": self.n, "temperature": self.temperature, "top_p": self.top_p,
                "max_tokens": self.max_tokens, "seed": self.seed, "k": list(self.k), "limit": self.limit}

    def _check_values(self) -> None:
        """Every value a checkpoint evaluation would refuse, refused when the recipe loads."""
        number("eval.temperature", self.temperature, low=0)
        number("eval.top_p", self.top_p, low=0, low_open=True, high=1)
        number("eval.max_tokens", self.max_tokens, low=1, integer=True)
        if self.limit is not None:
            number("eval.limit", self.limit, low=1, integer=True)
        if not self.tasks:
            raise ConfigError("eval.tasks: give at least one task (or eval.enabled: false)")
        for i, task in enumerate(self.tasks):
            text(f"eval.tasks[{i}]", task)
        for key, value in (self.k and {f"eval.k[{i}]": k for i, k in enumerate(self.k)} or {}).items():
            number(key, value, low=1, integer=True)
        for name, path in self.data.items():
            text(f"eval.data.{name}", path)
        if self.store is not None:
            text("eval.store", self.store)
        text("eval.engine", self.engine)
