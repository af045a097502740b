"""The package layout: what a deployed proxy runs does not load the dev tooling (rwproxy.dev)."""

from __future__ import annotations

import subprocess
import sys


def test_running_the_proxy_does_not_load_the_dev_tooling() -> None:
    code = (
        "import sys, rwproxy.app, rwproxy.cli, rwproxy.admin.http, rwproxy.admin.sql, rwproxy.reload;"
        "print(sorted(m for m in sys.modules if m.startswith('rwproxy.dev')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_the_old_package_name_is_gone() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import importlib.util; print(importlib.util.find_spec('proxy'))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "None"
