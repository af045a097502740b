"""The dev replication cluster itself: the ground the proxy's integration tests stand on."""

from __future__ import annotations

import signal
import time

import pymysql
import pytest

from rwproxy.dev.cluster import Cluster, ClusterError
from tests.support.cluster import unique_name, wait_until

__all__: list[str] = []

pytestmark = pytest.mark.cluster

ER_OPTION_PREVENTS_STATEMENT = 1290  # read_only


def _table(cluster: Cluster) -> str:
    name = unique_name("cl")
    cluster.sql(cluster.primary, f"CREATE TABLE {name} (id INT PRIMARY KEY, v VARCHAR(20))")
    return name


def test_cluster_comes_up(cluster: Cluster) -> None:
    assert cluster.flavor in ("mariadb", "mysql")
    assert len(cluster.nodes) == 3 and len(cluster.replicas) == 2
    assert cluster.primary not in cluster.replicas
    assert cluster.sql(cluster.primary, "SELECT @@read_only")[0][0] == 0
    for r in cluster.replicas:
        assert cluster.is_replicating(r)
    assert cluster.sql(cluster.primary, "SELECT DATABASE()")[0][0] == "rwtest"
    text = cluster.describe()
    for n in cluster.nodes:
        assert f"-P{n.port} -u{cluster.app_user} -p{cluster.app_password}" in text


def test_server_ids_are_distinct(cluster: Cluster) -> None:
    ids = [cluster.sql(n, "SELECT @@server_id")[0][0] for n in cluster.nodes]
    assert sorted(ids) == sorted({n.server_id for n in cluster.nodes})
    assert len(set(ids)) == len(ids)


def test_users(cluster: Cluster) -> None:
    mon = pymysql.connect(
        host=cluster.replicas[0].host,
        port=cluster.replicas[0].port,
        user=cluster.monitor_user,
        password=cluster.monitor_password,
    )
    with mon, mon.cursor() as cur:
        cur.execute("SHOW REPLICA STATUS")
        assert cur.fetchone() is not None
    if cluster.flavor == "mariadb":
        rows = cluster.admin_sql(
            cluster.primary, "SELECT DISTINCT plugin FROM mysql.user WHERE user=%s", (cluster.app_user,)
        )
        assert rows == [("mysql_native_password",)]


def test_write_on_primary_reaches_every_replica(cluster: Cluster) -> None:
    t = _table(cluster)
    cluster.sql(cluster.primary, f"INSERT INTO {t} VALUES (1, 'one')")
    cluster.wait_replicas_caught_up()
    for r in cluster.replicas:
        assert cluster.sql(r, f"SELECT id, v FROM {t}") == [(1, "one")]


def test_replicas_are_read_only_for_the_app_user(cluster: Cluster) -> None:
    t = _table(cluster)
    cluster.wait_replicas_caught_up()
    for r in cluster.replicas:
        with pytest.raises(pymysql.err.OperationalError) as err:
            cluster.sql(r, f"INSERT INTO {t} VALUES (2, 'two')")
        assert err.value.args[0] == ER_OPTION_PREVENTS_STATEMENT


def test_killed_replica_restarts_and_catches_up(cluster: Cluster) -> None:
    t = _table(cluster)
    victim, other = cluster.replicas
    port, old_pid = victim.port, victim.pid
    try:
        cluster.kill_node(victim, signal.SIGKILL)
        assert not cluster.is_running(victim)
        cluster.sql(cluster.primary, f"INSERT INTO {t} VALUES (1, 'while down')")
        cluster.wait_replicas_caught_up()  # skips the dead one
        assert cluster.sql(other, f"SELECT id FROM {t}") == [(1,)]

        cluster.start_node(victim)
        assert victim.port == port
        if old_pid is not None:
            assert victim.pid != old_pid
        cluster.sql(cluster.primary, f"INSERT INTO {t} VALUES (2, 'after')")
        cluster.wait_replicas_caught_up()
        assert cluster.sql(victim, f"SELECT id FROM {t} ORDER BY id") == [(1,), (2,)]
        assert cluster.is_replicating(victim)
    finally:
        cluster.heal()


def test_delay_makes_a_replica_lag(cluster: Cluster) -> None:
    t = _table(cluster)
    cluster.wait_replicas_caught_up()
    lagging, other = cluster.replicas
    try:
        cluster.set_delay(lagging, 2)
        cluster.sql(cluster.primary, f"INSERT INTO {t} VALUES (1, 'late')")
        written = time.monotonic()
        cluster.wait_replicas_caught_up(nodes=[other])
        assert cluster.sql(lagging, f"SELECT id FROM {t}") == []
        wait_until(lambda: cluster.sql(lagging, f"SELECT id FROM {t}"), timeout=10, what="delayed row")
        # Event timestamps have 1 s resolution, so a 2 s delay is at least 1 s.
        assert time.monotonic() - written >= 1.0
    finally:
        cluster.set_delay(lagging, 0)
        cluster.heal()


def test_stopped_sql_thread_reports_unknown_lag(cluster: Cluster) -> None:
    r = cluster.replicas[0]
    try:
        cluster.stop_sql_thread(r)
        status = cluster.replica_status(r)
        assert status is not None
        lag_key = "Seconds_Behind_Master" if cluster.flavor == "mariadb" else "Seconds_Behind_Source"
        assert status[lag_key] is None  # NULL, never 0
        assert not cluster.is_replicating(r)
    finally:
        cluster.start_replication(r)
        cluster.heal()


def test_promote_after_primary_crash_and_rejoin(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    old, new, other = c.primary, *c.replicas
    t = _table(c)
    c.sql(old, f"INSERT INTO {t} VALUES (1, 'before')")
    c.wait_replicas_caught_up()

    c.kill_node(old)
    c.promote(new)
    assert c.primary is new and c.replicas == [other]
    c.sql(new, f"INSERT INTO {t} VALUES (2, 'after')")
    c.wait_replicas_caught_up()
    assert c.sql(other, f"SELECT id FROM {t} ORDER BY id") == [(1,), (2,)]

    c.start_node(old)
    c.rejoin(old)
    assert old in c.replicas
    assert c.sql(old, f"SELECT id FROM {t} ORDER BY id") == [(1,), (2,)]
    with pytest.raises(pymysql.err.OperationalError):
        c.sql(old, f"INSERT INTO {t} VALUES (3, 'x')")

    # A node with a write the new primary lacks is refused, not silently rejoined.
    c.kill_node(new)
    c.promote(other)
    c.start_node(new)
    c.admin_sql(new, f"INSERT INTO rwtest.{t} VALUES (10, 'errant')")
    c.sql(other, f"INSERT INTO {t} VALUES (11, 'new primary')")
    with pytest.raises(ClusterError, match="cannot rejoin"):
        c.rejoin(new)
    assert new not in c.replicas
