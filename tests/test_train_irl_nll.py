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


def linear_output_dtypes(model, run):
    """dtypes of every nn.Linear output (the matmuls) while `run()` executes."""
    seen = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
             for m in model.modules() if isinstance(m, torch.nn.Linear)]
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return set(seen)


@pytest.fixture
def fresh_accelerate_state():
    """accelerate's state is process-wide and fixed by the first Accelerator: a trainer an earlier test built in
    this process (fp32) would refuse this test's bf16 one. Reset before, and after for the tests that follow."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_irl_nll_runs_under_the_prepared_models_mixed_precision(tmp_path, fresh_accelerate_state):
    """accelerate puts bf16 autocast inside the prepared model's forward, which the IRL loss replaces: with the
    accelerator's autocast passed in, the IRL matmuls run in bf16 as the RL forward's do (weights stay fp32)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from transformers import AutoModelForCausalLM

    # An in-process Trainer earlier in the session leaves accelerate's process-wide state set (fp32), and
    # accelerate refuses another mixed precision then: start from a clean state, and leave one behind.
    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        _irl_under_bf16_autocast(Accelerator(mixed_precision="bf16", cpu=True), tmp_path, AutoModelForCausalLM)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)


def _irl_under_bf16_autocast(accelerator, tmp_path, AutoModelForCausalLM) -> None:  # noqa: N803
    model = accelerator.prepare(AutoModelForCausalLM.from_pretrained(tiny_model(tmp_path / "m", hidden=48)))
    batch = rows()
    ids = torch.tensor([batch[0]["prompt_ids"] + batch[0]["completion_ids"]])
    assert linear_output_dtypes(model, lambda: model(input_ids=ids)) == {torch.bfloat16}          # the RL forward
    irl_dtypes = linear_output_dtypes(
        model, lambda: irl.completion_nll(model, batch, 0, autocast=accelerator.autocast).backward())
    assert irl_dtypes == {torch.bfloat16}
    # without it (the former behaviour) the same loss ran in fp32
    assert linear_output_dtypes(model, lambda: irl.completion_nll(model, batch, 0).backward()) == {torch.float32}
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    loss = irl.completion_nll(model, batch, 0, autocast=accelerator.autocast)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)        # log-softmax / CE in fp32


# ------------------------------------------------------------------ IRL batches: coverage, auto, length sort

def test_fixed_irl_steps_cover_part_of_a_large_selection_and_auto_covers_it_once():
    selected = list(range(9000))               # the 1.5B recipe's phase: ~8,976 selected, 4 x 512 trained
    assert irl.coverage(4, 512, [9000]) == pytest.approx(2048 / 9000)
    assert irl.auto_steps(512, [9000]) == 18 and irl.coverage("auto", 512, [9000]) == 1.0
    batches = irl.step_batches(selected, "auto", 512, [9000], 0)
    assert len(batches) == 18 and sorted(r for b in batches for r in b) == selected      # every row once
    assert [len(b) for b in batches] == [512] * 17 + [9000 - 17 * 512]
    fixed = irl.step_batches(selected, 4, 512, [9000], 0)
    assert len({r for b in fixed for r in b}) == 2048


def test_auto_on_uneven_ranks_walks_every_ranks_rows_in_equal_step_counts():
    per_rank = [7, 2]                           # shares of a batch of 4: 2 and 2 -> rank 0 needs 4 steps
    steps = [irl.step_batches(list(range(n)), "auto", 4, per_rank, r) for r, n in enumerate(per_rank)]
    assert [len(s) for s in steps] == [4, 4]                        # every rank joins every step (collectives)
    assert steps[1] == [[0, 1], [], [], []] and sorted(sum(steps[0], [])) == list(range(7))
    assert irl.coverage(1, 4, per_rank) == pytest.approx(4 / 9)     # 2 of 7 and 2 of 2


def test_each_steps_rows_are_length_sorted_into_micro_batches():
    from spsbench.train.sps.update import length_sorted

    batch = rows(8, seed=3)
    ordered = length_sorted(batch)
    lengths = [len(r["prompt_ids"]) + len(r["completion_ids"]) for r in ordered]
    assert lengths == sorted(lengths, reverse=True) and sorted(map(id, ordered)) == sorted(map(id, batch))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: bf16 autocast memory on the device")
def test_irl_under_bf16_autocast_on_a_gpu_holds_less_activation_memory(tmp_path):
    """On a GPU the point of running IRL under the RL step's autocast: bf16 matmuls and activations. Peak
    memory of one IRL forward+backward with the accelerator's autocast against the same without."""
    from accelerate import Accelerator
    from transformers import AutoModelForCausalLM

    accelerator = Accelerator(mixed_precision="bf16")
    model = accelerator.prepare(AutoModelForCausalLM.from_pretrained(tiny_model(tmp_path / "m", hidden=256,
                                                                                 max_positions=4096)))
    batch = [{"prompt_ids": r["prompt_ids"], "completion_ids": (r["completion_ids"] * 300)[:2000]} for r in rows(8)]

    def peak(autocast):
        model.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        irl.completion_nll(model, batch, 0, autocast=autocast).backward()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base

    import contextlib

    assert linear_output_dtypes(model, lambda: irl.completion_nll(model, batch, 0, autocast=accelerator.autocast)
                                .backward()) == {torch.bfloat16}
    assert peak(accelerator.autocast) < 0.8 * peak(contextlib.nullcontext)
