"""The package's layout is its data flow: lower layers never import higher ones, there is no import cycle,
the trainer reaches the evaluator only through its callback, the leaderboards read only the store, and no
product module imports the test fixtures. Checked statically over every import statement (module level
and inside functions), so a lazy import cannot hide a wrong-way edge."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "spsbench"

# Lowest first; a module may import from its own layer or any lower one (docs/architecture.md).
LAYERS = [
    {"errors", "validate", "paths", "io", "config", "system", "quiet", "__init__"},
    {"grading", "metrics", "stats"},
    {"tasks", "store", "models"},
    {"engines"},
    {"evaluation"},
    {"diagnostics", "leaderboards"},
    {"train"},
    {"lab", "interop", "commands", "cli", "__main__"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, module_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if module_level_only else ast.walk(tree)
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)   # `from spsbench import paths`
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def own(name: str, known: dict[str, Path]) -> str | None:
    """The spsbench module an imported name refers to (a module, or a package for `from pkg import obj`)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def test_every_top_level_module_has_a_layer():
    tops = {top(m) for m in modules()}
    assert not tops - set(LAYER), f"add {sorted(tops - set(LAYER))} to LAYERS and docs/architecture.md"


def test_imports_point_only_to_the_same_or_a_lower_layer():
    known = modules()
    wrong = []
    for name, path in known.items():
        for target in imports(path):
            if not target.startswith("spsbench") or (hit := own(target, known)) is None:
                continue
            if LAYER[top(hit)] > LAYER[top(name)]:
                wrong.append(f"{name} -> {hit}")
    assert not sorted(set(wrong))


def test_no_import_cycle_between_modules():
    known = modules()
    graph = {name: {own(t, known) for t in imports(p, module_level_only=True) if t.startswith("spsbench")} - {None}
             for name, p in known.items()}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt == node or nxt.startswith(node + ".") or node.startswith(nxt + "."):
                continue      # a package and its own modules
            if state.get(nxt) == 1:
                return [*stack, node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*stack, node])):
                return cycle
        state[node] = 2
        return None

    for name in sorted(graph):
        if name not in state:
            assert visit(name, []) is None


def test_the_trainer_reaches_the_evaluator_only_through_its_callback():
    allowed = {"spsbench.train.callbacks", "spsbench.train.eval_worker"}
    wrong = [name for name, p in modules().items() if name.startswith("spsbench.train") and name not in allowed
             and any(t.startswith("spsbench.evaluation") for t in imports(p))]
    assert not wrong


def test_the_leaderboards_read_only_the_store():
    lower = {"errors", "paths", "io", "config", "system", "quiet", "store", "metrics", "stats", "leaderboards",
             "diagnostics"}
    wrong = [f"{name} -> {t}" for name, p in modules().items() if name.startswith("spsbench.leaderboards")
             for t in imports(p) if t.startswith("spsbench.") and top(t) not in lower]
    assert not wrong


def test_no_product_module_imports_the_tests():
    wrong = [name for name, p in modules().items() if any(t.split(".")[0] == "tests" for t in imports(p))]
    assert not wrong
