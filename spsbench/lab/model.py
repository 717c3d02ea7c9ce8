"""The lab's tiny policy: a random-weight transformers LlamaForCausalLM with the project's test tokenizer
(characters plus chat tokens, `tests.fixtures.tiny_model.tiny_tokenizer`) and `\\boxed{` added as one token, so a
lab-sums completion is 6-8 tokens and its closed set of well-formed completions is small enough to
enumerate. Saved as an ordinary Hugging Face folder, so the trainer, engines and evaluator load it as
they load any model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spsbench.engines.chat import encode_prompt
from spsbench.lab.task import BOX
from spsbench.lab.tokenizer import tiny_tokenizer


def lab_tokenizer():

    tok = tiny_tokenizer()
    tok.add_tokens([BOX])
    return tok


def new_model(tokenizer: Any, hidden: int, layers: int, seed: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def prompt_ids(tokenizer: Any, problem_text: str) -> list[int]:
    """Token ids of the prompt exactly as the evaluator's engines build it (chat template)."""

    return encode_prompt(tokenizer, problem_text, "auto")


def completion_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a completion followed by <eos> (what generation emits before it stops)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) + [tokenizer.eos_token_id]


def save(model: Any, tokenizer: Any, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
