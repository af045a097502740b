"""The compiled hot path (rwproxy.native): when a build may be used, and that CI really uses it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from rwproxy import native

HASHES = {m: f"h-{m}" for m in native.HOT_MODULES}
ABI = "cpython-311.cpython-311-x86_64-linux-gnu.so"


IMPORTS: dict[str, str | None] = {"rwproxy.protocol.constants": "c1", "rwproxy.observability.metrics": "m1"}


def manifest(**changes: object) -> dict[str, object]:
    m: dict[str, object] = {
        "abi": ABI,
        "mypy": "1.11.2",
        "modules": dict(HASHES),
        "imports": dict(IMPORTS),
        "files": {},
    }
    m.update(changes)
    return m


def test_a_matching_build_may_be_used() -> None:
    assert native.check(manifest(), HASHES, ABI) is None
    assert native.check(manifest(), HASHES, ABI, IMPORTS, "1.11.2") is None


@pytest.mark.parametrize(
    ("m", "reason"),
    [
        (None, "no compiled build"),
        (manifest(abi="cpython-312.so"), "built for cpython-312.so"),
        (manifest(modules={"rwproxy.frontend.session": "x"}), "another module list"),
        (
            manifest(modules={**HASHES, "rwproxy.router.policy": "old"}),
            "stale: rwproxy.router.policy changed since the build",
        ),
        (
            manifest(
                modules={**HASHES, "rwproxy.router.policy": "old", "rwproxy.observability.latency": "old"}
            ),
            "stale: rwproxy.observability.latency and 1 more changed",
        ),
        # an imported, not compiled, module changed: mypyc compiled against its old layout
        (
            manifest(imports={**IMPORTS, "rwproxy.protocol.constants": "c0"}),
            "stale: rwproxy.protocol.constants, imported by the compiled modules, changed",
        ),
        (manifest(imports={**IMPORTS, "proxy.gone": "g1"}), "stale: proxy.gone, imported by"),
        (manifest(imports=None), "without a record of its imports"),
        (manifest(mypy="1.10.0"), "built with mypy 1.10.0, this is mypy 1.11.2"),
    ],
)
def test_a_build_that_does_not_match_is_refused_with_the_reason(
    m: dict[str, object] | None, reason: str
) -> None:
    imports = native.manifest_imports(m) if m is not None and m.get("imports") is None else IMPORTS
    why = native.check(m, HASHES, ABI, imports, "1.11.2")
    assert why is not None and reason in why and "make native" in why


def test_source_hashes_follow_the_sources() -> None:
    hashes = native.source_hashes()
    assert set(hashes) == set(native.HOT_MODULES)
    assert all(native.source_path(m).is_file() for m in native.HOT_MODULES)
    assert len(set(hashes.values())) == len(hashes)  # sha256 of different files


def test_the_manifest_covers_what_the_compiled_modules_import() -> None:
    closure = native.import_closure()
    assert not set(closure) & set(native.HOT_MODULES)
    # direct imports of hot modules (framing -> constants, session -> metrics) and indirect ones
    # (rwproxy.app -> rwproxy.topology.monitor -> rwproxy.topology.probe), plus the packages they sit in
    for module in (
        "rwproxy.protocol.constants",
        "rwproxy.observability.metrics",
        "rwproxy.topology.probe",
        "rwproxy",
        "rwproxy.router",
    ):
        assert module in closure
    assert all(native.source_path(m).is_file() for m in closure)
    m = native.make_manifest({}, native.source_hashes(), "1.11.2")
    assert m["mypy"] == "1.11.2" and m["abi"] == native.abi_tag()
    assert set(m["imports"]) == set(closure) and None not in m["imports"].values()
    assert (
        native.check(m, native.source_hashes(), native.abi_tag(), native.manifest_imports(m), "1.11.2")
        is None
    )
    # editing one imported module makes the build stale
    m["imports"]["rwproxy.protocol.constants"] = "edited"
    why = native.check(m, native.source_hashes(), native.abi_tag(), native.manifest_imports(m))
    assert why is not None and "rwproxy.protocol.constants, imported by the compiled modules" in why


def test_if_stale_rebuilds_for_another_mypy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rwproxy.dev import native_build

    m = native.make_manifest({}, native.source_hashes(), "0.0.1")
    (tmp_path / native.MANIFEST).write_text(json.dumps(m))
    built: list[Path] = []
    monkeypatch.setattr(native_build, "build", lambda out, **kw: built.append(out) or out)
    assert native_build.main(["--if-stale", "--out", str(tmp_path)]) == 0
    assert built == [tmp_path]  # mypy is installed (a dev dependency) and is not 0.0.1
    m["mypy"] = native_build.mypy_version()
    (tmp_path / native.MANIFEST).write_text(json.dumps(m))
    assert native_build.main(["--if-stale", "--out", str(tmp_path)]) == 0
    assert built == [tmp_path]  # up to date: not built again


def test_without_a_build_auto_runs_pure_python_and_1_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = native.status()
    finders = list(sys.meta_path)
    try:
        monkeypatch.setenv(native.ENV, "auto")
        st = native.install(tmp_path)
        assert not st.active and "no compiled build" in st.detail
        assert st.summary == f"pure Python ({st.detail})" and st.label == "python"
        monkeypatch.setenv(native.ENV, "1")
        with pytest.raises(ImportError, match="no compiled build"):
            native.install(tmp_path)
        (tmp_path / native.MANIFEST).write_text(json.dumps({"abi": native.abi_tag(), "modules": {}}))
        monkeypatch.setenv(native.ENV, "auto")
        assert "another module list" in native.install(tmp_path).detail
        monkeypatch.setenv(native.ENV, "0")
        assert native.install(tmp_path).detail == f"{native.ENV}=0"
        assert sys.meta_path == finders  # nothing installed
    finally:
        native._status = before


@pytest.mark.skipif(os.environ.get(native.ENV) != "1", reason="only when RWPROXY_NATIVE=1 (make test)")
def test_the_suite_runs_on_the_compiled_build() -> None:
    import rwproxy.frontend.session
    import rwproxy.router.policy

    assert native.status().active, native.status().detail
    assert native.status().summary.startswith("compiled (mypyc build of ")
    for module in (rwproxy.frontend.session, rwproxy.router.policy):
        assert str(module.__file__).endswith(native.abi_tag().split(".", 1)[1]), module.__file__
        assert str(native.BUILD_DIR) in str(module.__file__)
