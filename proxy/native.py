"""The compiled hot path: the per-query modules built with mypyc, loaded only when they match.

rwproxy is pure Python; ``python -m proxy.native_build`` (``make native``) compiles the modules
listed in ``HOT_MODULES`` with mypyc into ``proxy/_native/`` (never next to the sources, so an
edited ``.py`` can never be shadowed by an old ``.so``). At import of ``proxy`` this module checks
the build's manifest: same Python ABI, and every hot module's source hashed exactly as when it was
built. Then, and only then, an import hook serves those modules from the build. The check is all or
nothing: compiled modules call each other directly in C, so one stale module would make the others
run old code.

``RWPROXY_NATIVE``: ``auto`` (default; compiled when the build is there and fresh, else pure Python),
``0`` (always pure Python), ``1`` (compiled or fail at import, with the reason: CI uses it).

Same semantics either way; the suite runs compiled in CI and the unit tests also run pure Python.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "BUILD_DIR",
    "HOT_MODULES",
    "NativeStatus",
    "check",
    "install",
    "read_manifest",
    "source_hashes",
    "status",
]

# The modules a point select runs through (and what they call per statement). Keep this list to
# modules without import-time side effects on other modules; all of them compile as one group.
HOT_MODULES: tuple[str, ...] = (
    "proxy.frontend.session",
    "proxy.frontend.commands",
    "proxy.frontend.prepared",  # COM_STMT_EXECUTE: statement ids, parameter rewriting
    "proxy.frontend.multiplex",  # the finish_command hook (multiplexing)
    "proxy.protocol.statements",
    "proxy.backend.connection",
    "proxy.protocol.framing",
    "proxy.protocol.results",
    "proxy.protocol.whole_response",
    "proxy.router.classify",
    "proxy.router.verb_scanners",
    "proxy.router.policy",
    "proxy.router.session_state",
    "proxy.router.statement",
    "proxy.topology.model",
    "proxy.admin.digests",
    "proxy.latency",
    "proxy.stats",
    "proxy.app",  # the sessions read app.topology, app.stats, app.classifier ... per statement
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
    return PACKAGE_DIR.parent.joinpath(*module.split(".")).with_suffix(".py")


def source_hashes(modules: tuple[str, ...] = HOT_MODULES) -> dict[str, str]:
    return {m: hashlib.sha256(source_path(m).read_bytes()).hexdigest() for m in modules}


def read_manifest(build_dir: Path = BUILD_DIR) -> dict[str, Any] | None:
    try:
        manifest = json.loads((build_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def check(manifest: dict[str, Any] | None, hashes: dict[str, str], abi: str) -> str | None:
    """Why the build described by ``manifest`` must not be used (None: it may). Pure."""
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
    return None


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
    why = check(manifest, source_hashes(), abi_tag())
    files: dict[str, Path] = {}
    if why is None and manifest is not None:
        files = {name: build_dir / rel for name, rel in manifest["files"].items()}
        missing = [str(f) for f in files.values() if not f.is_file()]
        if missing:
            why = f"build incomplete: {missing[0]} is missing (make native)"
    loaded = [m for m in HOT_MODULES if m in sys.modules]
    if why is None and loaded:
        why = f"{loaded[0]} was imported before proxy.native.install()"
    if why is not None:
        if mode in ("1", "on", "true", "yes"):
            raise ImportError(f"{ENV}={mode} but the compiled hot path cannot be used: {why}")
        _status = NativeStatus(False, why)
        return _status
    sys.meta_path.insert(0, _Finder(files))
    _status = NativeStatus(True, f"mypyc build of {len(HOT_MODULES)} modules")
    return _status
