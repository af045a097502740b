"""The compiled hot path: the per-query modules built with mypyc, loaded only when they match.

rwproxy is pure Python; ``python -m rwproxy.dev.native_build`` (``make native``) compiles the modules
listed in ``HOT_MODULES`` with mypyc into ``rwproxy/_native/`` (never next to the sources, so an
edited ``.py`` can never be shadowed by an old ``.so``). At import of ``proxy`` this module checks
the build's manifest: same Python ABI, and every hot module's source hashed exactly as when it was
built. Then, and only then, an import hook serves those modules from the build. The check is all or
nothing: compiled modules call each other directly in C, so one stale module would make the others
run old code.

mypyc also bakes in what it knew about the modules the hot ones import (class layouts, ``Final``
constants, enum members, signatures), so the manifest hashes those too: every ``proxy`` module the
hot modules import, directly or not (``import_closure``), and the packages they sit in. The mypy
version the build used is recorded as well; ``make native`` (``--if-stale``) rebuilds when it changed
(at run time mypy need not be installed: the deployed image uninstalls it).

``RWPROXY_NATIVE``: ``auto`` (default; compiled when the build is there and fresh, else pure Python),
``0`` (always pure Python), ``1`` (compiled or fail at import, with the reason: CI uses it).

Same semantics either way; the suite runs compiled in CI and the unit tests also run pure Python.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "BUILD_DIR",
    "HOT_MODULES",
    "NativeStatus",
    "check",
    "import_closure",
    "import_hashes",
    "install",
    "make_manifest",
    "manifest_imports",
    "read_manifest",
    "source_hashes",
    "status",
]

# The modules a point select runs through (and what they call per statement). Keep this list to
# modules without import-time side effects on other modules; all of them compile as one group.
HOT_MODULES: tuple[str, ...] = (
    "rwproxy.frontend.session",
    "rwproxy.frontend.host",  # SessionHost: what the sessions read of the app (a native base of ProxyApp)
    "rwproxy.frontend.commands",
    "rwproxy.frontend.prepared",  # COM_STMT_EXECUTE: statement ids, parameter rewriting
    "rwproxy.frontend.multiplex",  # the finish_command hook (multiplexing)
    "rwproxy.protocol.statements",
    "rwproxy.protocol.query_attributes",  # COM_QUERY of a client that negotiated query attributes
    "rwproxy.frontend.query_attributes",
    "rwproxy.backend.connection",
    "rwproxy.protocol.framing",
    "rwproxy.protocol.results",
    "rwproxy.protocol.response_phases",  # the result scanner's per-packet state machine
    "rwproxy.protocol.whole_response",
    "rwproxy.router.classify",
    "rwproxy.router.attribute_hints",  # routing hints in query attributes
    "rwproxy.router.verb_scanners",
    "rwproxy.router.policy",
    "rwproxy.router.routing_state",  # app.routing: rules, policy options (replaced whole on reload)
    "rwproxy.router.session_state",
    "rwproxy.router.statement",
    "rwproxy.topology.model",
    "rwproxy.observability.digests",
    "rwproxy.observability.latency",
    "rwproxy.observability.stats",
    "rwproxy.app",  # the sessions read app.topology, app.stats, app.classifier ... per statement
)

PACKAGE_DIR = Path(__file__).resolve().parent
BUILD_DIR = PACKAGE_DIR / "_native"
MANIFEST = "manifest.json"
ENV = "RWPROXY_NATIVE"


@dataclass(frozen=True)
class NativeStatus:
    active: bool
    detail: str  # why (not): shown at start-up, in /status and `rwproxy status`

    @property
    def label(self) -> str:
        return "compiled" if self.active else "python"

    @property
    def summary(self) -> str:
        """``compiled (mypyc build of N modules)`` or ``pure Python (why)``: for logs and the demo."""
        return f"{'compiled' if self.active else 'pure Python'} ({self.detail})"


_status = NativeStatus(False, "not checked")


def status() -> NativeStatus:
    return _status


def abi_tag() -> str:
    return f"{sys.implementation.cache_tag}{importlib.machinery.EXTENSION_SUFFIXES[0]}"


def source_path(module: str) -> Path:
    """The module's source file (a package's ``__init__.py``)."""
    base = PACKAGE_DIR.parent.joinpath(*module.split("."))
    package = base / "__init__.py"
    return package if package.is_file() else base.with_suffix(".py")


def source_hashes(modules: tuple[str, ...] = HOT_MODULES) -> dict[str, str]:
    return {m: hashlib.sha256(source_path(m).read_bytes()).hexdigest() for m in modules}


def import_hashes(modules: Iterable[str]) -> dict[str, str | None]:
    """Hashes of (non-compiled) modules, None for one whose source is gone."""
    out: dict[str, str | None] = {}
    for m in modules:
        try:
            out[m] = hashlib.sha256(source_path(m).read_bytes()).hexdigest()
        except OSError:
            out[m] = None
    return out


def _is_module(name: str) -> bool:
    base = PACKAGE_DIR.parent.joinpath(*name.split("."))
    return (base / "__init__.py").is_file() or base.with_suffix(".py").is_file()


def _imports_of(module: str) -> set[str]:
    """The ``proxy`` modules ``module`` imports (at import time or under TYPE_CHECKING: mypyc reads
    both), read from its source with ``ast``."""
    path = source_path(module)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            found.add(source)
            found.update(f"{source}.{a.name}" for a in node.names if _is_module(f"{source}.{a.name}"))
    return {
        m
        for m in found
        if (m == "rwproxy" or m.startswith("rwproxy.")) and not m.startswith("rwproxy._native")
    }


def import_closure(modules: tuple[str, ...] = HOT_MODULES) -> tuple[str, ...]:
    """Every ``proxy`` module (and package ``__init__``) the compiled ``modules`` import, directly or
    through others, minus the compiled ones themselves: what mypyc read to compile them."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        m = todo.pop()
        if m in seen or not _is_module(m):
            continue
        seen.add(m)
        parts = m.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # its packages run first
        todo += sorted(_imports_of(m))
    return tuple(sorted(seen - set(modules)))


def make_manifest(
    files: Mapping[str, str],
    hashes: Mapping[str, str],
    mypy_version: str,
    imports: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """The build's manifest: what was compiled, from which sources, against which imports
    (default: ``import_closure()`` hashed now) and mypy."""
    return {
        "abi": abi_tag(),
        "mypy": mypy_version,
        "modules": dict(hashes),
        "imports": dict(imports) if imports is not None else import_hashes(import_closure()),
        "files": dict(files),
    }


def read_manifest(build_dir: Path = BUILD_DIR) -> dict[str, Any] | None:
    try:
        manifest = json.loads((build_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def check(
    manifest: dict[str, Any] | None,
    hashes: dict[str, str],
    abi: str,
    imports: Mapping[str, str | None] | None = None,
    mypy_version: str | None = None,
) -> str | None:
    """Why the build described by ``manifest`` must not be used (None: it may). Pure.

    ``hashes``: the compiled modules' sources now; ``imports``: the modules the manifest lists under
    ``imports``, hashed now (``import_hashes``), None to skip; ``mypy_version``: the installed mypy,
    None to skip (at run time mypy need not be there)."""
    if manifest is None:
        return "no compiled build (make native)"
    if manifest.get("abi") != abi:
        return f"built for {manifest.get('abi')}, this is {abi} (make native)"
    built: dict[str, str] = manifest.get("modules", {})
    if set(built) != set(hashes):
        return "built for another module list (make native)"
    changed = sorted(m for m, h in hashes.items() if built[m] != h)
    if changed:
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        return f"stale: {changed[0]}{more} changed since the build (make native)"
    built_imports = manifest.get("imports")
    if not isinstance(built_imports, dict):
        return "built without a record of its imports, by an older rwproxy (make native)"
    if imports is not None:
        changed = sorted(m for m, h in built_imports.items() if imports.get(m) != h)
        if changed:
            more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
            return (
                f"stale: {changed[0]}{more}, imported by the compiled modules, changed since the build"
                " (make native)"
            )
    if mypy_version is not None and manifest.get("mypy") != mypy_version:
        return f"built with mypy {manifest.get('mypy')}, this is mypy {mypy_version} (make native)"
    return None


def manifest_imports(manifest: dict[str, Any] | None) -> dict[str, str | None] | None:
    """The manifest's imported modules, hashed now (for ``check``)."""
    if manifest is None or not isinstance(manifest.get("imports"), dict):
        return None
    return import_hashes(manifest["imports"])


class _Finder(importlib.abc.MetaPathFinder):
    """Serves the hot modules (and mypyc's shared group module) from the build directory."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        file = self.files.get(fullname)
        if file is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(file))
        return importlib.util.spec_from_file_location(fullname, str(file), loader=loader)


def install(build_dir: Path = BUILD_DIR) -> NativeStatus:
    """Check the build and, when it may be used, install the import hook. Called once by ``proxy``."""
    global _status
    mode = os.environ.get(ENV, "auto").strip().lower()
    if mode in ("0", "off", "false", "no"):
        _status = NativeStatus(False, f"{ENV}={mode}")
        return _status
    manifest = read_manifest(build_dir)
    why = check(manifest, source_hashes(), abi_tag(), manifest_imports(manifest))
    files: dict[str, Path] = {}
    if why is None and manifest is not None:
        files = {name: build_dir / rel for name, rel in manifest["files"].items()}
        missing = [str(f) for f in files.values() if not f.is_file()]
        if missing:
            why = f"build incomplete: {missing[0]} is missing (make native)"
    loaded = [m for m in HOT_MODULES if m in sys.modules]
    if why is None and loaded:
        why = f"{loaded[0]} was imported before rwproxy.native.install()"
    if why is not None:
        if mode in ("1", "on", "true", "yes"):
            raise ImportError(f"{ENV}={mode} but the compiled hot path cannot be used: {why}")
        _status = NativeStatus(False, why)
        return _status
    sys.meta_path.insert(0, _Finder(files))
    _status = NativeStatus(True, f"mypyc build of {len(HOT_MODULES)} modules")
    return _status
