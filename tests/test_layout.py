"""The package's layout is its data flow: lower layers never import higher ones, there is no import cycle,
the trainer reaches the evaluator only through its callback, the leaderboards read only the store, and no
product module imports the test fixtures. Checked statically over every import statement (module level
and inside functions), so a lazy import can hide neither a wrong-way edge nor a cycle. Also: few `Any`
annotations where the package's own type is meant."""

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


def type_checking_only(node: ast.AST) -> bool:
    """`if TYPE_CHECKING:`: imports for annotations only, never run (how a module names a type it may not import)."""
    return isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def walk(tree: ast.AST) -> list[ast.AST]:
    """Every node, functions' bodies included, except what only a type checker reads."""
    out, todo = [], [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        todo += [child for child in ast.iter_child_nodes(node) if not type_checking_only(child)]
    return out


def imports(path: Path, module_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if module_level_only else walk(tree)
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


# Import cycles known when this check started reading function-local imports, each to be removed by the
# branch named beside it (the lead deletes the entry when that branch is merged).
KNOWN_CYCLES: set[frozenset[str]] = set()      # none: a cycle found is a failure


def import_graph(module_level_only: bool = False) -> dict[str, set[str]]:
    """Module -> the spsbench modules (or packages) it imports; lazy (function-local) imports included
    unless `module_level_only`."""
    known = modules()
    return {name: {own(t, known) for t in imports(p, module_level_only) if t.startswith("spsbench")} - {None}
            for name, p in known.items()}


def find_cycle(graph: dict[str, set[str]], known_cycles: set[frozenset[str]] = frozenset()) -> list[str] | None:
    """One import cycle (the modules along it, first repeated last), or None; an edge between two modules
    of a known cycle is not followed."""
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt == node or nxt.startswith(node + ".") or node.startswith(nxt + "."):
                continue      # a package and its own modules
            if frozenset({node, nxt}) in known_cycles:
                continue
            if state.get(nxt) == 1:
                return [*stack, node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*stack, node])):
                return cycle
        state[node] = 2
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name, [])):
            return cycle
    return None


def test_no_import_cycle_between_modules_lazy_imports_included():
    assert find_cycle(import_graph(), KNOWN_CYCLES) is None


def test_the_cycle_check_sees_a_cycle_through_a_lazy_import(tmp_path):
    lazy = tmp_path / "b.py"
    lazy.write_text("from typing import TYPE_CHECKING\nimport spsbench.c\n\nif TYPE_CHECKING:\n    import spsbench.d\n\n"
                    "def f():\n    from spsbench import a\n", encoding="utf-8")
    assert imports(lazy, module_level_only=True) == {"typing", "typing.TYPE_CHECKING", "spsbench.c"}
    # the function-local import too; not the one only a type checker reads
    assert imports(lazy) == {"typing", "typing.TYPE_CHECKING", "spsbench.c", "spsbench", "spsbench.a"}
    graph = {"spsbench.a": {"spsbench.b"}, "spsbench.b": {"spsbench.c"}, "spsbench.c": set()}
    assert find_cycle(graph) is None
    graph["spsbench.b"].add("spsbench.a")
    assert find_cycle(graph) == ["spsbench.a", "spsbench.b", "spsbench.a"]
    assert find_cycle(graph, {frozenset({"spsbench.a", "spsbench.b"})}) is None


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


# Parameter (and dataclass field) names that, in this package, hold one of its own types: a store, an
# evaluation row, a task spec, training tags, a grading policy, a sampling setting, an engine, a config...
OWN_TYPE_NAMES = {"store", "db", "ev", "row", "spec", "task", "problem", "tags", "grading", "policy", "sampling",
                  "key", "scores", "summary", "snap", "snapshot", "entry", "request", "req", "result", "results",
                  "report", "plan", "config", "cfg", "engine", "completion", "target", "setting", "view"}
MAX_OWN_ANY = 20


def own_type_anys(path: Path) -> list[str]:
    """`name: Any` (or `Any | None`) where `name` is one of OWN_TYPE_NAMES: a parameter or a class field."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            named = [(a.arg, a.annotation) for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
        elif isinstance(node, ast.ClassDef):
            named = [(s.target.id, s.annotation) for s in node.body
                     if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)]
        else:
            continue
        out += [f"{path.parent.name}/{path.name}:{node.lineno} {name}" for name, annotation in named
                if name in OWN_TYPE_NAMES and annotation is not None
                and ast.unparse(annotation).replace(" ", "") in ("Any", "Any|None", "Optional[Any]", "'Any'")]
    return out


def test_the_package_s_own_types_are_annotated_as_themselves():
    """Fewer than MAX_OWN_ANY `Any` on names that hold one of the package's own types (`store: Store`, not
    `store: Any`; a `TYPE_CHECKING` import where a runtime one would climb a layer). A heuristic by name."""
    found = [hit for p in sorted(PACKAGE.rglob("*.py")) for hit in own_type_anys(p)]
    assert len(found) < MAX_OWN_ANY, "\n".join(found)


def test_the_any_count_sees_parameters_and_fields(tmp_path):
    code = tmp_path / "m.py"
    code.write_text("from typing import Any\n\nclass Plan:\n    spec: Any\n    n: Any\n\n"
                    "def f(store: Any, value: Any, *, tags: Any | None = None, db: Store) -> None: ...\n",
                    encoding="utf-8")
    assert [hit.split()[-1] for hit in own_type_anys(code)] == ["spec", "store", "tags"]
