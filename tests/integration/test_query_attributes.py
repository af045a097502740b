"""Routing hints in MySQL 8 query attributes, with mysql-connector-python against the real MariaDB
cluster: rwproxy offers CLIENT_QUERY_ATTRIBUTES (MariaDB does not), the connector sends its
attributes, rwproxy routes by ``rwproxy_route`` / ``rwproxy_max_lag`` and strips them, and the MariaDB
backends run the plain commands."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest
from mysql.connector.constants import ClientFlag

from rwproxy.dev.cluster import Cluster
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster


# mc_connect (conftest): mysql-connector pure Python; the C extension: test_c_extension_route_attribute.


def _server_ids(cur: Any, n: int, sql: str = "SELECT @@server_id") -> set[int]:
    seen = set()
    for _ in range(n):
        cur.execute(sql)
        seen.add(int(cur.fetchone()[0]))
    return seen


def test_the_connector_negotiates_query_attributes(mc_connect) -> None:
    conn = mc_connect()
    if hasattr(conn, "_client_flags"):  # the pure-Python connection
        assert conn._client_flags & ClientFlag.CLIENT_QUERY_ATTRIBUTES, "rwproxy must offer query attributes"


def test_route_attribute_sends_reads_to_the_primary(mc_connect, server_ids) -> None:
    conn = mc_connect()
    cur = conn.cursor()
    replicas = {v for k, v in server_ids.items() if k != "primary"}
    assert _server_ids(cur, 20) <= replicas  # no attribute: a replica
    cur.add_attribute("rwproxy_route", "primary")
    assert _server_ids(cur, 20) == {server_ids["primary"]}
    cur.execute("SELECT 1 + 1, 'a''b', @@server_id")  # the MariaDB backend never saw the attribute bytes
    assert cur.fetchone() == (2, "a'b", server_ids["primary"])
    cur.clear_attributes()
    assert _server_ids(cur, 20) <= replicas
    # Other attributes (tracing and the like) leave the route alone; replica keeps a read there.
    cur.add_attribute("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    cur.add_attribute("n", 42)
    assert _server_ids(cur, 10) <= replicas
    cur.add_attribute("rwproxy_route", "replica")
    assert _server_ids(cur, 10) <= replicas


def test_attribute_wins_over_a_comment_hint(mc_connect, server_ids) -> None:
    conn = mc_connect()
    cur = conn.cursor()
    replicas = {v for k, v in server_ids.items() if k != "primary"}
    cur.add_attribute("rwproxy_route", "replica")
    assert _server_ids(cur, 10, "/* rwproxy:primary */ SELECT @@server_id") <= replicas
    cur.clear_attributes()
    assert _server_ids(cur, 5, "/* rwproxy:primary */ SELECT @@server_id") == {server_ids["primary"]}


def test_writes_and_transactions_with_attributes(mc_connect, cluster: Cluster, server_ids) -> None:
    conn = mc_connect()
    cur = conn.cursor()
    cur.add_attribute("rwproxy_route", "replica")  # a write is never sent to a replica
    cur.execute("DROP TABLE IF EXISTS qa_plain")
    cur.execute("CREATE TABLE qa_plain (id INT PRIMARY KEY, v VARCHAR(20))")
    try:
        cur.execute("INSERT INTO qa_plain VALUES (%s, %s), (%s, %s)", (1, "x", 2, "y"))
        assert cur.rowcount == 2
        conn.start_transaction()
        cur.execute("SELECT COUNT(*), @@server_id FROM qa_plain")
        assert cur.fetchone() == (2, server_ids["primary"])  # in a transaction: the primary
        conn.commit()
    finally:
        cur.execute("DROP TABLE IF EXISTS qa_plain")


def test_prepared_statements_with_attributes(mc_connect, cluster: Cluster, server_ids) -> None:
    conn = mc_connect()
    plain = conn.cursor()
    plain.execute("DROP TABLE IF EXISTS qa_prep")
    plain.execute("CREATE TABLE qa_prep (id INT PRIMARY KEY, v VARCHAR(20), n DECIMAL(6,2), d DATETIME)")
    replicas = {v for k, v in server_ids.items() if k != "primary"}
    try:
        cur = conn.cursor(prepared=True)
        cur.add_attribute("rwproxy_route", "primary")
        when = datetime.datetime(2026, 12, 4, 22, 0, 1)
        for i, v in enumerate(["x", None, "z"], start=1):
            cur.execute("INSERT INTO qa_prep VALUES (?, ?, ?, ?)", (i, v, Decimal("1.25") * i, when))
            assert cur.rowcount == 1
        cluster.wait_replicas_caught_up()
        # Parameters of every kind still arrive right, with attributes after them.
        sql = "SELECT id, v, n, d, @@server_id FROM qa_prep WHERE id >= ? AND (v = ? OR v IS NULL OR ? > 0)"
        cur.execute(sql, (2, "z", 1.5))
        rows = [tuple(r) for r in cur.fetchall()]
        assert [r[:4] for r in rows] == [(2, None, Decimal("2.50"), when), (3, "z", Decimal("3.75"), when)]
        assert {r[4] for r in rows} == {server_ids["primary"]}
        # The same statement without the attribute: a replica.
        cur.clear_attributes()
        cur.execute(sql, (3, "z", 0))
        rows = [tuple(r) for r in cur.fetchall()]
        assert [r[:2] for r in rows] == [(3, "z")] and rows[0][4] in replicas
        # Attributes on a statement without parameters.
        cur.add_attribute("rwproxy_route", "primary")
        cur.add_attribute("n", 7)
        cur.execute("SELECT COUNT(*), @@server_id FROM qa_prep")
        assert tuple(cur.fetchone()) == (3, server_ids["primary"])
        cur.close()
    finally:
        plain.clear_attributes()
        plain.execute("DROP TABLE IF EXISTS qa_prep")


# The C extension (libmysqlclient) in a fresh interpreter: its bundled OpenSSL cannot load once the
# system ``ssl`` module is (as in test_auth_switch).
_C_EXTENSION_ROUTES = """
import _mysql_connector  # first: its bundled OpenSSL must load before the system one
import json, sys
import mysql.connector
conn = mysql.connector.connect(use_pure=False, **json.loads(sys.argv[1]))
assert type(conn).__name__ == "CMySQLConnection", type(conn)
cur = conn.cursor()
def ids(n):
    seen = set()
    for _ in range(n):
        cur.execute("SELECT @@server_id")
        seen.add(int(cur.fetchone()[0]))
    return sorted(seen)
plain = ids(20)
cur.add_attribute("rwproxy_route", "primary")
hinted = ids(20)
cur.execute("SELECT 1 + 1, 'a''b'")
row = list(cur.fetchone())
cur.clear_attributes()
print(json.dumps({"plain": plain, "hinted": hinted, "row": row, "after": ids(10)}))
conn.close()
"""


def test_c_extension_route_attribute(proxy: ProxyThread, cluster: Cluster, server_ids) -> None:
    args = {
        "host": proxy.host,
        "port": proxy.port,
        "user": cluster.app_user,
        "password": cluster.app_password,
        "database": "rwtest",
        "autocommit": True,
        "connection_timeout": 20,
    }
    done = subprocess.run(
        [sys.executable, "-c", _C_EXTENSION_ROUTES, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    replicas = {v for k, v in server_ids.items() if k != "primary"}
    assert set(out["plain"]) <= replicas and set(out["after"]) <= replicas
    assert out["hinted"] == [server_ids["primary"]]
    assert out["row"] == [2, "a'b"]
