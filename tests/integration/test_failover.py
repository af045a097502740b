"""Failover, fencing, switchover and split-brain refusal on a real cluster (one fresh cluster each).

Short pacing: checks every 0.2 s, OFFLINE after 3 failures, so a dead primary is declared in
~0.6 s plus the replicas' confirmation. Measured times are printed (``pytest -s``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pymysql
import pytest

from rwproxy.dev.cluster import Cluster, ClusterNode
from rwproxy.dev.demo import user_table
from tests.support.builders import cluster_config
from tests.support.flaky_link import FlakyLink
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster

TIMES: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def _print_times() -> Iterator[None]:
    yield
    if TIMES:
        print("\nfailover measurements (checks every 0.2 s, 3 failures to OFFLINE):")
        for what, seconds in TIMES.items():
            print(f"  {what:<55} {seconds * 1000:7.0f} ms")


def config(c: Cluster, mode: str, *, primary_port: int | None = None, **failover: Any) -> str:
    lines = [
        "[monitor]",
        "interval_seconds = 0.2",
        "connect_timeout_seconds = 0.5",
        "check_timeout_seconds = 0.5",
        "failures_to_offline = 3",
        "successes_to_online = 2",
        "[failover]",
        f'mode = "{mode}"',
        f'user = "{c.failover_user}"',
        f'password = "{c.failover_password}"',
        f'replication_user = "{c.repl_user}"',
        f'replication_password = "{c.repl_password}"',
        "min_interval_seconds = 0",
        *(f"{k} = {v}" for k, v in failover.items()),
    ]
    return cluster_config(
        c,
        *lines,
        users=[*user_table(c), 'default_database = "rwtest"'],
        ports={c.primary.name: primary_port} if primary_port else None,
    )


def connect(p: ProxyThread, c: Cluster) -> pymysql.Connection:
    return pymysql.connect(
        host=p.host,
        port=p.port,
        user=c.app_user,
        password=c.app_password,
        database="rwtest",
        autocommit=True,
        ssl_disabled=True,
        connect_timeout=5,
        read_timeout=15,
    )


@dataclass
class Writer:
    """Inserts 1, 2, 3, ... through the proxy; records which inserts were acknowledged."""

    p: ProxyThread
    c: Cluster
    acked: list[tuple[int, float]] = field(default_factory=list)
    errors: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Writer:
        self.thread.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(30)

    def _run(self) -> None:
        seq = 0
        conn: pymysql.Connection | None = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = connect(self.p, self.c)
                seq += 1
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO rwtest.drill (seq) VALUES (%s)", (seq,))
                self.acked.append((seq, time.monotonic()))
                time.sleep(0.005)
            except pymysql.MySQLError as exc:
                self.errors.append(int(exc.args[0]) if exc.args and isinstance(exc.args[0], int) else -1)
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
        if conn is not None:
            conn.close()

    def first_ack_after(self, t: float) -> float | None:
        return next((at for _, at in self.acked if at > t), None)


def _prepare(c: Cluster) -> None:
    c.sql(c.primary, "CREATE TABLE IF NOT EXISTS rwtest.drill (seq INT PRIMARY KEY)")
    c.wait_replicas_caught_up()


def _wait(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout} s: {what}")


def _source_port(c: Cluster, node: ClusterNode) -> int | None:
    st = c.replica_status(node)
    return None if st is None else int(st.get("Master_Port") or st.get("Source_Port") or 0)


def test_promote_under_write_load_with_semi_sync(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    _prepare(c)
    c.set_semi_sync(True, timeout_ms=30000)  # every acknowledged write is on a replica
    old, r1, r2 = c.primary, *c.replicas
    with ProxyThread(config(c, "promote")) as p:
        writer = Writer(p, c).start()
        _wait(lambda: len(writer.acked) > 50, 10, "writes flowing")
        killed = time.monotonic()
        c.kill_node(old)
        _wait(lambda: writer.first_ack_after(killed) is not None, 15, "a write acknowledged after the kill")
        first = writer.first_ack_after(killed)
        assert first is not None
        TIMES["SIGKILL primary -> first acknowledged write (promote)"] = first - killed
        time.sleep(0.5)
        writer.finish()
        app = p.app
        new_name = app.topology.primary.name  # type: ignore[union-attr]
        assert new_name in (r1.name, r2.name)
        assert app.failover is not None and app.failover.stats.failovers["ok"] == 1
        new = c.node(new_name)
        other = r2 if new is r1 else r1
        c.primary = new
        # The other replica follows the new primary.
        _wait(lambda: _source_port(c, other) == new.port, 5, f"{other.name} replicates from {new.name}")
        # No acknowledged write is missing on the new primary (semi-sync: RPO 0).
        rows = {int(r[0]) for r in c.sql(new, "SELECT seq FROM rwtest.drill")}
        lost = [seq for seq, _ in writer.acked if seq not in rows]
        assert lost == [], f"{len(lost)} acknowledged writes lost: {lost[:10]}"
        assert len(writer.acked) > 60
        # Reads kept being served by the replicas' path (the proxy is still up and routing).
        with connect(p, c) as conn, conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM rwtest.drill")
            assert cur.fetchone()[0] >= len(writer.acked)
        # Semi-sync moved with the primary role: RPO 0 again, not only on /status.
        _wait(lambda: _semi_sync(c, new)["clients"] == 1, 10, f"{other.name} acknowledges {new.name}")
        assert _semi_sync(c, new)["master"] == 1 and _semi_sync(c, new)["timeout"] == 30000
        assert _semi_sync(c, other) == {**_semi_sync(c, other), "master": 0, "replica": 1}
        # The old primary restarts (semi-sync off: SET GLOBAL does not persist) and rejoins as a
        # semi-sync replica of the new primary.
        c.start_node(old)
        _wait(lambda: _source_port(c, old) == new.port, 15, "old primary replicates from the new one")
        _wait(lambda: _semi_sync(c, new)["clients"] == 2, 10, f"{old.name} acknowledges {new.name}")
        assert _semi_sync(c, old)["master"] == 0 and _semi_sync(c, old)["replica"] == 1
        changes = app.failover.semi.changes
        assert changes[(new.name, "primary", "enabled")] == 1, changes
        assert changes[(old.name, "replica", "enabled")] == 1, changes
        _wait(lambda: (app.failover.stats.semi_sync or {}).get("clients") == 2, 10, "/status shows RPO 0")
        assert app.failover.stats.semi_sync["primary"] == new.name


def _semi_sync(c: Cluster, node: ClusterNode) -> dict[str, Any]:
    """One server's semi-sync: master side on, replica side on, master timeout, acknowledging clients."""
    row = c.admin_sql(
        node,
        "SELECT @@rpl_semi_sync_master_enabled, @@rpl_semi_sync_slave_enabled, "
        "@@rpl_semi_sync_master_timeout, @@rpl_semi_sync_master_wait_point",
    )[0]
    clients = c.admin_sql(node, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'")
    return {
        "master": int(row[0]),
        "replica": int(row[1]),
        "timeout": int(row[2]),
        "wait_point": str(row[3]),
        "clients": int(clients[0][1]) if clients else 0,
    }


def test_switchover_carries_semi_sync_and_the_demoted_primary_reads_fresh(fresh_cluster: Cluster) -> None:
    """After a switchover the new primary runs semi-sync with the old one's settings and counts both
    replicas as clients; the demoted primary has its master side off, so its applier does not wait
    for acknowledgements and reads through the proxy stay as fresh as normal lag."""
    c = fresh_cluster
    _prepare(c)
    old = c.primary
    c.set_semi_sync(True, timeout_ms=5000)
    c.admin_sql(old, "SET GLOBAL rpl_semi_sync_master_wait_point = 'AFTER_SYNC'")
    with ProxyThread(config(c, "promote")) as p:
        writer = Writer(p, c).start()
        _wait(lambda: len(writer.acked) > 50, 10, "writes flowing")
        report = p.run(p.app.switchover(None))
        assert report["result"] == "ok", report
        switched = time.monotonic()
        new = c.node(report["to"])
        c.primary = new
        # Reads through the proxy (eventual: the replicas, the demoted primary among them as soon as
        # it is ONLINE) for 3 s: none may miss a write acknowledged more than 1 s before it started.
        stale: list[tuple[int, int]] = []
        reads = 0
        with connect(p, c) as conn, conn.cursor() as cur:
            while time.monotonic() < switched + 3.0:
                started = time.monotonic()
                due = max((seq for seq, at in list(writer.acked) if at < started - 1.0), default=0)
                cur.execute("SELECT COALESCE(MAX(seq), 0) FROM rwtest.drill")
                seen = int(cur.fetchone()[0])
                reads += 1
                if seen < due:
                    stale.append((seen, due))
                time.sleep(0.01)
        writer.finish()
        assert writer.errors == [], writer.errors
        assert p.app.topology.by_name[old.name].online, "the demoted primary never served reads"
        assert stale == [], f"{len(stale)} of {reads} reads more than 1 s stale: {stale[:5]}"
        others = [n for n in c.nodes if n is not new]
        _wait(lambda: _semi_sync(c, new)["clients"] == 2, 10, f"both replicas acknowledge {new.name}")
        assert _semi_sync(c, new)["master"] == 1
        assert (_semi_sync(c, new)["timeout"], _semi_sync(c, new)["wait_point"]) == (5000, "AFTER_SYNC")
        for n in others:
            assert (_semi_sync(c, n)["master"], _semi_sync(c, n)["replica"]) == (0, 1), n.name
        assert p.app.failover is not None
        changes = p.app.failover.semi.changes
        assert changes[(new.name, "primary", "enabled")] == 1, changes
        assert changes[(old.name, "primary", "disabled")] == 1, changes
        assert any("semi-sync" in step for step in report["semi_sync_changes"]), report
        _wait(lambda: (p.app.failover.stats.semi_sync or {}).get("clients") == 2, 10, "/status: RPO 0")


def test_old_primary_is_fenced_and_rejoins(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    _prepare(c)
    old = c.primary
    with ProxyThread(config(c, "promote")) as p:
        with connect(p, c) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO rwtest.drill VALUES (1)")
        c.wait_replicas_caught_up()
        c.kill_node(old)
        _wait(
            lambda: p.app.topology.primary is not None and p.app.topology.primary.name != old.name,
            10,
            "promoted",
        )
        new = c.node(p.app.topology.primary.name)  # type: ignore[union-attr]
        c.primary = new
        with connect(p, c) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO rwtest.drill VALUES (2)")
        c.start_node(old)  # restarts writable (its my.cnf says read_only = 0)
        _wait(lambda: _source_port(c, old) == new.port, 15, "old primary replicates from the new one")
        assert int(c.admin_sql(old, "SELECT @@global.read_only")[0][0]) == 1
        _wait(lambda: p.app.topology.by_name[old.name].online, 15, "old primary ONLINE as a replica")
        assert p.app.topology.by_name[old.name].role.value == "replica"
        c.wait_replicas_caught_up()
        assert {int(r[0]) for r in c.sql(old, "SELECT seq FROM rwtest.drill")} == {1, 2}
        assert p.app.failover is not None and old.name not in p.app.failover.stats.fenced


def test_old_primary_with_extra_transactions_stays_out(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    _prepare(c)
    old = c.primary
    with ProxyThread(config(c, "promote")) as p:
        for r in c.replicas:
            c.admin_sql(r, "STOP REPLICA IO_THREAD")
        c.sql(old, "INSERT INTO rwtest.drill VALUES (99)")  # only the old primary has it
        c.kill_node(old)
        _wait(
            lambda: p.app.topology.primary is not None and p.app.topology.primary.name != old.name,
            10,
            "promoted",
        )
        new = c.node(p.app.topology.primary.name)  # type: ignore[union-attr]
        c.primary = new
        c.start_node(old)
        assert p.app.failover is not None
        _wait(lambda: old.name in p.app.failover.stats.fenced, 15, "old primary fenced")
        assert "lacks" in p.app.failover.stats.fenced[old.name]
        assert int(c.admin_sql(old, "SELECT @@global.read_only")[0][0]) == 1
        assert c.replica_status(old) is None or _source_port(c, old) != new.port
        assert not p.app.topology.by_name[old.name].online
        with connect(p, c) as conn, conn.cursor() as cur:  # writes go to the new primary
            cur.execute("INSERT INTO rwtest.drill VALUES (100)")
        assert c.sql(new, "SELECT COUNT(*) FROM rwtest.drill WHERE seq = 100")[0][0] == 1


def test_observe_follows_a_manual_promotion_and_refuses_split_brain(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    _prepare(c)
    old, new, other = c.primary, *c.replicas
    with ProxyThread(config(c, "observe")) as p:
        c.kill_node(old)
        time.sleep(1.0)
        assert p.app.topology.primary is None or p.app.topology.primary.name == old.name  # nothing promoted
        promoted = time.monotonic()
        c.promote(new)  # what an operator (or Orchestrator) does
        _wait(
            lambda: p.app.topology.primary is not None and p.app.topology.primary.name == new.name,
            5,
            "followed",
        )
        TIMES["manual promotion -> rwproxy routes writes to it (observe)"] = time.monotonic() - promoted
        with connect(p, c) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO rwtest.drill VALUES (1)")
            cur.execute("SELECT @@server_id")
        # A second writable server: writes refused, never split.
        conn = connect(p, c)
        c.set_read_only(other, False)
        _wait(lambda: p.app.topology.split_brain, 5, "split brain seen")
        with conn.cursor() as cur, pytest.raises(pymysql.MySQLError) as err:
            cur.execute("INSERT INTO rwtest.drill VALUES (2)")
        assert "writable at once" in str(err.value)
        conn.close()
        assert c.sql(new, "SELECT COUNT(*) FROM rwtest.drill WHERE seq = 2")[0][0] == 0
        assert c.sql(other, "SELECT COUNT(*) FROM rwtest.drill WHERE seq = 2")[0][0] == 0
        c.set_read_only(other, True)
        _wait(
            lambda: p.app.topology.primary is not None and p.app.topology.primary.name == new.name,
            5,
            "resolved",
        )
        with connect(p, c) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO rwtest.drill VALUES (3)")


def test_switchover_under_load_has_no_client_errors(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    _prepare(c)
    old = c.primary
    with ProxyThread(config(c, "promote")) as p:
        writer = Writer(p, c).start()
        _wait(lambda: len(writer.acked) > 50, 10, "writes flowing")
        report = p.run(p.app.switchover(None))
        time.sleep(0.5)
        writer.finish()
        assert report["result"] == "ok", report
        new = c.node(report["to"])
        assert p.app.topology.primary is not None and p.app.topology.primary.name == new.name
        TIMES["switchover write pause (buffered, 0 errors expected)"] = report["write_pause_seconds"]
        assert writer.errors == [], writer.errors
        c.primary = new
        _wait(lambda: _source_port(c, old) == new.port, 5, "old primary replicates from the new one")
        c.wait_replicas_caught_up()
        rows = {int(r[0]) for r in c.sql(new, "SELECT seq FROM rwtest.drill")}
        assert all(seq in rows for seq, _ in writer.acked)


def test_network_blip_shorter_than_detection_causes_no_failover(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    _prepare(c)
    with (
        FlakyLink((c.primary.host, c.primary.port)) as link,
        ProxyThread(config(c, "promote", primary_port=link.port, verify_with_replicas="false")) as p,
    ):
        primary_name = c.primary.name
        for _ in range(3):
            link.down()
            time.sleep(0.3)  # under 3 checks of 0.2 s
            link.up()
            time.sleep(1.0)
        assert p.app.failover is not None and not p.app.failover.stats.failovers
        assert p.app.topology.primary is not None and p.app.topology.primary.name == primary_name
        # ... while a longer outage seen only by the proxy is not a failover either with the
        # replicas' confirmation on: they still receive from the primary.
    with (
        FlakyLink((c.primary.host, c.primary.port)) as link,
        ProxyThread(config(c, "promote", primary_port=link.port)) as p,
    ):
        link.down()
        time.sleep(2.0)
        assert p.app.failover is not None and not p.app.failover.stats.failovers
        link.up()


def test_switchover_buffers_prepared_statements_too(fresh_cluster: Cluster) -> None:
    """Binary-protocol writes (COM_STMT_EXECUTE) wait for the new primary like text ones."""
    import mysql.connector

    c = fresh_cluster
    _prepare(c)
    with ProxyThread(config(c, "promote")) as p:
        acked: list[int] = []
        errors: list[str] = []
        stop = threading.Event()

        def write() -> None:
            conn = mysql.connector.connect(
                host=p.host,
                port=p.port,
                user=c.app_user,
                password=c.app_password,
                database="rwtest",
                autocommit=True,
                ssl_disabled=True,
            )
            cur = conn.cursor(prepared=True)
            seq = 0
            while not stop.is_set():
                seq += 1
                try:
                    cur.execute("INSERT INTO rwtest.drill (seq) VALUES (%s)", (seq,))
                    acked.append(seq)
                except mysql.connector.Error as exc:
                    errors.append(str(exc))
            conn.close()

        thread = threading.Thread(target=write, daemon=True)
        thread.start()
        _wait(lambda: len(acked) > 50, 10, "prepared writes flowing")
        report = p.run(p.app.switchover(None))
        time.sleep(0.5)
        stop.set()
        thread.join(15)
        assert report["result"] == "ok", report
        assert errors == [], errors[:5]
        new = c.node(report["to"])
        rows = {int(r[0]) for r in c.sql(new, "SELECT seq FROM rwtest.drill")}
        assert set(acked) <= rows
        assert p.app.failover is not None and p.app.failover.buffer.stats.buffered >= 1  # it did wait


@dataclass
class UsableReplicaWatch:
    """Polls the proxy's topology every ~2 ms in a thread and keeps every snapshot in which no
    replica could serve a read: no ONLINE replica with weight left other than the primary and
    ``dead`` (the killed server)."""

    p: ProxyThread
    dead: str | None = None
    gaps: list[tuple[float, int, list[tuple[str, str, str, str | None]]]] = field(default_factory=list)
    polls: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> UsableReplicaWatch:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)

    def _run(self) -> None:
        seen = -1
        while not self.stop.is_set():
            t = self.p.app.topology
            self.polls += 1
            if t.version != seen:
                seen = t.version
                primary = t.primary.name if t.primary is not None else None
                usable = [n for n in t.eligible_replicas() if n.name not in (primary, self.dead)]
                if not usable:
                    nodes = [(n.name, n.role.value, n.state.value, n.reason) for n in t.nodes]
                    self.gaps.append((time.monotonic(), t.version, nodes))
            time.sleep(0.002)


def _all_replicas_online(p: ProxyThread) -> bool:
    t = p.app.topology
    return t.primary is not None and len(t.eligible_replicas()) == len(t.nodes) - 1


def test_failover_leaves_a_usable_replica_at_every_moment(fresh_cluster: Cluster) -> None:
    """SIGKILL of the primary under writes: from the kill until well after the promotion, every
    snapshot the proxy routes with has a replica that can serve reads (the survivor keeps serving
    while it is repointed; before the primary's failure is recorded no replica is shunned for the
    IO thread the failure broke)."""
    c = fresh_cluster
    _prepare(c)
    old = c.primary
    with ProxyThread(config(c, "promote")) as p:
        writer = Writer(p, c).start()
        _wait(lambda: len(writer.acked) > 20 and _all_replicas_online(p), 10, "writes flowing")
        with UsableReplicaWatch(p, dead=old.name) as watch:
            c.kill_node(old)
            assert p.app.failover is not None
            _wait(lambda: p.app.failover.stats.failovers["ok"] == 1, 15, "failed over")
            time.sleep(2.0)  # the survivor's repoint and its checks after it
        writer.finish()
        new = p.app.topology.primary
        assert new is not None and new.name != old.name
        survivor = next(n for n in p.app.topology.replicas if n.name != old.name)
        assert survivor.online, survivor
        assert _source_port(c, c.node(survivor.name)) == c.node(new.name).port
        assert watch.polls > 100, watch.polls
        assert watch.gaps == [], f"{len(watch.gaps)} snapshots without a usable replica: {watch.gaps[:3]}"


def test_switchover_leaves_a_usable_replica_at_every_moment(fresh_cluster: Cluster) -> None:
    """A planned switchover: the other replica and the demoted primary are repointed; at every
    moment one of them serves reads."""
    c = fresh_cluster
    _prepare(c)
    old = c.primary
    with ProxyThread(config(c, "promote")) as p:
        writer = Writer(p, c).start()
        _wait(lambda: len(writer.acked) > 20 and _all_replicas_online(p), 10, "writes flowing")
        with UsableReplicaWatch(p) as watch:
            report = p.run(p.app.switchover(None))
            time.sleep(2.0)
        writer.finish()
        assert report["result"] == "ok", report
        assert writer.errors == [], writer.errors
        assert p.app.topology.by_name[old.name].online
        assert watch.gaps == [], f"{len(watch.gaps)} snapshots without a usable replica: {watch.gaps[:3]}"
