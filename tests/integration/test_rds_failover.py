"""``failover.mode = "rds"`` end to end: moto in server mode (a real AWS API on loopback, boto3
unpatched) holds an Aurora cluster whose instance endpoints ``address_map`` points at the real local
MariaDB cluster (writer = the primary, readers = the replicas). The primary is SIGKILLed; rwproxy
must confirm it dead, buffer writes, ask RDS for ``FailoverDBCluster`` once, and follow the new
writer once it is writable.

What moto cannot show, and these tests therefore do not claim:
* moto's FailoverDBCluster only flips ``IsClusterWriter`` in the API; nothing happens to a server.
  Real Aurora makes the chosen reader writable and restarts the old writer as a reader by itself;
  here the test does that part on the real cluster (``cluster.promote``) after reading moto's
  answer, so what is shown is rwproxy's side: the call, the buffering, the following.
* On a real cluster Aurora usually starts its own failover before rwproxy has confirmed the writer
  dead, and then refuses a second one (InvalidDBClusterStateFault). moto refuses a failover only for
  other reasons (a cluster with one instance): the second test uses that refusal as the stand-in.
* Timing: moto answers in milliseconds, a real Aurora failover takes tens of seconds; the servers
  here are MariaDB replicas, not Aurora readers (the Aurora probe is unit-tested only).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pymysql
import pytest

from rwproxy.dev.cluster import Cluster, ClusterNode
from tests.integration.test_rds_discovery import primary_id, rds_config, wait_until
from tests.support.aws import MotoEndpoint
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster


def failover_config(
    cluster: Cluster, moto: MotoEndpoint, cluster_id: str, mapping: dict[str, ClusterNode]
) -> str:
    return "\n".join(
        [
            rds_config(cluster, moto, f'cluster_id = "{cluster_id}"', mapping),
            "[failover]",
            'mode = "rds"',
            f'user = "{cluster.failover_user}"',
            f'password = "{cluster.failover_password}"',
            "buffer_timeout_seconds = 30",
            "min_interval_seconds = 120",
        ]
    )


def create_aurora(rds: Any, cluster_id: str, members: list[str]) -> None:
    rds.create_db_cluster(
        DBClusterIdentifier=cluster_id,
        Engine="aurora-mysql",
        MasterUsername="admin",
        MasterUserPassword="admin-password",
    )
    for name in members:  # moto: the first instance created is the writer
        add_instance(rds, cluster_id, name)


def add_instance(rds: Any, cluster_id: str, name: str) -> None:
    rds.create_db_instance(
        DBInstanceIdentifier=name,
        DBClusterIdentifier=cluster_id,
        Engine="aurora-mysql",
        DBInstanceClass="db.r6g.large",
    )


def writer_in_rds(rds: Any, cluster_id: str) -> str | None:
    members = rds.describe_db_clusters(DBClusterIdentifier=cluster_id)["DBClusters"][0]["DBClusterMembers"]
    writers = [m["DBInstanceIdentifier"] for m in members if m["IsClusterWriter"]]
    return writers[0] if len(writers) == 1 else None


def connect(p: ProxyThread, cluster: Cluster) -> pymysql.Connection:
    return pymysql.connect(
        host=p.host,
        port=p.port,
        user=cluster.app_user,
        password=cluster.app_password,
        database="rwtest",
        autocommit=True,
        ssl_disabled=True,
        connect_timeout=10,
        read_timeout=60,
    )


class BufferedInsert(threading.Thread):
    """One INSERT through rwproxy on its own client connection, in a thread (it is meant to block).
    The connection is opened at once, before the outage: a client cannot log in to rwproxy while
    there is no primary (the login waits for one, like a write)."""

    def __init__(self, p: ProxyThread, cluster: Cluster, table: str, value: int) -> None:
        super().__init__(daemon=True)
        self.conn = connect(p, cluster)
        self.sql = f"INSERT INTO {table} VALUES ({value})"
        self.error: BaseException | None = None
        self.done_at: float | None = None

    def run(self) -> None:
        try:
            with self.conn.cursor() as cur:
                cur.execute(self.sql)
        except BaseException as exc:
            self.error = exc
        finally:
            self.done_at = time.monotonic()
            self.conn.close()


def failover_calls(caplog: pytest.LogCaptureFixture) -> int:
    return sum(
        1
        for r in caplog.records
        if r.getMessage().startswith("rds: FailoverDBCluster")
        and "accepted" not in r.getMessage()
        and "refused" not in r.getMessage()
    )


def _setup_table(p: ProxyThread, cluster: Cluster, table: str) -> None:
    conn = connect(p, cluster)
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE IF NOT EXISTS {table} (id INT PRIMARY KEY)")
        cur.execute(f"DELETE FROM {table}")
    conn.close()
    cluster.wait_replicas_caught_up(10)


def _rows_on(cluster: Cluster, node: ClusterNode, table: str) -> list[int]:
    return [int(r[0]) for r in cluster.sql(node, f"SELECT id FROM rwtest.{table} ORDER BY id")]


def test_rds_failover_calls_failover_db_cluster_once_buffers_and_follows(
    fresh_cluster: Cluster, moto: MotoEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rwproxy.discovery.rds_actions")
    cluster = fresh_cluster
    rds = moto.client("rds")
    old = cluster.primary
    mapping = {"t5-aurora-1": old, "t5-aurora-2": cluster.replicas[0], "t5-aurora-3": cluster.replicas[1]}
    create_aurora(rds, "t5-aurora", list(mapping))
    with ProxyThread(failover_config(cluster, moto, "t5-aurora", mapping)) as p:
        assert p.app is not None and p.app.failover is not None
        failover = p.app.failover
        conn = connect(p, cluster)
        assert primary_id(conn) == old.server_id
        _setup_table(p, cluster, "rds_fo")

        insert = BufferedInsert(p, cluster, "rds_fo", 1)
        killed = time.monotonic()
        cluster.kill_node(old)
        # The controller confirms the writer dead (3 failed checks, replicas' IO threads lost it
        # too), holds writes, and asks RDS to fail over: moto's writer flag moves to a reader.
        wait_until("writes held", lambda: failover.buffer.active, timeout=20)
        insert.start()
        wait_until("the writer moved in RDS", lambda: writer_in_rds(rds, "t5-aurora") != "t5-aurora-1")
        new_name = writer_in_rds(rds, "t5-aurora")
        assert new_name in ("t5-aurora-2", "t5-aurora-3")  # moto: the first available reader
        new = mapping[new_name]
        # Meanwhile the INSERT waits in the write buffer: no error, no answer yet.
        wait_until("the INSERT is buffered", lambda: failover.buffer.stats.waiting == 1)
        time.sleep(0.5)
        assert insert.done_at is None and insert.error is None
        # RDS's view reached rwproxy (discovery re-read at once after the call), but the new
        # writer is still read_only on the real server: the monitor's view wins, no primary yet.
        discovery = p.app.aws.discovery
        assert discovery is not None
        wait_until("the disagreement is seen", lambda: new_name in discovery.disagreements)
        assert not failover.primary_ready()

        # What Aurora does by itself, done on the real cluster: the chosen reader becomes writable
        # (and the other reader follows it).
        promoted = time.monotonic()
        cluster.promote(new)
        insert.join(30)
        assert not insert.is_alive()
        assert insert.error is None, f"buffered INSERT failed: {insert.error!r}"
        assert insert.done_at is not None
        print(
            f"\nrds failover: kill -> INSERT done {insert.done_at - killed:.2f} s "
            f"(real cluster promoted {promoted - killed:.2f} s after the kill)"
        )
        assert _rows_on(cluster, new, "rds_fo") == [1]
        assert p.app.topology.primary is not None and p.app.topology.primary.name == new_name
        wait_until("the failover counted", lambda: failover.stats.failovers["ok"] == 1)
        assert failover.stats.failovers["failed"] == 0
        assert not failover.buffer.active
        assert primary_id(conn) == new.server_id

        # Exactly one FailoverDBCluster: a second one would have moved moto's writer flag again.
        time.sleep(1.0)
        assert writer_in_rds(rds, "t5-aurora") == new_name
        assert failover_calls(caplog) == 1
        conn.close()


def test_rds_failover_refused_by_rds_keeps_waiting_for_the_writer(
    fresh_cluster: Cluster, moto: MotoEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    """RDS refuses FailoverDBCluster (real Aurora: it is already failing over by itself; moto: a
    one-instance cluster). The controller keeps the writes buffered and waits for the new writer
    anyway, and counts the failover as ok once it is there."""
    caplog.set_level(logging.INFO, logger="rwproxy.discovery.rds_actions")
    cluster = fresh_cluster
    rds = moto.client("rds")
    old, new = cluster.primary, cluster.replicas[0]
    mapping = {"t6-aurora-1": old, "t6-aurora-2": new}
    create_aurora(rds, "t6-aurora", ["t6-aurora-1"])
    text = failover_config(cluster, moto, "t6-aurora", mapping) + "\nverify_with_replicas = false"
    with ProxyThread(text) as p:
        assert p.app is not None and p.app.failover is not None
        failover = p.app.failover
        conn = connect(p, cluster)
        assert primary_id(conn) == old.server_id
        _setup_table(p, cluster, "rds_fo2")

        insert = BufferedInsert(p, cluster, "rds_fo2", 2)
        cluster.kill_node(old)
        wait_until("writes held", lambda: failover.buffer.active, timeout=20)
        wait_until(
            "RDS refused the failover",
            lambda: any("refused" in r.getMessage() for r in caplog.records),
        )
        insert.start()
        time.sleep(0.5)
        assert failover.buffer.active, "the refusal must not end the wait for a writer"
        assert insert.done_at is None

        # AWS's own failover, as a real cluster would do it: a new writer instance appears in the
        # API and the real server behind it becomes writable.
        add_instance(rds, "t6-aurora", "t6-aurora-2")
        rds.failover_db_cluster(DBClusterIdentifier="t6-aurora", TargetDBInstanceIdentifier="t6-aurora-2")
        cluster.promote(new)
        insert.join(30)
        assert not insert.is_alive() and insert.error is None, f"buffered INSERT: {insert.error!r}"
        assert _rows_on(cluster, new, "rds_fo2") == [2]
        wait_until("the failover counted", lambda: failover.stats.failovers["ok"] == 1)
        assert failover.stats.failovers["failed"] == 0
        assert primary_id(conn) == new.server_id
        conn.close()
