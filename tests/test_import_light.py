"""The light modules must not pull in torch / transformers / vLLM (nor math-verify, for grading)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "vllm", "trl")


def imported_after(statement: str) -> set[str]:
    code = f"import json, sys; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_light_modules_do_not_import_heavy_libraries():
    modules = imported_after("import spsbench.metrics, spsbench.grading, spsbench.tasks")
    assert "spsbench.grading" in modules and "spsbench.metrics" in modules and "spsbench.tasks" in modules
    assert not [m for m in HEAVY if m in modules]


def test_grading_imports_math_verify_lazily():
    modules = imported_after("import spsbench.grading, spsbench.commands.grade")
    assert "spsbench.grading.verify" in modules and "spsbench.grading.core" in modules   # the whole chain
    assert "math_verify" not in modules and "sympy" not in modules


def test_store_similarity_and_diagnose_import_without_torch():
    """The store and the similarity measure are read by the leaderboards; diagnose loads torch lazily."""
    modules = imported_after("import spsbench.store, spsbench.diagnostics.similarity, spsbench.diagnostics.model_stats, spsbench.diagnostics.run")
    assert {"spsbench.store.schema", "spsbench.diagnostics.similarity"} <= modules
    assert not [m for m in HEAVY if m in modules]


def test_cli_and_every_stage_but_the_model_code_import_without_heavy_libraries():
    """Own modules are imported at module level; torch, transformers, vLLM, TRL and matplotlib stay lazy, so
    `spsbench --help`, the evaluator's orchestration and the leaderboards start fast."""
    modules = imported_after(
        "import spsbench.cli, spsbench.commands.eval, spsbench.commands.train, spsbench.evaluation.scan, "
        "spsbench.leaderboards.refresh, spsbench.diagnostics.run, spsbench.train.run, spsbench.train.sps")
    assert {"spsbench.evaluation.evaluate", "spsbench.engines.base", "spsbench.store.db"} <= modules
    assert not [m for m in (*HEAVY, "matplotlib", "datasets", "math_verify") if m in modules]
