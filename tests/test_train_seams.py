"""Pins the private TRL 1.16 seams spsbench.train relies on, so a TRL upgrade fails here, loudly."""

import inspect

import trl
from trl import GRPOConfig, GRPOTrainer


def params(fn):
    return list(inspect.signature(fn).parameters)


def test_trl_version_is_pinned():
    assert trl.__version__ == "1.16.0"


def test_generate_and_score_completions_seam():
    assert params(GRPOTrainer._generate_and_score_completions) == ["self", "inputs"]
    source = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    for key in ('"prompt_ids"', '"prompt_mask"', '"completion_ids"', '"completion_mask"', '"advantages"',
                '"num_items_in_batch"', '"old_per_token_logps"'):
        assert key in source, key
    assert "self._calculate_rewards(" in source


def test_calculate_rewards_returns_gathered_rewards():
    assert params(GRPOTrainer._calculate_rewards) == ["self", "inputs", "prompts", "completions",
                                                      "completion_ids_list"]
    assert "rewards_per_func = gather(rewards_per_func)" in inspect.getsource(GRPOTrainer._calculate_rewards)


def test_logps_training_step_and_checkpoint_seams():
    assert params(GRPOTrainer._get_per_token_logps_and_entropies)[:6] == [
        "self", "model", "input_ids", "attention_mask", "logits_to_keep", "batch_size"]
    assert params(GRPOTrainer.training_step) == ["self", "model", "inputs", "num_items_in_batch"]
    assert params(GRPOTrainer._save_checkpoint) == ["self", "model", "trial"]
    assert params(GRPOTrainer._load_optimizer_and_scheduler) == ["self", "checkpoint"]
    assert "_last_loaded_step" in inspect.getsource(GRPOTrainer._generate)   # vLLM weight-sync tag we reset


def test_overridden_loss_and_rng_seams():
    """SPSTrainer.compute_loss captures the loss's log-probs; DynamicSamplingTrainer restores its refill RNG."""
    from transformers import Trainer
    from trl.models.utils import disable_gradient_checkpointing  # used by SPS's log-prob fill

    assert params(GRPOTrainer.compute_loss) == ["self", "model", "inputs", "return_outputs", "num_items_in_batch"]
    assert "self._get_per_token_logps_and_entropies(" in inspect.getsource(GRPOTrainer._compute_loss)
    assert params(Trainer._load_rng_state) == ["self", "checkpoint"]
    assert params(Trainer._get_output_dir) == ["self", "trial"]
    assert params(disable_gradient_checkpointing) == ["model", "gradient_checkpointing_kwargs"]


def test_steps_per_generation_counts_micro_steps():
    """Why recipes set optimizer_steps_per_generation: TRL generates every steps_per_generation *micro*-steps."""
    step_source = inspect.getsource(GRPOTrainer.training_step)
    assert "self._step += 1" in step_source          # once per training_step call = per micro-batch
    prepare = inspect.getsource(GRPOTrainer._prepare_inputs)
    assert "generate_every = self.args.steps_per_generation * self.num_iterations" in prepare
    assert "if self._step % generate_every == 0" in prepare


def test_old_per_token_logps_condition():
    """docs/training.md: TRL computes old_per_token_logps only when generation and optimizer steps are
    misaligned, or with vLLM importance-sampling correction; otherwise SPS captures them from the loss."""
    source = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    assert "if self.args.gradient_accumulation_steps % generate_every != 0 or (" in source
    assert "self.use_vllm and self.vllm_importance_sampling_correction" in source


def test_finite_guard_callback_order():
    """The RL finite-guard checks gradients in on_pre_optimizer_step and weights in on_step_end, and SPS's
    IRL phase runs in on_step_end: all before the step's checkpoint is saved."""
    from transformers import Trainer, TrainerCallback

    assert hasattr(TrainerCallback, "on_pre_optimizer_step")
    loop = inspect.getsource(Trainer._run_epoch)
    order = [loop.index(s) for s in ("callback_handler.on_pre_optimizer_step", "self.optimizer.step()",
                                     "callback_handler.on_step_end", "self._maybe_log_save_evaluate(")]
    assert order == sorted(order)


def test_measured_trl_defaults():
    fields = {f.name: f.default for f in GRPOConfig.__dataclass_fields__.values()}
    assert fields["loss_type"] == "dapo" and fields["beta"] == 0.0
    assert fields["importance_sampling_level"] == "token"


def test_vllm_colocate_weight_sync_seams():
    """spsbench replaces VLLMGeneration.sync_weights on CPU with vLLM's reload_weights (trainer.py)."""
    from trl.generation.vllm_generation import VLLMGeneration

    assert params(VLLMGeneration.sync_weights) == ["self"]
    assert params(VLLMGeneration._iter_named_params)[0] == "self"
    assert "model_runner.model.load_weights" in inspect.getsource(VLLMGeneration.sync_weights)
    assert "self.vllm_generation.sync_weights()" in inspect.getsource(GRPOTrainer._generate_single_turn)
    try:
        from vllm.v1.worker.gpu_model_runner import GPUModelRunner
    except ImportError:  # vLLM not installed: the seam is unused
        return
    assert params(GPUModelRunner.reload_weights)[:4] == ["self", "weights_iterator", "weights_path",
                                                         "is_checkpoint_format"]


def test_grpo_config_resolves_the_generation_batch_over_the_world_size_property():
    """The plan for another launch builds GRPOConfig with `world_size` overridden (train.args.config_class)."""
    from transformers import TrainingArguments

    from spsbench.train.args import config_class

    assert isinstance(inspect.getattr_static(TrainingArguments, "world_size"), property)
    assert "num_processes = self.world_size" in inspect.getsource(GRPOConfig.__post_init__)
    args = config_class(32)(output_dir="unused", per_device_train_batch_size=4, num_generations=8, use_cpu=True,
                            bf16=False, report_to="none")
    assert (args.generation_batch_size, args.steps_per_generation) == (128, 1)     # 4 x 32 ranks, not 4


def test_the_string_choices_spsbench_checks_are_the_ones_trl_handles():
    """train.rl_values.CHOICES: TRL checks these values only where it uses them, mid-run; each one spsbench
    accepts is handled by the trainer, and GRPOConfig's help names it."""
    from spsbench.train.rl_values import CHOICES, grpo_config_fields

    trainer = inspect.getsource(GRPOTrainer)
    for key, values in CHOICES.items():
        help_text = grpo_config_fields()[key].metadata.get("help", "")
        for value in values:
            if isinstance(value, str):
                assert f'"{value}"' in trainer or f"'{value}'" in trainer or key == "vllm_model_impl", (key, value)
                assert value in help_text, (key, value)
