"""A quiet terminal: engine output (descriptor 2, log records, Python warnings) goes to the log file while
spsbench's own output stays on the terminal: every spsbench warning site, run one by one, reaches stderr
while engine output is redirected (and the log), and `-q` keeps it off the terminal but in the log; status
lines; -v keeps everything on the terminal."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

from spsbench import quiet
from spsbench.commands.eval import add_arguments
from spsbench.config import SamplingConfig
from spsbench.errors import EngineError
from spsbench.quiet import engine_log, terminal
from tests.conftest import FakeFactory
from tests.fixtures.tiny_model import tiny_model


def test_engine_output_goes_to_the_log_and_ours_stays(tmp_path, capfd, monkeypatch):
    monkeypatch.delenv("VLLM_CONFIGURE_LOGGING", raising=False)
    log = tmp_path / "results/engine.log"
    with engine_log(log) as path:
        assert path == log and os.environ["VLLM_CONFIGURE_LOGGING"] == "0"
        os.write(2, b"C-level noise\n")
        logging.getLogger("vllm.worker").warning("thread binding skipped")
        warnings.warn("TRL supports vLLM 0.22 to 0.31", UserWarning, stacklevel=1)
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('child noise\\n')"], check=True)
        # A library's tqdm bar on the process's stderr (sys.__stderr__: pytest swaps sys.stderr itself).
        print("Loading safetensors checkpoint shards: 100%", file=sys.__stderr__, flush=True)
        print("progress bar", file=terminal())
        print("score table")
    out, err = capfd.readouterr()
    assert "progress bar" in err and "score table" in out
    assert "noise" not in err and "thread binding" not in err and "TRL supports" not in err
    assert "safetensors" not in err and terminal() is sys.stderr           # back to normal
    text = log.read_text()
    for line in ("C-level noise", "child noise", "safetensors", "WARNING vllm.worker: thread binding skipped", "TRL supports"):
        assert line in text
    assert "VLLM_CONFIGURE_LOGGING" not in os.environ        # restored
    os.write(2, b"after\n")
    assert "after" in capfd.readouterr().err                  # descriptor 2 is the terminal again


def test_verbose_leaves_the_terminal_alone(tmp_path, capfd):
    with engine_log(tmp_path / "engine.log", verbose=True) as path:
        os.write(2, b"engine line\n")
    assert path is None and "engine line" in capfd.readouterr().err
    assert not (tmp_path / "engine.log").exists()


def test_the_environment_is_restored_and_the_users_settings_win(tmp_path, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "0")
    monkeypatch.delenv("VLLM_CONFIGURE_LOGGING", raising=False)
    with engine_log(tmp_path / "engine.log"):
        assert os.environ["TQDM_DISABLE"] == "0"
    assert "VLLM_CONFIGURE_LOGGING" not in os.environ and os.environ["TQDM_DISABLE"] == "0"


def test_eval_has_verbose_and_quiet_flags():
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["-v"]).verbose and not parser.parse_args([]).verbose
    assert parser.parse_args(["-q"]).quiet and not parser.parse_args([]).quiet


# --------------------------------------------------------------------------- every warning site

SITES = {}


def site(fn):
    """A function that drives one spsbench warning path and returns the text the warning must carry."""
    SITES[fn.__name__] = fn
    return fn


@pytest.fixture(scope="module")
def short_model(tmp_path_factory):
    # arith's longest prompt is 143 tokens with the tiny model's character tokenizer and chat template
    return tiny_model(tmp_path_factory.mktemp("short") / "model", max_positions=160)


@site
def eval_max_tokens_clamp(ctx):      # the case: vLLM's max_model_len smaller than prompt + max_tokens
    from spsbench.evaluation.evaluate import evaluate
    from spsbench.evaluation.records import EvalRequest

    evaluate(EvalRequest(str(ctx.model), ("arith",), SamplingConfig(n=1, max_tokens=200), engine="vllm",
                         engine_options={"max_model_len": 204}, store=ctx.tmp / "s.db", limit=1, progress=False),
             engine_factory=FakeFactory())
    return "200 new tokens do not fit the model's 204-token context after the longest prompt (143 tokens); using 61"


@site
def rollout_length_clamp(ctx):
    from spsbench.train.budget import apply_rollout_budget
    from spsbench.train.config import load_config

    apply_rollout_budget(load_config("grpo", overrides=["rl.max_completion_length=40"], model=str(ctx.model)))
    return "arith: rl.max_completion_length: 40 new tokens do not fit"


@site
def server_cannot_count_prompt_tokens(ctx):
    from spsbench.evaluation.budget import BudgetResolver
    from spsbench.tasks import load_task

    resolver = BudgetResolver("openai", "http://127.0.0.1:9/v1#m", {"base_url": "http://127.0.0.1:9/v1"})
    resolver.counter.__dict__["card"] = {"id": "m", "max_model_len": 4096}     # what GET /models said
    resolver.counter._tokenize = lambda prompt, template: None                   # and no POST /tokenize
    resolver.sampling_for(load_task("arith", limit=1), SamplingConfig(max_tokens=8))
    return "cannot count prompt tokens"


@site
def vllm_falls_back_to_hf(ctx):
    import spsbench.engines as engines

    real = engines.engine_class

    class NoVLLM(real("vllm")):
        def __init__(self, model, **options):
            raise EngineError("engine vllm: cannot start: no memory for the KV cache")

    ctx.monkeypatch.setattr(engines, "vllm_installed", lambda: True)
    ctx.monkeypatch.setattr(engines, "engine_class", lambda name: NoVLLM if name == "vllm" else real(name))
    engines.load_engine("auto", str(ctx.model)).close()
    return "vLLM could not start (engine vllm: cannot start: no memory for the KV cache); using the hf engine"


@site
def served_model_without_chat_template(ctx):
    from spsbench.engines import GenRequest, load_engine
    from tests.openai_stub_server import StubServer, StubState

    with StubServer(StubState(chat_template=False)) as server:
        engine = load_engine("openai", server.state.model, base_url=server.url, backoff=0.01)
        list(engine.generate([GenRequest("a", "hi", (0,), (1,))], SamplingConfig(max_tokens=4)))
        engine.close()
    return "has no chat template"


@site
def task_differs_from_the_stored_one(ctx):
    from spsbench.evaluation.identity import find_existing
    from spsbench.store import EvalKey

    db = SimpleNamespace(find_evaluation=lambda *key: None, digests=lambda *key: [SimpleNamespace(id=1, task_digest="old")])
    task = SimpleNamespace(spec=SimpleNamespace(name="arith", version="2"))
    find_existing(db, EvalKey(1, "arith", "2", "policy", "sampling", "new"), task)
    return "task arith v2 differs from the stored arith v2: evaluating as new"


def _run_with(ctx, broken: bool):
    from tests.test_scan import make_checkpoint

    run = ctx.tmp / "run"
    folder = make_checkpoint(run, 10, ctx.model)
    if broken:
        (folder / "model.safetensors").unlink()
    return run


@site
def broken_checkpoint_skipped(ctx):
    from spsbench.evaluation.records import EvalRequest
    from spsbench.evaluation.scan import scan_run

    scan_run(_run_with(ctx, broken=True), EvalRequest(None, ("arith",), SamplingConfig(n=1, max_tokens=4),
                                                      store=ctx.tmp / "s.db", limit=1, progress=False))
    return "skipping broken checkpoint"


@site
def checkpoint_that_fails_to_load_skipped(ctx):
    from spsbench.evaluation.records import EvalRequest
    from spsbench.evaluation.scan import scan_run

    def cannot_load(engine, model):
        raise EngineError("engine hf: weights do not match the config")

    scan_run(_run_with(ctx, broken=False), EvalRequest(None, ("arith",), SamplingConfig(n=1, max_tokens=4),
                                                       store=ctx.tmp / "s.db", limit=1, progress=False),
             engine_factory=cannot_load)
    return "skipping checkpoint that failed to load checkpoint-10: engine hf: weights do not match the config"


@site
def resume_skips_an_unfinished_save(ctx):
    from spsbench.train.preempt import resume_point

    for step, state in ((1, True), (2, False)):
        folder = ctx.tmp / "run" / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        if state:
            (folder / "trainer_state.json").write_text("{}")
    assert resume_point(ctx.tmp / "run", True).endswith("checkpoint-1")
    return "skipping checkpoint-2: its save did not finish (interrupted)"


def _callback(ctx):
    from spsbench.train.callbacks import EvaluateCheckpointCallback
    from spsbench.train.config import load_config

    config = load_config("grpo", overrides=["eval.isolate=false", "eval.engine=hf", f"eval.store={ctx.tmp / 's.db'}",
                                            "run_name=r"], model=str(ctx.model))
    return EvaluateCheckpointCallback(config, base_model=str(ctx.model))


@site
def checkpoint_evaluation_failed_in_training(ctx):
    def broken(request, **kwargs):
        raise RuntimeError("grader pool died")

    from spsbench.store import ModelTags

    ctx.monkeypatch.setattr("spsbench.train.eval_worker.evaluate", broken)
    _callback(ctx).evaluate_model(str(ctx.tmp / "run" / "checkpoint-3"), 3, tags=ModelTags(run_name="r", step=3))
    return "failed (RuntimeError: grader pool died); training continues"


@site
def leaderboard_refresh_failed_in_training(ctx):
    from spsbench.train.callbacks import refresh_leaderboard

    def broken(store):
        raise OSError("disk full")

    ctx.monkeypatch.setattr("spsbench.train.callbacks.leaderboard_refresh", broken)
    refresh_leaderboard(str(ctx.tmp / "s.db"))
    return "leaderboard refresh failed: OSError: disk full"


@site
def leaderboard_refresh_failed_after_eval(ctx):
    from rich.console import Console

    from spsbench.commands import eval as eval_command

    def broken(store):
        raise OSError("disk full")

    ctx.monkeypatch.setattr(eval_command, "leaderboard_refresh", broken)
    eval_command._print_destinations(Console(file=io.StringIO()), ctx.tmp / "s.db", skip_leaderboard=False)
    return "leaderboard refresh failed: OSError: disk full"


@site
def evaluation_child_warning(ctx):
    from spsbench.train.callbacks import _read_worker

    lines = ["INFO vllm: engine noise\n", "spsbench: warning: arith: max_tokens: clamped in the child\n",
             "RESULT [7]\n"]
    assert _read_worker(iter(lines)) == ("[7]", "INFO vllm: engine noise")
    return "arith: max_tokens: clamped in the child"


@site
def training_plan_warning(ctx):
    from spsbench.train.config import load_config
    from spsbench.train.run import build_trainer

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    ctx.monkeypatch.setattr("spsbench.train.run.load_policy", stop)
    config = load_config("grpo", overrides=["eval.enabled=false", "rl.max_completion_length=8",
                                            f"output_dir={ctx.tmp / 'run'}"], model=str(ctx.model))
    with pytest.raises(Stop):
        build_trainer(config)
    return "eval.enabled is false: no checkpoint is evaluated during training"


@site
def sps_logger_warning(ctx):         # the trainers' logging.getLogger(__name__) warnings (IRL phase skipped, ...)
    logging.getLogger("spsbench.train.sps.trainer").warning("SPS: IRL phase at step %d skipped", 4)
    return "SPS: IRL phase at step 4 skipped"


@pytest.mark.parametrize("hush", [False, True], ids=["default", "-q"])
@pytest.mark.parametrize("name", sorted(SITES))
def test_every_spsbench_warning_reaches_the_terminal_while_engine_output_is_logged(
        name, hush, short_model, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("SPSBENCH_LEADERBOARDS", str(tmp_path / "lb"))
    quiet.install()                          # what the CLI does first
    ctx = SimpleNamespace(model=Path(short_model), tmp=tmp_path, monkeypatch=monkeypatch)
    log = tmp_path / "engine.log"
    with engine_log(log, quiet=hush):
        expected = SITES[name](ctx)
    shown = [line for line in capfd.readouterr().err.splitlines() if line.startswith("spsbench: warning: ")]
    if hush:
        assert not shown                                             # -q: not on the terminal ...
    else:
        assert len([line for line in shown if expected in line]) == 1, shown
    assert expected in log.read_text()                               # ... and always in the log


# --------------------------------------------------------------------------- status lines


def test_status_is_one_line_then_the_time_it_took_and_nothing_under_q(capsys):
    with quiet.status("converting the model (happens once)", done="converted"):
        pass
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "spsbench: converting the model (happens once)" and err[1].startswith("spsbench: converted (")
    with quiet.hushed(), quiet.status("starting vLLM", done="ready"):
        pass
    assert capsys.readouterr().err == ""


def test_status_inside_a_live_display_is_a_task_of_it():
    from rich.console import Console
    from rich.progress import Progress

    progress = Progress(console=Console(file=io.StringIO(), force_terminal=True))
    with quiet.live_display(progress), quiet.status("evaluating checkpoint-2"):
        assert [t.description for t in progress.tasks] == ["evaluating checkpoint-2"]
    assert progress.tasks == []


def test_the_model_conversion_status_reaches_the_terminal_while_quiet(tmp_path, monkeypatch, capfd):
    from spsbench import models

    monkeypatch.setattr(models, "convert_gguf", lambda source, out: None)
    with engine_log(tmp_path / "engine.log"):
        models._convert_with_status(Path("SmolLM2-135M-Instruct.Q4_1.gguf"), tmp_path / "out", progress=True)
    err = capfd.readouterr().err
    assert "converting the embedded default model SmolLM2-135M-Instruct.Q4_1.gguf into the cache (happens once" in err
    assert "spsbench: converted the embedded default model into" in err


def test_the_vllm_start_has_a_status_line(tiny_model_dir, monkeypatch, capsys):
    from spsbench.engines import vllm as vllm_engine

    class LLM:
        def __init__(self, model, **kwargs):
            self.model = model

    monkeypatch.setitem(sys.modules, "vllm", SimpleNamespace(LLM=LLM))
    vllm_engine._start(str(tiny_model_dir), {"dtype": "float32", "enforce_eager": True})
    err = capsys.readouterr().err
    assert f"starting vLLM on {Path(tiny_model_dir).name} (float32, eager; once per command" in err
    assert "spsbench: vLLM engine ready (" in err


def test_a_spinner_on_a_terminal_leaves_library_output_in_the_log(monkeypatch):
    """rich's own status spinner redirects sys.stderr to the terminal while it spins: a weight-loading bar
    would appear on screen. Ours does not."""
    import pty

    master, slave = pty.openpty()
    with os.fdopen(slave, "w", buffering=1) as tty:
        monkeypatch.setattr(quiet, "_terminal", tty)
        library = io.StringIO()
        monkeypatch.setattr(sys, "stderr", library)
        with quiet.status("loading the policy", done="policy ready"):
            print("Loading weights: 100%", file=sys.stderr)
        tty.flush()
        shown = _drain(master)
    os.close(master)
    assert "Loading weights" in library.getvalue() and "Loading weights" not in shown
    assert "loading the policy" in shown and "policy ready (" in shown


def _drain(fd: int) -> str:
    """Everything written to a pty so far (several writes may need several reads)."""
    import select

    chunks = []
    while select.select([fd], [], [], 0.5)[0]:
        chunks.append(os.read(fd, 65536))
    return b"".join(chunks).decode(errors="replace")
