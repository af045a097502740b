"""A backend connection's own state never leaks into another session, and is never silently lost.

Each test runs its own rwproxy with a small pool, so that sessions really share connections."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from rwproxy.dev.cluster import Cluster
from rwproxy.dev.demo import demo_config_text
from tests.support.cluster import unique_name, wait_until
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster

PRIMARY = "/* rwproxy:primary */ "


def small_pool_proxy(cluster: Cluster, *, pool: int = 1, extra: str = "") -> ProxyThread:
    text = demo_config_text(cluster, 0) + f"\n[backend]\npool_max_per_server = {pool}\n{extra}\n"
    return ProxyThread(text)


@pytest.fixture
def proxy1(healthy_cluster: Cluster) -> Iterator[ProxyThread]:
    with small_pool_proxy(healthy_cluster) as p:
        yield p


def client(p: ProxyThread, cluster: Cluster, **kw: Any) -> pymysql.Connection:
    args: dict[str, Any] = {
        "host": p.host,
        "port": p.port,
        "user": cluster.app_user,
        "password": cluster.app_password,
        "autocommit": True,
        "connect_timeout": 10,
        "read_timeout": 60,
    }
    args.update(kw)
    return pymysql.connect(**args)


def one(cur: Any, sql: str) -> Any:
    cur.execute(sql)
    row = cur.fetchone()
    return row[0] if row else None


def errno_of(cur: Any, sql: str) -> int | None:
    try:
        cur.execute(sql)
    except pymysql.err.MySQLError as exc:
        return int(exc.args[0])
    return None


def test_session_without_database_never_sees_the_previous_sessions_database(
    proxy1: ProxyThread, healthy_cluster: Cluster
) -> None:
    """Issue 11, defect 1: COM_RESET_CONNECTION keeps the current database. A session that chose
    none must have none, on the primary and on the replicas."""
    a = client(proxy1, healthy_cluster, database="rwtest")
    with a.cursor() as cur:
        for _ in range(12):  # reads on the replicas, and the primary
            assert one(cur, "SELECT DATABASE()") == "rwtest"
        assert one(cur, PRIMARY + "SELECT DATABASE()") == "rwtest"
    a.close()
    nodes = len(healthy_cluster.nodes)
    wait_until(lambda: proxy1.call(proxy1.app.pool.idle_count) >= nodes, what="connections back in the pool")

    b = client(proxy1, healthy_cluster)  # no database
    with b.cursor() as cur:
        for _ in range(12):
            assert one(cur, "SELECT DATABASE()") is None
        assert one(cur, PRIMARY + "SELECT DATABASE()") is None
        table = unique_name("leak")
        assert errno_of(cur, f"CREATE TABLE {table} (v INT)") == 1046
        assert errno_of(cur, f"INSERT INTO {table} VALUES (1)") == 1046
        cur.execute("USE rwtest")  # and choosing one afterwards still works
        assert one(cur, "SELECT DATABASE()") == "rwtest"
    b.close()


def test_lost_idle_backend_connection_never_silently_drops_state(healthy_cluster: Cluster) -> None:
    """Issue 11, defect 2: after the server closes an idle backend connection, state that cannot
    be replayed (user variables assigned in a query, SET @c = NOW(), LAST_INSERT_ID()) either
    comes back exactly or the statement fails with 2006/2013, never NULL/0 without an error.
    (After that error the session goes on as a fresh one, as after a reconnect.)"""
    table = unique_name("lost")
    setups = {
        "@b": (["SELECT @b := 5"], PRIMARY + "SELECT @b", 5),
        "@c": (["SET @c = NOW()"], PRIMARY + "SELECT @c IS NOT NULL", 1),
        "LAST_INSERT_ID": (
            [f"INSERT INTO {table} (v) VALUES (1)", f"INSERT INTO {table} (v) VALUES (2)"],
            "SELECT LAST_INSERT_ID() > 0",
            1,
        ),
    }
    with small_pool_proxy(healthy_cluster, pool=8) as p:
        clients = {}
        for name, (statements, _, _) in setups.items():
            c = client(p, healthy_cluster, database="rwtest")
            with c.cursor() as cur:
                if not clients:
                    cur.execute(f"CREATE TABLE {table} (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
                cur.execute("SET wait_timeout = 1")
                for sql in statements:
                    cur.execute(sql)
            clients[name] = c
        time.sleep(3)  # the server closes the idle connections
        outcomes = {}
        for name, (_, check, want) in setups.items():
            with clients[name].cursor() as cur:
                try:
                    got = one(cur, check)
                except pymysql.err.OperationalError as exc:
                    assert exc.args[0] in (2006, 2013), exc
                    outcomes[name] = "error"
                    continue
            assert got == want, f"{name}: got {got!r} without an error, want {want!r}"
            outcomes[name] = "kept"
        assert len(outcomes) == 3
        with clients["@b"].cursor() as cur:
            cur.execute(f"DROP TABLE {table}")
        for c in clients.values():
            c.close()


def test_lost_connection_with_only_replayable_state_is_replaced_and_state_follows(
    proxy1: ProxyThread, healthy_cluster: Cluster
) -> None:
    """Constant SETs and the database are replayed on the new connection: no error, same state."""
    c = client(proxy1, healthy_cluster, database="rwtest")
    with c.cursor() as cur:
        cur.execute("SET wait_timeout = 1, @k = 'kept'")
        cur.execute("SET SESSION sql_mode = 'ANSI_QUOTES'")
        assert one(cur, PRIMARY + "SELECT @k") == "kept"
        time.sleep(3)
        assert one(cur, PRIMARY + "SELECT @k") == "kept"
        assert one(cur, PRIMARY + "SELECT @@sql_mode") == "ANSI_QUOTES"
        assert one(cur, PRIMARY + "SELECT DATABASE()") == "rwtest"
    c.close()
