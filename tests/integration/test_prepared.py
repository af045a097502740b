"""Binary prepared statements through rwproxy (mysql-connector-python, prepared cursors)."""

from __future__ import annotations

import contextlib
import datetime
import decimal

import mysql.connector
import pytest

from rwproxy.dev.cluster import Cluster

pytestmark = pytest.mark.cluster


@pytest.fixture
def mc(proxy, cluster: Cluster):
    conns = []

    def make(**kw):
        args = {
            "host": proxy.host,
            "port": proxy.port,
            "user": cluster.app_user,
            "password": cluster.app_password,
            "database": "rwtest",
            "autocommit": True,
            "use_pure": True,
            "ssl_disabled": True,
        }
        args.update(kw)
        c = mysql.connector.connect(**args)
        conns.append(c)
        return c

    yield make
    for c in conns:
        with contextlib.suppress(Exception):
            c.close()


@pytest.fixture(scope="module")
def ps_table(cluster: Cluster) -> None:
    conn = cluster.connect(cluster.primary)
    with conn.cursor() as cur:
        cur.execute("USE rwtest")
        cur.execute("DROP TABLE IF EXISTS ps_t")
        cur.execute(
            "CREATE TABLE ps_t (id INT AUTO_INCREMENT PRIMARY KEY, s VARCHAR(100), n INT NULL, "
            "b BLOB, d DECIMAL(18,6), dt DATETIME(6))"
        )
    conn.close()


VALUES = [
    (
        'O\'Brien "quoted" \\ back',
        None,
        bytes(range(256)),
        decimal.Decimal("-12345.678901"),
        datetime.datetime(2024, 2, 29, 23, 59, 59, 999999),
    ),
    ("x' OR '1'='1", 5, b"\x00\x00\xff", decimal.Decimal("0.000001"), datetime.datetime(1970, 1, 1, 0, 0, 1)),
]


def test_prepared_roundtrip_quotes_null_blob_decimal_datetime(mc, ps_table, cluster) -> None:
    conn = mc()
    cur = conn.cursor(prepared=True)
    ids = []
    for row in VALUES:
        cur.execute("INSERT INTO ps_t (s, n, b, d, dt) VALUES (?, ?, ?, ?, ?)", row)
        ids.append(cur.lastrowid)
    cluster.wait_replicas_caught_up()
    for i, row in zip(ids, VALUES, strict=True):
        cur.execute("SELECT s, n, b, d, dt FROM ps_t WHERE id = ?", (i,))  # runs on a replica
        got = cur.fetchone()
        assert (got[0], got[1], bytes(got[2]), got[3], got[4]) == row
    # The injection-looking string matched itself only.
    cur.execute("SELECT COUNT(*) FROM ps_t WHERE s = ?", ("x' OR '1'='1",))
    assert cur.fetchone()[0] == 1


def test_prepared_statement_reexecuted_on_other_servers(mc, ps_table, cluster, server_ids) -> None:
    conn = mc()
    cur = conn.cursor(prepared=True)
    seen = set()
    for _ in range(20):
        cur.execute("SELECT @@server_id, ? + 1", (41,))
        sid, v = cur.fetchone()
        assert v == 42
        seen.add(sid)
    assert server_ids["primary"] not in seen
    assert len(seen) == 2  # re-prepared transparently on both replicas
    conn.start_transaction()
    cur.execute("SELECT @@server_id, ? + 1", (1,))
    assert cur.fetchone() == (server_ids["primary"], 2)
    conn.commit()


def test_unknown_statement_id(mc) -> None:
    conn = mc()
    with pytest.raises(mysql.connector.Error) as exc:
        conn.cmd_stmt_execute(4242, data=(), parameters=())
    assert exc.value.errno == 1243


def test_change_user_resets_session(mc, cluster, server_ids) -> None:
    conn = mc()
    cur = conn.cursor()
    cur.execute("SET @x = 1")
    cur.execute("SELECT @x")
    assert cur.fetchone() == (1,)
    conn.cmd_change_user(username=cluster.app_user, password=cluster.app_password, database="rwtest")
    cur = conn.cursor()
    cur.execute("SELECT @x, DATABASE()")
    assert cur.fetchone() == (None, "rwtest")
