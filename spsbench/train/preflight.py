"""Everything a training run can refuse, refused before the first weight loads.

The recipe sections validate themselves when parsed (`train.config`); this adds what needs other
layers: the training task and every evaluation task loaded as specs, their local data files readable,
the evaluation settings the callback will send (its SamplingConfig, and the engine and its options
through `check_engine_options`, what `EvalRequest` runs: the trainer reaches the evaluator only through
its callback), the store path and the run folder usable, and a local model folder complete. A run that would fail at its first checkpoint evaluation now fails in seconds.
"""

from __future__ import annotations

from pathlib import Path

from spsbench import paths
from spsbench.config import SamplingConfig
from spsbench.engines import check_engine_options
from spsbench.errors import ConfigError, StoreError
from spsbench.models import check_loadable
from spsbench.tasks import load_spec
from spsbench.train.config import TrainConfig
from spsbench.validate import existing_file, output_file


def preflight(config: TrainConfig, output_dir: Path, model_path: str) -> None:
    """Raise one SpsbenchError line for anything that would fail later in the run."""
    load_spec(config.task)
    if config.data is not None:
        existing_file(config.data, "data")
    if Path(model_path).is_dir():
        check_loadable(model_path)
    if config.eval.enabled:
        check_eval(config)


def check_eval(config: TrainConfig) -> SamplingConfig:
    """The checks `EvalRequest` makes when the callback builds it, made now; returns the sampling."""
    ev = config.eval
    specs = {name: load_spec(name) for name in ev.tasks}
    known = {spec.name for spec in specs.values()} | set(ev.tasks)
    unused = sorted(set(ev.data) - known)
    if unused:
        raise ConfigError(f"eval.data: {', '.join(unused)} is not among eval.tasks ({', '.join(ev.tasks)})")
    for name, path in ev.data.items():
        existing_file(path, f"eval.data.{name}")
    store = Path(ev.store) if ev.store else paths.default_store_path()
    output_file(store, "eval.store", error=StoreError)
    check_engine_options(ev.engine, dict(ev.engine_options))
    return SamplingConfig(n=ev.n, temperature=ev.temperature, top_p=ev.top_p, max_tokens=ev.max_tokens, seed=ev.seed)
