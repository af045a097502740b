"""Hot reload against the real cluster: a replica added by SIGHUP to a real ``python -m rwproxy run``
(sessions opened before, one inside a transaction, keep working), a broken file rejected while the
old config keeps serving, users added/removed and a replica swapped through POST /reload and admin
SQL RELOAD CONFIG (ProxyThread), and no password anywhere in the JSON log of all that.

Removed users: sessions they already have keep working (documented in rwproxy.reload); they cannot
open new ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pymysql
import pytest

from rwproxy.dev.cluster import Cluster, ClusterNode, free_port
from rwproxy.dev.demo import server_tables
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
TOKEN = "reload-token-7f3a"
ADMIN_USER, ADMIN_PASSWORD = "opsadmin", "ops-admin-pw-51"
OLD_USER, OLD_PASSWORD = "leaving", "leaving-pw-93"
NEW_USER, NEW_PASSWORD = "arriving", "arriving-pw-28"
WRONG_PASSWORD = "wrong-pw-66"


def config_text(
    cluster: Cluster,
    replicas: Sequence[ClusterNode],
    *,
    port: int = 0,
    admin_port: int = 0,
    users: Sequence[tuple[str, str]] = (),
    monitor: bool = True,
    interval: str = "0.2",
    extra: str = "",
) -> str:
    lines = [
        "[proxy]",
        f'listen = ["127.0.0.1:{port}"]',
        "[admin]",
        f'http_listen = "127.0.0.1:{admin_port}"',
        'sql_listen = "127.0.0.1:0"',
        f'bearer_token = "{TOKEN}"',
        "[[admin.users]]",
        f'name = "{ADMIN_USER}"',
        f'password = "{ADMIN_PASSWORD}"',
        "[monitor]",
        f"enabled = {'true' if monitor else 'false'}",
        f'user = "{cluster.monitor_user}"',
        f'password = "{cluster.monitor_password}"',
        f"interval_seconds = {interval}",
        "[[users]]",
        f'name = "{cluster.app_user}"',
        f'password = "{cluster.app_password}"',
    ]
    for name, password in users:  # proxy accounts mapped onto the cluster's app account
        lines += [
            "[[users]]",
            f'name = "{name}"',
            f'password = "{password}"',
            f'backend_user = "{cluster.app_user}"',
            f'backend_password = "{cluster.app_password}"',
        ]
    lines += server_tables(cluster, roles=True, nodes=(cluster.primary, *replicas))
    return "\n".join(lines) + "\n" + extra


def client(host: str, port: int, user: str, password: str, **kw: Any) -> pymysql.Connection:
    return pymysql.connect(
        host=host,
        port=port,
        user=user,
        password=password,
        database="rwtest",
        autocommit=True,
        ssl_disabled=True,
        connect_timeout=10,
        read_timeout=30,
        **kw,
    )


def server_id(conn: pymysql.Connection) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT @@server_id")
        row = cur.fetchone()
        assert row is not None
        return int(row[0])


def reads_until(conn: pymysql.Connection, wanted: int, timeout: float = 20) -> set[int]:
    """Read @@server_id until ``wanted`` answers (or the timeout); returns every id seen."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while wanted not in seen and time.monotonic() < deadline:
        seen.add(server_id(conn))
        if wanted not in seen:
            time.sleep(0.02)
    return seen


def scrape(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        return str(r.read().decode())


def sample(text: str, name: str, labels: str = "") -> float:
    prefix = name + (f"{{{labels}}}" if labels else "")
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{prefix} not in /metrics")


def make_table(cluster: Cluster) -> None:
    cluster.sql(cluster.primary, "CREATE TABLE IF NOT EXISTS rwtest.reload_t (id INT PRIMARY KEY, v INT)")
    cluster.sql(cluster.primary, "DELETE FROM rwtest.reload_t")


# -- SIGHUP to a real process ----------------------------------------------------------------------


@pytest.fixture
def proxy_process(healthy_cluster: Cluster, tmp_path: Path) -> Iterator[dict[str, Any]]:
    cluster = healthy_cluster
    port, admin_port = free_port(), free_port()
    path = tmp_path / "rwproxy.toml"
    logging = '[logging]\nlevel = "debug"\nformat = "json"\n'
    write = lambda replicas, extra="": path.write_text(  # noqa: E731
        config_text(
            cluster,
            replicas,
            port=port,
            admin_port=admin_port,
            users=[(OLD_USER, OLD_PASSWORD)],
            extra=logging + extra,
        )
    )
    write(cluster.replicas[:1])
    log = tmp_path / "rwproxy.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rwproxy", "run", "--config", str(path)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield {
            "proc": proc,
            "port": port,
            "admin": f"http://127.0.0.1:{admin_port}",
            "log": log,
            "write": write,
        }
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def wait_log(log: Path, text: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text(errors="replace")
        if text in content:
            return content
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not logged within {timeout} s:\n{log.read_text(errors='replace')}")


def test_sighup_adds_a_replica_keeps_sessions_and_rejects_a_broken_file(
    proxy_process: dict[str, Any], healthy_cluster: Cluster, server_ids: dict[str, int]
) -> None:
    cluster = healthy_cluster
    proc, port, log = proxy_process["proc"], proxy_process["port"], proxy_process["log"]
    r1, r2 = cluster.replicas[:2]
    make_table(cluster)
    reader = client("127.0.0.1", port, cluster.app_user, cluster.app_password)
    in_tx = client("127.0.0.1", port, OLD_USER, OLD_PASSWORD)
    with pytest.raises(pymysql.err.OperationalError) as denied:
        client("127.0.0.1", port, cluster.app_user, WRONG_PASSWORD)
    assert denied.value.args[0] == 1045
    before = {server_id(reader) for _ in range(40)}
    assert server_ids[r2.name] not in before and server_ids[r1.name] in before
    with in_tx.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("INSERT INTO reload_t VALUES (1, 1)")

    proxy_process["write"](cluster.replicas[:2])
    proc.send_signal(signal.SIGHUP)
    wait_log(log, f"server {r2.name} added")
    seen = reads_until(reader, server_ids[r2.name])  # the session opened before the reload
    assert server_ids[r2.name] in seen, seen
    fresh = client("127.0.0.1", port, cluster.app_user, cluster.app_password)
    assert server_ids[r2.name] in reads_until(fresh, server_ids[r2.name])
    with in_tx.cursor() as cur:  # the transaction opened before the reload goes on, on the primary
        cur.execute("SELECT @@server_id")
        assert cur.fetchone()[0] == server_ids["primary"]
        cur.execute("INSERT INTO reload_t VALUES (2, 2)")
        cur.execute("COMMIT")
    assert sorted(r[0] for r in cluster.sql(cluster.primary, "SELECT id FROM rwtest.reload_t")) == [1, 2]

    # A broken file: rejected with the key path, the running config goes on serving.
    proxy_process["write"](cluster.replicas[:1], "[routing]\nstrategy = 'fastest'\n")
    proc.send_signal(signal.SIGHUP)
    text = wait_log(log, "config reload rejected")
    assert "routing.strategy" in text
    assert proc.poll() is None
    assert server_ids[r2.name] in reads_until(reader, server_ids[r2.name])  # r2 not removed
    metrics = scrape(proxy_process["admin"])
    assert sample(metrics, "rwproxy_config_reloads_total", 'result="ok"') == 1
    assert sample(metrics, "rwproxy_config_reloads_total", 'result="error"') == 1
    assert sample(metrics, "rwproxy_config_last_reload_successful") == 0
    for c in (reader, in_tx, fresh):
        c.close()

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    lines = [x for x in log.read_text().splitlines() if x.strip()]
    docs = [json.loads(x) for x in lines]  # every line is a JSON object
    assert all({"ts", "level", "logger", "msg"} <= d.keys() for d in docs)
    reload_lines = [d for d in docs if d.get("event") == "config_reload"]
    assert [d["result"] for d in reload_lines if "result" in d] == ["ok", "error"]
    whole = log.read_text()
    for secret in (
        cluster.app_password,
        cluster.monitor_password,
        OLD_PASSWORD,
        WRONG_PASSWORD,
        ADMIN_PASSWORD,
        TOKEN,
    ):
        assert secret not in whole, f"a password is in the log: {secret}"


# -- API level: POST /reload and RELOAD CONFIG (ProxyThread) ---------------------------------------


def post_reload(p: ProxyThread, token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
    assert p.app is not None and p.app.admin_http is not None
    req = urllib.request.Request(p.app.admin_http.url + "/reload", method="POST", data=b"")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def reloadable(healthy_cluster: Cluster, tmp_path: Path) -> Iterator[tuple[ProxyThread, Callable[..., None]]]:
    path = tmp_path / "rwproxy.toml"

    def write(replicas: Sequence[ClusterNode], **kw: Any) -> None:
        path.write_text(config_text(healthy_cluster, replicas, **kw))

    write(healthy_cluster.replicas[:1], users=[(OLD_USER, OLD_PASSWORD)])
    with ProxyThread(path.read_text(), config_path=path) as p:
        yield p, write


def test_reload_swaps_users_and_replicas_without_dropping_sessions(
    reloadable: tuple[ProxyThread, Callable[..., None]], healthy_cluster: Cluster, server_ids: dict[str, int]
) -> None:
    p, write = reloadable
    cluster = healthy_cluster
    r1, r2 = cluster.replicas[:2]
    make_table(cluster)
    leaving = client(p.host, p.port, OLD_USER, OLD_PASSWORD)
    assert server_ids[r1.name] in reads_until(leaving, server_ids[r1.name])
    in_tx = client(p.host, p.port, cluster.app_user, cluster.app_password)
    with in_tx.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("INSERT INTO reload_t VALUES (10, 1)")

    # r1 out, r2 in; the user "leaving" out, "arriving" in; a restart-only key changed.
    write([r2], users=[(NEW_USER, NEW_PASSWORD)], extra="[backend]\npool_max_per_server = 50\n")
    assert post_reload(p, token=None)[0] == 401
    status, body = post_reload(p)
    assert status == 200, body
    assert {f"server {r2.name} added", f"server {r1.name} removed"} <= set(body["changes"])
    assert {f"user {OLD_USER} removed", f"user {NEW_USER} added"} <= set(body["changes"])
    assert [x.split(":")[0] for x in body["restart_needed"]] == ["backend.pool_max_per_server"]

    arriving = client(p.host, p.port, NEW_USER, NEW_PASSWORD)
    assert server_id(arriving) in server_ids.values()
    with pytest.raises(pymysql.err.OperationalError) as denied:
        client(p.host, p.port, OLD_USER, OLD_PASSWORD)
    assert denied.value.args[0] == 1045
    # The removed user's open session keeps working, also on r2 where it needs a new connection;
    # the removed replica r1 gets no new statement.
    seen = reads_until(leaving, server_ids[r2.name])
    assert server_ids[r2.name] in seen and server_ids[r1.name] not in seen, seen
    assert server_ids[r1.name] not in {server_id(arriving) for _ in range(30)}
    with in_tx.cursor() as cur:
        cur.execute("INSERT INTO reload_t VALUES (11, 1)")
        cur.execute("COMMIT")
    assert sorted(r[0] for r in cluster.sql(cluster.primary, "SELECT id FROM rwtest.reload_t")) == [10, 11]

    # A broken file: 400 naming the key, nothing changes.
    write([r1, r2], users=[(NEW_USER, NEW_PASSWORD)], interval="-1")
    status, body = post_reload(p)
    assert status == 400 and "monitor.interval_seconds" in body["error"], body
    assert p.app is not None and [s.name for s in p.app.config.servers] == [cluster.primary.name, r2.name]

    # Admin SQL RELOAD CONFIG runs the same reload.
    write([r2], users=[(NEW_USER, NEW_PASSWORD)], extra="[backend]\npool_max_per_server = 50\n")
    assert p.app.admin_sql is not None
    admin = pymysql.connect(
        host="127.0.0.1",
        port=p.app.admin_sql.port,
        user=ADMIN_USER,
        password=ADMIN_PASSWORD,
        ssl_disabled=True,
    )
    with admin.cursor() as cur:
        cur.execute("RELOAD CONFIG")
        assert cur.fetchall()[0][0].startswith("config reloaded: no changes")
    for c in (admin, leaving, arriving, in_tx):
        c.close()


def test_reload_with_the_monitor_off_rebuilds_the_static_topology(
    healthy_cluster: Cluster, server_ids: dict[str, int], tmp_path: Path
) -> None:
    cluster = healthy_cluster
    r1, r2 = cluster.replicas[:2]
    path = tmp_path / "rwproxy.toml"
    path.write_text(config_text(cluster, [r1], monitor=False))
    with ProxyThread(path.read_text(), config_path=path) as p:
        conn = client(p.host, p.port, cluster.app_user, cluster.app_password)
        version = p.app.topology.version if p.app is not None else -1
        path.write_text(config_text(cluster, [r1, r2], monitor=False))
        status, body = post_reload(p)
        assert status == 200 and body["topology_version"] == version + 1, body
        assert server_ids[r2.name] in reads_until(conn, server_ids[r2.name])
        conn.close()
