"""One token budget: the arithmetic, the context read from a model's config, and the same evaluation
through the hf engine and an OpenAI-compatible server clamped with one warning to the same stored setting;
a prompt that alone fills the context is one line."""

from __future__ import annotations

import pytest

from spsbench.cli import main
from spsbench.config import SamplingConfig
from spsbench.engines.budget import completion_budget, config_context, context_length
from spsbench.errors import BudgetError
from spsbench.evaluation.evaluate import evaluate
from spsbench.evaluation.records import EvalRequest
from spsbench.store import Store
from tests.fixtures.tiny_model import tiny_model
from tests.openai_stub_server import StubServer, StubState

# arith's longest prompt is 140 characters; the tiny model's character tokenizer and chat template add
# 3 tokens (<|user|> ... <|end|><|assistant|>): 143 tokens, so 17 new tokens fit in a 160-token context.
CONTEXT, LONGEST = 160, 143


@pytest.fixture(scope="module")
def short_model(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("short") / "model", max_positions=CONTEXT)


def test_budget_arithmetic():
    assert completion_budget(40, 160, 143).effective == 17
    assert completion_budget(10, 160, 143).effective == 10 and not completion_budget(10, 160, 143).clamped
    assert completion_budget(40, None, 143).effective == 40          # unknown context: nothing to clamp
    assert completion_budget(40, 160, None).effective == 40
    with pytest.raises(BudgetError, match="longest prompt is 160 tokens and the model's context is 160"):
        completion_budget(40, 160, 160)


def test_context_from_config_and_max_model_len(short_model, tmp_path):
    assert context_length(str(short_model)) == CONTEXT
    assert context_length(str(short_model), max_model_len=100) == 100
    assert config_context({"text_config": {"max_position_embeddings": 7}}) == 7
    assert config_context({"n_positions": 9, "vocab_size": 5}) == 9
    assert context_length(str(tmp_path)) is None                      # no config.json: unknown
    assert context_length("no-such/model-anywhere") is None           # not cached, never downloaded


def request(model, store, engine, **options):
    return EvalRequest(model, ("arith",), SamplingConfig(n=1, max_tokens=40, temperature=0), engine=engine,
                       engine_options=options, store=store, limit=2, progress=False)


def test_hf_and_openai_evaluations_are_clamped_alike_and_stored_with_the_effective_budget(
        short_model, tmp_path, capsys):
    store = tmp_path / "s.db"
    [by_hf] = evaluate(request(str(short_model), store, "hf", dtype="fp32"))
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "40 new tokens do not fit the model's 160-token context" in err
    assert f"longest prompt ({LONGEST} tokens); using {CONTEXT - LONGEST}" in err
    from spsbench.engines.hf import HFEngine

    served = HFEngine(str(short_model), dtype="fp32")
    with StubServer(StubState(model="short", engine=served, max_model_len=CONTEXT)) as server:
        [by_server] = evaluate(request("short", store, "openai", base_url=server.url))
        sent = {b["max_tokens"] for b in server.state.bodies if "max_tokens" in b}
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and f"using {CONTEXT - LONGEST}" in err
    assert sent == {CONTEXT - LONGEST}                                # the server was asked for what fits
    with Store(store) as db:
        rows = {e.engine: e for e in db.evaluations()}
        lengths = [s["completion_tokens"] for e in rows.values() for s in db.samples(e.id)]
    assert {e.sampling["max_tokens"] for e in rows.values()} == {CONTEXT - LONGEST}
    assert rows["hf"].sampling == rows["openai"].sampling             # the same setting, comparable scores
    assert max(lengths) <= CONTEXT - LONGEST


def test_budget_that_fits_is_not_touched(short_model, tmp_path, capsys):
    req = request(str(short_model), tmp_path / "s.db", "hf", dtype="fp32").replace(
        sampling=SamplingConfig(n=1, max_tokens=4))
    [result] = evaluate(req)
    assert "warning" not in capsys.readouterr().err
    with Store(tmp_path / "s.db") as db:
        assert db.evaluation(result.eval_id).sampling["max_tokens"] == 4


def test_a_prompt_that_alone_fills_the_context_is_one_line(tmp_path, capsys):
    model = tiny_model(tmp_path / "tiny128", max_positions=128)
    capsys.readouterr()
    code = main(["eval", str(model), "--engine", "hf", "--limit", "1", "--n", "1", "--store",
                 str(tmp_path / "s.db"), "--no-leaderboard", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "arith: max_tokens: the longest prompt is 143 tokens and the model's context is 128" in err[0]
    assert not (tmp_path / "s.db").exists()                           # refused before anything is stored


def test_rollout_length_is_clamped_to_the_context_before_training(short_model, capsys):
    from spsbench.train.budget import apply_rollout_budget, rollout_budget
    from spsbench.train.config import load_config

    config = load_config("grpo", overrides=["rl.max_completion_length=40"], model=str(short_model))
    assert rollout_budget(config).effective == CONTEXT - LONGEST and config.rl["max_completion_length"] == 40
    apply_rollout_budget(config)
    assert config.rl["max_completion_length"] == CONTEXT - LONGEST
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "arith: rl.max_completion_length: 40 new tokens do not fit" in err
    vllm = load_config("grpo", overrides=["rl.use_vllm=true", "rl.vllm_max_model_length=150"], model=str(short_model))
    assert rollout_budget(vllm).context == 150


def test_training_prompt_that_fills_the_context_stops_before_the_model_loads(tmp_path, capsys):
    model = tiny_model(tmp_path / "tiny128", max_positions=128)
    capsys.readouterr()
    code = main(["train", "--model", str(model), "--output-dir", str(tmp_path / "run"), "--no-eval"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "the longest prompt is 143 tokens" in err[0]
    assert not (tmp_path / "run").exists()


def test_vllm_max_model_len_option_is_the_context(tiny_model_dir, tmp_path, fake_factory, capsys):
    req = request(str(tiny_model_dir), tmp_path / "s.db", "vllm", max_model_len=CONTEXT)
    [result] = evaluate(req, engine_factory=fake_factory)
    assert f"using {CONTEXT - LONGEST}" in capsys.readouterr().err
    with Store(tmp_path / "s.db") as db:
        assert db.evaluation(result.eval_id).sampling["max_tokens"] == CONTEXT - LONGEST


def test_a_run_folder_scanned_again_finds_its_clamped_evaluations_stored(short_model, tmp_path, fake_factory,
                                                                        capsys):
    from spsbench.evaluation.scan import scan_run
    from tests.test_scan import make_checkpoint

    make_checkpoint(tmp_path / "run", 5, short_model)
    req = request(None, tmp_path / "s.db", "hf")
    first = scan_run(tmp_path / "run", req, engine_factory=fake_factory)
    assert capsys.readouterr().err.count("warning") == 1
    again = scan_run(tmp_path / "run", req, engine_factory=fake_factory)
    assert [c.status for c in first.checkpoints] == ["evaluated"]
    assert [c.status for c in again.checkpoints] == ["stored"] and len(fake_factory.engines) == 1
    assert "warning" not in capsys.readouterr().err                  # nothing evaluated, nothing to warn


@pytest.mark.slow
def test_real_vllm_gets_the_same_effective_setting_as_hf(tmp_path, capsys):
    pytest.importorskip("vllm")
    # head_dim 32: the CPU attention backend has no kernels for the default tiny model's head_dim 8.
    model = str(tiny_model(tmp_path / "model", hidden=128, max_positions=CONTEXT))
    store = tmp_path / "s.db"
    [by_vllm] = evaluate(request(model, store, "vllm"))
    [by_hf] = evaluate(request(model, store, "hf", dtype="fp32"))
    assert capsys.readouterr().err.count(f"using {CONTEXT - LONGEST}") == 2
    # The same identity whichever engine: hf finds vLLM's evaluation complete and generates nothing.
    assert by_hf.eval_id == by_vllm.eval_id and by_hf.generated == 0 and by_vllm.generated == 2
    with Store(store) as db:
        [row] = db.evaluations()
        lengths = [s["completion_tokens"] for s in db.samples(row.id)]
    assert row.sampling["max_tokens"] == CONTEXT - LONGEST and max(lengths) <= CONTEXT - LONGEST


def test_a_server_that_reports_a_context_but_cannot_count_tokens_is_warned_not_clamped(tmp_path, capsys):
    state = StubState(model="m", max_model_len=100, tokenize=False)    # echo answers, no /tokenize
    with StubServer(state) as server:
        [result] = evaluate(request("m", tmp_path / "s.db", "openai", base_url=server.url))
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "reports a 100-token context but cannot count prompt tokens" in err
    with Store(tmp_path / "s.db") as db:
        assert db.evaluation(result.eval_id).sampling["max_tokens"] == 40


def test_a_server_counts_prompts_with_its_tokenize_endpoint(tmp_path, capsys):
    # The echo stub counts one token per word: arith's longest prompt has 25 words.
    with StubServer(StubState(model="m", max_model_len=50)) as server:
        [result] = evaluate(request("m", tmp_path / "s.db", "openai", base_url=server.url))
    assert "using 25" in capsys.readouterr().err
    with Store(tmp_path / "s.db") as db:
        assert db.evaluation(result.eval_id).sampling["max_tokens"] == 25
