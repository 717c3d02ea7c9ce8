"""The algorithm table (spsbench.train.algorithms) is the one list of algorithms: every entry resolves, nothing
outside it compares algorithm names, and an algorithm registered there alone reaches the train command's
choices, `--list-keys`, recipe loading, the plan, the trainer assembly and the lab's arms."""

import dataclasses
import json
import re
from pathlib import Path

import pytest

from spsbench import paths
from spsbench.cli import build_parser, main
from spsbench.errors import ConfigError
from spsbench.lab.arms import Arm
from spsbench.train import algorithms
from spsbench.train.algorithms import ALGORITHMS, Algorithm
from spsbench.train.config import TrainConfig, describe_keys, load_config
from spsbench.train.trainer import SpsbenchGRPOTrainer
from tests.fixtures.tiny_model import tiny_model

PACKAGE = Path(__file__).resolve().parents[1] / "spsbench"
MODEL = "some/model"   # any explicit model skips the CPU demo overlay; never loaded here


class DummyTrainer(SpsbenchGRPOTrainer):
    """A new algorithm's trainer: the product's GRPO trainer, counting its generations (its own hook)."""

    def _generate_and_score_completions(self, inputs):
        self.dummy_generations = getattr(self, "dummy_generations", 0) + 1
        return super()._generate_and_score_completions(inputs)


def dummy(recipe: Path, **kwargs) -> Algorithm:
    return Algorithm("dummy", f"{__name__}:DummyTrainer", str(recipe), **kwargs)


@pytest.fixture
def registered(tmp_path, monkeypatch):
    """`dummy` added to the table and nowhere else; its recipe is a copy of grpo's, relabelled."""
    recipe = tmp_path / "dummy.yaml"
    recipe.write_text((paths.recipes_dir() / "grpo.yaml").read_text().replace("algo: grpo", "algo: dummy"))
    monkeypatch.setitem(ALGORITHMS, "dummy", dummy(recipe, layers_sps=True))
    return recipe


# ----------------------------------------------------------------------------------------------- the table


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_every_entry_resolves(name):
    algorithm = ALGORITHMS[name]
    assert algorithm.name == name
    # the lazy "module:object" strings stay inside train/ (the layout test cannot read them)
    for spec in filter(None, (algorithm.trainer, algorithm.check)):
        assert spec.startswith("spsbench.train.") and callable(algorithms.load_object(spec))
    recipe = paths.recipes_dir() / algorithm.recipe
    assert recipe.is_file() and f"algo: {name}\n" in recipe.read_text()
    if algorithm.layer:
        assert algorithm.default_base in algorithms.bases() and not algorithm.layers_sps
    if algorithm.section:
        assert algorithm.section in {f.name for f in dataclasses.fields(TrainConfig)}
    for key in algorithm.signature:
        assert key.split(".")[0] in ("rl", "dynamic_sampling")


def test_trainer_classes_come_from_the_table():
    from spsbench.train.run import trainer_class
    from spsbench.train.sps.trainer import SPSDynamicSamplingTrainer, SPSTrainer
    from spsbench.train.trainer import DynamicSamplingTrainer

    expected = {("grpo", None): SpsbenchGRPOTrainer, ("gspo", None): SpsbenchGRPOTrainer,
                ("dapo", None): DynamicSamplingTrainer, ("sps", "grpo"): SPSTrainer, ("sps", "gspo"): SPSTrainer,
                ("sps", "dapo"): SPSDynamicSamplingTrainer}
    for (algo, base), cls in expected.items():
        assert trainer_class(load_config(algo, base, model=MODEL)) is cls


def test_no_algorithm_name_is_compared_outside_the_table():
    """The issue's acceptance grep (`algo ==`, `!=`, `in`, `not in`), and `== "sps"`-style comparisons in the
    modules that train (the leaderboards read stored labels, not the table: they sit below train)."""
    compare = re.compile(r"\balgo (==|!=|in |not in )")
    named = re.compile(r"""[!=]= ["'](grpo|dapo|gspo|sps)["']""")
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "algorithms.py" and path.parent.name == "train":
            continue
        rel = path.relative_to(PACKAGE).as_posix()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if compare.search(line) or (named.search(line) and rel.split("/")[0] in ("train", "commands", "lab")):
                wrong.append(f"{rel}:{number}: {line.strip()}")
    assert not wrong


# ------------------------------------------------------------------------------ one line adds an algorithm


def test_a_registered_algorithm_is_a_train_choice_and_a_base(registered):
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    choices = {a.dest: a.choices for a in train._actions if a.dest in ("algo", "base")}
    assert "dummy" in choices["algo"] and "dummy" in choices["base"]
    args = build_parser().parse_args(["train", "--algo", "sps", "--base", "dummy"])
    assert (args.algo, args.base) == ("sps", "dummy")
    keys = {key: help_text for key, _, help_text in describe_keys()}
    assert "| sps | dummy." in keys["algo"] and "(grpo | dapo | gspo | dummy)" in keys["base"]


def test_a_registered_algorithm_loads_and_trains_with_its_class(registered):
    from spsbench.train.run import trainer_class
    from spsbench.train.sps.trainer import SPSTrainer, with_sps

    cfg = load_config("dummy", model=MODEL)
    assert (cfg.algo, cfg.label, cfg.base) == ("dummy", "dummy", None)
    assert str(registered) in cfg.recipe and cfg.rl["loss_type"] == "grpo"      # its own recipe
    assert trainer_class(cfg) is DummyTrainer
    layered = load_config("sps", "dummy", model=MODEL)
    assert layered.label == "sps+dummy" and str(registered) in layered.recipe
    cls = trainer_class(layered)
    assert issubclass(cls, SPSTrainer) and issubclass(cls, DummyTrainer) and with_sps(DummyTrainer) is cls
    # no signature: settings of a signed algorithm are still refused under its label
    with pytest.raises(ConfigError, match="labelled dummy but its settings train dapo"):
        load_config("dummy", overrides=["dynamic_sampling.enabled=true"], model=MODEL)
    assert Arm(name="x", algo="dummy").algo == "dummy"


def test_a_registered_algorithm_plans(registered, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    model = str(tiny_model(tmp_path / "model"))
    tiny = ["--set", "rl.num_generations=4", "--set", "rl.gradient_accumulation_steps=1", "--set", "rl.max_steps=4",
            "--set", "rl.per_device_train_batch_size=4", "--set", "eval.enabled=false",
            "--set", "sps.rl_steps_per_phase=2", "--output-dir", str(tmp_path / "run")]
    assert main(["train", "--algo", "sps", "--base", "dummy", "--model", model, *tiny, "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert (plan["algo"], plan["base"], plan["irl_phase_steps"]) == ("sps", "dummy", [2, 4])


def test_an_unknown_algorithm_lists_the_table(monkeypatch, tmp_path):
    monkeypatch.setitem(ALGORITHMS, "dummy", dummy(tmp_path / "unused.yaml"))
    with pytest.raises(ConfigError, match="must be one of grpo, dapo, gspo, sps, dummy, got 'nope'"):
        load_config("nope", model=MODEL)
    with pytest.raises(ConfigError, match="lab arm x: algo must be one of grpo, dapo, gspo, sps, dummy"):
        Arm(name="x", algo="nope")
    with pytest.raises(ConfigError, match="--base: must be one of grpo, dapo, gspo, got 'dummy'"):
        load_config("sps", "dummy", model=MODEL)          # not `layers_sps`: no base


def test_sps_layered_on_a_registered_algorithm_trains_through_both_classes(registered, tmp_path, monkeypatch):
    """`layers_sps` alone: SPS composes over the new class, whose hook runs under SPS's (an IRL phase on the
    rollouts the dummy generated)."""
    import torch

    from spsbench.train.run import build_trainer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr("spsbench.grading.reward", lambda completions, golds, kind="math", choices=None:
                        [float(len(t) % 2) for t in completions])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        small = ["rl.num_generations=4", "rl.per_device_train_batch_size=8", "rl.gradient_accumulation_steps=1",
                 "rl.max_completion_length=8", "rl.max_steps=2", "rl.save_steps=100", "rl.learning_rate=1e-3",
                 "rl.logging_steps=100", "eval.enabled=false", "limit=16", "sps.rl_steps_per_phase=2",
                 "sps.l2te_truncated=keep", "sps.irl_batch_size=6", "sps.irl_micro_batch_size=4",
                 f"output_dir={tmp_path / 'run'}"]
        cfg = load_config("sps", "dummy", overrides=small, model=str(tiny_model(tmp_path / "model")))
        trainer, _ = build_trainer(cfg)
        trainer.train()
    finally:
        torch.set_num_threads(threads)
    assert isinstance(trainer, DummyTrainer) and trainer.dummy_generations == 2
    [phase] = trainer.phase.log
    assert phase["step"] == 2 and phase["groups"] == 4 and phase["sequences"] == 12
    info = json.loads((tmp_path / "run" / "spsbench_run.json").read_text())
    assert (info["algo"], info["base"]) == ("sps+dummy", "dummy")
