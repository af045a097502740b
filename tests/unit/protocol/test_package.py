"""Package rules: sans-I/O (no sockets, asyncio, clock or other proxy subpackages), ``__all__`` everywhere."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import rwproxy.protocol

PACKAGE = Path(rwproxy.protocol.__file__).resolve().parent
MODULES = sorted(p for p in PACKAGE.glob("*.py"))
FORBIDDEN = {"asyncio", "socket", "time", "selectors", "ssl", "threading", "trio", "anyio"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_io_imports(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
            if name.startswith("rwproxy."):
                assert name.startswith("rwproxy.protocol"), f"{path.name} imports {name}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_all_is_declared_and_resolves(path: Path) -> None:
    name = "rwproxy.protocol" if path.stem == "__init__" else f"rwproxy.protocol.{path.stem}"
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported, f"{name} has no __all__"
    assert len(set(exported)) == len(exported)
    for item in exported:
        assert hasattr(module, item), f"{name}.__all__ lists missing {item}"
