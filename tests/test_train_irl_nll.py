"""The IRL loss with bounded memory (LM head on completion positions only, in checkpointed chunks) equals the
plain full-logits cross-entropy, in value and gradient."""

import random

import pytest
import torch

from spsbench.train.sps import irl
from tests.fixtures.tiny_model import tiny_model


def reference_nll(model, rows, pad_id):
    """The former implementation: full-vocabulary fp32 logits over prompt + completion."""
    seqs = [r["prompt_ids"] + r["completion_ids"] for r in rows]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention, labels = torch.zeros_like(ids), torch.full_like(ids, -100)
    for i, (r, s) in enumerate(zip(rows, seqs, strict=True)):
        ids[i, :len(s)], attention[i, :len(s)] = torch.tensor(s), 1
        labels[i, len(r["prompt_ids"]):len(s)] = torch.tensor(r["completion_ids"])
    logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1].float()
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1),
                                             ignore_index=-100, reduction="sum")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(tiny_model(tmp_path_factory.mktemp("tiny") / "m", hidden=48))


def rows(n=5, seed=0):
    rng = random.Random(seed)
    return [{"prompt_ids": [rng.randrange(8, 100) for _ in range(rng.randrange(1, 9))],
             "completion_ids": [rng.randrange(8, 100) for _ in range(rng.randrange(1, 12))]} for _ in range(n)]


def grads(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("chunk", [3, 7, irl.NLL_CHUNK_TOKENS])
def test_chunked_nll_equals_full_logits_in_value_and_gradient(model, chunk):
    batch = rows()
    expected = reference_nll(model, batch, 0)
    got = irl.completion_nll(model, batch, 0, chunk_tokens=chunk)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    for a, b in zip(grads(model, got), grads(model, reference_nll(model, batch, 0)), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6 * b.abs().max().item())
    assert "forward" not in model.__dict__ or model.forward.__name__ != "_chunked_nll"   # the patch is undone


def test_empty_completion_keeps_every_parameter_in_the_graph(model):
    loss = irl.completion_nll(model, [irl.dummy_row(0)], 0)
    assert loss.item() == 0.0
    assert all(g is not None for g in grads(model, loss))          # DDP needs a gradient for every parameter
