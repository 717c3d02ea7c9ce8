"""The evaluation pipeline: store contents, resume/extend/subset semantics, bad input, strict vs lenient
grading, and the real HF engine + grader on the tiny model; plus the `spsbench eval` / `spsbench results`
commands (every bad argument is one line on stderr with exit code 2, before anything runs)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from spsbench.cli import main
from spsbench.config import SamplingConfig, sample_seed
from spsbench.errors import ConfigError, EngineError, StoreError
from spsbench.evaluation.evaluate import evaluate
from spsbench.evaluation.records import EvalRequest
from spsbench.store import ModelTags, Store

LIMIT = 6
DATA = Path(__file__).parent / "data" / "tasks"


def run(model, store, factory, n=4, **kw):
    kw.setdefault("limit", LIMIT)
    [result] = evaluate(EvalRequest(str(model), ["arith"], SamplingConfig(n=n, max_tokens=16), store=store, progress=False, **kw), engine_factory=factory)
    return result


def test_fake_engine_fills_store_and_scores(tiny_model_dir, store_path, fake_factory):
    result = run(tiny_model_dir, store_path, fake_factory, ks=[3], tags=ModelTags(run_name="r", step=5))
    assert result.generated == LIMIT * 4 and sorted(fake_factory.generated) == sorted(
        (str(p), i) for p in range(LIMIT) for i in range(4))
    with Store(store_path) as s:
        [ev] = s.evaluations()
        samples = list(s.samples(ev.id))
        scores = {(r.metric, r.k): r for r in s.scores(ev.id)}
    assert (ev.run_name, ev.step, ev.engine, ev.n) == ("r", 5, "fake", 4)
    assert len(samples) == LIMIT * 4
    assert all(x["seed"] == sample_seed(0, x["problem_id"], x["sample_idx"]) for x in samples)
    correct = sum(x["outcome"] == "correct" for x in samples)
    expected = sum(x["seed"] % 3 == 0 for x in samples)
    assert correct == expected > 0                           # the real grader graded the fake's boxes
    assert scores[("avg@n", 0)].value == pytest.approx(correct / len(samples))
    assert {k for m, k in scores if m == "pass@k"} == {1, 2, 3, 4}
    assert scores[("count:correct", 0)].value == correct
    assert result.scores.avg.value == pytest.approx(correct / len(samples))


def test_finished_evaluation_resumes_without_engine(tiny_model_dir, store_path, fake_factory):
    first = run(tiny_model_dir, store_path, fake_factory)
    again = run(tiny_model_dir, store_path, fake_factory)
    assert len(fake_factory.engines) == 1                    # no engine loaded the second time
    assert again.generated == 0 and again.eval_id == first.eval_id
    assert again.scores.avg == first.scores.avg


def test_raising_n_extends_and_lowering_n_reuses_a_subset(tiny_model_dir, store_path, fake_factory):
    run(tiny_model_dir, store_path, fake_factory, n=2)
    bigger = run(tiny_model_dir, store_path, fake_factory, n=4)
    assert bigger.generated == LIMIT * 2                     # only sample indices 2 and 3
    assert sorted({i for _, i in fake_factory.engines[1].generated}) == [2, 3]
    smaller = run(tiny_model_dir, store_path, fake_factory, n=1)
    assert smaller.generated == 0 and len(fake_factory.engines) == 2
    with Store(store_path) as s:
        [ev] = s.evaluations()
        assert ev.n == 4 and s.count_samples(ev.id) == LIMIT * 4
        assert {r.n for r in s.scores(ev.id)} == {1}         # scores of the latest request, from idx < 1
        first = [c for _, c, _ in s.problem_counts(ev.id, n=1)]
    assert first == [1] * LIMIT


def test_more_problems_later_only_generates_new_ones(tiny_model_dir, store_path, fake_factory):
    run(tiny_model_dir, store_path, fake_factory, limit=3)
    more = run(tiny_model_dir, store_path, fake_factory, limit=5)
    assert more.generated == 2 * 4 and more.scores.problems == 5


def test_k_larger_than_n_refused_before_anything(tiny_model_dir, store_path, fake_factory):
    with pytest.raises(ConfigError, match="pass@8 needs at least 8 samples.*n=4"):
        run(tiny_model_dir, store_path, fake_factory, ks=[8])
    assert fake_factory.engines == [] and not store_path.exists()


def test_missing_model_folder_is_one_line(tmp_path, store_path, fake_factory):
    with pytest.raises(EngineError, match="does not exist"):
        run(tmp_path / "nope", store_path, fake_factory)


def test_corrupt_store_is_one_line(tiny_model_dir, tmp_path, fake_factory):
    bad = tmp_path / "bad.db"
    bad.write_text("garbage " * 100)
    with pytest.raises(StoreError, match="bad.db"):
        run(tiny_model_dir, bad, fake_factory)


def test_engine_failure_midway_keeps_committed_samples(tiny_model_dir, store_path, fake_factory):
    class Dying:
        def __init__(self, inner):
            self.inner, self.name = inner, "fake"

        def describe(self):
            return {}

        def generate(self, requests, sampling):
            for i, c in enumerate(self.inner.generate(requests, sampling)):
                if i == 10:
                    raise RuntimeError("engine crashed")
                yield c

        def close(self):
            pass

    with pytest.raises(RuntimeError, match="engine crashed"):
        run(tiny_model_dir, store_path, lambda e, m: Dying(fake_factory(e, m)))
    with Store(store_path) as s:
        [ev] = s.evaluations(status="running")
        assert s.count_samples(ev.id) == 10                  # everything generated before the crash
    assert run(tiny_model_dir, store_path, fake_factory).generated == LIMIT * 4 - 10


def test_multiple_choice_task_records_chance_floor(tiny_model_dir, store_path, plain_fake_factory):
    data = {"gpqa_diamond": str(DATA / "gpqa_sample.jsonl")}
    [result] = evaluate(EvalRequest(str(tiny_model_dir), ["gpqa_diamond"], SamplingConfig(n=4), store=store_path, data=data, progress=False), engine_factory=plain_fake_factory)
    assert result.scores.chance_pass_at_k[1] == pytest.approx(0.25)
    assert result.scores.chance_pass_at_k[4] == pytest.approx(1 - 0.75 ** 4)
    with Store(store_path) as s:
        rows = {(r.metric, r.k) for r in s.scores(result.eval_id)}
        prov = json.loads(sqlite3.connect(store_path).execute(
            "SELECT provenance_json FROM evaluations").fetchone()[0])
    assert ("chance_pass@k", 4) in rows
    assert prov["data"]["sha256"] and prov["data"]["path"].endswith("gpqa_sample.jsonl")
    assert prov["packages"]["spsbench"] and prov["engine"]["engine"] == "fake"


# ------------------------------------------------------------------ real HF engine + real grader


def test_real_hf_engine_and_grader(tiny_model_dir, store_path):
    [result] = evaluate(EvalRequest(str(tiny_model_dir), ["arith"], SamplingConfig(n=3, max_tokens=12), engine="hf", store=store_path, limit=4, progress=False))
    assert result.generated == 12
    with Store(store_path) as s:
        [ev] = s.evaluations()
        samples = list(s.samples(ev.id))
    assert ev.engine == "hf" and ev.weights_hash and len(samples) == 12
    assert all(x["prompt_tokens"] > 0 and 0 < x["completion_tokens"] <= 12 for x in samples)
    assert {x["outcome"] for x in samples} <= {"correct", "incorrect", "no_answer"}
    assert sum(result.scores.counts.values()) == 12


def test_cli_eval_prints_table_and_results_exports(tiny_model_dir, store_path, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SPSBENCH_LEADERBOARDS", str(tmp_path / "lb"))
    code = main(["eval", str(tiny_model_dir), "--engine", "hf", "--n", "2", "--max-tokens", "8", "--limit",
                 "3", "--store", str(store_path), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "Avg@n" in out and "pass@2" in out and str(store_path) in out
    assert main(["results", "--store", str(store_path), "--samples", "--format", "csv",
                 "--out", str(tmp_path / "s.csv")]) == 0
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0].startswith("eval_id,task,model") and len([x for x in lines if x.startswith("1,arith")]) == 6
    assert main(["results", "--store", str(store_path), "--scores", "--task", "arith"]) == 0
    scores = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {s["metric"] for s in scores} >= {"avg@n", "pass@k"}


def test_cli_k_above_n_is_exit_2_one_line(tiny_model_dir, store_path, capsys):
    code = main(["eval", str(tiny_model_dir), "--engine", "hf", "--n", "4", "--k", "1,8", "--store",
                 str(store_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "k=8" in err and not store_path.exists()


def test_cli_missing_model_is_exit_2(tmp_path, store_path, capsys):
    assert main(["eval", str(tmp_path / "missing"), "--engine", "hf", "--store", str(store_path)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_eval_against_openai_compatible_server(store_path, capsys):
    from tests.openai_stub_server import StubServer, StubState

    with StubServer(StubState()) as server:
        code = main(["eval", "stub-model", "--engine", "openai", "--base-url", server.url, "--n", "2",
                     "--max-tokens", "16", "--limit", "3", "--store", str(store_path), "--quiet",
                     "--no-leaderboard"])
        requests = server.state.requests
    assert code == 0 and "stub-model" in capsys.readouterr().out
    with Store(store_path) as s:
        [ev] = s.evaluations()
        assert ev.model_path == f"{server.url}#stub-model" and ev.engine == "openai" and ev.weights_hash == ""
        assert s.count_samples(ev.id) == 6 and requests >= 6


def test_a_limit_run_records_its_problem_subset_for_the_leaderboard(tiny_model_dir, store_path, fake_factory):
    from spsbench.leaderboards.snapshot import load_snapshot

    run(tiny_model_dir, store_path, fake_factory, limit=6)
    subset = run(tiny_model_dir, store_path, fake_factory, limit=2)          # rescored, nothing generated
    assert subset.generated == 0
    with Store(store_path) as s:
        assert s.scored_problems(subset.eval_id) == {"0", "1"}
        [entry] = load_snapshot(s, "x.db").entries
    assert entry.setting.problems == 2 and [p for p, _, _ in entry.problems] == ["0", "1"]
    assert sum(entry.counts.values()) == 2 * 4                # outcome counts cover the scored problems only
    assert "2 problems" in entry.setting.describe()


def test_a_version_1_store_is_upgraded_in_place(tiny_model_dir, store_path, fake_factory):
    first = run(tiny_model_dir, store_path, fake_factory)
    con = sqlite3.connect(store_path)
    con.execute("DROP TABLE scored_problems")
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()
    with Store(store_path) as s:                               # reopened: table back, old rows read as "all"
        assert s.scored_problems(first.eval_id) is None
        assert len(list(s.samples(first.eval_id))) == LIMIT * 4
    again = run(tiny_model_dir, store_path, fake_factory)
    with Store(store_path) as s:
        assert s.scored_problems(again.eval_id) == {str(p) for p in range(LIMIT)}


# ------------------------------------------------------------------ bad command lines: one line, exit 2


@pytest.mark.parametrize(("extra", "message"), [
    (["--n", "0"], "--n: must be >= 1, got 0"),
    (["--n", "-3"], "--n: must be >= 1, got -3"),
    (["--max-tokens", "0"], "--max-tokens: must be >= 1, got 0"),
    (["--limit", "0"], "--limit: must be >= 1, got 0"),
    (["--engine-opt", "batch_size=abc"], "engine hf: option batch_size must be an integer >= 1, got 'abc'"),
    (["--engine-opt", "num_threads=0"], "engine hf: option num_threads must be an integer >= 1, got 0"),
    (["--engine-opt", "dtype=int3"], "engine hf: option dtype must be auto | bf16"),
    (["--engine-opt", "batchsize=4"], "engine hf: unknown option(s) batchsize"),
    (["--engine-opt", "batch_size"], "--engine-opt: expected KEY=VALUE"),
    (["--watch", "--interval", "-1"], "--interval: must be > 0 seconds, got -1"),
    (["--watch"], "--watch needs a run folder"),
    (["--until-idle", "5"], "--until-idle only applies with --watch"),
    (["--data", "aime25=x.jsonl"], "--data: aime25 is not among the selected tasks (arith)"),
    (["--k", "1,x"], "--k: expected comma-separated integers"),
    (["--k", "1,,2"], "--k: expected comma-separated integers"),
    (["--k", "0"], "--k: every k must be >= 1"),
])
def test_cli_bad_input_is_one_line_exit_2_before_anything_runs(tiny_model_dir, store_path, capsys, extra,
                                                                message):
    code = main(["eval", str(tiny_model_dir), "--engine", "hf", "--store", str(store_path), "--quiet",
                 "--no-leaderboard", *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("spsbench eval: error: ") and err.count("\n") == 1
    assert message in err
    assert not store_path.exists()                      # refused before the store (or an engine) was touched


def test_cli_watch_without_model_and_engine_options_of_auto(store_path, capsys):
    assert main(["eval", "--watch", "--store", str(store_path)]) == 2
    assert "--watch needs a run folder (one that holds or will hold checkpoint-*/ folders); give it as MODEL" in \
        capsys.readouterr().err
    assert main(["eval", "--engine-opt", "chunk_size=many", "--store", str(store_path)]) == 2   # auto: vllm's
    assert "engine auto: option chunk_size must be an integer >= 1, got 'many'" in capsys.readouterr().err


def test_cli_data_for_a_selected_task_is_accepted(tiny_model_dir, store_path, capsys):
    data = str(DATA / "gsm8k_sample.jsonl")
    code = main(["eval", str(tiny_model_dir), "--engine", "hf", "--tasks", "gsm8k", "--data", f"gsm8k={data}",
                 "--n", "1", "--max-tokens", "2", "--limit", "1", "--store", str(store_path), "--quiet",
                 "--no-leaderboard"])
    assert code == 0 and "gsm8k" in capsys.readouterr().out


def test_cli_store_locked_past_the_timeout_is_one_line(tiny_model_dir, store_path, capsys, monkeypatch):
    from spsbench.store import db as store_module

    Store(store_path).close()
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 300)
    holder = sqlite3.connect(store_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")                   # e.g. another process stuck in a long transaction
    try:
        code = main(["eval", str(tiny_model_dir), "--engine", "hf", "--n", "1", "--max-tokens", "2", "--limit",
                     "1", "--store", str(store_path), "--quiet", "--no-leaderboard"])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"results store {store_path} is locked: another process held its write lock for more than 0.3 s" in err


def test_cli_disk_full_is_one_line(tiny_model_dir, store_path, capsys, monkeypatch):
    from spsbench.store import db as store_module

    setup = store_module.Store._setup

    def full_disk(self):                                # the file may not grow past its current size
        setup(self)
        pages = self._con.execute("PRAGMA page_count").fetchone()[0]
        self._con.execute(f"PRAGMA max_page_count = {pages}")

    monkeypatch.setattr(store_module.Store, "_setup", full_disk)
    code = main(["eval", str(tiny_model_dir), "--engine", "hf", "--n", "4", "--max-tokens", "16", "--limit", "8",
                 "--store", str(store_path), "--quiet", "--no-leaderboard"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "disk full" in err and str(store_path) in err


# ------------------------------------------------------------------ strict vs lenient grading


class Unanchored:
    """Answers with the gold number at the end of a sentence, never in a box: strict finds no answer."""

    name = "fake"

    def __init__(self, answers):
        self.answers, self.generated, self.generated_keys = answers, 0, []

    def describe(self):
        return {"engine": self.name}

    def generate(self, requests, sampling):
        from spsbench.engines.base import Completion

        for r in requests:
            for i, seed in zip(r.sample_indices, r.seeds, strict=True):
                self.generated += 1
                self.generated_keys.append((r.key, i))
                yield Completion(r.key, i, seed, f"I counted them and got {self.answers[r.key]}", 5, 5, "stop")

    def close(self):
        pass


def test_strict_and_lenient_results_are_separate_evaluations(tiny_model_dir, store_path, fake_factory):
    from spsbench.grading import GradingPolicy

    engines = []

    def factory(engine, model):
        engines.append(Unanchored(fake_factory.answers))
        return engines[-1]

    strict = run(tiny_model_dir, store_path, factory, n=2)
    # Another policy is another evaluation, but the same prompts and seeds: the stored completions are
    # re-graded under it, and only sample indices no policy has yet are generated.
    lenient = run(tiny_model_dir, store_path, factory, n=4, grading=GradingPolicy(strict=False))
    assert lenient.eval_id != strict.eval_id and lenient.generated == LIMIT * 2
    assert sorted({i for _, i in engines[1].generated_keys}) == [2, 3]
    assert strict.scores.counts == {"no_answer": LIMIT * 2}
    assert lenient.scores.counts == {"correct": LIMIT * 4} and lenient.scores.avg.value == 1.0
    with Store(store_path) as s:
        policies = {e.id: e.grader_policy for e in s.evaluations()}
        texts = {e.id: sorted((x["problem_id"], x["sample_idx"], x["completion"]) for x in s.samples(e.id))
                 for e in s.evaluations()}
        sessions = s.sessions(lenient.eval_id)
    assert ";strict;" in policies[strict.eval_id] and ";lenient;" in policies[lenient.eval_id]
    assert texts[strict.eval_id] == [t for t in texts[lenient.eval_id] if t[1] < 2]
    assert sessions[0].provenance["regraded_from"] == [strict.eval_id] and sessions[0].samples == LIMIT * 2
    again = run(tiny_model_dir, store_path, factory, grading=GradingPolicy(strict=False))
    assert again.eval_id == lenient.eval_id and again.generated == 0 and len(engines) == 2
    strict4 = run(tiny_model_dir, store_path, factory)              # back to strict, n=4: all re-graded
    assert strict4.eval_id == strict.eval_id and strict4.generated == 0 and len(engines) == 2
    assert strict4.scores.counts == {"no_answer": LIMIT * 4}


def test_cli_lenient_flag_is_its_own_evaluation(tiny_model_dir, store_path, capsys):
    args = ["eval", str(tiny_model_dir), "--engine", "hf", "--n", "1", "--max-tokens", "4", "--limit", "2",
            "--store", str(store_path), "--quiet", "--no-leaderboard"]
    assert main([*args, "--lenient"]) == 0 and main(args) == 0
    with Store(store_path) as s:
        evals = s.evaluations()
        counts = [s.count_samples(e.id) for e in evals]
    assert sorted(e.grader_policy.split(";")[1] for e in evals) == ["lenient", "strict"] and counts == [2, 2]


def test_resume_keeps_each_sessions_provenance_and_results_exports_it(tiny_model_dir, store_path, fake_factory,
                                                                      capsys, monkeypatch):
    import spsbench.evaluation.provenance as provenance_module

    versions = iter([{"spsbench": "0.1-first"}, {"spsbench": "0.2-second"}])
    monkeypatch.setattr(provenance_module, "package_versions", lambda *names: next(versions))
    run(tiny_model_dir, store_path, fake_factory, n=2)
    run(tiny_model_dir, store_path, fake_factory, n=4)              # resumed: extends to n=4
    assert main(["results", "--store", str(store_path), "--sessions"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(r["kind"], r["n"], r["samples"], r["min_idx"], r["max_idx"], r["spsbench"]) for r in rows] == [
        ("run", 2, LIMIT * 2, 0, 1, "0.1-first"), ("run", 4, LIMIT * 2, 2, 3, "0.2-second")]
    assert json.loads(rows[0]["provenance"])["engine"]["engine"] == "fake" and rows[0]["host"]
