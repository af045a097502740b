"""Worker processes (``[proxy] workers = 2``) against the real cluster, through a real ``python -m
rwproxy run``: connections land on both workers (connection ids of both residues, per-worker
sessions in /status), reads go to replicas and writes to the primary from each, the servers see one
monitor (one ``rwmonitor`` connection each, not two), /metrics totals are the sum over the workers,
a reload reaches the workers, a SIGKILLed worker is restarted, SIGTERM drains them all, and killing
the primary gives one failover after which every worker writes to the new primary.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from rwproxy.dev.cluster import Cluster
from rwproxy.dev.demo import server_tables, user_table
from tests.support.net import free_ports
from tests.support.proxy_process import ProxyProcess

pytestmark = pytest.mark.cluster

TOKEN = "workers-token-3c1d"
CONNECTIONS = 24


def config_text(c: Cluster, *, workers: int = 2, reads_to_primary: bool = False) -> str:
    lines = [
        "[proxy]",
        'listen = ["{listen}"]',
        f"workers = {workers}",
        "shutdown_grace_seconds = 2",
        "[admin]",
        'http_listen = "{admin}"',
        f'bearer_token = "{TOKEN}"',
        "[routing]",
        f"reads_to_primary = {'true' if reads_to_primary else 'false'}",
        "[monitor]",
        f'user = "{c.monitor_user}"',
        f'password = "{c.monitor_password}"',
        "interval_seconds = 0.2",
        "connect_timeout_seconds = 0.5",
        "check_timeout_seconds = 0.5",
        "failures_to_offline = 3",
        "successes_to_online = 2",
        "[failover]",
        'mode = "promote"',
        f'user = "{c.failover_user}"',
        f'password = "{c.failover_password}"',
        f'replication_user = "{c.repl_user}"',
        f'replication_password = "{c.repl_password}"',
        "min_interval_seconds = 0",
        *user_table(c),
        'default_database = "rwtest"',
        *server_tables(c, roles=False),
    ]
    return "\n".join(lines)


def _wait(cond: Callable[[], Any], timeout: float, what: str, p: ProxyProcess | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            log = p.log_text()[-4000:] if p is not None else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{log}")
        time.sleep(0.1)


def _status(p: ProxyProcess) -> dict[str, Any]:
    """/status, or {} while it does not answer (a loaded machine: the waits poll again)."""
    try:
        return p.status()
    except OSError:
        return {}


def _workers_ready(p: ProxyProcess, n: int = 2) -> list[dict[str, Any]] | None:
    workers = _status(p).get("workers", [])
    return workers if len(workers) == n and all(w["ready"] for w in workers) else None


def _connect(p: ProxyProcess, c: Cluster) -> pymysql.Connection:
    return pymysql.connect(
        host=p.host,
        port=p.port,
        user=c.app_user,
        password=c.app_password,
        database="rwtest",
        autocommit=True,
        connect_timeout=10,
        read_timeout=20,
    )


def _one(conn: pymysql.Connection, sql: str) -> Any:
    with conn.cursor() as cur:
        cur.execute(sql)
        row = cur.fetchone()
    assert row is not None
    return row[0]


def _post(p: ProxyProcess, path: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{p.admin_port}{path}",
        data=b"",
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        doc = json.load(response)
    assert isinstance(doc, dict)
    return doc


def _metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{name}(\{{(.*)\}})? (\S+)$", line)
        if m is None:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def _local_ports(pid: int) -> set[int]:
    """The local TCP ports of the sockets process ``pid`` holds (from /proc: fd inodes, net/tcp*)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


@pytest.fixture
def table(healthy_cluster: Cluster) -> Cluster:
    c = healthy_cluster
    c.sql(c.primary, "CREATE TABLE IF NOT EXISTS rwtest.workers (id INT PRIMARY KEY, worker INT)")
    c.sql(c.primary, "DELETE FROM rwtest.workers")
    c.wait_replicas_caught_up()
    return c


@pytest.fixture
def workers_proxy(table: Cluster, tmp_path: Path) -> Iterator[ProxyProcess]:
    p = ProxyProcess(config_text(table), tmp_path / "proxy").start()
    try:
        _wait(lambda: _workers_ready(p), 30, "two ready workers", p)
        yield p
    finally:
        p.stop()


def test_two_workers_split_the_connections_and_route_like_one_proxy(
    table: Cluster, workers_proxy: ProxyProcess
) -> None:
    c, p = table, workers_proxy
    workers = _workers_ready(p)
    assert workers is not None
    pids = {w["pid"] for w in workers}
    assert len(pids) == 2 and all(_ppid(pid) == p.pid for pid in pids)
    replica_ports = {n.port for n in c.replicas}
    conns = [_connect(p, c) for _ in range(CONNECTIONS)]
    try:
        ids = [int(_one(conn, "SELECT CONNECTION_ID()")) for conn in conns]
        assert len(set(ids)) == CONNECTIONS  # unique across the instance
        assert {i % 2 for i in ids} == {0, 1}  # both workers (worker k hands out ids = k + 1 mod 2)
        status = p.status()
        assert status["sessions"] == CONNECTIONS
        per_worker = {w["worker"]: w["sessions"] for w in status["workers"]}
        assert per_worker[0] == sum(1 for i in ids if i % 2 == 1)
        assert per_worker[1] == sum(1 for i in ids if i % 2 == 0)
        for conn, i in zip(conns, ids, strict=True):
            assert int(_one(conn, "SELECT @@port")) in replica_ports  # reads: a replica
            with conn.cursor() as cur:
                cur.execute("INSERT INTO rwtest.workers VALUES (%s, %s)", (i, (i - 1) % 2))
        rows = c.sql(c.primary, "SELECT worker, COUNT(*) FROM rwtest.workers GROUP BY worker")
        assert dict((int(w), int(n)) for w, n in rows) == {0: per_worker[0], 1: per_worker[1]}

        # One monitor for the instance: one rwmonitor connection per server, from the supervisor, none
        # from a worker. The cluster is shared with the suite's other proxies (their monitors log in
        # as the same user), so the server's process list is matched to this instance's sockets.
        ports = {pid: _local_ports(pid) for pid in (p.pid, *pids)}
        for node in c.nodes:
            hosts = c.admin_sql(
                node, "SELECT HOST FROM information_schema.PROCESSLIST WHERE USER = %s", (c.monitor_user,)
            )
            client_ports = {int(str(h[0]).rsplit(":", 1)[1]) for h in hosts if ":" in str(h[0])}
            mine = {pid: len(client_ports & owned) for pid, owned in ports.items()}
            assert mine[p.pid] == 1 and sum(mine.values()) == 1, (node.name, mine)

        # /metrics: instance totals = what went through both workers.
        text = p.metrics()
        assert _metric_sum(text, "rwproxy_client_connections") == CONNECTIONS
        assert _metric_sum(text, "rwproxy_statements_total", kind="insert") == CONNECTIONS
        replica_reads = sum(
            _metric_sum(text, "rwproxy_queries_total", node=n.name, route_reason="read") for n in c.replicas
        )
        assert replica_reads >= CONNECTIONS
        # /status per server: the queries of both workers.
        nodes = {n["name"]: n for n in p.status()["nodes"]}
        assert sum(nodes[n.name]["queries"] for n in c.replicas) == replica_reads
        assert _metric_sum(text, "rwproxy_worker_up") == 2
        for k in (0, 1):
            assert _metric_sum(text, "rwproxy_worker_client_connections", worker=str(k)) == per_worker[k]
    finally:
        for conn in conns:
            conn.close()

    # SIGTERM drains every worker and the supervisor exits 0.
    p.stop()
    assert p.proc is not None and p.proc.returncode == 0
    _wait(lambda: not any(_alive(pid) for pid in pids), 10, "the workers to exit")


def test_reload_reaches_every_worker(table: Cluster, workers_proxy: ProxyProcess) -> None:
    c, p = table, workers_proxy
    primary_port = c.primary.port
    before = [_connect(p, c) for _ in range(8)]
    try:
        assert all(int(_one(conn, "SELECT @@port")) != primary_port for conn in before)
        text = config_text(c, reads_to_primary=True)
        text = text.replace("{listen}", f"127.0.0.1:{p.port}").replace("{admin}", f"127.0.0.1:{p.admin_port}")
        p.config_path.write_text(text)
        doc = _post(p, "/reload")
        assert doc["ok"] is True and any("reads_to_primary" in ch for ch in doc["changes"]), doc
        # Sessions already open in both workers, and new ones, now read from the primary.
        assert {int(_one(conn, "SELECT CONNECTION_ID()")) % 2 for conn in before} == {0, 1}
        assert all(int(_one(conn, "SELECT @@port")) == primary_port for conn in before)
        after = [_connect(p, c) for _ in range(8)]
        try:
            assert all(int(_one(conn, "SELECT @@port")) == primary_port for conn in after)
        finally:
            for conn in after:
                conn.close()
    finally:
        for conn in before:
            conn.close()


def test_a_killed_worker_is_restarted(table: Cluster, workers_proxy: ProxyProcess) -> None:
    c, p = table, workers_proxy
    workers = _workers_ready(p)
    assert workers is not None
    victim = workers[0]["pid"]
    for conn in [_connect(p, c) for _ in range(8)]:
        conn.close()
    accepted = _metric_sum(p.metrics(), "rwproxy_client_connections_accepted_total")
    assert accepted >= 8
    os.kill(victim, signal.SIGKILL)

    def restarted() -> bool:
        workers = _status(p).get("workers", [])
        return bool(
            workers and workers[0]["ready"] and workers[0]["pid"] != victim and workers[0]["restarts"] == 1
        )

    _wait(restarted, 30, "worker 0 to be restarted", p)
    assert "worker 0 (pid" in p.log_text() and "died" in p.log_text()
    conns = [_connect(p, c) for _ in range(16)]
    try:
        ids = [int(_one(conn, "SELECT CONNECTION_ID()")) for conn in conns]
        assert {i % 2 for i in ids} == {0, 1}  # the new worker 0 takes connections again
        assert all(int(_one(conn, "SELECT 1")) == 1 for conn in conns)
    finally:
        for conn in conns:
            conn.close()
    text = p.metrics()
    assert _metric_sum(text, "rwproxy_worker_restarts_total", worker="0") == 1
    # Counters stay monotonic across the restart: the dead process's count is kept.
    assert _metric_sum(text, "rwproxy_client_connections_accepted_total") == accepted + 16


def test_one_failover_for_the_instance_and_every_worker_writes_to_the_new_primary(
    fresh_cluster: Cluster, tmp_path: Path
) -> None:
    c = fresh_cluster
    c.sql(c.primary, "CREATE TABLE IF NOT EXISTS rwtest.workers (id INT PRIMARY KEY, worker INT)")
    c.wait_replicas_caught_up()
    old = c.primary
    with ProxyProcess(config_text(c), tmp_path / "proxy") as p:
        _wait(lambda: _workers_ready(p), 30, "two ready workers", p)
        c.kill_node(old)

        def promoted() -> str | None:
            doc = _status(p)
            primary = [
                n["name"] for n in doc.get("nodes", []) if n["role"] == "primary" and n["state"] == "online"
            ]
            return primary[0] if primary and primary[0] != old.name else None

        new_name = _wait(promoted, 30, "a new primary", p)
        new = c.node(new_name)
        _wait(lambda: _status(p).get("failover", {}).get("failovers"), 30, "the failover report", p)
        failovers = p.status()["failover"]["failovers"]
        assert failovers == {"ok": 1}, failovers  # one failover for the instance, not one per worker
        conns = [_connect(p, c) for _ in range(12)]
        try:
            ids = [int(_one(conn, "SELECT CONNECTION_ID()")) for conn in conns]
            assert {i % 2 for i in ids} == {0, 1}
            for conn, i in zip(conns, ids, strict=True):
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO rwtest.workers VALUES (%s, %s)", (i, (i - 1) % 2))
        finally:
            for conn in conns:
                conn.close()
        got = {int(r[0]) for r in c.sql(new, "SELECT id FROM rwtest.workers")}
        assert set(ids) <= got
        assert p.status()["failover"]["failovers"] == {"ok": 1}


class _Writer:
    """Autocommit INSERTs through the proxy on one connection (ids ``base + 1, base + 2, ...``);
    records the acknowledged ids, the errors and the connection's worker."""

    def __init__(self, p: ProxyProcess, c: Cluster, base: int) -> None:
        self.p, self.c, self.base = p, c, base
        self.acked: list[int] = []
        self.errors: list[str] = []
        self.worker: int | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conn = _connect(self.p, self.c)
        self.worker = (int(_one(conn, "SELECT CONNECTION_ID()")) - 1) % 2
        seq = self.base
        while not self.stop.is_set():
            seq += 1
            try:
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO rwtest.workers VALUES (%s, %s)", (seq, self.worker))
                self.acked.append(seq)
            except pymysql.MySQLError as exc:
                self.errors.append(repr(exc))
                conn.close()
                conn = _connect(self.p, self.c)
            time.sleep(0.003)
        conn.close()


def test_switchover_under_write_load_buffers_writes_in_every_worker(
    fresh_cluster: Cluster, tmp_path: Path
) -> None:
    c = fresh_cluster
    c.sql(c.primary, "CREATE TABLE IF NOT EXISTS rwtest.workers (id INT PRIMARY KEY, worker INT)")
    c.wait_replicas_caught_up()
    with ProxyProcess(config_text(c), tmp_path / "proxy") as p:
        _wait(lambda: _workers_ready(p), 30, "two ready workers", p)
        writers: list[_Writer] = []
        while len({w.worker for w in writers if w.worker is not None}) < 2 and len(writers) < 12:
            writers.append(_Writer(p, c, 100_000 * (len(writers) + 1)))
            _wait(lambda: writers[-1].worker is not None, 10, "a writer connected", p)
        assert {w.worker for w in writers} == {0, 1}
        _wait(lambda: all(len(w.acked) > 20 for w in writers), 20, "writes flowing", p)
        doc = _post(p, "/switchover")
        time.sleep(0.5)
        for w in writers:
            w.stop.set()
        for w in writers:
            w.thread.join(30)
        assert doc["result"] == "ok", doc
        assert [e for w in writers for e in w.errors] == [], p.log_text()[-3000:]
        new = c.node(doc["switchover"])
        c.primary = new
        rows = {int(r[0]) for r in c.sql(new, "SELECT id FROM rwtest.workers")}
        assert all(seq in rows for w in writers for seq in w.acked)


def test_kill_reaches_a_session_in_the_other_worker(table: Cluster, workers_proxy: ProxyProcess) -> None:
    c, p = table, workers_proxy
    conns = [_connect(p, c) for _ in range(10)]
    try:
        by_worker: dict[int, list[tuple[int, pymysql.Connection]]] = {0: [], 1: []}
        for conn in conns:
            i = int(_one(conn, "SELECT CONNECTION_ID()"))
            by_worker[(i - 1) % 2].append((i, conn))
        assert by_worker[0] and by_worker[1]
        killer, (victim_id, victim) = by_worker[0][0][1], by_worker[1][0]
        with victim.cursor() as cur:  # a statement running in the other worker when the KILL comes
            sleeper = threading.Thread(target=lambda: _swallow(cur, "SELECT SLEEP(20)"), daemon=True)
            sleeper.start()
            time.sleep(0.5)
            started = time.monotonic()
            with killer.cursor() as kcur:
                kcur.execute(f"KILL {victim_id}")
            sleeper.join(15)
            assert not sleeper.is_alive() and time.monotonic() - started < 10
        with pytest.raises((pymysql.err.OperationalError, pymysql.err.InterfaceError)):
            _one(victim, "SELECT 1")  # its connection was closed by its worker
        # An id of the other worker that no session has: ERR 1094 as for any unknown id.
        unknown = victim_id + 2 * 1000  # the victim's residue: handed out by worker 1, never used
        assert (unknown - 1) % 2 == 1
        with pytest.raises(pymysql.err.OperationalError) as err, killer.cursor() as kcur:
            kcur.execute(f"KILL {unknown}")
        assert err.value.args[0] == 1094
        assert int(_one(killer, "SELECT 1")) == 1
    finally:
        for conn in conns:
            conn.close()


def _swallow(cur: Any, sql: str) -> None:
    with contextlib.suppress(pymysql.MySQLError):
        cur.execute(sql)


ADMIN_USER, ADMIN_PASSWORD = "wadmin", "workers-admin-secret"


@pytest.fixture
def admin_workers_proxy(table: Cluster, tmp_path: Path) -> Iterator[tuple[ProxyProcess, int]]:
    (sql_port,) = free_ports(1)
    text = config_text(table).replace(
        'http_listen = "{admin}"', f'http_listen = "{{admin}}"\nsql_listen = "127.0.0.1:{sql_port}"'
    )
    text += f'\n[[admin.users]]\nname = "{ADMIN_USER}"\npassword = "{ADMIN_PASSWORD}"\n'
    p = ProxyProcess(text, tmp_path / "proxy").start()
    try:
        _wait(lambda: _workers_ready(p), 30, "two ready workers", p)
        yield p, sql_port
    finally:
        p.stop()


def test_admin_sessions_and_digests_cover_every_worker(
    table: Cluster, admin_workers_proxy: tuple[ProxyProcess, int]
) -> None:
    c, (p, sql_port) = table, admin_workers_proxy
    conns = [_connect(p, c) for _ in range(10)]
    admin = pymysql.connect(
        host="127.0.0.1", port=sql_port, user=ADMIN_USER, password=ADMIN_PASSWORD, connect_timeout=5
    )
    try:
        ids = {int(_one(conn, "SELECT CONNECTION_ID()")): conn for conn in conns}
        assert {(i - 1) % 2 for i in ids} == {0, 1}  # sessions on both workers
        for n, conn in enumerate(conns):
            with conn.cursor() as cur:
                cur.execute(f"SELECT id AS workers_admin_probe FROM rwtest.workers WHERE id = {n}")
        with admin.cursor() as cur:
            cur.execute("SELECT id, worker, user, backend FROM sessions")
            rows = cur.fetchall()
        assert {int(r[0]): int(r[1]) for r in rows} == {i: (i - 1) % 2 for i in ids}
        assert {r[2] for r in rows} == {c.app_user}

        # Per server: the backend connections and client sessions of both workers, in the admin
        # servers/pools tables and /status alike (the sessions are idle: they hold what they hold).
        holding = {n.name: sum(1 for r in rows if n.name in (r[3] or "").split(",")) for n in c.nodes}
        assert sum(holding.values()) >= len(conns)
        with admin.cursor() as cur:
            cur.execute("SELECT name, client_sessions, connections FROM servers")
            servers = {r[0]: (int(r[1]), int(r[2])) for r in cur.fetchall()}
            cur.execute("SELECT server, open FROM pools")
            pools = {r[0]: int(r[1]) for r in cur.fetchall()}
        assert {name: s for name, (s, _) in servers.items()} == holding
        assert {name: n for name, (_, n) in servers.items()} == pools
        assert all(pools[name] >= n for name, n in holding.items())
        nodes = {n["name"]: n for n in p.status()["nodes"]}
        assert {name: n["client_sessions"] for name, n in nodes.items()} == holding
        assert {name: n["connections"] for name, n in nodes.items()} == pools

        # /digests: the statement ran 10 times, on both workers: one row, counts summed.
        body = json.loads(
            urllib.request.urlopen(f"http://127.0.0.1:{p.admin_port}/digests", timeout=10).read()
        )
        [row] = [d for d in body["digests"] if "workers_admin_probe" in d["digest"]]
        assert row["count"] == len(conns)
        assert row["replica_count"] == len(conns) and row["route"] == "replica"
        assert row["avg_time_us"] == round(row["total_time_us"] / len(conns))
        with admin.cursor() as cur:
            cur.execute("SELECT count FROM query_digest WHERE digest_id = %s", (row["digest_id"],))
            assert [int(r[0]) for r in cur.fetchall()] == [len(conns)]
    finally:
        admin.close()
        for conn in conns:
            conn.close()


def test_the_process_list_of_a_worker_shows_every_workers_sessions(
    table: Cluster, workers_proxy: ProxyProcess
) -> None:
    c, p = table, workers_proxy
    conns = [_connect(p, c) for _ in range(10)]
    try:
        ids = {int(_one(conn, "SELECT CONNECTION_ID()")): conn for conn in conns}
        assert {(i - 1) % 2 for i in ids} == {0, 1}  # sessions on both workers
        sleeper_id = next(i for i in ids if (i - 1) % 2 == 1)
        with ids[sleeper_id].cursor() as cur:  # a statement running in worker 1 meanwhile
            sleeper = threading.Thread(target=lambda: _swallow(cur, "SELECT SLEEP(20)"), daemon=True)
            sleeper.start()
            time.sleep(0.5)
            for i, conn in ids.items():
                if i == sleeper_id:
                    continue  # its connection is busy with the sleep
                with conn.cursor() as lcur:
                    lcur.execute("SHOW FULL PROCESSLIST")
                    rows = {int(r[0]): r for r in lcur.fetchall()}
                    assert set(rows) == set(ids), i  # every worker's sessions, from either worker
                    assert rows[i][4] == "Query" and rows[i][7] == "SHOW FULL PROCESSLIST"
                    assert rows[sleeper_id][4] == "Query" and rows[sleeper_id][7] == "SELECT SLEEP(20)"
                    lcur.execute("SELECT ID FROM information_schema.PROCESSLIST ORDER BY ID")
                    assert [int(r[0]) for r in lcur.fetchall()] == sorted(ids), i
            killer = next(conn for i, conn in ids.items() if (i - 1) % 2 == 0)
            with killer.cursor() as kcur:
                kcur.execute(f"KILL QUERY {sleeper_id}")
            sleeper.join(15)
            assert not sleeper.is_alive()
    finally:
        for conn in conns:
            conn.close()


def test_a_hung_worker_leaves_the_admin_views_and_process_list_answering(
    table: Cluster, admin_workers_proxy: tuple[ProxyProcess, int]
) -> None:
    c, (p, sql_port) = table, admin_workers_proxy
    conns = [_connect(p, c) for _ in range(10)]
    workers = _workers_ready(p)
    assert workers is not None
    hung = next(w["pid"] for w in workers if w["worker"] == 1)
    admin = pymysql.connect(
        host="127.0.0.1", port=sql_port, user=ADMIN_USER, password=ADMIN_PASSWORD, connect_timeout=5
    )
    try:
        ids = {int(_one(conn, "SELECT CONNECTION_ID()")): conn for conn in conns}
        mine = {i for i in ids if (i - 1) % 2 == 0}
        assert mine and mine != set(ids)
        os.kill(hung, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with admin.cursor() as cur:
                cur.execute("SELECT id, worker FROM sessions")
                assert {int(r[0]): int(r[1]) for r in cur.fetchall()} == dict.fromkeys(mine, 0)
            body = json.loads(
                urllib.request.urlopen(f"http://127.0.0.1:{p.admin_port}/digests", timeout=15).read()
            )
            assert body["enabled"] is True
            with ids[min(mine)].cursor() as cur:  # the other worker does not answer: its own list
                cur.execute("SHOW PROCESSLIST")
                assert {int(r[0]) for r in cur.fetchall()} == mine
            assert time.monotonic() - started < 15  # three waits of REPLY_TIMEOUT (2 s), not forever
        finally:
            os.kill(hung, signal.SIGCONT)
        with admin.cursor() as cur:  # back: every session again (late answers were dropped)
            cur.execute("SELECT id FROM sessions")
            assert {int(r[0]) for r in cur.fetchall()} == set(ids)
    finally:
        admin.close()
        for conn in conns:
            conn.close()
