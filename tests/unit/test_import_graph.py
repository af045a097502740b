"""The package's import graph (rwproxy.dev.import_graph, read with ast): nothing imports the app, and
the only import cycles are the two known ones below, each inside one package.

Every import counts: module level, under ``if TYPE_CHECKING:`` and inside functions."""

from __future__ import annotations

from pathlib import Path

from rwproxy.dev.import_graph import cycle_in, import_graph, strongly_connected

# Who may import rwproxy.app: the entry points that build a ProxyApp. Everything else gets a narrow
# view of it (rwproxy.frontend.host, rwproxy.failover.ports, rwproxy.admin.ports, ...).
APP_IMPORTERS = {"rwproxy.cli", "rwproxy.dev.demo"}

# Cycles left, each confined to one package, with the reason it is there.
KNOWN_CYCLES = {
    # The client session's command loop is split over modules (commands, send_path, backend_link,
    # handshake, ...) that take the ClientSession they serve as an argument (imported under
    # TYPE_CHECKING for its type) while the session calls them.
    "rwproxy.frontend.": "the session and the modules of its command loop",
    # The failover controller's switchover, RDS and report steps take the controller (type only).
    "rwproxy.failover.": "the failover controller and its steps",
}


def _describe(graph: dict[str, set[str]], component: list[str]) -> str:
    return f"{len(component)} modules: " + " -> ".join(cycle_in(graph, component))


def test_only_the_entry_points_import_the_app() -> None:
    graph = import_graph()
    importers = {m for m, targets in graph.items() if "rwproxy.app" in targets}
    assert importers <= APP_IMPORTERS, f"import rwproxy.app from {sorted(importers - APP_IMPORTERS)}"


def test_no_cycle_goes_through_the_app() -> None:
    graph = import_graph()
    for component in strongly_connected(graph):
        assert "rwproxy.app" not in component, _describe(graph, component)


def test_the_only_cycles_are_the_known_ones() -> None:
    graph = import_graph()
    for component in strongly_connected(graph):
        prefixes = [p for p in KNOWN_CYCLES if all(m.startswith(p) for m in component)]
        assert prefixes, f"a new import cycle: {_describe(graph, component)}"


def _package(tmp: Path, files: dict[str, str]) -> Path:
    root = tmp / "pkg"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_every_kind_of_import_is_an_edge(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from pkg import b\n",
            "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.c import C\n",
            "c.py": "def f():\n    from . import d\n",
            "d.py": "import pkg.sub.e\n",
            "sub/__init__.py": "",
            "sub/e.py": "from ..a import thing\nimport os\n",
            "lone.py": "import pkg.a as alias\n",
        },
    )
    graph = import_graph(root)
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.b"] == {"pkg.c"}  # under TYPE_CHECKING
    assert graph["pkg.c"] == {"pkg.d"}  # inside a function, relative
    assert graph["pkg.d"] == {"pkg.sub.e"}
    assert graph["pkg.sub.e"] == {"pkg.a"}  # a name of pkg.a, two levels up; os is not ours
    [component] = strongly_connected(graph)
    assert component == ["pkg.a", "pkg.b", "pkg.c", "pkg.d", "pkg.sub.e"]
    assert cycle_in(graph, component) == ["pkg.a", "pkg.b", "pkg.c", "pkg.d", "pkg.sub.e", "pkg.a"]


def test_an_acyclic_package_has_no_component(tmp_path: Path) -> None:
    root = _package(tmp_path, {"__init__.py": "", "a.py": "from pkg import b\n", "b.py": "import json\n"})
    assert strongly_connected(import_graph(root)) == []
