"""`spsbench train --dry-run`: the schedule a recipe really produces (TRL's dataloader length, IRL phases,
saves, evaluations), the shipped GPU recipes' plans, and an SPS run to the end of its planned IRL phases."""

import json
from pathlib import Path

import pytest
import torch

from spsbench.cli import main
from spsbench.errors import ConfigError
from spsbench.train.config import load_config
from spsbench.train.plan import Geometry, make_plan, steps_per_epoch
from tests.fixtures.tiny_model import tiny_model

GPU = Path(__file__).resolve().parents[1] / "recipes" / "gpu"
GPU_RECIPES = sorted(p for p in GPU.glob("*.yaml") if not p.name.startswith("task-"))
TINY = ["rl.num_generations=4", "rl.gradient_accumulation_steps=1", "rl.max_completion_length=8", "rl.learning_rate=1e-3", "rl.logging_steps=100",
        "rl.save_steps=100", "eval.enabled=false", "sps.irl_batch_size=4", "sps.irl_micro_batch_size=4",
        "sps.irl_learning_rate=1e-3", "sps.l2te_truncated=keep"]   # tiny random model: most rollouts truncated


def prompts_file(tmp_path: Path, n: int) -> Path:
    path = tmp_path / f"prompts-{n}.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "problem": f"{i}+1?", "answer": str(i + 1)}) + "\n"
                            for i in range(n)))
    return path


def dry_run(capsys, *args: str) -> dict:
    assert main(["train", *args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1          # one JSON object, nothing else on stdout
    return json.loads(out)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return str(tiny_model(tmp_path_factory.mktemp("tiny") / "model"))


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr("spsbench.grading.reward",
                        lambda completions, golds, kind="math", choices=None: [float(len(t) % 2) for t in completions])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_paper_recipe_3k_prompts_plans_three_irl_phases_and_evaluations_every_100_steps(tmp_path, capsys):
    data = prompts_file(tmp_path, 3000)
    plan = dry_run(capsys, "--config", str(GPU / "sps-qwen2.5-math-1.5b.yaml"), "--set", f"data={data}",
                   "--set", "world_size=8")
    # 3000 // 16 prompts per step = 187 (RepeatSampler drops the last partial batch: 2992 prompts)
    assert (plan["steps_per_epoch"], plan["max_steps"], plan["rl_steps_per_phase"]) == (187, 700, 187)
    assert plan["irl_phase_steps"] == [187, 374, 561]
    assert plan["eval_steps"] == list(range(100, 701, 100)) == plan["save_steps"]
    assert plan["irl_sequences_per_phase"] == 187 * 16 * 3
    assert any("8 of 3000 prompts" in w for w in plan["warnings"])


def test_the_same_plan_without_irl_phases_is_a_one_line_error(tmp_path, capsys):
    data = prompts_file(tmp_path, 3000)
    args = ["train", "--config", str(GPU / "sps-qwen2.5-math-1.5b.yaml"), "--set", f"data={data}", "--set",
            "world_size=8", "--set", "sps.rl_steps_per_phase=188", "--set", "rl.max_steps=-1", "--set",
            "rl.num_train_epochs=1", "--dry-run"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no IRL phase" in err and "188" in err and "187" in err
    plan = dry_run(capsys, *args[1:-1], "--set", "sps.allow_no_irl=true")
    assert plan["irl_phase_steps"] == [] and any("no IRL phase" in w for w in plan["warnings"])


@pytest.mark.parametrize("recipe", GPU_RECIPES, ids=lambda p: p.stem)
def test_every_shipped_gpu_recipe_plans(tmp_path, capsys, recipe):
    data = prompts_file(tmp_path, 3000)
    plan = dry_run(capsys, "--config", str(recipe), "--set", f"data={data}")
    assert plan["max_steps"] == 700 and plan["eval_steps"] == list(range(100, 701, 100))
    if plan["algo"] == "sps":
        assert len(plan["irl_phase_steps"]) >= 3
        assert plan["rl_steps_per_phase_setting"] == "epoch"
        assert not any("defaults" in w for w in plan["warnings"])   # every SPS key is explicit in the file
    for subset in (5000, 10000):      # the paper's 5k/10k subsets: longer epochs, fewer phases in 700 steps
        bigger = dry_run(capsys, "--config", str(recipe), "--set", f"data={prompts_file(tmp_path, subset)}",
                         "--set", "sps.allow_no_irl=true")
        assert bigger["steps_per_epoch"] > plan["steps_per_epoch"]


def test_four_node_plan_needs_whole_groups_per_rank(tmp_path, capsys):
    data = prompts_file(tmp_path, 3000)
    base = ["train", "--config", str(GPU / "sps-qwen2.5-math-1.5b.yaml"), "--set", f"data={data}", "--set",
            "world_size=32", "--set", "rl.per_device_train_batch_size=4", "--dry-run"]
    assert main(base) == 2 and "whole prompt groups" in capsys.readouterr().err
    plan = dry_run(capsys, *base[1:-1], "--set", "optimizer_steps_per_generation=2")    # docs/training.md
    assert plan["generation_batch"]["completions"] == 256 and plan["irl_phase_steps"] == [186, 372, 558]


def test_recipe_without_sps_section_shows_its_default_phase_length(tmp_path, capsys, model_dir):
    recipe = tmp_path / "mine.yaml"      # the model must be here: the plan checks it as the run does
    recipe.write_text(f"algo: sps\nmodel: {model_dir}\ntask: arith\nrl: {{max_steps: 64, num_generations: 8, "
                      "per_device_train_batch_size: 8}\n")
    plan = dry_run(capsys, "--config", str(recipe))
    assert plan["rl_steps_per_phase_setting"] == "epoch" and plan["rl_steps_per_phase"] == 4   # 32 prompts, 8 per step
    assert any("sps.rl_steps_per_phase is not set" in w and "gives 4 steps" in w for w in plan["warnings"])


@pytest.mark.parametrize("value", ["weekly", 0, True])
def test_bad_phase_length_is_one_line(value):
    with pytest.raises(ConfigError, match="sps.rl_steps_per_phase"):
        load_config("sps", overrides=[f"sps.rl_steps_per_phase={json.dumps(value)}"], model="some/model")


def test_planned_world_size_must_match_the_launch(monkeypatch):
    from spsbench.train.preflight import check_launch

    cfg = load_config("sps", overrides=["world_size=8"], model="some/model")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="world_size is 8 but this launch has 2"):
        check_launch(cfg)


@pytest.mark.parametrize("per_device, accum, spg, iterations, prompts", [
    (8, 1, None, 1, 16), (4, 2, None, 1, 13), (4, 3, 2, 1, 11), (8, 2, 8, 2, 21), (4, 1, 4, 1, 9)])
def test_steps_per_epoch_equals_the_real_dataloader(model_dir, tmp_path, per_device, accum, spg, iterations, prompts):
    from spsbench.train.run import build_trainer

    extra = [f"rl.per_device_train_batch_size={per_device}", f"rl.gradient_accumulation_steps={accum}",
             f"rl.num_iterations={iterations}", f"limit={prompts}", f"output_dir={tmp_path / 'run'}"]
    extra += [f"rl.steps_per_generation={spg}"] if spg else []
    trainer, _ = build_trainer(load_config("grpo", overrides=[*TINY, *extra], model=model_dir))
    loader = trainer.get_train_dataloader()
    real = trainer.set_initial_training_values(trainer.args, loader)[1]      # transformers' own count
    assert steps_per_epoch(prompts, Geometry.from_args(trainer.args, 1)) == real
    planned = make_plan(load_config("grpo", overrides=[*TINY, *extra], model=model_dir), prompts=prompts)
    assert planned.steps_per_epoch == real


def test_sps_runs_to_the_end_of_two_epoch_long_phases_and_reports_them(model_dir, tmp_path):
    from spsbench.train.run import train

    out = tmp_path / "run"
    cfg = load_config("sps", overrides=[*TINY, "rl.per_device_train_batch_size=8", "limit=5", "rl.max_steps=4",
                                        f"output_dir={out}", "sps.rl_steps_per_phase=epoch"], model=model_dir)
    summary = train(cfg)
    # 5 prompts, 2 per generation batch: 2 steps per epoch (the 5th prompt dropped), IRL after steps 2 and 4
    assert [p["step"] for p in summary.sps_phases] == [2, 4]
    assert summary.sps_report["planned_irl_phases"] == 2 and summary.sps_report["shortfall"] is None
    info = json.loads((out / "spsbench_run.json").read_text())
    assert info["plan"]["irl_phase_steps"] == [2, 4] and info["sps"]["irl_phases_run"] == 2


def test_a_run_with_fewer_irl_phases_than_planned_says_so(model_dir, tmp_path, capsys):
    from transformers import TrainerCallback

    from spsbench.commands import output_console
    from spsbench.commands.train import _print_summary
    from spsbench.train.run import train

    class StopAt3(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            control.should_training_stop = state.global_step >= 3

    out = tmp_path / "run"
    cfg = load_config("sps", overrides=[*TINY, "rl.per_device_train_batch_size=8", "limit=4", "rl.max_steps=4",
                                        f"output_dir={out}"], model=model_dir)
    summary = train(cfg, callbacks=[StopAt3()])
    assert summary.steps == 3 and summary.sps_report["irl_phases_run"] == 1
    assert "only 1 of 2 planned IRL phases ran" in summary.sps_report["shortfall"]
    assert "only 1 of 2" in json.loads((out / "spsbench_run.json").read_text())["sps"]["shortfall"]
    _print_summary(output_console(), summary)
    assert "only 1 of 2 planned IRL phases" in capsys.readouterr().out


# ------------------------------------------------------------------ matched baselines, IRL coverage, DAPO phases

PAIRS = [(GPU / f"{algo}-qwen2.5-math-{size}.yaml", GPU / f"sps{suffix}-qwen2.5-math-{size}.yaml")
         for size in ("1.5b", "7b") for algo, suffix in (("grpo", ""), ("dapo", "-dapo"), ("gspo", "-gspo"))]
# plan entries an SPS run adds to its baseline's schedule (everything else must be equal)
SPS_PLAN_KEYS = {"algo", "base", "rl_steps_per_phase", "rl_steps_per_phase_setting", "irl_phase_steps",
                 "irl_sequences_per_phase", "irl_sequences_trained_per_phase", "irl_steps_per_phase", "irl_coverage",
                 "groups_per_phase", "warnings"}


def test_every_gpu_recipe_has_its_matched_pair():
    names = {p.name for p in GPU_RECIPES}
    assert names == {p.name for pair in PAIRS for p in pair}


@pytest.mark.parametrize("baseline, sps", PAIRS, ids=lambda p: p.stem)
def test_matched_baseline_and_sps_recipes_differ_only_in_the_sps_section(tmp_path, capsys, baseline, sps):
    data = prompts_file(tmp_path, 3000)
    out = dry_run(capsys, "--config", str(sps), "--set", f"data={data}", "--diff", str(baseline))
    assert out["a"].endswith(sps.name) and out["b"] == str(baseline)
    settings = set(out["settings"])
    assert {"algo", "base"} <= settings
    assert all(k in ("algo", "base") or k.startswith("sps.") for k in settings), settings
    assert out["settings"]["algo"] == ["sps", out["settings"]["base"][0]] and out["settings"]["base"][1] is None
    assert set(out["plan"]) <= SPS_PLAN_KEYS, set(out["plan"]) - SPS_PLAN_KEYS
    assert out["plan"]["irl_phase_steps"][1] == []


def test_diff_shows_what_an_unmatched_pair_changes(tmp_path, capsys):
    data = prompts_file(tmp_path, 3000)
    out = dry_run(capsys, "--config", str(GPU / "sps-qwen2.5-math-1.5b.yaml"), "--set", f"data={data}", "--diff",
                  str(GPU / "grpo-qwen2.5-math-7b.yaml"))
    assert out["settings"]["world_size"] == [8, 32] and out["settings"]["model"][1] == "Qwen/Qwen2.5-Math-7B"
    assert out["plan"]["world_size"] == [8, 32]
    assert main(["train", "--config", str(GPU / "sps-qwen2.5-math-1.5b.yaml"), "--diff", "x.yaml"]) == 2
    assert "add --dry-run" in capsys.readouterr().err


def test_the_plan_shows_irl_coverage_and_auto_covers_the_selection(tmp_path, capsys):
    data = prompts_file(tmp_path, 3000)
    args = ["--config", str(GPU / "sps-qwen2.5-math-1.5b.yaml"), "--set", f"data={data}"]
    plan = dry_run(capsys, *args)
    # the issue's figures: 187 steps x 16 groups x 3 = 8,976 selected, 4 x 512 = 2,048 trained: 23%
    assert plan["irl_sequences_per_phase"] == 8976 and plan["irl_sequences_trained_per_phase"] == 2048
    assert plan["irl_steps_per_phase"] == 4 and plan["irl_coverage"] == pytest.approx(2048 / 8976, abs=1e-4)
    [warning] = [w for w in plan["warnings"] if w.startswith("IRL coverage")]
    assert "IRL coverage 23%" in warning and "auto" in warning and "18 steps" in warning
    auto = dry_run(capsys, *args, "--set", "sps.irl_steps=auto")
    assert auto["irl_steps_per_phase"] == 18 and auto["irl_coverage"] == 1.0
    assert auto["irl_sequences_trained_per_phase"] == 8976
    assert not any(w.startswith("IRL coverage") for w in auto["warnings"])


def test_sps_over_dapo_plans_its_phase_in_dataloader_batches_with_refills_on_top(tmp_path, capsys):
    data = prompts_file(tmp_path, 3000)
    plan = dry_run(capsys, "--config", str(GPU / "sps-dapo-qwen2.5-math-1.5b.yaml"), "--set", f"data={data}")
    assert plan["rl_steps_per_phase"] == 187 == plan["steps_per_epoch"]            # one dataloader pass
    assert plan["groups_per_phase"] == {"dataloader": 187 * 16, "at_most": 187 * 16 * 4}
    [warning] = [w for w in plan["warnings"] if w.startswith("dynamic sampling")]
    assert "do not advance the dataloader" in warning and "drops enter the IRL buffer" in warning
