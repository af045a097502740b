"""The import graph of the ``rwproxy`` package, read from the sources with ``ast`` (nothing imported).

    python -m rwproxy.dev.import_graph          # prints the cycles (strongly connected components)

Every import counts: module level, under ``if TYPE_CHECKING:``, and inside functions (a lazy import
that only dodges a cycle is still the cycle). ``from rwproxy.x import y`` is an edge to
``rwproxy.x.y`` when that is a module, else to ``rwproxy.x``. Importing a module also runs its
package's ``__init__``, but that is not counted as an edge: a package ``__init__`` that re-exports
its modules would otherwise put every module importing a sibling on a cycle with it.
``tests/unit/test_import_graph.py`` asserts the package has no cycle.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

__all__ = ["cycle_in", "import_graph", "main", "strongly_connected"]

ROOT = Path(__file__).resolve().parents[1]


def _modules(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = list(rel.parts)
        if "_native" in parts:
            continue
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the package modules it imports (anywhere in its source)."""
    modules = _modules(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node.level, node.module)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            for target in targets:
                while target and target not in modules:  # import a.b.c of a name inside a.b
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """The components with more than one module (Tarjan), each sorted, largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(found, key=lambda c: (-len(c), c))


def cycle_in(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One concrete cycle inside ``component``: a -> b -> ... -> a (shortest from its first module)."""
    members = set(component)
    start = component[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt: list[str] = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if w not in previous:
                    previous[w] = v
                    nxt.append(w)
        frontier = nxt
    return [start]


def main(argv: list[str] | None = None) -> int:
    graph = import_graph()
    components = strongly_connected(graph)
    if not components:
        print(f"{len(graph)} modules, no import cycle")
        return 0
    for component in components:
        print(f"cycle of {len(component)} modules: {', '.join(component)}")
        print("  e.g. " + " -> ".join(cycle_in(graph, component)))
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
