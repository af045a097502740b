"""Where statements run, observed on the real cluster through @@server_id."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pymysql
import pytest

from rwproxy.dev.cluster import Cluster

pytestmark = pytest.mark.cluster


def server_id(cur: pymysql.cursors.Cursor, sql: str = "SELECT @@server_id") -> int:
    cur.execute(sql)
    return int(cur.fetchone()[0])


def test_plain_reads_reach_every_replica_and_never_the_primary(connect, server_ids) -> None:
    conn = connect()
    with conn.cursor() as cur:
        seen = Counter(server_id(cur) for _ in range(200))
    replica_ids = {v for k, v in server_ids.items() if k != "primary"}
    assert set(seen) == replica_ids, seen
    assert server_ids["primary"] not in seen


def test_transaction_reads_stay_on_the_primary(connect, server_ids) -> None:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        assert {server_id(cur) for _ in range(20)} == {server_ids["primary"]}
        cur.execute("COMMIT")
        assert server_id(cur) != server_ids["primary"]
        cur.execute("START TRANSACTION READ ONLY")
        assert server_id(cur) == server_ids["primary"]
        cur.execute("ROLLBACK")


def test_autocommit_off_keeps_the_session_on_the_primary(connect, server_ids) -> None:
    conn = connect(autocommit=False)
    with conn.cursor() as cur:
        assert {server_id(cur) for _ in range(10)} == {server_ids["primary"]}
    conn.rollback()
    conn.autocommit(True)
    with conn.cursor() as cur:
        assert server_id(cur) != server_ids["primary"]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT @@server_id FROM DUAL FOR UPDATE",
        "SELECT @@server_id, LAST_INSERT_ID()",
        "SELECT @@server_id, GET_LOCK('rwproxy-t', 0), RELEASE_LOCK('rwproxy-t')",
        "/* rwproxy:primary */ SELECT @@server_id",
    ],
)
def test_primary_only_reads(connect, server_ids, sql: str) -> None:
    conn = connect()
    with conn.cursor() as cur:
        assert server_id(cur, sql) == server_ids["primary"]


def test_writes_go_to_the_primary_and_replicate(connect, cluster: Cluster, direct) -> None:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS routing_w (id INT PRIMARY KEY AUTO_INCREMENT, v INT)")
        cur.execute("INSERT INTO routing_w (v) VALUES (1), (2)")
        assert cur.rowcount == 2
        first_id = cur.lastrowid
    cluster.wait_replicas_caught_up()
    with direct(cluster.primary).cursor() as cur:
        cur.execute("SELECT v FROM routing_w WHERE id = %s", (first_id,))
        assert cur.fetchone() == (1,)


def test_replica_hint_and_show(connect, server_ids) -> None:
    conn = connect()
    with conn.cursor() as cur:
        assert server_id(cur, "/* rwproxy:replica */ SELECT @@server_id") != server_ids["primary"]
        cur.execute("SHOW VARIABLES LIKE 'server_id'")
        assert int(cur.fetchone()[1]) != server_ids["primary"]


def test_many_sessions_share_few_backend_connections(connect, proxy) -> None:
    before = proxy.app.pool.stats.opened  # the proxy is shared with earlier tests
    for _ in range(30):
        conn = connect()
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
        conn.close()
    opened = proxy.app.pool.stats.opened - before
    assert opened < 30, f"pool opened {opened} connections for 30 sequential sessions"


def test_explain_matches_routing(connect) -> None:
    from rwproxy.cli import main

    assert main(["explain", "SELECT * FROM t WHERE id = 1 FOR UPDATE"]) == 0


def test_unknown_server_fails_cleanly(connect: Callable[..., pymysql.Connection]) -> None:
    with pytest.raises(pymysql.err.OperationalError) as exc:
        connect(database="no_such_db_here")
    assert exc.value.args[0] == 1049
