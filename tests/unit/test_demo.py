"""rwproxy.dev.demo without a cluster: the port check, the config it writes, how it names rwproxy."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rwproxy.config import parse_config
from rwproxy.dev import demo


class _FakeCluster:
    failover_user, failover_password = "fo", "fo-secret"
    repl_user, repl_password = "repl", "repl-secret"
    app_user, app_password = "app", "app-secret"
    nodes = ()
    primary = None


def test_busy_ports_name_the_port_and_how_to_choose_another() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert not demo.port_free(port)
        messages = demo.busy_ports(0, port, 0)  # 0 = any free port: never busy
    assert len(messages) == 1
    assert f"127.0.0.1:{port}, the admin HTTP port, is in use" in messages[0]
    assert f"make demo ADMIN_PORT={port + 1}" in messages[0] and "--admin-port" in messages[0]
    assert demo.busy_ports(0, 0, 0) == []


def test_a_port_left_in_time_wait_counts_as_free() -> None:
    """The listeners bind with SO_REUSEADDR, so the check does too (else the admin port would look
    busy for a minute after every demo and move)."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first: its end stays in TIME_WAIT
        client.close()
    assert demo.port_free(port)


def test_demo_config_has_the_admin_sql_account() -> None:
    text = demo.demo_config_text(
        _FakeCluster(), 6033, 9306, admin_sql_port=6032, admin_users=[("admin", "pw")], admin_token="t"
    )
    text += '\n[[servers]]\nname = "n1"\nhost = "127.0.0.1"\nport = 3306\n'
    config = parse_config(text, "<demo>")
    assert config.admin.sql_address == ("127.0.0.1", 6032)
    assert [u.name for u in config.admin.users] == ["admin"]
    assert config.admin.http_address == ("127.0.0.1", 9306)


def test_rwproxy_command_is_the_venv_path_when_rwproxy_is_not_on_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bindir = tmp_path / ".venv" / "bin"
    bindir.mkdir(parents=True)
    exe = bindir / "rwproxy"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(exe), "demo"])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert demo.rwproxy_command() == os.path.join(".venv", "bin", "rwproxy")
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin")
    assert demo.rwproxy_command() == "rwproxy"


def test_rwproxy_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "rwproxy", "--version"], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.startswith("rwproxy ") and out.stdout.split()[1][0].isdigit(), out.stdout
