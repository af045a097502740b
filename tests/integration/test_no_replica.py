"""Every replica unusable: reads go to the primary (on_no_replica = "primary") or fail ("error"),
and the proxy says so once per transition — not once per query."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pymysql
import pytest

from rwproxy.dev.cluster import Cluster
from rwproxy.router.policy import RouteReason
from tests.support.builders import cluster_config
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster

WARNING = "no replica is usable"
INFO = "replicas usable again"


def _config(c: Cluster, on_no_replica: str) -> str:
    return cluster_config(
        c,
        "[routing]",
        f'on_no_replica = "{on_no_replica}"',
        "[monitor]",
        "interval_seconds = 0.2",
        "check_timeout_seconds = 0.5",
        roles=True,
    )


def _wait(p: ProxyThread, usable: bool, timeout: float = 10) -> None:
    assert p.app is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bool(p.app.topology.eligible_replicas()) == usable:
            return
        time.sleep(0.05)
    raise AssertionError(f"replicas usable != {usable} within {timeout} s: {p.app.topology}")


def _connect(p: ProxyThread, c: Cluster) -> pymysql.Connection:
    return pymysql.connect(
        host=p.host, port=p.port, user=c.app_user, password=c.app_password, autocommit=True, ssl_disabled=True
    )


def _thread(p: ProxyThread) -> int | None:
    assert p._thread is not None
    return p._thread.ident


def _messages(caplog: pytest.LogCaptureFixture, thread: int | None, level: int, text: str) -> list[str]:
    """Lines logged by this test's proxy (the session's shared proxy, if one runs, logs too)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.thread == thread and r.levelno == level and text in r.getMessage()
    ]


def _server_ids(conn: pymysql.Connection, n: int) -> set[int]:
    seen = set()
    with conn.cursor() as cur:
        for _ in range(n):
            cur.execute("SELECT @@server_id")
            seen.add(int(cur.fetchone()[0]))
    return seen


def _stop_all(c: Cluster) -> Callable[[], None]:
    for r in c.replicas:
        c.stop_sql_thread(r)

    def restart() -> None:
        for r in c.replicas:
            c.start_replication(r)

    return restart


def test_no_replica_reads_go_to_the_primary_logged_once_per_transition(
    healthy_cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    c = healthy_cluster
    caplog.set_level(logging.INFO, logger="rwproxy")
    primary_id = int(c.sql(c.primary, "SELECT @@server_id")[0][0])
    replica_ids = {int(c.sql(r, "SELECT @@server_id")[0][0]) for r in c.replicas}
    with ProxyThread(_config(c, "primary")) as p:
        assert p.app is not None
        thread = _thread(p)
        conn = _connect(p, c)
        assert _server_ids(conn, 20) <= replica_ids
        restart = _stop_all(c)
        try:
            _wait(p, usable=False)
            assert _server_ids(conn, 200) == {primary_id}
            time.sleep(1.0)  # five more checks with nothing usable: still one line
            assert _server_ids(conn, 50) == {primary_id}
        finally:
            restart()
        _wait(p, usable=True)
        assert _server_ids(conn, 20) <= replica_ids
        conn.close()
        stats = p.app.stats
        assert stats.no_replica_periods == 1
        assert stats.no_replica_reads == 250
        assert stats.routes[(c.primary.name, RouteReason.NO_REPLICA)] == 250
    warnings = _messages(caplog, thread, logging.WARNING, WARNING)
    assert len(warnings) == 1, warnings
    assert "reads go to the primary" in warnings[0] and "replication_stopped" in warnings[0], warnings
    infos = _messages(caplog, thread, logging.INFO, INFO)
    assert len(infos) == 1, infos


def test_no_replica_with_on_no_replica_error(
    healthy_cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    c = healthy_cluster
    caplog.set_level(logging.INFO, logger="rwproxy")
    with ProxyThread(_config(c, "error")) as p:
        assert p.app is not None
        thread = _thread(p)
        conn = _connect(p, c)
        restart = _stop_all(c)
        try:
            _wait(p, usable=False)
            with conn.cursor() as cur:
                for _ in range(20):
                    with pytest.raises(pymysql.err.OperationalError) as info:
                        cur.execute("SELECT @@server_id")
                    code, message = info.value.args
                    assert code == 1105, info.value
                    assert "no replica is usable" in message and "on_no_replica = 'error'" in message
                # Writes and transactions still work: only reads need a replica.
                cur.execute("SELECT @@server_id FOR UPDATE")
                assert int(cur.fetchone()[0]) == int(c.sql(c.primary, "SELECT @@server_id")[0][0])
        finally:
            restart()
        _wait(p, usable=True)
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
        conn.close()
        assert p.app.stats.no_replica_reads == 20
        assert p.app.stats.routes[("-", RouteReason.NO_REPLICA_ERROR)] == 20
    warnings = _messages(caplog, thread, logging.WARNING, WARNING)
    assert len(warnings) == 1 and "reads fail (routing.on_no_replica = error)" in warnings[0], warnings
    assert len(_messages(caplog, thread, logging.INFO, INFO)) == 1
