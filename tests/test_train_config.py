"""Recipes -> TrainConfig: paper settings, composition of SPS over a base, unknown keys, overrides, CLI."""

import pytest

from spsbench.cli import main
from spsbench.errors import ConfigError
from spsbench.train.config import describe_keys, load_config, parse_override

MODEL = "some/model"   # any explicit model skips the CPU demo overlay; never loaded here


def test_grpo_recipe_sets_paper_values_and_grpo_loss():
    cfg = load_config("grpo", model=MODEL)
    assert cfg.rl["loss_type"] == "grpo"          # TRL 1.16 default is "dapo"
    assert cfg.rl["beta"] == 0.01 and cfg.rl["num_generations"] == 8 and cfg.rl["learning_rate"] == 5e-7
    assert cfg.rl["per_device_train_batch_size"] * cfg.rl["gradient_accumulation_steps"] == 128
    assert not cfg.dynamic_sampling.enabled


def test_dapo_and_gspo_recipes():
    dapo = load_config("dapo", model=MODEL)
    assert dapo.rl["epsilon_high"] == 0.28 and dapo.dynamic_sampling.enabled
    assert dapo.dynamic_sampling.max_resample_times == 3 and dapo.dynamic_sampling.soft_overlong_cache == 2048
    gspo = load_config("gspo", model=MODEL)
    assert gspo.rl["importance_sampling_level"] == "sequence"
    assert (gspo.rl["epsilon"], gspo.rl["epsilon_high"], gspo.rl["steps_per_generation"]) == (3e-4, 4e-4, 4)


def test_sps_composes_over_any_base():
    sps = load_config("sps", model=MODEL)
    assert sps.base == "grpo" and sps.rl["loss_type"] == "grpo" and sps.label == "sps"
    assert (sps.sps.sampling_size, sps.sps.irl_steps, sps.sps.irl_batch_size) == (3, 4, 512)
    assert sps.sps.irl_learning_rate == 5e-10
    over_dapo = load_config("sps", "dapo", model=MODEL)
    assert over_dapo.dynamic_sampling.enabled and over_dapo.rl["epsilon_high"] == 0.28
    assert over_dapo.label == "sps+dapo" and over_dapo.sps.sampling_size == 3


def test_embedded_default_uses_cpu_demo_sizes():
    cfg = load_config("sps")
    assert cfg.model is None and cfg.rl["max_steps"] <= 10 and cfg.rl["max_completion_length"] <= 96
    assert "cpu-demo.yaml" in cfg.recipe


def test_set_overrides_win_and_parse_yaml_values():
    cfg = load_config("sps", overrides=["sps.irl_steps=2", "rl.max_steps=3", "eval.tasks=[arith, gsm8k]"],
                      model=MODEL)
    assert cfg.sps.irl_steps == 2 and cfg.rl["max_steps"] == 3 and cfg.eval.tasks == ["arith", "gsm8k"]
    assert parse_override("model=null") == {"model": None}


@pytest.mark.parametrize("text, key", [("sps:\n  irl_stepz: 2\n", "sps.irl_stepz"),
                                       ("rl:\n  not_a_trl_field: 1\n", "rl.not_a_trl_field"),
                                       ("colour: blue\n", "colour")])
def test_unknown_key_is_one_line_error_naming_file_and_key(tmp_path, text, key):
    path = tmp_path / "mine.yaml"
    path.write_text("algo: grpo\n" + text)
    with pytest.raises(ConfigError) as err:
        load_config(config=path)
    assert str(path) in str(err.value) and key in str(err.value) and "\n" not in str(err.value)


def test_bad_values_are_config_errors():
    with pytest.raises(ConfigError, match="sps.quantile"):
        load_config("sps", overrides=["sps.quantile=1.5"], model=MODEL)
    with pytest.raises(ConfigError, match="--set"):
        parse_override("sps.irl_steps")
    with pytest.raises(ConfigError, match="base"):
        load_config("sps", "sps", model=MODEL)


def test_describe_keys_has_help_for_every_key():
    rows = describe_keys()
    assert any(key == "sps.irl_learning_rate" for key, _, _ in rows)
    assert all(help_text for _, _, help_text in rows)


def test_cli_unknown_key_exits_2_with_one_line(capsys):
    assert main(["train", "--algo", "grpo", "--set", "sps.bogus=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "sps.bogus" in err and len(err.splitlines()) == 1


def test_cli_list_keys(capsys):
    assert main(["train", "--list-keys"]) == 0
    assert "sps.sampling_size" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["sps-qwen2.5-math-1.5b.yaml", "grpo-qwen2.5-math-7b-zero3.yaml"])
def test_gpu_recipes_parse(name):
    from spsbench.paths import recipes_dir

    cfg = load_config(config=recipes_dir() / "gpu" / name)
    assert cfg.rl["use_vllm"] and cfg.eval.n == 128 and "cpu-demo" not in cfg.recipe
