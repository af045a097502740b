"""Queueing for backend connections and multiplexing sessions over a small pool (issue 11)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import mysql.connector
import pymysql
import pytest

from rwproxy.dev.cluster import Cluster
from rwproxy.dev.demo import demo_config_text
from tests.integration.test_backend_state import client as backend_client
from tests.integration.test_backend_state import one
from tests.support.cluster import unique_name
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster

PRIMARY = "/* rwproxy:primary */ "


def proxy_with(cluster: Cluster, *, pool: int, wait: float = 10, multiplex: bool = True) -> ProxyThread:
    text = demo_config_text(cluster, 0)
    if not multiplex:
        marker = f'password = "{cluster.app_password}"'
        text = text.replace(marker, marker + "\nmultiplex = false", 1)
    text += f"\n[backend]\npool_max_per_server = {pool}\npool_wait_timeout_seconds = {wait}\n"
    return ProxyThread(text)


def client(p: ProxyThread, cluster: Cluster, **kw: Any) -> pymysql.Connection:
    """test_backend_state's client, in the database ``rwtest`` and with a longer connect timeout
    (logins queue for a connection here)."""
    return backend_client(p, cluster, **{"database": "rwtest", "connect_timeout": 30, **kw})


# -- queueing (issue 11, item 3) ---------------------------------------------------------------


def test_sessions_beyond_the_pool_wait_for_a_connection(healthy_cluster: Cluster) -> None:
    """With multiplexing off, a session holds its connection: the next one waits, then proceeds
    once the first leaves (was: ERROR 1040 at once)."""
    with proxy_with(healthy_cluster, pool=1, multiplex=False) as p:
        a = client(p, healthy_cluster)
        threading.Timer(1.0, a.close).start()
        started = time.monotonic()
        b = client(p, healthy_cluster)  # waits for a's primary connection
        waited = time.monotonic() - started
        with b.cursor() as cur:
            assert one(cur, PRIMARY + "SELECT 7") == 7
        b.close()
        assert waited >= 0.8
        assert p.app.pool.stats.waits >= 1


def test_waiting_past_the_timeout_names_the_setting(healthy_cluster: Cluster) -> None:
    with proxy_with(healthy_cluster, pool=1, wait=1, multiplex=False) as p:
        a = client(p, healthy_cluster)
        started = time.monotonic()
        with pytest.raises(pymysql.err.OperationalError) as exc:
            client(p, healthy_cluster)
        assert time.monotonic() - started >= 0.9
        assert exc.value.args[0] == 1040
        assert "backend.pool_wait_timeout_seconds" in exc.value.args[1]
        a.close()


# -- multiplexing (issue 11, item 4) -----------------------------------------------------------


@pytest.fixture
def mux2(healthy_cluster: Cluster) -> Iterator[ProxyThread]:
    with proxy_with(healthy_cluster, pool=2, wait=20) as p:
        yield p


def test_many_sessions_over_a_small_pool_each_see_their_own_state(
    mux2: ProxyThread, healthy_cluster: Cluster
) -> None:
    dbs = [unique_name("muxdb") for _ in range(3)]
    with client(mux2, healthy_cluster).cursor() as cur:
        for db in dbs:
            cur.execute(f"CREATE DATABASE {db}")
    healthy_cluster.wait_replicas_caught_up()
    sessions = []
    for i in range(12):  # 12 sessions, 2 connections per server
        c = client(mux2, healthy_cluster, database=dbs[i % 3])
        with c.cursor() as cur:
            cur.execute(f"SET @v = {i}, @w = 'w{i}'")
            cur.execute(f"SET SESSION sql_mode = '{'ANSI_QUOTES' if i % 2 else 'NO_ZERO_DATE'}'")
        sessions.append(c)
    for _round in range(3):
        for i, c in enumerate(sessions):
            with c.cursor() as cur:
                for sql in (
                    "SELECT DATABASE(), @v, @w, @@sql_mode",
                    PRIMARY + "SELECT DATABASE(), @v, @w, @@sql_mode",
                ):
                    cur.execute(sql)
                    assert cur.fetchone() == (
                        dbs[i % 3],
                        i,
                        f"w{i}",
                        "ANSI_QUOTES" if i % 2 else "NO_ZERO_DATE",
                    )
    app = mux2.app
    assert app.stats.mux_handoffs > 0
    assert all(mux2.call(app.pool.open_count, n.name) <= 2 for n in app.topology.nodes)
    from prometheus_client import generate_latest

    from rwproxy.observability.metrics import build_registry

    scrape = mux2.call(lambda: generate_latest(build_registry(app, process=False)).decode())
    handoffs = [line for line in scrape.splitlines() if line.startswith("rwproxy_multiplex_handoffs_total ")]
    assert handoffs and float(handoffs[0].split()[1]) > 0
    assert "rwproxy_multiplex_sessions " in scrape
    with sessions[0].cursor() as cur:
        for db in dbs:
            cur.execute(f"DROP DATABASE {db}")
    for c in sessions:
        c.close()


@pytest.mark.parametrize(
    ("setup", "teardown"),
    [
        ("BEGIN", "COMMIT"),
        ("CREATE TEMPORARY TABLE mux_tmp (v INT)", "DROP TEMPORARY TABLE mux_tmp"),
        ("SELECT GET_LOCK('rwproxy-mux', 5)", "SELECT RELEASE_LOCK('rwproxy-mux')"),
        ("SELECT @bound := 1", None),
    ],
)
def test_bound_session_keeps_its_connection(
    healthy_cluster: Cluster, setup: str, teardown: str | None
) -> None:
    """A transaction, a temporary table, a named lock or a user variable assigned in a query keeps
    the session's primary connection: another session cannot get it (it times out waiting).
    (@@pseudo_thread_id: the backend thread, whatever CONNECTION_ID() shows the client.)"""
    with proxy_with(healthy_cluster, pool=1, wait=1.5) as p:
        a = client(p, healthy_cluster)
        b = client(p, healthy_cluster)  # logged in: a's connection was lendable then
        with a.cursor() as cur:
            cur.execute(setup)
            thread = one(cur, PRIMARY + "SELECT @@pseudo_thread_id")
        with pytest.raises(pymysql.err.OperationalError) as exc, b.cursor() as cur:
            cur.execute(PRIMARY + "SELECT @@pseudo_thread_id")
        assert exc.value.args[0] == 1040
        with a.cursor() as cur:
            assert one(cur, PRIMARY + "SELECT @@pseudo_thread_id") == thread
            if teardown is not None:
                cur.execute(teardown)
        if teardown is not None:  # unbound again: b gets the connection
            with b.cursor() as cur:
                assert one(cur, PRIMARY + "SELECT @@pseudo_thread_id") == thread
        assert p.app.stats.mux_pins
        a.close()
        b.close()


def test_prepared_statements_work_after_the_connection_changed(healthy_cluster: Cluster) -> None:
    with proxy_with(healthy_cluster, pool=1, wait=20) as p:
        args = {
            "host": p.host,
            "port": p.port,
            "user": healthy_cluster.app_user,
            "password": healthy_cluster.app_password,
            "database": "rwtest",
            "autocommit": True,
            "use_pure": True,
            "ssl_disabled": True,
        }
        a = mysql.connector.connect(**args)
        b = mysql.connector.connect(**args)
        ca = a.cursor(prepared=True)
        cb = b.cursor(prepared=True)
        sql = PRIMARY + "SELECT ? + 1, @@sql_mode"
        for i in range(6):  # a and b take turns on the one primary connection
            ca.execute(sql, (i,))
            assert ca.fetchall()[0][0] == i + 1
            cb.execute(sql, (i * 10,))
            assert cb.fetchall()[0][0] == i * 10 + 1
        assert p.app.stats.mux_handoffs >= 2
        ca.close()
        cb.close()
        a.close()
        b.close()


def test_last_insert_id_follows_the_session_across_connections(healthy_cluster: Cluster) -> None:
    table = unique_name("muxlid")
    with proxy_with(healthy_cluster, pool=1, wait=20) as p:
        a = client(p, healthy_cluster)
        b = client(p, healthy_cluster)
        with a.cursor() as cur:
            cur.execute(f"CREATE TABLE {table} (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
            cur.execute(f"INSERT INTO {table} (v) VALUES (1)")
        with b.cursor() as cur:
            cur.execute(f"INSERT INTO {table} (v) VALUES (2)")
            cur.execute(f"INSERT INTO {table} (v) VALUES (3)")
        with a.cursor() as cur:
            assert one(cur, "SELECT LAST_INSERT_ID()") == 1
        with b.cursor() as cur:
            assert one(cur, "SELECT LAST_INSERT_ID()") == 3
            cur.execute(f"DROP TABLE {table}")
        a.close()
        b.close()


def test_session_without_database_after_sessions_with_one(healthy_cluster: Cluster) -> None:
    with proxy_with(healthy_cluster, pool=1, wait=20) as p:
        a = client(p, healthy_cluster)
        b = client(p, healthy_cluster, database=None)
        for _ in range(3):
            with a.cursor() as cur:
                assert one(cur, PRIMARY + "SELECT DATABASE()") == "rwtest"
            with b.cursor() as cur:
                assert one(cur, PRIMARY + "SELECT DATABASE()") is None
        a.close()
        b.close()


def test_multiplexing_off_for_a_session(healthy_cluster: Cluster) -> None:
    with proxy_with(healthy_cluster, pool=1, wait=1.5) as p:
        a = client(p, healthy_cluster)
        b = client(p, healthy_cluster)
        with a.cursor() as cur:
            cur.execute("SET @rwproxy_multiplex = 0")
            one(cur, PRIMARY + "SELECT 1")
        with pytest.raises(pymysql.err.OperationalError) as exc, b.cursor() as cur:
            cur.execute(PRIMARY + "SELECT 1")
        assert exc.value.args[0] == 1040
        assert p.app.stats.mux_pins["disabled"] >= 1
        a.close()
        b.close()


def test_sessions_with_equal_state_share_a_connection_without_any_replay(healthy_cluster: Cluster) -> None:
    """The state signature: a lent connection that already holds the session's state (same
    database, same SETs) is used as it is — no COM_RESET_CONNECTION, no replay."""
    with proxy_with(healthy_cluster, pool=1, wait=20) as p:
        a = client(p, healthy_cluster)
        b = client(p, healthy_cluster)
        for c in (a, b):
            with c.cursor() as cur:
                cur.execute("SET NAMES utf8mb4")
                cur.execute("SET @tenant = 7")
        stats = p.app.stats
        before = (stats.mux_handoffs, stats.mux_resets, stats.mux_replays)
        for _ in range(5):
            for c in (a, b):
                with c.cursor() as cur:
                    assert one(cur, PRIMARY + "SELECT @tenant") == 7
        handoffs, resets, replays = (stats.mux_handoffs, stats.mux_resets, stats.mux_replays)
        assert handoffs - before[0] >= 8  # they took turns on the one primary connection ...
        assert (resets - before[1], replays - before[2]) == (0, 0)  # ... as it was
        a.close()
        b.close()


def test_reset_connection_while_multiplexing(healthy_cluster: Cluster) -> None:
    """COM_RESET_CONNECTION of a session whose connection was lent: its state is gone everywhere,
    its database kept, and the other session never sees it."""
    with proxy_with(healthy_cluster, pool=1, wait=20) as p:
        a = client(p, healthy_cluster)
        b = client(p, healthy_cluster)
        with a.cursor() as cur:
            cur.execute("SET @gone = 1")
        b.ping()
        a._execute_command(31, b"")  # COM_RESET_CONNECTION
        a._read_ok_packet()
        with a.cursor() as cur:
            assert one(cur, PRIMARY + "SELECT @gone") is None
            assert one(cur, PRIMARY + "SELECT DATABASE()") == "rwtest"
        with b.cursor() as cur:
            assert one(cur, PRIMARY + "SELECT @gone") is None
        a.close()
        b.close()


def test_sticky_replica_keeps_a_sessions_reads_on_one_replica(healthy_cluster: Cluster, server_ids) -> None:
    text = demo_config_text(healthy_cluster, 0) + "\n[routing]\nsticky_replica = true\n"
    with ProxyThread(text) as p:
        for _ in range(3):
            c = client(p, healthy_cluster)
            with c.cursor() as cur:
                seen = {one(cur, "SELECT @@server_id") for _ in range(20)}
            assert len(seen) == 1 and server_ids["primary"] not in seen
            c.close()
