"""The admin interface on the real cluster: admin SQL (PyMySQL and the mariadb CLI), query digests,
drain / undrain (reads leave a replica and come back), authentication (1045, the raw-socket bypass of
mysql-mimic) and the mutating HTTP endpoints with and without the bearer token."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import struct
import subprocess
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from rwproxy.dev.cluster import Cluster
from tests.support.builders import cluster_config
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster

ADMIN_USER, ADMIN_PASSWORD, TOKEN = "radmin", "admin-secret", "tok-123"


def admin_config(cluster: Cluster, *, digests: bool = True) -> str:
    admin = {
        "http_listen": "127.0.0.1:0",
        "sql_listen": "127.0.0.1:0",
        "bearer_token": TOKEN,
        "query_digest": digests,
    }
    users = ["[[admin.users]]", f'name = "{ADMIN_USER}"', f'password = "{ADMIN_PASSWORD}"']
    return cluster_config(cluster, *users, admin=admin, roles=True) + "\n"


@pytest.fixture
def admin_proxy(healthy_cluster: Cluster) -> Iterator[ProxyThread]:
    with ProxyThread(admin_config(healthy_cluster)) as p:
        yield p


def admin(p: ProxyThread, **kw: Any) -> pymysql.Connection:
    assert p.app is not None and p.app.admin_sql is not None
    args: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": p.app.admin_sql.port,
        "user": ADMIN_USER,
        "password": ADMIN_PASSWORD,
        "ssl_disabled": True,
        "connect_timeout": 5,
    }
    args.update(kw)
    return pymysql.connect(**args)


def client(p: ProxyThread, cluster: Cluster) -> pymysql.Connection:
    return pymysql.connect(
        host=p.host,
        port=p.port,
        user=cluster.app_user,
        password=cluster.app_password,
        database="mysql",
        autocommit=True,
        ssl_disabled=True,
    )


def query(conn: pymysql.Connection, sql: str) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def server_ids(cluster: Cluster) -> dict[str, int]:
    return {n.name: int(cluster.sql(n, "SELECT @@server_id")[0][0]) for n in cluster.nodes}


def read_ids(p: ProxyThread, cluster: Cluster, n: int) -> Counter[int]:
    seen: Counter[int] = Counter()
    with client(p, cluster) as c, c.cursor() as cur:
        for _ in range(n):
            cur.execute("SELECT @@server_id")
            seen[int(cur.fetchone()[0])] += 1
    return seen


def test_select_servers_and_other_tables(admin_proxy: ProxyThread, healthy_cluster: Cluster) -> None:
    with admin(admin_proxy) as a:
        rows = query(a, "SELECT name, port, role, state, admin_status FROM servers ORDER BY name")
        assert rows == sorted(
            (n.name, n.port, "primary" if n is healthy_cluster.primary else "replica", "ONLINE", "ONLINE")
            for n in healthy_cluster.nodes
        )
        with a.cursor() as cur:
            cur.execute("SELECT * FROM servers")
            columns = [d[0] for d in cur.description]
        assert columns[:5] == ["name", "host", "port", "role", "state"] and "admin_status" in columns
        assert query(a, "SELECT count(*) FROM servers WHERE role = 'replica'") == [(2,)]
        with client(admin_proxy, healthy_cluster) as c:
            query(c, "SELECT 1")
            sessions = query(a, "SELECT user, db, in_transaction FROM sessions")
            assert (healthy_cluster.app_user, "mysql", 0) in sessions
        pools = query(a, "SELECT server, open FROM pools ORDER BY server")
        assert [r[0] for r in pools] == sorted(n.name for n in healthy_cluster.nodes)
        stats = dict(query(a, "SELECT name, value FROM stats"))
        assert stats["client_connections"] == 0 and stats["queries"] >= 1
        assert {r[0] for r in query(a, "SHOW TABLES")} >= {"servers", "query_digest", "sessions"}
        with pytest.raises(pymysql.err.ProgrammingError) as err:
            query(a, "SELECT * FROM no_such_table")
        assert err.value.args[0] == 1146


def test_query_digest_counts_after_known_traffic(admin_proxy: ProxyThread, healthy_cluster: Cluster) -> None:
    with client(admin_proxy, healthy_cluster) as c:
        for i in range(37):
            query(c, f"SELECT {i} AS digest_probe_a FROM DUAL WHERE {i} >= 0")
        for i in range(11):
            query(c, f"SELECT User FROM mysql.user WHERE User = 'nobody{i}' FOR UPDATE")
        for _ in range(3):
            with pytest.raises(pymysql.err.ProgrammingError):
                query(c, "SELECT * FROM digest_probe_missing_table")
    with admin(admin_proxy) as a:
        top = query(a, "SELECT digest, count FROM query_digest ORDER BY count DESC LIMIT 5")
        assert top[0] == ("SELECT ? AS digest_probe_a FROM DUAL WHERE ? >= ?", 37)
        assert top[1] == ("SELECT User FROM mysql.user WHERE User = ? FOR UPDATE", 11)
        rows = query(
            a,
            "SELECT count, route, primary_count, replica_count, errors, example FROM query_digest "
            "WHERE digest LIKE '%digest_probe%' ORDER BY count DESC",
        )
    assert rows[0][:5] == (37, "replica", 0, 37, 0) and rows[0][5].startswith("SELECT 0 AS digest_probe_a")
    assert rows[1][:5] == (3, "replica", 0, 3, 3)
    locking = [r for r in admin_proxy.app.digests.rows() if "FOR UPDATE" in r["digest"]]  # type: ignore[union-attr]
    assert locking[0]["route"] == "primary" and locking[0]["avg_time_us"] > 0

    # The same table as JSON over HTTP.
    with urllib.request.urlopen(f"{admin_proxy.app.admin_http.url}/digests?limit=2") as r:  # type: ignore[union-attr]
        body = json.load(r)
    assert body["enabled"] is True and [d["count"] for d in body["digests"]] == [37, 11]


def test_mariadb_cli(admin_proxy: ProxyThread) -> None:
    assert admin_proxy.app is not None and admin_proxy.app.admin_sql is not None
    base = ["mariadb", "-h", "127.0.0.1", "-P", str(admin_proxy.app.admin_sql.port), "-u", ADMIN_USER]
    base += ["--skip-ssl", "--batch", "--skip-column-names"]
    run = subprocess.run(
        [*base, f"-p{ADMIN_PASSWORD}", "-e", "SELECT name, role FROM servers ORDER BY name"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 0, run.stderr
    assert [line.split("\t")[1] for line in run.stdout.splitlines()].count("replica") == 2
    run = subprocess.run(
        [
            *base,
            f"-p{ADMIN_PASSWORD}",
            "-e",
            "SELECT digest, count FROM query_digest ORDER BY count DESC LIMIT 5",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 0, run.stderr
    run = subprocess.run(
        [*base, "-pwrong", "-e", "SELECT * FROM servers"], capture_output=True, text=True, timeout=30
    )
    assert run.returncode != 0 and "1045" in run.stderr


def test_drain_and_undrain_move_reads(admin_proxy: ProxyThread, healthy_cluster: Cluster) -> None:
    ids = server_ids(healthy_cluster)
    r1, r2 = healthy_cluster.replicas[0], healthy_cluster.replicas[1]
    before = read_ids(admin_proxy, healthy_cluster, 200)
    assert before[ids[r1.name]] > 0 and before[ids[r2.name]] > 0

    with admin(admin_proxy) as a:
        # A session inside a transaction keeps going while the drain happens.
        with client(admin_proxy, healthy_cluster) as tx:
            query(tx, "BEGIN")
            assert query(tx, "SELECT @@server_id") == [(ids[healthy_cluster.primary.name],)]
            out = query(a, f"UPDATE servers SET admin_status = 'OFFLINE' WHERE name = '{r1.name}'")
            assert out == [(r1.name, "OFFLINE", "yes")]
            assert query(tx, "SELECT @@server_id") == [(ids[healthy_cluster.primary.name],)]
            query(tx, "COMMIT")
        assert query(a, f"SELECT admin_status FROM servers WHERE name = '{r1.name}'") == [("OFFLINE",)]
        during = read_ids(admin_proxy, healthy_cluster, 200)
        assert during[ids[r1.name]] == 0 and during[ids[r2.name]] == 200

        with pytest.raises(pymysql.err.OperationalError) as err:
            query(a, f"SET SERVER {healthy_cluster.primary.name} OFFLINE")
        assert err.value.args[0] == 1231 and "primary" in err.value.args[1]
        with pytest.raises(pymysql.err.OperationalError):
            query(a, "SET SERVER no_such_server OFFLINE")

        assert query(a, f"SET SERVER {r1.name} ONLINE") == [(r1.name, "ONLINE", "yes")]
        after = read_ids(admin_proxy, healthy_cluster, 200)
        assert after[ids[r1.name]] > 0 and after[ids[r2.name]] > 0

        with pytest.raises(pymysql.err.OperationalError) as err:
            query(a, f"SWITCHOVER TO {r1.name}")
        assert 'need role = "auto"' in err.value.args[1]  # this config fixes the roles


def test_wrong_password_and_unknown_user_get_1045(admin_proxy: ProxyThread) -> None:
    for user, password in [(ADMIN_USER, "wrong"), ("nobody", ADMIN_PASSWORD), (ADMIN_USER, "")]:
        with pytest.raises(pymysql.err.OperationalError) as err:
            admin(admin_proxy, user=user, password=password)
        assert err.value.args[0] == 1045


def _read_packet(sock: socket.socket) -> bytes:
    header = _recv_exact(sock, 4)
    length = header[0] | header[1] << 8 | header[2] << 16
    return _recv_exact(sock, length)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionResetError("closed")
        data += chunk
    return data


def test_auth_bypass_is_closed_raw_socket(admin_proxy: ProxyThread) -> None:
    """A client that ignores ERR 1045 and sends COM_QUERY anyway gets nothing: the connection ends."""
    assert admin_proxy.app is not None and admin_proxy.app.admin_sql is not None
    with socket.create_connection(("127.0.0.1", admin_proxy.app.admin_sql.port), timeout=5) as sock:
        greeting = _read_packet(sock)
        assert greeting[0] == 10  # protocol version 10
        caps = 0x0200 | 0x8000 | 0x80000  # PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH
        scramble = hashlib.sha1(b"not the password").digest()
        body = struct.pack("<IIB23x", caps, 1 << 24, 33) + ADMIN_USER.encode() + b"\0"
        body += bytes([len(scramble)]) + scramble + b"mysql_native_password\0"
        sock.sendall(struct.pack("<I", len(body))[:3] + b"\x01" + body)
        reply = _read_packet(sock)
        assert reply[0] == 0xFF and struct.unpack_from("<H", reply, 1)[0] == 1045
        query_body = b"\x03SELECT * FROM servers"
        try:
            sock.sendall(struct.pack("<I", len(query_body))[:3] + b"\x00" + query_body)
            rest = b""
            while chunk := sock.recv(65536):
                rest += chunk
        except (ConnectionResetError, BrokenPipeError):
            rest = b""
    assert rest == b"", f"the server answered after a failed login: {rest!r}"


def _post(url: str, token: str | None = None, body: bytes = b"") -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=body, method="POST")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_http_drain_needs_the_token(admin_proxy: ProxyThread, healthy_cluster: Cluster) -> None:
    assert admin_proxy.app is not None and admin_proxy.app.admin_http is not None
    url = admin_proxy.app.admin_http.url
    replica = healthy_cluster.replicas[1].name
    assert _post(f"{url}/servers/{replica}/drain")[0] == 401
    assert _post(f"{url}/servers/{replica}/drain", "wrong")[0] == 401
    assert admin_proxy.app.drained == frozenset()

    status, body = _post(f"{url}/servers/{replica}/drain", TOKEN)
    assert (status, body) == (200, {"server": replica, "drained": True, "changed": True})
    ids = server_ids(healthy_cluster)
    assert read_ids(admin_proxy, healthy_cluster, 100)[ids[replica]] == 0
    with urllib.request.urlopen(f"{url}/status") as r:
        nodes = {n["name"]: n for n in json.load(r)["nodes"]}
    assert nodes[replica]["drained"] is True

    assert _post(f"{url}/servers/{healthy_cluster.primary.name}/drain", TOKEN)[0] == 409
    assert _post(f"{url}/servers/nope/drain", TOKEN)[0] == 404
    assert _post(f"{url}/servers/{replica}/undrain")[0] == 401
    assert _post(f"{url}/servers/{replica}/undrain", TOKEN) == (
        200,
        {"server": replica, "drained": False, "changed": True},
    )
    assert read_ids(admin_proxy, healthy_cluster, 200)[ids[replica]] > 0

    assert _post(f"{url}/switchover", None, b'{"to": "x"}')[0] == 401
    status, body = _post(f"{url}/switchover", TOKEN, b'{"to": "x"}')
    assert status == 409 and "role" in body["error"], body  # fixed roles in this config: refused, said why


def test_per_server_counts_and_readable_values(admin_proxy: ProxyThread, healthy_cluster: Cluster) -> None:
    """admin SQL servers, /status and `rwproxy status` show statements and connections per server;
    counters are integers (15, not 15.0) and times are readable."""
    from rwproxy.cli import render_status

    primary = healthy_cluster.primary.name
    with client(admin_proxy, healthy_cluster) as c:
        for i in range(6):
            query(c, f"SELECT {i} AS per_server_probe")
        query(c, "BEGIN")
        for _ in range(4):
            query(c, "SELECT 1 FOR UPDATE")
        query(c, "COMMIT")
        with admin(admin_proxy) as a:
            rows = {
                r[0]: r[1:]
                for r in query(
                    a, "SELECT name, queries, connections, connections_in_use, client_sessions FROM servers"
                )
            }
            # BEGIN + 4 + COMMIT on the primary; the 6 reads on the replicas; the session holds both
            assert rows[primary][0] >= 6, rows
            assert sum(v[0] for name, v in rows.items() if name != primary) >= 6, rows
            assert rows[primary][1] >= 1 and rows[primary][3] == 1, rows
            assert all(isinstance(v[0], int) and isinstance(v[1], int) for v in rows.values()), rows
            stats = dict(query(a, "SELECT name, value FROM stats"))
            assert isinstance(stats["queries"], int) and stats["queries"] >= 12, stats
            assert "time" not in stats
            (first_seen,) = query(
                a, "SELECT first_seen FROM query_digest WHERE digest LIKE '%per_server_probe%'"
            )[0]
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", first_seen), first_seen
    assert admin_proxy.app is not None and admin_proxy.app.admin_http is not None
    with urllib.request.urlopen(admin_proxy.app.admin_http.url + "/status", timeout=5) as r:
        doc = json.load(r)
    nodes = {n["name"]: n for n in doc["nodes"]}
    assert nodes[primary]["queries"] >= 6 and nodes[primary]["connections"] >= 1
    table = render_status(doc)
    header = table.splitlines()[2]
    assert "queries" in header and "conns" in header and "clients" in header, table
    line = next(x for x in table.splitlines() if x.startswith(primary + " "))
    assert str(nodes[primary]["queries"]) in line.split(), table
    assert " s," in table.splitlines()[0] or " min " in table.splitlines()[0], table  # "up 12 s"
