"""Backends that die, hang or vanish under a session (real cluster).

* a hung replica (SIGSTOP): reads routed there are stopped after routing.replica_read_timeout_seconds
  and run again elsewhere; the monitor marks it OFFLINE within a few check timeouts;
* a backend thread killed in the middle of a large result: the client gets an ERR packet naming the
  server (between rows an ERR is a valid terminator) and its session goes on;
* a dead replica the monitor has not marked yet: one log line per server, the rest counted.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

import pymysql
import pymysql.cursors
import pytest

from rwproxy.dev.cluster import Cluster
from tests.support.builders import cluster_config
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster


def _config(c: Cluster, *extra: str, monitor: tuple[str, ...] = (), failures_to_offline: int = 3) -> str:
    return cluster_config(
        c,
        "[backend]",
        "connect_timeout_seconds = 1.0",
        "[routing]",
        *extra,
        "[monitor]",
        "interval_seconds = 0.2",
        "check_timeout_seconds = 0.5",
        f"failures_to_offline = {failures_to_offline}",
        *monitor,
        roles=True,
    )


def _connect(p: ProxyThread, c: Cluster, **kw: object) -> pymysql.Connection:
    return pymysql.connect(
        host=p.host,
        port=p.port,
        user=c.app_user,
        password=c.app_password,
        autocommit=True,
        ssl_disabled=True,
        read_timeout=30,
        **kw,  # type: ignore[arg-type]
    )


def test_hung_replica_reads_are_stopped_and_retried(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    hung = c.replicas[0]
    cfg = _config(
        c,
        "replica_read_timeout_seconds = 1.0",
        # A connect to a hung server succeeds at the TCP level and then waits: on main this was
        # the full connect timeout for every check after the first failure.
        monitor=("connect_timeout_seconds = 5.0",),
    )
    with ProxyThread(cfg) as p:
        assert p.app is not None
        results: list[tuple[float, int | None, float]] = []  # (seconds, error code or None, started)
        stop = threading.Event()

        def reader() -> None:
            conn = _connect(p, c)
            while not stop.is_set():
                started = time.monotonic()
                try:
                    with conn.cursor() as cur:
                        cur.execute("SELECT @@server_id")
                        cur.fetchall()
                    results.append((time.monotonic() - started, None, started))
                except pymysql.MySQLError as exc:
                    results.append((time.monotonic() - started, int(exc.args[0]), started))
                    conn.close()
                    conn = _connect(p, c)
                time.sleep(0.01)
            conn.close()

        threads = [threading.Thread(target=reader, daemon=True) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        stopped_at = time.monotonic()
        offline_after = None
        c.kill_node(hung, signal.SIGSTOP)
        try:
            while time.monotonic() - stopped_at < 8.0:
                node = p.app.topology.by_name[hung.name]
                if offline_after is None and not node.online:
                    offline_after = time.monotonic() - stopped_at
                time.sleep(0.05)
        finally:
            c.kill_node(hung, signal.SIGCONT)
        stop.set()
        for t in threads:
            t.join(30)
        slowest = max(s for s, _, _ in results)
        errors = [code for _, code, _ in results if code is not None]
        print(f"\nhung replica: {len(results)} reads, slowest {slowest:.2f} s, OFFLINE after {offline_after}")
        assert errors == [], errors  # plain autocommit reads: run again on another server
        assert p.app.stats.read_timeouts >= 1
        # Never the 8 s of the hang: the 1 s timeout, one sweep step, the retry, a loaded machine.
        assert slowest < 5.0, slowest
        # OFFLINE after 3 failed checks of at most 0.5 s each (not 0.5 + 2 x 5 s of connect timeouts).
        assert offline_after is not None and offline_after < 5.0, offline_after


def test_backend_killed_mid_result_gives_an_err_packet(cluster: Cluster) -> None:
    c = cluster
    with ProxyThread(_config(c)) as p:
        conn = _connect(p, c, cursorclass=pymysql.cursors.SSCursor)
        marker = f"big_result_{time.monotonic_ns()}"
        with conn.cursor() as cur:
            # Primary (hint): the server to KILL on is known. ~60 MB of rows, read row by row.
            cur.execute(
                f"/* rwproxy:primary */ SELECT seq, REPEAT('x', 300), '{marker}' "
                f"FROM {c.database}.seq_1_to_200000"
            )
            for _ in range(1000):
                cur.fetchone()
            ids = c.admin_sql(
                c.primary,
                "SELECT id FROM information_schema.processlist WHERE info LIKE %s AND id <> CONNECTION_ID()",
                (f"%{marker}%",),
            )
            assert len(ids) == 1, ids
            c.admin_sql(c.primary, f"KILL {int(ids[0][0])}")
            failure: Exception | None = None
            try:
                while cur.fetchone() is not None:
                    pass
            except Exception as exc:  # before: pymysql met a closed socket (AttributeError)
                failure = exc
        assert isinstance(failure, pymysql.MySQLError), repr(failure)
        code, message = failure.args[0], str(failure.args[1])
        print(f"\nclient saw: {code} {message}")
        assert code == 2013 and "rwproxy" in message and c.primary.name in message, (code, message)
        # A valid end of the result: the session goes on.
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert list(cur.fetchall()) == [(1,)]
        conn.close()


def test_dead_replica_logs_one_line_and_counts_the_rest(
    fresh_cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    c = fresh_cluster
    dead = c.replicas[0]
    # Slow to mark OFFLINE (10 failed checks): many reads meet the dead replica first.
    cfg = _config(c, failures_to_offline=10)
    with ProxyThread(cfg) as p:
        assert p.app is not None
        caplog.set_level(logging.INFO)
        c.kill_node(dead)
        served = 0
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and p.app.topology.by_name[dead.name].online:
            conn = _connect(p, c)  # a new session: no connection to any replica yet
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                assert cur.fetchall() == ((1,),)
            conn.close()
            served += 1
        failures = p.app.connect_failures.counts[dead.name] if hasattr(p.app, "connect_failures") else -1
        lines = [
            r.getMessage()
            for r in caplog.records
            if r.name.startswith("rwproxy.frontend") and dead.name in r.getMessage()
        ]
        print(f"\n{served} reads, {failures} connect failures to {dead.name}, log lines: {lines[:3]}")
        assert len(lines) == 1, lines
        assert failures >= 2, "the test needs several reads to meet the dead replica"
        assert p.app.stats.replica_fallbacks >= failures
