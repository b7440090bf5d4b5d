"""tracker's modules import each other without a circle (so a circle can never come back).

The graph is built from the source with ``ast``: every ``import`` of a tracker module, at
module level and inside functions (a lazy import is still a dependency), except those under
``if TYPE_CHECKING:``, which never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tracker

ROOT = Path(tracker.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The tracker module ``name`` lives in (``tracker.store.now`` -> ``tracker.store``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except what sits under ``if TYPE_CHECKING:``."""
    out: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        out.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return out


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str | None] = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(_owner(a.name, modules) for a in node.names if a.name.startswith("tracker"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            if base.startswith("tracker"):
                found.update(_owner(f"{base}.{a.name}", modules) for a in node.names)
    return {m for m in found if m and m != module}


def import_graph() -> dict[str, set[str]]:
    """tracker module -> the tracker modules it imports."""
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_imports_at_module_level_and_inside_functions() -> None:
    graph = import_graph()
    assert "tracker.launch" in graph["tracker.runs"]  # module level
    assert "tracker.search.distributed" in graph["tracker.search.optimizer"]  # inside a function
    assert "tracker.cli.progress" in graph["tracker.cli.queue"]


def test_a_circle_is_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_tracker_has_no_import_circle() -> None:
    assert cycles(import_graph()) == []


LAYERS = {  # docs/design.md "Layers": a module imports only from its own layer and those below
    7: ["tracker.testing"],
    6: ["tracker.cli", "tracker", "tracker.__main__"],
    5: ["tracker.runs", "tracker.heldout", "tracker.trials", "tracker.queue", "tracker.slurm", "tracker.search",
        "tracker.analysis", "tracker.storage", "tracker.adopt", "tracker.create", "tracker.template_paths"],
    4: ["tracker.launch", "tracker.remote"],
    3: ["tracker.execution", "tracker.project", "tracker.experiments"],
    2: ["tracker.codeset", "tracker.gitinfo", "tracker.venvs", "tracker.environment", "tracker.seeds",
        "tracker.hashing", "tracker.api", "tracker.scriptflags"],
    1: ["tracker.store", "tracker.config", "tracker.yamlio", "tracker.paths", "tracker.plugins", "tracker.secrets",
        "tracker.names", "tracker.errors"],
}
UPWARD = {("tracker.config", "tracker.execution.patterns"), ("tracker.config", "tracker.execution.targets")}
"""The named exception: the config models ask target types and output patterns to validate their options."""


def _layer(module: str) -> int:
    owners = [(len(name), level) for level, names in LAYERS.items() for name in names
              if module == name or module.startswith(name + ".")]
    assert owners, f"{module} is in no layer of docs/design.md"
    return max(owners)[1]


def test_modules_import_only_their_layer_and_below() -> None:
    graph = import_graph()
    upward = {(a, b) for a, targets in graph.items() for b in targets if _layer(b) > _layer(a)}
    assert upward == UPWARD
