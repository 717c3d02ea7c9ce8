"""A quiet terminal: engine output (descriptor 2, log records, Python warnings) goes to the log file while
spsbench's own progress (`terminal()`) and stdout stay on the terminal; -v keeps everything on the terminal."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings

from spsbench.commands.eval import add_arguments
from spsbench.quiet import engine_log, terminal


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


def test_eval_has_a_verbose_flag():
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["-v"]).verbose and not parser.parse_args([]).verbose
