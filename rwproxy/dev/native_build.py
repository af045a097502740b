"""Build the compiled hot path: ``python -m rwproxy.dev.native_build`` (``make native``).

Compiles ``rwproxy.native.HOT_MODULES`` with mypyc (one group, shared library ``rwproxy_native``) into
``rwproxy/_native/`` with a manifest of the sources' hashes; ``rwproxy.native`` loads the build only
while every source still matches. Needs a C compiler and the Python headers (``apt-get install gcc
python3-dev``). Takes about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rwproxy.native import (
    BUILD_DIR,
    HOT_MODULES,
    MANIFEST,
    PACKAGE_DIR,
    abi_tag,
    check,
    import_closure,
    import_hashes,
    make_manifest,
    manifest_imports,
    read_manifest,
    source_hashes,
    source_path,
)

GROUP = "rwproxy_native"


def mypy_version() -> str | None:
    """The installed mypy (mypyc ships with it), None when it is not installed."""
    from importlib import metadata

    try:
        return metadata.version("mypy")
    except metadata.PackageNotFoundError:
        return None


def build(out: Path = BUILD_DIR, *, jobs: int | None = None, quiet: bool = False) -> Path:
    """Compile into a temp dir, then swap it in as ``out`` (a half-built tree is never used)."""
    from mypyc.build import mypycify  # dev dependency: mypy ships mypyc
    from setuptools import Distribution

    hashes = source_hashes()
    imports = import_hashes(import_closure())
    work = Path(tempfile.mkdtemp(prefix="rwproxy-native-"))
    try:
        # Compile a copy of the package, laid out as in the repository: the same for a checkout and
        # for an installed copy (whose parent directory, site-packages, must not be mypy's cwd).
        src = work / "src"
        shutil.copytree(
            PACKAGE_DIR, src / "rwproxy", ignore=shutil.ignore_patterns("_native*", "__pycache__")
        )
        with contextlib.chdir(src):  # module names come from these relative paths
            paths = [str(source_path(m).relative_to(PACKAGE_DIR.parent)) for m in HOT_MODULES]
            exts = mypycify(
                ["--ignore-missing-imports", *paths],
                opt_level="3",
                debug_level="0",
                group_name=GROUP,
                target_dir=str(work / "c"),
            )
            dist = Distribution({"name": "rwproxy-native", "ext_modules": exts})
            cmd = dist.get_command_obj("build_ext")
            cmd.build_lib = str(work / "lib")
            cmd.build_temp = str(work / "tmp")
            cmd.parallel = jobs or os.cpu_count() or 1
            if quiet:
                dist.verbose = 0
            dist.run_command("build_ext")
        if source_hashes() != hashes or import_hashes(imports) != imports:
            raise RuntimeError("a hot module or one it imports changed during the build; run it again")
        lib = work / "lib"
        files = {}
        for so in sorted(lib.rglob("*.so")):
            rel = so.relative_to(lib)
            name = ".".join(rel.parts).split(".cpython")[0].split(".abi3")[0]
            if rel.name.startswith(GROUP):
                name = f"{GROUP}__mypyc"
            files[name] = str(rel)
        expected = {*HOT_MODULES, f"{GROUP}__mypyc"}
        if set(files) != expected:
            raise RuntimeError(f"the build made {sorted(files)}, expected {sorted(expected)}")
        manifest = make_manifest(files, hashes, mypy_version() or "?", imports)
        manifest["built_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        (lib / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        old = out.with_name(out.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if out.exists():
            out.rename(old)
        lib.rename(out)
        shutil.rmtree(old, ignore_errors=True)
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--out", type=Path, default=BUILD_DIR)
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--if-stale", action="store_true", help="do nothing while the build matches the sources")
    args = ap.parse_args(argv)
    if args.if_stale:
        manifest = read_manifest(args.out)
        why = check(manifest, source_hashes(), abi_tag(), manifest_imports(manifest), mypy_version())
        if why is None:
            print(f"compiled hot path up to date ({args.out})")
            return 0
        print(f"compiling the hot path: {why}")
    t0 = time.monotonic()
    try:
        out = build(args.out, jobs=args.jobs, quiet=args.quiet)
    except Exception as exc:  # compiler missing, a type error mypyc refuses, ...
        print(f"native build failed: {exc}", file=sys.stderr)
        return 1
    print(f"compiled {len(HOT_MODULES)} hot modules into {out} in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
