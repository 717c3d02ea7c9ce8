"""Diagnostics: the similarity measure by hand, and the model-based squeezing/entropy diagnostics on tiny
models, including a real property check (a sharpened copy is more squeezed and has lower entropy); the
setting recorded with every diagnostic, the choice of completions for similarity, and the CLI's store,
run page and models page."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from spsbench.diagnostics import model_stats as diagnose
from spsbench.diagnostics import run as diag_run
from spsbench.diagnostics.similarity import (
    group_samples,
    jaccard,
    pairwise_similarity,
    shingles,
    similarity_by_problem,
)
from spsbench.tasks import load_task

PROMPTS = ["What is 2 + 3?", "Add 4 and 5.", "7 minus 2 is?"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_shingles_are_word_trigrams_with_punctuation():
    assert shingles("a b c d") == {("a", "b", "c"), ("b", "c", "d")}
    assert shingles("x = 4.") == {("x", "=", "4"), ("=", "4", ".")}
    assert shingles("hi") == {("hi",)}  # shorter than 3 tokens: one shingle of what there is


def test_pairwise_similarity_by_hand():
    assert pairwise_similarity(["a b c d", "a b c d"]) == 1.0
    assert pairwise_similarity(["a b c", "d e f"]) == 0.0
    # {abc, bcd} vs {abc, bce}: 1 shared of 3 -> 1/3; the third text shares nothing with either.
    assert pairwise_similarity(["a b c d", "a b c e", "x y z"]) == pytest.approx((1 / 3 + 0 + 0) / 3)
    assert pairwise_similarity(["only one"]) is None
    assert jaccard(frozenset(), frozenset()) == 1.0


def test_similarity_by_problem_averages_problems_and_skips_singletons():
    value, details = similarity_by_problem({"p1": ["a b c", "a b c"], "p2": ["a b c", "d e f"], "p3": ["x"]})
    assert value == pytest.approx(0.5)
    assert details["problems"] == 2 and details["measure"] == "jaccard_word3gram"


def test_group_samples_orders_by_problem_and_index_and_limits():
    rows = [
        {"problem_id": "b", "sample_idx": 1, "completion": "b1"},
        {"problem_id": "b", "sample_idx": 0, "completion": "b0"},
        {"problem_id": "a", "sample_idx": 0, "completion": "a0"},
    ]
    assert group_samples(rows) == {"a": ["a0"], "b": ["b0", "b1"]}
    assert group_samples(rows, limit=1) == {"a": ["a0"]}


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    """A base tiny model, another seed ('checkpoint'), and a sharpened copy of the base (logits x10)."""
    import torch
    from transformers import AutoModelForCausalLM

    from tests.fixtures.tiny_model import tiny_model

    root = tmp_path_factory.mktemp("diag")
    base = tiny_model(root / "base", seed=0)
    other = tiny_model(root / "ckpt", seed=1)
    sharp = tiny_model(root / "sharp", seed=0)
    model = AutoModelForCausalLM.from_pretrained(sharp)
    with torch.no_grad():  # the final RMSNorm feeds the (tied) lm_head linearly: x10 here = logits x10
        model.model.norm.weight.mul_(10.0)
    model.save_pretrained(sharp)
    return base, other, sharp


def test_greedy_logprob_and_entropy_are_valid(tiny_pair):
    for path in tiny_pair[:2]:
        lm = diagnose.load_model(str(path))
        value, details = diagnose.greedy_logprob(lm, PROMPTS, max_tokens=12)
        assert math.isfinite(value) and value <= 0
        assert details["prompts"] == 3 and details["per_sequence_mean"] <= value
        entropy, e_details, texts = diagnose.token_entropy(lm, PROMPTS[:2], n=3, max_tokens=12)
        vocab = lm.model.config.vocab_size
        assert 0 <= entropy <= math.log(vocab) + 1e-6
        assert e_details["tokens"] > 0 and [len(t) for t in texts] == [3, 3]


def test_sharpened_model_is_more_squeezed_and_lower_entropy(tiny_pair):
    base, _, sharp = tiny_pair
    lm_base, lm_sharp = diagnose.load_model(str(base)), diagnose.load_model(str(sharp))
    g_base, _ = diagnose.greedy_logprob(lm_base, PROMPTS, max_tokens=12)
    g_sharp, _ = diagnose.greedy_logprob(lm_sharp, PROMPTS, max_tokens=12)
    e_base, _, _ = diagnose.token_entropy(lm_base, PROMPTS, n=2, max_tokens=12)
    e_sharp, _, _ = diagnose.token_entropy(lm_sharp, PROMPTS, n=2, max_tokens=12)
    assert g_sharp > g_base  # Table 6: higher (less negative) greedy log-prob = more squeezed
    assert e_sharp < e_base


def test_token_stats_match_a_manual_log_softmax(tiny_pair):
    import torch

    lm = diagnose.load_model(str(tiny_pair[0]))
    p_ids, c_ids = lm.encode("1+1"), [20, 21, 22]
    logps, ents = diagnose.token_stats(lm, p_ids, c_ids)
    with torch.no_grad():
        logits = lm.model(torch.tensor([p_ids + c_ids])).logits[0]
    expected = torch.log_softmax(logits[len(p_ids) - 1 + 1], -1)[c_ids[1]].item()
    assert logps[1] == pytest.approx(expected, abs=1e-5)
    assert len(ents) == 3 and all(e >= 0 for e in ents)


class FakeStore:
    """Duck-typed store: records diagnostics; one model already has an evaluation with samples."""

    def __init__(self, evals=(), samples=None):
        self.ids, self.added, self._evals, self._samples = {}, [], list(evals), samples or {}

    def upsert_model(self, path, weights_hash, **tags):
        return self.ids.setdefault(path, 100 + len(self.ids))

    def evaluations(self, status="done"):
        return self._evals

    def samples(self, eval_id):
        return iter(self._samples[eval_id])

    def add_diagnostic(self, model_id, task, metric, value, details):
        self.added.append((model_id, task, metric, value, details))

    def diagnostics(self):
        return []


def test_run_folder_with_base_writes_three_metrics_per_model(tiny_pair, tmp_path):
    import shutil
    from types import SimpleNamespace

    base, other, _ = tiny_pair
    for step, src in ((10, base), (20, other)):
        shutil.copytree(src, tmp_path / "run" / f"checkpoint-{step}")
    known = [
        SimpleNamespace(
            id=7,
            path=str((tmp_path / "run" / "checkpoint-20").resolve()),
            run_name="run",
            step=20,
            algo="sps",
            base_model=None,
        )
    ]
    version = str(load_task("arith").spec.version)  # stored evals only count for the current version
    ev = SimpleNamespace(id=1, model_id=7, task="arith", task_version=version, n=3,
                         sampling={"temperature": 0.7, "max_tokens": 64})
    texts = [
        {"problem_id": "0", "sample_idx": i, "completion": t}
        for i, t in enumerate(["a b c", "a b c", "x y z"])
    ] + [  # a problem outside --limit 2: must not enter the similarity
        {"problem_id": "9", "sample_idx": i, "completion": "same text here"} for i in range(3)
    ]
    store = FakeStore([ev], {1: texts})
    results = diag_run.run_diagnostics(
        str(tmp_path / "run"),
        ["arith"],
        store,
        known,
        n=2,
        limit=2,
        base=str(base),
        max_tokens=8,
        progress=False,
    )
    assert [(r.model_id, r.metric) for r in results] == [
        (m, metric)
        for m in (100, 101, 7)
        for metric in ("greedy_logprob", "token_entropy", "pairwise_similarity")
    ]
    assert len(store.added) == 9
    stored_sim = next(r for r in results if r.model_id == 7 and r.metric == "pairwise_similarity")
    assert stored_sim.value == pytest.approx(1 / 3) and stored_sim.details["source"] == "store"
    assert stored_sim.details["setting"] | {"seed": 0} == {
        "source": "eval samples", "n": 3, "temperature": 0.7, "max_tokens": 64, "problems": 1, "limit": 2,
        "task_version": version, "seed": 0, "eval_id": 1,
    }
    fresh_sim = next(r for r in results if r.model_id == 100 and r.metric == "pairwise_similarity")
    assert fresh_sim.details["source"] == "sampled for token_entropy" and 0 <= fresh_sim.value <= 1
    entropy = next(r for r in results if r.model_id == 100 and r.metric == "token_entropy")
    assert fresh_sim.details["setting"] == entropy.details["setting"]
    assert entropy.details["setting"]["source"] == "fresh samples" and entropy.details["setting"]["n"] == 2
    greedy = next(r for r in results if r.model_id == 101 and r.metric == "greedy_logprob")
    assert greedy.details["setting"]["problems"] == 2 and greedy.details["setting"]["max_tokens"] == 8


def _spec(ids: list[str], version: str = "1"):
    from types import SimpleNamespace

    problems = [SimpleNamespace(id=i, prompt=f"q{i}") for i in ids]
    return SimpleNamespace(problems=problems, spec=SimpleNamespace(version=version))


def _similarity_inputs(version: str = "1"):
    from types import SimpleNamespace

    ev = SimpleNamespace(id=4, model_id=1, task="t", task_version=version, n=2, sampling={"temperature": 0.6})
    rows = [{"problem_id": p, "sample_idx": i, "completion": "a b c"} for p in ("0", "1") for i in range(2)]
    fresh = diag_run.setting_details("fresh samples", problems=2, max_tokens=8, task_version="1", limit=None, n=2)
    sampled = [["a b c", "d e f"], ["a b c", "d e f"]]  # similarity 0 per problem; the stored ones are 1
    return FakeStore([ev], {4: rows}, ), sampled, fresh


@pytest.mark.parametrize(
    ("source", "version", "expected"),
    [
        ("auto", "1", (1.0, "eval samples")),
        ("sampled", "1", (0.0, "fresh samples")),
        ("eval", "1", (1.0, "eval samples")),
        ("auto", "2", (0.0, "fresh samples")),  # the stored evaluation is of another task version
        ("eval", "2", None),  # asked for stored completions, there are none: no value rather than a mix
    ],
)
def test_similarity_source_is_chosen_and_recorded(source, version, expected):
    store, sampled, fresh = _similarity_inputs()
    cfg = diag_run.DiagConfig(n=2, max_tokens=8, similarity_from=source)
    got = diag_run._similarity(store, 1, "t", _spec(["0", "1"], version), sampled, cfg, fresh)
    if expected is None:
        assert got is None
        return
    value, details = got
    assert (value, details["setting"]["source"]) == expected
    if expected[1] == "eval samples":
        assert details["setting"]["temperature"] == 0.6 and details["setting"]["eval_id"] == 4


def test_unknown_similarity_source_is_refused():
    with pytest.raises(diag_run.SpsbenchError, match="similarity source"):
        diag_run.run_diagnostics("x", [], FakeStore(), [], similarity_from="both", progress=False)


def test_cli_diagnose_writes_store_and_run_page(tiny_pair, tmp_path, capsys):
    import shutil

    from spsbench.cli import main

    base, other, _ = tiny_pair
    shutil.copytree(other, tmp_path / "myrun" / "checkpoint-5")
    store, out = tmp_path / "s.db", tmp_path / "lb"
    code = main(
        [
            "diagnose",
            str(tmp_path / "myrun"),
            "--tasks",
            "arith",
            "--limit",
            "2",
            "--n",
            "2",
            "--max-tokens",
            "8",
            "--base",
            str(base),
            "--store",
            str(store),
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    from spsbench.store import Store

    s = Store(store)
    rows = s.diagnostics()
    s.close()
    assert sorted(r["metric"] for r in rows) == sorted(
        ["greedy_logprob", "token_entropy", "pairwise_similarity"] * 2
    )
    page = (out / "models.md").read_text()
    assert "## Diagnostics" in page and "### arith" in page and "| myrun@5 |" in page
    run = (out / "runs" / "myrun.md").read_text()
    section = run.split("## Diagnostics", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "--:" not in line][1:]
    assert [r.split(" | ")[0] for r in rows] == ["| base", "| 5"]  # --base is the run's base: row first
    assert all("—" not in r and "†" not in r for r in rows)  # three values each, one setting per column
    version = load_task("arith").spec.version
    assert f"- greedy log-prob / token: greedy decoding: max_tokens=8, 2 problems, task version {version}." in section
    assert "- token entropy (nats): fresh samples: n=2, temperature=1, max_tokens=8, 2 problems" in section
    # Once more with --limit 1: the store keeps one value per (model, task, metric), so it is replaced;
    # the command says so and the pages show the new setting.
    args = ["diagnose", str(tmp_path / "myrun"), "--tasks", "arith", "--limit", "1", "--n", "2", "--max-tokens",
            "8", "--base", str(base), "--store", str(store), "--out", str(out), "--similarity-from", "sampled"]
    assert main(args) == 0
    said = capsys.readouterr().out.replace("\n", " ")
    assert "replaced a value with another setting (was: greedy decoding: max_tokens=8, 2 problems" in said
    assert f"greedy decoding: max_tokens=8, 1 problem, task version {version}." in (out / "runs" / "myrun.md").read_text()


def test_partial_checkpoint_is_one_clear_error(tiny_pair, tmp_path):
    import shutil

    from spsbench.errors import CheckpointError

    shutil.copytree(tiny_pair[0], tmp_path / "run" / "checkpoint-3")
    for weights in (tmp_path / "run" / "checkpoint-3").glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(CheckpointError, match="no weight files"):
        diag_run.run_diagnostics(str(tmp_path / "run"), ["arith"], FakeStore(), [], limit=1, progress=False)


def test_batched_token_stats_equal_one_at_a_time(tiny_pair):
    lm = diagnose.load_model(str(tiny_pair[1]))
    p_ids, completions = lm.encode("3*3"), [[20, 21, 22, 23], [30], [40, 41]]
    batched = diagnose.batch_token_stats(lm, p_ids, completions)
    for c, (logps, ents) in zip(completions, batched, strict=True):
        one_logps, one_ents = diagnose.token_stats(lm, p_ids, c)
        assert logps == pytest.approx(one_logps, abs=1e-5) and ents == pytest.approx(one_ents, abs=1e-5)


def test_a_run_folder_brings_its_recorded_base_model(tiny_pair, tmp_path):
    import json
    import shutil

    base, other, _ = tiny_pair
    run = tmp_path / "run"
    shutil.copytree(other, run / "checkpoint-5")
    (run / "spsbench_run.json").write_text(json.dumps({"run_name": "r", "algo": "sps", "base_model": str(base)}))
    targets = diag_run.resolve_targets(str(run), [], None)
    assert [t.is_base for t in targets] == [True, False]
    assert targets[0].path == str(base) or Path(targets[0].path).resolve() == Path(base).resolve()
    assert (targets[1].run_name, targets[1].step, targets[1].algo) == ("r", 5, "sps")


def test_stored_diagnostics_with_the_same_setting_are_reused_not_recomputed(tiny_pair, tmp_path, capsys,
                                                                             monkeypatch):
    import shutil

    from spsbench.cli import main
    from spsbench.store import Store

    base, other, _ = tiny_pair
    shutil.copytree(other, tmp_path / "run" / "checkpoint-5")
    store = tmp_path / "s.db"
    args = ["diagnose", str(tmp_path / "run"), "--tasks", "arith", "--limit", "2", "--n", "2", "--max-tokens", "4",
            "--base", str(base), "--store", str(store), "--no-leaderboard"]
    assert main(args) == 0
    with Store(store) as s:
        first = {(r["model_id"], r["metric"]): (r["value"], r["created_at"]) for r in s.diagnostics()}
    loads = []
    real_load = diagnose.load_model
    monkeypatch.setattr(diag_run, "load_model", lambda path: loads.append(Path(path).name) or real_load(path))
    capsys.readouterr()
    assert main(args) == 0                                           # same setting: nothing is loaded
    assert loads == [] and capsys.readouterr().out.count("(stored)") == 6
    with Store(store) as s:
        assert {(r["model_id"], r["metric"]): (r["value"], r["created_at"]) for r in s.diagnostics()} == first
    shutil.copytree(base, tmp_path / "run" / "checkpoint-9")        # a new checkpoint: only it is computed
    assert main(args) == 0 and loads == ["checkpoint-9"]
    assert main([*args, "--n", "3"]) == 0 and len(loads) == 1 + 3   # another setting: all three recomputed
    assert main([*args, "--n", "3", "--force"]) == 0 and len(loads) == 1 + 3 + 3
