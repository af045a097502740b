"""``python -m rwproxy`` as a user runs it: ``check-config``, ``explain``, ``run`` (with signals and
graceful shutdown) and ``demo`` (its own cluster, cleaned up on Ctrl-C)."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pymysql
import pytest

from rwproxy.dev.cluster import Cluster, free_port
from rwproxy.dev.demo import demo_config_text

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "rwproxy.example.toml"
GRACE = 5.0


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


def rwproxy(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rwproxy", *args],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


# -- check-config ----------------------------------------------------------------------------------


def test_check_config_prints_the_effective_config_with_secrets_masked() -> None:
    res = rwproxy("check-config", str(EXAMPLE))
    assert res.returncode == 0, res.stderr
    assert "OK" in res.stderr
    out = res.stdout
    for secret in ("app-secret", "report-secret", "3C5F7C2A44FC71CBE9F2C453939498E535A8136E"):
        assert secret not in out, f"{secret!r} printed by check-config"
    effective = tomllib.loads(out)  # the effective config is itself TOML
    assert effective["users"], effective
    for user in effective["users"]:
        for key in ("password", "password_hash", "backend_password"):
            if key in user:
                assert user[key] == "***", (key, user)
    assert effective["users"][0]["password"] == "***"
    assert effective["users"][1]["password_hash"] == "***"
    # Defaults are filled in, not only what the file says.
    assert effective["proxy"]["max_connections"] > 0
    assert [s["name"] for s in effective["servers"]] == ["db1", "db2", "db3"]


MINIMAL = """\
[proxy]
listen = ["127.0.0.1:6033"]
{proxy_extra}

[[users]]
name = "app"
password = "app-secret"

[[servers]]
name = "db1"
host = "127.0.0.1"
port = {port}
role = "primary"
"""


@pytest.mark.parametrize(
    ("proxy_extra", "port", "key", "reason"),
    [
        ("shutdown_grace = 3.0", "3306", "proxy.shutdown_grace", "shutdown_grace_seconds"),
        ("", "70000", "servers[0].port", "70000"),
        ("", '"3306"', "servers[0].port", "integer"),
    ],
    ids=["unknown-key", "port-out-of-range", "port-not-an-integer"],
)
def test_check_config_rejects_a_broken_file(
    tmp_path: Path, proxy_extra: str, port: str, key: str, reason: str
) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(MINIMAL.format(proxy_extra=proxy_extra, port=port))
    res = rwproxy("check-config", str(path))
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert key in res.stderr, res.stderr
    assert reason in res.stderr, res.stderr
    assert str(path) in res.stderr
    assert "Traceback" not in res.stderr
    assert res.stdout == ""


def test_check_config_minimal_file_is_ok(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text(MINIMAL.format(proxy_extra="", port="3306"))
    res = rwproxy("check-config", str(path))
    assert res.returncode == 0, res.stderr
    assert tomllib.loads(res.stdout)["users"][0]["password"] == "***"


def test_check_config_missing_file(tmp_path: Path) -> None:
    res = rwproxy("check-config", str(tmp_path / "nope.toml"))
    assert res.returncode == 2
    assert "nope.toml" in res.stderr
    assert "Traceback" not in res.stderr


# -- explain ---------------------------------------------------------------------------------------


def _route_line(out: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith("route:")]
    assert len(lines) == 1, out
    return lines[0].removeprefix("route:").strip()


def test_explain_locking_read_goes_to_the_primary() -> None:
    res = rwproxy("explain", "SELECT * FROM t FOR UPDATE")
    assert res.returncode == 0, res.stderr
    route = _route_line(res.stdout)
    assert route.split()[0] == "primary", res.stdout
    assert "FOR UPDATE" in route or "lock" in route.lower(), route  # the reason


def test_explain_plain_read_goes_to_a_replica() -> None:
    res = rwproxy("explain", "SELECT 1")
    assert res.returncode == 0, res.stderr
    route = _route_line(res.stdout)
    assert route.split()[0] == "replica", res.stdout
    assert "primary" not in route


def test_explain_with_config_applies_routing_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        MINIMAL.format(proxy_extra="", port="3306")
        + '\n[[servers]]\nname = "db2"\nhost = "127.0.0.1"\nport = 3307\nrole = "replica"\n'
        + '\n[[routing.rules]]\nname = "fresh-stock"\nmatch_regex = "FROM stock"\nroute = "primary"\n'
    )
    ruled = rwproxy("explain", "--config", str(path), "SELECT qty FROM stock WHERE id = 1")
    assert ruled.returncode == 0, ruled.stderr
    assert _route_line(ruled.stdout).split()[0] == "primary", ruled.stdout
    other = rwproxy("explain", "--config", str(path), "SELECT qty FROM orders WHERE id = 1")
    assert other.returncode == 0, other.stderr
    assert _route_line(other.stdout).split()[0] == "replica", other.stdout


# -- run -------------------------------------------------------------------------------------------


@dataclass
class Running:
    proc: subprocess.Popen[str]
    port: int
    log: Path
    host: str = "127.0.0.1"
    extra: dict[str, Any] = field(default_factory=dict)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _wait_listening(r: Running, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if r.proc.poll() is not None:
            pytest.fail(f"rwproxy exited with {r.proc.returncode} before listening:\n{r.log_text()}")
        if _accepts(r.host, r.port):
            return
        time.sleep(0.05)
    pytest.fail(f"rwproxy did not listen on {r.port} within {timeout} s:\n{r.log_text()}")


@pytest.fixture
def run_proxy(cluster: Cluster, tmp_path: Path) -> Iterator[Running]:
    """``python -m rwproxy run`` in front of the session cluster, on a free port."""
    port = free_port()
    config = demo_config_text(cluster, port).replace(
        "[proxy]\n", f"[proxy]\nshutdown_grace_seconds = {GRACE}\n", 1
    )
    assert f"shutdown_grace_seconds = {GRACE}" in config
    path = tmp_path / "rwproxy.toml"
    path.write_text(config)
    log = tmp_path / "rwproxy.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rwproxy", "run", "--config", str(path)],
            cwd=REPO,
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    r = Running(proc, port, log)
    try:
        _wait_listening(r)
        yield r
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _client(r: Running, cluster: Cluster, **kw: Any) -> pymysql.Connection:
    args: dict[str, Any] = {
        "host": r.host,
        "port": r.port,
        "user": cluster.app_user,
        "password": cluster.app_password,
        "database": "rwtest",
        "autocommit": True,
        "connect_timeout": 5,
        "read_timeout": 30,
    }
    args.update(kw)
    return pymysql.connect(**args)


def test_run_serves_and_exits_on_sigterm_when_idle(run_proxy: Running, cluster, server_ids) -> None:
    r = run_proxy
    conn = _client(r, cluster)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@server_id")
            assert cur.fetchone()[0] != server_ids["primary"]
            cur.execute("BEGIN")
            cur.execute("SELECT @@server_id")
            assert cur.fetchone()[0] == server_ids["primary"]
            cur.execute("COMMIT")
        start = time.monotonic()
        r.proc.send_signal(signal.SIGTERM)
        try:
            rc = r.proc.wait(GRACE)
        except subprocess.TimeoutExpired:
            pytest.fail(f"rwproxy still running {GRACE} s after SIGTERM with an idle client:\n{r.log_text()}")
        assert rc == 0, r.log_text()
        assert time.monotonic() - start < GRACE
        assert "Traceback" not in r.log_text(), r.log_text()
        # The idle client was disconnected.
        with pytest.raises((pymysql.err.OperationalError, pymysql.err.InterfaceError)), conn.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def test_run_sigterm_lets_a_running_statement_finish(run_proxy: Running, cluster) -> None:
    r = run_proxy
    conn = _client(r, cluster)
    outcome: dict[str, Any] = {}

    def sleeper() -> None:
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT SLEEP(2), 'done'")
                outcome["rows"] = cur.fetchall()
        except pymysql.err.MySQLError as exc:
            outcome["error"] = exc
        outcome["at"] = time.monotonic()

    try:
        t = threading.Thread(target=sleeper)
        t.start()
        time.sleep(0.5)
        signalled = time.monotonic()
        r.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        # Shutting down: no new clients, but the running statement goes on.
        assert r.proc.poll() is None, "rwproxy exited without waiting for the running statement"
        assert not _accepts(r.host, r.port), "rwproxy still accepts connections after SIGTERM"
        t.join(10)
        assert not t.is_alive()
        assert outcome.get("rows") == ((0, "done"),), (outcome, r.log_text())
        try:
            rc = r.proc.wait(GRACE + 5)
        except subprocess.TimeoutExpired:
            pytest.fail(f"rwproxy did not exit after the statement finished:\n{r.log_text()}")
        exited = time.monotonic()
        assert rc == 0, r.log_text()
        assert exited - signalled < GRACE + 2, "rwproxy waited for the whole grace period"
        assert "Traceback" not in r.log_text(), r.log_text()
    finally:
        with contextlib.suppress(Exception):
            conn.close()


# -- demo ------------------------------------------------------------------------------------------

_CONNECT = re.compile(r"^\s*(?:mariadb|mysql) -h(\S+) -P(\d+) -u(\S+) -p(\S+) (\S+)\s*$")
_NODE_ROW = re.compile(r"^\s+(node\d+)\s+(primary|replica)\S*\s+(\S+):(\d+)\s+(\d+)\s+(\d+)\s+(/\S+)\s*$")


def _pump(stream: IO[str], lines: queue.Queue[str | None], sink: list[str]) -> None:
    for line in stream:
        sink.append(line)
        lines.put(line)
    lines.put(None)


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1][:1] != "Z"
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


_ADMIN_SQL = re.compile(r"^\s*SQL:\s+mariadb -h(\S+) -P(\d+) -u(\S+) -p(\S+) rwproxy\s*$")
_ADMIN_HTTP = re.compile(r"^\s*HTTP:\s+(http://\S+)/status\b")


def test_demo_refuses_a_busy_port_before_starting_the_cluster() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "rwproxy", "demo", "--port", str(port), "--admin-port", "0"],
            cwd=REPO,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 2, out
    assert f"127.0.0.1:{port}, the client port (the proxy), is in use" in out.stderr
    assert f"make demo PORT={port + 1}" in out.stderr and f"--port {port + 1}" in out.stderr
    assert "starting a local replication cluster" not in out.stdout  # nothing was started
    assert "Traceback" not in out.stderr


def test_demo_runs_its_own_cluster_and_cleans_up_on_ctrl_c(cluster: Cluster) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rwproxy",
            "demo",
            "--port",
            str(port),
            "--admin-port",
            str(free_port()),
            "--admin-sql-port",
            str(free_port()),
        ],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    output: list[str] = []
    threading.Thread(target=_pump, args=(proc.stdout, lines, output), daemon=True).start()
    nodes: dict[str, dict[str, Any]] = {}
    try:
        connect = None
        admin_sql: tuple[str, ...] | None = None
        admin_url: str | None = None
        deadline = time.monotonic() + 120
        while connect is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail("demo did not print its connect command:\n" + "".join(output))
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail(f"demo exited ({proc.wait()}) before it was ready:\n" + "".join(output))
            if m := _NODE_ROW.match(line):
                name, role, host, nport, sid, pid, datadir = m.groups()
                nodes[name] = {
                    "role": role,
                    "port": int(nport),
                    "server_id": int(sid),
                    "pid": int(pid),
                    "datadir": datadir,
                }
            if m := _ADMIN_SQL.match(line):
                admin_sql = m.groups()
            if m := _ADMIN_HTTP.match(line):
                admin_url = m.group(1)
            if (m := _CONNECT.match(line)) and int(m.group(2)) == port:
                connect = m.groups()
        # the rest of the banner: admin endpoints come after the connect line
        while True:  # (read from the queue: log lines may follow the banner at any time)
            line = lines.get(timeout=max(deadline - time.monotonic(), 1))
            assert line is not None, "".join(output)
            if m := _ADMIN_SQL.match(line):
                admin_sql = m.groups()
            if m := _ADMIN_HTTP.match(line):
                admin_url = m.group(1)
            if "Press Ctrl-C" in line:
                break
        host, cport, user, password, db = connect
        assert int(cport) == port
        assert len(nodes) == 3, "".join(output)
        primary = [n for n in nodes.values() if n["role"] == "primary"]
        replicas = [n for n in nodes.values() if n["role"] == "replica"]
        assert len(primary) == 1 and len(replicas) == 2, nodes
        base_dirs = {str(Path(n["datadir"]).parents[1]) for n in nodes.values()}
        assert len(base_dirs) == 1, base_dirs
        base_dir = base_dirs.pop()
        assert Path(base_dir).name.startswith("rwproxy-cluster-"), base_dir
        assert Path(base_dir).is_dir()
        session_ports = {n.port for n in cluster.nodes}
        assert not session_ports & {n["port"] for n in nodes.values()}, "the demo reused the session cluster"

        conn = pymysql.connect(
            host=host,
            port=port,
            user=user,
            password=password,
            database=db,
            autocommit=True,
            connect_timeout=5,
        )
        try:
            with conn.cursor() as cur:
                for _ in range(4):
                    cur.execute("SELECT @@server_id, @@port, @@datadir")
                    sid, sport, datadir = cur.fetchone()
                    match = [n for n in replicas if n["port"] == sport]
                    assert match, (sport, nodes)
                    assert match[0]["server_id"] == sid
                    assert datadir.rstrip("/").startswith(base_dir)
                cur.execute("BEGIN")
                cur.execute("SELECT @@port")
                assert cur.fetchone()[0] == primary[0]["port"]
                cur.execute("COMMIT")
        finally:
            conn.close()

        # the banner's admin SQL account works and sees the demo's servers
        assert admin_sql is not None and admin_url is not None, "".join(output)
        ahost, aport, auser, apassword = admin_sql
        admin = pymysql.connect(
            host=ahost, port=int(aport), user=auser, password=apassword, database="rwproxy", connect_timeout=5
        )
        try:
            with admin.cursor() as cur:
                cur.execute("SELECT name, role FROM servers ORDER BY name")
                assert {r[0] for r in cur.fetchall()} == set(nodes)
        finally:
            admin.close()
        with urllib.request.urlopen(f"{admin_url}/status", timeout=5) as response:
            assert {n["name"] for n in json.load(response)["nodes"]} == set(nodes)
        # the demo logs: state transitions (first checks) and a failed login
        with pytest.raises(pymysql.err.OperationalError):
            pymysql.connect(host=host, port=port, user=user, password="wrong", connect_timeout=5)
        log_deadline = time.monotonic() + 15
        while "authentication failed" not in "".join(output) and time.monotonic() < log_deadline:
            time.sleep(0.1)
        text = "".join(output)
        assert "monitor: node1: unchecked -> primary ONLINE" in text, text
        assert f"authentication failed from 127.0.0.1: Access denied for user '{user}'" in text, text

        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(20)
        except subprocess.TimeoutExpired:
            pytest.fail("demo still running 20 s after SIGINT:\n" + "".join(output))
        assert time.monotonic() - start < 20
        assert rc == 0, "".join(output)
        assert not Path(base_dir).exists(), f"{base_dir} left behind"
        for name, n in nodes.items():
            assert not _is_alive(n["pid"]), f"{name} (pid {n['pid']}) still running"
            assert not _accepts("127.0.0.1", n["port"]), f"{name} still listening"
        assert not _accepts("127.0.0.1", port)
        assert "Traceback" not in "".join(output), "".join(output)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for n in nodes.values():  # never leave the demo's servers behind
            if _is_alive(n["pid"]) and "mariadbd" in _cmdline(n["pid"]):
                with contextlib.suppress(OSError):
                    os.kill(n["pid"], signal.SIGKILL)
