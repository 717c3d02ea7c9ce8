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
    assert (gspo.rl["epsilon"], gspo.rl["epsilon_high"], gspo.optimizer_steps_per_generation) == (3e-4, 4e-4, 4)
    assert "steps_per_generation" not in gspo.rl      # derived from the accumulation (test below)


def optimizer_steps_per_generation(args):
    # TRL 1.16 generates when its micro-step counter hits a multiple of steps_per_generation (pinned in
    # test_train_seams.py), and the optimizer steps every gradient_accumulation_steps micro-steps
    assert args.steps_per_generation % args.gradient_accumulation_steps == 0
    return args.steps_per_generation // args.gradient_accumulation_steps


@pytest.mark.parametrize("algo, base", [("gspo", None), ("sps", "gspo")])
@pytest.mark.parametrize("model", [MODEL, None])          # paper sizes (accumulation 8) and the CPU demo (1)
def test_gspo_feeds_four_optimizer_steps_per_generation(tmp_path, algo, base, model):
    from spsbench.train.args import grpo_args

    cfg = load_config(algo, base, model=model)
    args = grpo_args(cfg, tmp_path)
    assert optimizer_steps_per_generation(args) == 4
    assert args.gradient_accumulation_steps == (8 if model else 1)
    assert args.generation_batch_size == 4 * args.per_device_train_batch_size * args.gradient_accumulation_steps
    grpo = grpo_args(load_config("grpo", model=model), tmp_path)
    assert optimizer_steps_per_generation(grpo) == 1                      # GRPO/DAPO stay on-policy


def test_optimizer_steps_per_generation_override_and_conflicts(tmp_path):
    from spsbench.train.args import grpo_args

    cfg = load_config("gspo", overrides=["optimizer_steps_per_generation=2"], model=MODEL)
    assert optimizer_steps_per_generation(grpo_args(cfg, tmp_path)) == 2
    raw = load_config("gspo", overrides=["optimizer_steps_per_generation=null", "rl.steps_per_generation=8"],
                      model=MODEL)
    assert grpo_args(raw, tmp_path).steps_per_generation == 8                # TRL's own key, in micro-steps
    with pytest.raises(ConfigError, match="optimizer_steps_per_generation and rl.steps_per_generation"):
        load_config("gspo", overrides=["rl.steps_per_generation=8"], model=MODEL)
    with pytest.raises(ConfigError, match="optimizer_steps_per_generation: must be an integer >= 1"):
        load_config("grpo", overrides=["optimizer_steps_per_generation=0"], model=MODEL)


@pytest.mark.parametrize("override, env, match", [
    ("rl.deepspeed=recipes/gpu/ds_zero1.json", None, "SPS does not run under DeepSpeed"),
    ("rl.fsdp=full_shard", None, "needs FSDP2 .* got FSDP version 1"),
    (None, "ACCELERATE_USE_DEEPSPEED", "SPS does not run under DeepSpeed"),  # `accelerate launch --use_deepspeed`
    (None, "ACCELERATE_USE_FSDP", "needs FSDP2 .* got FSDP version 1"),       # FSDP_VERSION unset = 1
])
def test_sps_refuses_deepspeed_and_fsdp1_before_loading_anything(tmp_path, monkeypatch, override, env, match):
    from spsbench.train.run import build_trainer

    if env:
        monkeypatch.setenv(env, "true")
    monkeypatch.delenv("FSDP_VERSION", raising=False)
    cfg = load_config("sps", overrides=[override] if override else [], model=str(tmp_path / "never-loaded"))
    with pytest.raises(ConfigError, match=match) as err:
        build_trainer(cfg)                               # the model folder does not exist: refused first
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("override, env", [("rl.fsdp_config={fsdp_version: 2}", {}),
                                           (None, {"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"})])
def test_sps_accepts_fsdp2(monkeypatch, override, env):
    from spsbench.train.args import refuse_sharding_for_sps

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    refuse_sharding_for_sps(load_config("sps", overrides=[override] if override else [], model=MODEL))


def test_cli_sps_with_zero1_exits_2_with_one_line(capsys):
    assert main(["train", "--algo", "sps", "--model", MODEL, "--no-eval",
                 "--set", "rl.deepspeed=recipes/gpu/ds_zero1.json"]) == 2
    err = capsys.readouterr().err.strip()
    assert "SPS does not run under DeepSpeed" in err and len(err.splitlines()) == 1


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
    assert load_config("sps", overrides=["sps.quantile=0"], model=MODEL).sps.quantile == 0.0   # least likely
    with pytest.raises(ConfigError, match="sps.l2te_logprob"):
        load_config("sps", overrides=["sps.l2te_logprob=median"], model=MODEL)
    with pytest.raises(ConfigError, match="sps.irl_learning_rate"):
        load_config("sps", overrides=["sps.irl_learning_rate=.inf"], model=MODEL)
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


@pytest.mark.parametrize("name", ["sps-qwen2.5-math-1.5b.yaml", "grpo-qwen2.5-math-7b.yaml"])
def test_gpu_recipes_parse(name):
    from spsbench.paths import recipes_dir

    cfg = load_config(config=recipes_dir() / "gpu" / name)
    assert cfg.rl["use_vllm"] and cfg.eval.n == 128 and "cpu-demo" not in cfg.recipe


# ------------------------------------------------------------------ algorithm label vs recipe and settings

def test_a_recipe_for_another_algorithm_is_one_line_error(capsys):
    """The issue's example: `--algo dapo --config <GRPO recipe>` trained plain GRPO and stored it as "dapo"."""
    assert main(["train", "--algo", "dapo", "--config", "recipes/gpu/grpo-qwen2.5-math-1.5b.yaml", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "is a recipe for grpo (algo: grpo) but --algo is dapo" in err
    with pytest.raises(ConfigError, match="recipe for sps over grpo .base: grpo. but --base is dapo"):
        load_config("sps", "dapo", config="recipes/gpu/sps-qwen2.5-math-1.5b.yaml")
    cfg = load_config("sps", "dapo", config="recipes/gpu/sps-dapo-qwen2.5-math-1.5b.yaml")      # its own recipe
    assert cfg.label == "sps+dapo" and cfg.dynamic_sampling.enabled


@pytest.mark.parametrize("algo, base, override, implied", [
    ("grpo", None, "dynamic_sampling.enabled=true", "dapo"),
    ("dapo", None, "dynamic_sampling.enabled=false", "grpo"),
    ("grpo", None, "rl.importance_sampling_level=sequence", "gspo"),
    ("sps", "grpo", "dynamic_sampling.enabled=true", "dapo"),
    ("sps", "gspo", "rl.importance_sampling_level=token", "grpo"),
])
def test_settings_that_train_another_algorithm_than_the_label_are_an_error(algo, base, override, implied):
    with pytest.raises(ConfigError, match=f"but its settings train {implied}") as err:
        load_config(algo, base, overrides=[override], model=MODEL)
    assert f"--{'base' if algo == 'sps' else 'algo'} {implied}" in str(err.value)


def test_a_recipe_without_algo_is_identified_by_its_settings(tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("model: m\ndynamic_sampling: {enabled: true}\n")
    with pytest.raises(ConfigError, match="labelled grpo but its settings train dapo"):
        load_config(config=recipe)
    assert load_config("dapo", config=recipe).label == "dapo"
    with pytest.raises(ConfigError, match="neither algorithm"):
        load_config("dapo", config=recipe, overrides=["rl.importance_sampling_level=sequence"])
