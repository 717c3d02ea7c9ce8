"""Run folders and plans (issue 23, classes 2 and 3).

Class 2, a run folder belongs to one run: generated commands (algorithm, a changed setting, max_steps,
--resume with nothing / a checkpoint of this run / of another run / a missing one, --output-dir onto a finished
run, another run, a plain TRL folder, a file, a new folder, --run-name) against finished runs: each trains only
when it is a new run into a new folder or this run's own continuation with steps left, and otherwise is one line,
exit 2, with every folder left byte for byte as it was; two trainings at once into one folder; the lock of a
killed run, of a live run on another host, and without flock.

Class 3, the plan is the run: generated settings (valid and invalid values of the settings that used to pass
`--dry-run` and fail after the model loaded, for grpo, dapo and sps): `--dry-run` and the run give the same
verdict, the same line when they refuse, and the same steps and checkpoints when they train; duplicate YAML keys,
empty and partial recipes, --base and --set algo.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from spsbench import paths
from spsbench.errors import TrainingError
from spsbench.train import run_lock
from tests.fixtures.tiny_model import tiny_model
from tests.hostile import HYPO, error_line, run_cli, tree

BASE = ["rl.num_generations=4", "rl.per_device_train_batch_size=8", "rl.gradient_accumulation_steps=1",
        "rl.max_completion_length=8", "rl.max_steps=2", "rl.save_steps=1", "rl.learning_rate=1e-3",
        "rl.logging_steps=100", "limit=16", "sps.rl_steps_per_phase=1", "sps.allow_no_irl=true",
        "sps.irl_batch_size=6", "sps.irl_micro_batch_size=4", "sps.l2te_truncated=keep",
        "dynamic_sampling.soft_overlong_cache=null", "dynamic_sampling.max_resample_times=0"]


def stand_in_reward(completions, golds, kind="math", choices=None):
    return [float(len(text) % 2) for text in completions]


@pytest.fixture(autouse=True)
def quick(monkeypatch, tmp_path):
    monkeypatch.setattr("spsbench.grading.reward", stand_in_reward)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.chdir(tmp_path)                 # a default run folder (runs/<name>) lands in the scratch folder
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    return str(tiny_model(tmp_path_factory.mktemp("tiny") / "model"))


def argv(model: str, algo: str, sets: list[str], *extra: str) -> list[str]:
    return ["train", "--algo", algo, "--model", model, "--no-eval", *[a for s in sets for a in ("--set", s)], *extra]


def steps_done(out: str) -> int:
    line = next(ln for ln in out.splitlines() if ln.startswith("done: "))
    return int(line.split()[1])


# ====================================================================== class 2: a run folder is one run's


@pytest.fixture(scope="module")
def finished(tmp_path_factory, model_dir):
    """A finished GRPO run (2 steps, a checkpoint each) and a finished SPS run, trained once (do not modify:
    each example works on copies)."""
    import spsbench.grading as grading

    root = tmp_path_factory.mktemp("finished")
    real, grading.reward = grading.reward, stand_in_reward
    try:
        for name, algo in (("grpo", "grpo"), ("sps", "sps")):
            from spsbench.cli import main

            assert main(argv(model_dir, algo, BASE, "--output-dir", str(root / name))) == 0
    finally:
        grading.reward = real
    trl = root / "trl"                          # a plain TRL run: checkpoints, no spsbench record
    (trl / "checkpoint-500").mkdir(parents=True)
    (trl / "checkpoint-500" / "trainer_state.json").write_text("{}")
    (trl / "README.md").write_text("model card\n")
    (root / "a-file").write_text("not a folder\n")
    return root


CHANGES = {"none": [], "beta": ["rl.beta=0.5"], "lr": ["rl.learning_rate=2e-3"], "task-limit": ["limit=8"],
           "saves": ["rl.save_steps=2"]}          # how often it saves is not what it trains: allowed
TARGETS = ["grpo", "sps", "trl", "a-file", "new", "default"]
RESUMES = ["no", "latest", "grpo/checkpoint-1", "grpo/checkpoint-2", "sps/checkpoint-2", "grpo/checkpoint-7",
           "grpo"]


def continued(algo: str, change: str, steps: int, target: str, resume: str, name: str | None) -> str | None:
    """The oracle: the finished run ('grpo' or 'sps') this command legitimately continues (same algorithm and
    settings, its own latest checkpoint, steps left), '' for a new run into a new folder, None: refused."""
    if resume == "no":
        return "" if target in ("new", "default") else None
    run = target if target in ("grpo", "sps") else resume.split("/")[0] if target == "default" else None
    own = resume == "latest" or resume == f"{run}/checkpoint-2"     # checkpoint-1: would overwrite checkpoint-2
    same = algo == run and change in ("none", "saves") and name in (None, f"{run}-model")
    return run if run and own and same and steps > 2 else None


@settings(HYPO, max_examples=18)
@given(algo=st.sampled_from(["grpo", "sps", "dapo"]), change=st.sampled_from(sorted(CHANGES)),
       steps=st.sampled_from([1, 2, 3]), target=st.sampled_from(TARGETS), resume=st.sampled_from(RESUMES),
       name=st.sampled_from([None, "grpo-model", "sps-model", "other-name"]))
@example(algo="grpo", change="none", steps=2, target="grpo", resume="no", name=None)          # the same command again
@example(algo="sps", change="none", steps=2, target="grpo", resume="no", name=None)          # SPS over a GRPO run
@example(algo="grpo", change="none", steps=1, target="new", resume="sps/checkpoint-2", name=None)
@example(algo="grpo", change="none", steps=1, target="grpo", resume="latest", name=None)     # nothing to train
@example(algo="grpo", change="none", steps=3, target="grpo", resume="latest", name=None)     # its continuation
@example(algo="sps", change="saves", steps=3, target="default", resume="sps/checkpoint-2", name=None)
@example(algo="grpo", change="none", steps=2, target="trl", resume="no", name=None)          # a plain TRL run
def test_property_a_run_folder_trains_only_its_own_run(tmp_path_factory, capfd, model_dir, finished, algo, change,
                                                       steps, target, resume, name):
    root = tmp_path_factory.mktemp("example")
    for entry in finished.iterdir():
        (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, root / entry.name)
    os.chdir(root)
    extra = [*CHANGES[change], f"rl.max_steps={steps}"]
    flags = ["--run-name", name] if name else []
    if target not in ("default", "new"):
        flags += ["--output-dir", str(root / target)]
    elif target == "new":
        flags += ["--output-dir", str(root / "new")]
    if resume == "latest":
        flags.append("--resume")
    elif resume != "no":
        flags += ["--resume", str(root / resume)]
    command = argv(model_dir, algo, [*BASE, *extra], *flags)
    before = {p.name: tree(p) for p in root.iterdir()}

    code, plan_out, err = run_cli(capfd, [*command, "--dry-run"])
    assert code in (0, 2), err
    plan_error = error_line(err) if code == 2 else None
    assert {p.name: tree(p) for p in root.iterdir()} == before       # the plan writes nothing
    code, out, err = run_cli(capfd, command)
    run = continued(algo, change, steps, target, resume, name)
    if run is None:
        assert code == 2, out[-1500:] + err[-1500:]
        assert error_line(err) == plan_error                         # the plan refused it with the same line
        assert {p.name: tree(p) for p in root.iterdir()} == before   # nothing written, replaced or removed
        return
    assert code == 0 and plan_error is None, err[-2000:]
    plan = json.loads(plan_out)
    assert steps_done(out) == plan["max_steps"]
    if run:
        assert plan["resume_step"] == 2 and plan["steps_to_train"] == steps - 2
        after = tree(root / run)
        for entry, stat in before[run].items():                        # every checkpoint it had is as it was
            if entry.startswith("checkpoint-"):
                assert after[entry] == stat, entry
    for other in {"grpo", "sps", "trl", "a-file"} - {run}:
        assert tree(root / other) == before[other]


def test_the_reported_cases_are_refused_and_the_finished_run_survives(tmp_path, capfd, model_dir, finished):
    """The issue's examples, by name: the same training twice into one folder, SPS into a finished GRPO run and
    into a plain TRL run, a resume from another run's checkpoint with fewer max steps, and a failed resume into
    a new folder (it used to write a run record there)."""
    run = tmp_path / "grpo"
    shutil.copytree(finished / "grpo", run)
    shutil.copytree(finished / "sps", tmp_path / "sps")
    shutil.copytree(finished / "trl", tmp_path / "trl")
    before = tree(tmp_path)
    cases = [
        (argv(model_dir, "grpo", BASE, "--output-dir", str(run)), "continue it with --resume"),
        (argv(model_dir, "sps", BASE, "--output-dir", str(run)), "holds the run 'grpo-model' (grpo), not this one"),
        (argv(model_dir, "sps", BASE, "--output-dir", str(tmp_path / "trl")), "holds no spsbench run"),
        (argv(model_dir, "grpo", [*BASE, "rl.max_steps=1"], "--resume", str(tmp_path / "sps" / "checkpoint-2")),
         "not this one"),
        (argv(model_dir, "grpo", [*BASE, "rl.max_steps=1"], "--resume"), "holds no run to resume"),
        (argv(model_dir, "grpo", [*BASE, "rl.max_steps=1"], "--resume", "--output-dir", str(run)),
         "nothing is left to train"),
        (argv(model_dir, "grpo", [*BASE, "rl.max_steps=3"], "--resume", str(run / "checkpoint-2"), "--output-dir",
              str(tmp_path / "fresh")), "not a checkpoint of this run's folder"),
    ]
    for command, message in cases:
        for mode in (["--dry-run"], []):
            code, _, err = run_cli(capfd, [*command, *mode])
            assert code == 2 and message in error_line(err), (command, err)
    assert tree(tmp_path) == before                                   # nothing written anywhere
    assert not (tmp_path / "fresh").exists() and not (tmp_path / "runs").exists()


def test_two_trainings_into_one_folder_at_once_the_second_is_refused(tmp_path, model_dir):
    """A real `spsbench train` holds the folder: a second one (same command, or --dry-run) is refused naming it,
    and the first finishes untouched."""
    run = tmp_path / "run"
    script = ("import sys, torch; torch.set_num_threads(1); import spsbench.grading as g; "
              "g.reward = lambda t, golds, kind='math', choices=None: [float(len(x) % 2) for x in t]; "
              "from spsbench.cli import main; sys.exit(main(sys.argv[1:]))")
    long = [*BASE, "rl.max_steps=2000", "rl.save_steps=5000"]
    cmd = [sys.executable, "-c", script, *argv(model_dir, "grpo", long, "--output-dir", str(run))]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        end = time.monotonic() + 600
        while not (run / paths.RUN_INFO).is_file() and first.poll() is None and time.monotonic() < end:
            time.sleep(0.1)
        assert first.poll() is None, first.communicate()[1][-2000:]
        others = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                  for c in (cmd, [*cmd, "--dry-run"])]
        refused = [(p.wait(timeout=600), p.communicate()[1]) for p in others]
        running = first.poll() is None
        first.send_signal(signal.SIGTERM)          # a preemption: the first saves where it is and stops
    finally:
        out, err = first.communicate(timeout=900)
    assert running, "the first training ended before the others were refused"
    for code, stderr in refused:
        assert code == 2 and f"in use by another training: pid {first.pid}" in error_line(stderr), stderr[-2000:]
    assert first.returncode == 143 and "stopped by SIGTERM" in out, err[-2000:]
    [saved] = run.glob("checkpoint-*")
    assert (saved / paths.CHECKPOINT_COMPLETE).is_file()                 # the first run's work is whole
    assert (run / run_lock.LOCK_FILE).read_text() == ""                  # released at its end


HOLDER = ("import sys, time; from pathlib import Path; from spsbench.train import run_lock; "
          "run_lock.HEARTBEAT_S = 3600; lock = run_lock.RunLock.acquire(Path(sys.argv[1])); "
          "print('held', flush=True); time.sleep(600)")


def test_a_killed_runs_lock_never_blocks_its_resume(tmp_path, capfd, model_dir, finished):
    """The lock is the kernel's: held while its process lives (plan and run refuse, naming the pid), gone when it
    is SIGKILLed; the resume then takes over the record left behind, saying so."""
    run = tmp_path / "grpo"
    shutil.copytree(finished / "grpo", run)
    live = holder(run)
    command = argv(model_dir, "grpo", [*BASE, "rl.max_steps=3"], "--resume", "--output-dir", str(run))
    before = tree(run)
    for mode in (["--dry-run"], []):
        code, _, err = run_cli(capfd, [*command, *mode])
        assert code == 2 and f"in use by another training: pid {live.pid} on host" in error_line(err)
    assert tree(run) == before
    live.send_signal(signal.SIGKILL)
    live.wait()
    code, plan, _ = run_cli(capfd, [*command, "--dry-run"])
    assert code == 0 and json.loads(plan)["resume_step"] == 2
    code, out, err = run_cli(capfd, command)
    assert code == 0 and steps_done(out) == 3, err[-2000:]
    assert f"the previous training (pid {live.pid} on" in err and "taking it over" in err


def stale_record(run: Path, host: str, pid: int, age: float) -> None:
    path = run / run_lock.LOCK_FILE
    path.write_text(json.dumps({"pid": pid, "host": host, "started": "earlier", "command": "spsbench train"}))
    os.utime(path, (time.time() - age, time.time() - age))


def holder(run: Path) -> subprocess.Popen:
    """Another process holding `run`'s lock (as a live training does)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_lock_held_through_a_cluster_wide_flock_is_refused(tmp_path):
    """Where flock reaches across hosts (NFSv4, GPFS, Lustre `flock`), another host's live owner holds the flock
    as a local one does: refused, naming it (the same code path, exercised with a local holder)."""
    live = holder(tmp_path)
    try:
        with pytest.raises(TrainingError, match=f"in use by another training: pid {live.pid} on host"):
            run_lock.RunLock.acquire(tmp_path)
    finally:
        live.kill()
        live.wait()


@pytest.mark.parametrize("flock", ["local only", "none"])
def test_without_a_cluster_wide_flock_the_record_decides(tmp_path, monkeypatch, flock):
    """Where flock is only local (or absent), a record from another host renewed within STALE_S is refused, an
    older one taken over; on this host a record whose process is gone is taken over, and one whose process lives
    is refused when there is no flock to ask (with flock, the kernel's answer wins)."""
    import socket

    if flock == "none":
        def no_flock(fd, op):
            raise OSError(38, "Function not implemented")       # ENOSYS, as on a filesystem without flock
        monkeypatch.setattr(run_lock.fcntl, "flock", no_flock)
    notes: list[str] = []
    stale_record(tmp_path, "node-7", 4242, age=5)
    with pytest.raises(TrainingError, match=r"may be in use by another training: pid 4242 on host node-7 .* renewed "
                                            r"its lock \d+ s ago"):
        run_lock.RunLock.acquire(tmp_path, notes.append)
    assert run_lock.lock_owner(tmp_path)["host"] == "node-7"             # the plan sees the same owner
    stale_record(tmp_path, "node-7", 4242, age=run_lock.STALE_S + 5)
    assert run_lock.lock_owner(tmp_path) is None
    run_lock.RunLock.acquire(tmp_path, notes.append).release()
    assert "pid 4242 on node-7" in notes[-1] and "taking it over" in notes[-1]
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        stale_record(tmp_path, socket.gethostname(), sleeper.pid, age=0)
        if flock == "none":
            with pytest.raises(TrainingError, match=f"pid {sleeper.pid}"):
                run_lock.RunLock.acquire(tmp_path)
        else:
            run_lock.RunLock.acquire(tmp_path, notes.append).release()
    finally:
        sleeper.kill()
        sleeper.wait()
    stale_record(tmp_path, socket.gethostname(), sleeper.pid, age=0)
    run_lock.RunLock.acquire(tmp_path, notes.append).release()           # its process is gone: taken over
    assert f"pid {sleeper.pid}" in notes[-1]


def test_the_lock_is_renewed_while_held_and_emptied_on_release(tmp_path, monkeypatch):
    monkeypatch.setattr(run_lock, "HEARTBEAT_S", 0.05)
    lock = run_lock.RunLock.acquire(tmp_path)
    path = tmp_path / run_lock.LOCK_FILE
    os.utime(path, (1, 1))
    time.sleep(0.5)
    assert time.time() - path.stat().st_mtime < 5                      # renewed by the heartbeat
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()
    assert path.read_text() == "" and run_lock.lock_owner(tmp_path) is None


# ====================================================================== class 3: the plan is the run

NAN, INF = float("nan"), float("inf")
SETTINGS = {
    "rl.learning_rate": [1e-3, 0, -1e-3, NAN, INF, "abc"],
    "rl.max_completion_length": [8, 4, 0, -1, 2.5, "x"],
    "rl.max_steps": [1, 3, -1, 0, -2, "abc", 2.0],
    "rl.num_train_epochs": [0.25, 1, 0, -1, NAN],
    "rl.save_steps": [1, 2, 0.5, 0, -1, 1.5],
    "rl.num_generations": [4, 2, 1, 0, 3],
    "rl.per_device_train_batch_size": [8, 4, 0, 6],
    "rl.gradient_accumulation_steps": [1, 2, 0],
    "rl.temperature": [1.0, 0, -1, NAN],
    "rl.beta": [0.0, 0.04, -1, NAN],
    "rl.loss_type": ["grpo", "bnpo", "nope"],
    "rl.lr_scheduler_type": ["constant", "nope"],
    "rl.reward_weights": [[1.0], [1.0, 2.0], ["x"]],
    "limit": [16, 8, 2, 0],
    "task": ["arith", "nosuchtask"],
    "eval.enabled": [True, False],
    "eval.tasks": [["arith"], ["nosuch"], []],
    "eval.engine": ["hf", "nope"],
    "eval.engine_options": [{}, {"batch_size": 0}, {"nope": 1}],
    "eval.max_tokens": [4, 0],
    "sps.rl_steps_per_phase": [1, 2, "epoch", 0],
    "sps.allow_no_irl": [True, False],
    "dynamic_sampling.soft_overlong_cache": [None, 4, 8],
    "optimizer_steps_per_generation": [None, 2, 0],
}


def yaml_value(value) -> str:
    if isinstance(value, float) and math.isnan(value):
        return ".nan"
    if isinstance(value, float) and math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    return json.dumps(value)


@settings(HYPO, max_examples=14)
@given(algo=st.sampled_from(["grpo", "dapo", "sps"]),
       changes=st.dictionaries(st.sampled_from(sorted(SETTINGS)), st.integers(0, 6), max_size=3))
@example(algo="grpo", changes={"rl.max_steps": 3})                                   # max_steps 0 planned 8, ran 1
@example(algo="sps", changes={"rl.max_steps": 2, "rl.num_train_epochs": 0})         # -1: by epochs
@example(algo="grpo", changes={"rl.learning_rate": 3, "rl.save_steps": 3})
@example(algo="dapo", changes={"dynamic_sampling.soft_overlong_cache": 2, "rl.max_completion_length": 1})
@example(algo="grpo", changes={"rl.loss_type": 2, "eval.engine": 1})
def test_property_the_plan_and_the_run_give_the_same_verdict_and_steps(tmp_path_factory, capfd, model_dir, algo,
                                                                       changes):
    root = tmp_path_factory.mktemp("plan")
    sets = [*BASE, "eval.mode=watch", f"eval.store={root / 's.db'}", "eval.n=1", "eval.base=false"]
    sets += [f"{key}={yaml_value(SETTINGS[key][i % len(SETTINGS[key])])}" for key, i in changes.items()]
    command = ["train", "--algo", algo, "--model", model_dir, "--output-dir", str(root / "run"),
               *[a for s in sets for a in ("--set", s)]]
    code, plan_out, err = run_cli(capfd, [*command, "--dry-run"])
    assert code in (0, 2), err
    plan_error = error_line(err) if code == 2 else None
    assert not (root / "run").exists()
    code, out, err = run_cli(capfd, command)
    if plan_error is not None:
        assert code == 2 and error_line(err) == plan_error, err[-2000:]
        assert not (root / "run").exists()                      # refused before the run folder was made
        return
    assert code == 0, f"the plan accepted what the run refused: {err[-2000:]}"
    plan = json.loads(plan_out)
    assert steps_done(out) == plan["max_steps"]
    saved = sorted(int(p.name.split("-")[1]) for p in (root / "run").glob("checkpoint-*"))
    assert saved == plan["save_steps"]
    record = json.loads((root / "run" / paths.RUN_INFO).read_text())
    assert record["plan"]["max_steps"] == plan["max_steps"] and record["recipe_digest"] == plan["recipe_digest"]


@pytest.mark.parametrize(("text", "where"), [
    ("algo: grpo\nrl:\n  learning_rate: 1.0e-6\n  beta: 0.0\n  learning_rate: 0.1\n", "line 5: key 'learning_rate'"),
    ("algo: grpo\nalgo: sps\n", "line 2: key 'algo'"),
    ("eval: {n: 2, n: 4}\n", "line 1: key 'n'"),
])
def test_a_key_given_twice_is_refused_naming_its_line(tmp_path, capfd, model_dir, text, where):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    for mode in (["--dry-run"], []):
        code, _, err = run_cli(capfd, ["train", "--config", str(recipe), "--model", model_dir, *mode])
        assert code == 2 and where in error_line(err) and "given twice" in err
    code, _, err = run_cli(capfd, ["train", "--model", model_dir, "--set", "eval={n: 1, n: 2}", "--dry-run"])
    assert code == 2 and "--set eval: line 1: key 'n' is given twice" in error_line(err)


def test_an_empty_recipe_is_refused_and_a_partial_one_names_what_it_leaves_to_defaults(tmp_path, capfd,
                                                                                        model_dir):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    code, _, err = run_cli(capfd, ["train", "--config", str(empty), "--model", model_dir, "--dry-run"])
    assert code == 2 and "the recipe is empty" in error_line(err)
    partial = tmp_path / "partial.yaml"
    partial.write_text("algo: grpo\nrl: {num_generations: 4, per_device_train_batch_size: 8, max_steps: 1, "
                       "max_completion_length: 8}\nlimit: 16\n")
    command = ["train", "--config", str(partial), "--model", model_dir, "--no-eval", "--output-dir",
               str(tmp_path / "run")]
    code, out, _ = run_cli(capfd, [*command, "--dry-run"])
    [note] = [w for w in json.loads(out)["warnings"] if "replaces grpo.yaml" in w]
    assert "rl.loss_type = 'dapo' (grpo.yaml: 'grpo')" in note and "rl.beta = 0.0 (grpo.yaml: 0.01)" in note
    code, _, err = run_cli(capfd, command)
    assert code == 0 and f"spsbench: warning: {note}" in err                          # said by the run too


@pytest.mark.parametrize("flags", [["--algo", "grpo", "--base", "dapo"], ["--algo", "dapo", "--set", "base=grpo"],
                                   ["--algo", "grpo", "--set", "algo=sps"]])
def test_a_base_or_algorithm_the_run_would_not_use_is_refused(capfd, model_dir, flags):
    code, _, err = run_cli(capfd, ["train", "--model", model_dir, *flags, "--dry-run"])
    assert code == 2 and ("only for --algo sps" in error_line(err) or "disagree" in error_line(err))


def test_set_algo_and_base_are_honoured(capfd, model_dir):
    code, out, err = run_cli(capfd, ["train", "--model", model_dir, "--set", "algo=sps", "--set", "base=dapo",
                                      *[a for s in BASE for a in ("--set", s)], "--dry-run"])
    assert code == 0, err
    plan = json.loads(out)
    assert (plan["algo"], plan["base"]) == ("sps", "dapo") and plan["run_name"].startswith("sps+dapo-")


def test_a_plan_for_another_launch_checks_all_but_the_model(capfd):
    """On a laptop, `--set world_size=32` plans a cluster job: TRL's batch rules are checked at 32 ranks and a
    model that is not here is a warning; the run here refuses that world size, as the plan says it would."""
    gpu = Path(__file__).resolve().parents[1] / "recipes" / "gpu"
    data = Path(os.getcwd()) / "p.jsonl"
    data.write_text("".join(json.dumps({"id": f"p{i}", "problem": f"{i}+1?", "answer": str(i + 1)}) + "\n"
                            for i in range(64)))
    recipe, task = gpu / "grpo-qwen2.5-math-7b.yaml", f"task={gpu / 'task-math-train.yaml'}"
    code, out, err = run_cli(capfd, ["train", "--config", str(recipe), "--set", f"data={data}", "--set", task,
                                      "--dry-run"])
    assert code == 0, err
    plan = json.loads(out)
    assert plan["world_size"] == 32 and any("model not checked on this machine" in w for w in plan["warnings"])
    code, _, err = run_cli(capfd, ["train", "--config", str(recipe), "--set", f"data={data}", "--set", task,
                                    "--set", "world_size=1", "--dry-run"])
    assert code == 2 and "not in the Hugging Face cache" in error_line(err)         # this launch: as the run


def test_a_run_that_fails_after_taking_the_folder_leaves_no_folder_behind(tmp_path, capfd, model_dir,
                                                                          monkeypatch):
    """The CLI opens the run's log, then the training takes the folder's lock; a failure while the trainer is
    built (here: the policy cannot load) removes both and every folder the command made, nothing else."""
    def cannot_load(*args, **kwargs):
        raise TrainingError("the policy cannot load (stand-in)")

    monkeypatch.setattr("spsbench.train.run.load_policy", cannot_load)
    run = tmp_path / "new" / "nested" / "run"
    code, _, err = run_cli(capfd, argv(model_dir, "grpo", BASE, "--output-dir", str(run)))
    assert code == 2 and err.strip().splitlines()[-1] == "spsbench train: error: the policy cannot load (stand-in)"
    assert not (tmp_path / "new").exists()
