"""Routing follows the monitor's topology snapshots, on the real cluster."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pymysql
import pytest

from rwproxy.dev.cluster import Cluster
from tests.support.builders import cluster_config
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster

FAST_MONITOR = """
[monitor]
interval_seconds = 0.2
check_timeout_seconds = 0.5
connect_timeout_seconds = 0.5
"""


def config(cluster: Cluster, *, on_no_replica: str = "primary") -> str:
    # role = "auto": the monitor finds the primary
    text = cluster_config(
        cluster, "[routing]", f'on_no_replica = "{on_no_replica}"', admin={"http_listen": "127.0.0.1:0"}
    )
    return text + "\n" + FAST_MONITOR


def wait_until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


@pytest.fixture
def auto_proxy(healthy_cluster: Cluster) -> Iterator[ProxyThread]:
    with ProxyThread(config(healthy_cluster)) as p:
        yield p
    healthy_cluster.heal()


def ids(cluster: Cluster) -> dict[str, int]:
    return {n.name: int(cluster.sql(n, "SELECT @@server_id")[0][0]) for n in cluster.nodes}


def reads(p: ProxyThread, cluster: Cluster, n: int) -> Counter[int]:
    conn = pymysql.connect(
        host=p.host, port=p.port, user=cluster.app_user, password=cluster.app_password, autocommit=True
    )
    with conn.cursor() as cur:
        seen: Counter[int] = Counter()
        for _ in range(n):
            cur.execute("SELECT @@server_id")
            seen[int(cur.fetchone()[0])] += 1
    conn.close()
    return seen


def test_all_auto_roles_follow_read_only(auto_proxy: ProxyThread, healthy_cluster: Cluster) -> None:
    c = healthy_cluster
    topo = auto_proxy.app.topology
    assert topo.primary is not None and topo.primary.name == c.primary.name
    server_ids = ids(c)
    seen = reads(auto_proxy, c, 60)
    assert set(seen) == {server_ids[r.name] for r in c.replicas}
    conn = pymysql.connect(
        host=auto_proxy.host, port=auto_proxy.port, user=c.app_user, password=c.app_password
    )
    with conn.cursor() as cur:
        cur.execute("SELECT @@server_id FOR UPDATE")
        assert cur.fetchone()[0] == server_ids[c.primary.name]
    conn.close()


def test_replica_with_stopped_sql_thread_gets_no_reads(
    auto_proxy: ProxyThread, healthy_cluster: Cluster
) -> None:
    c = healthy_cluster
    bad, good = c.replicas[0], c.replicas[1]
    server_ids = ids(c)
    c.stop_sql_thread(bad)  # Seconds_Behind_Master is NULL now: unusable, never "0"
    wait_until(lambda: not auto_proxy.app.topology.by_name[bad.name].online)
    seen = reads(auto_proxy, c, 300)
    assert seen == Counter({server_ids[good.name]: 300})
    c.start_replication(bad)
    wait_until(lambda: auto_proxy.app.topology.by_name[bad.name].online)
    assert server_ids[bad.name] in reads(auto_proxy, c, 100)


def test_no_usable_replica(healthy_cluster: Cluster) -> None:
    c = healthy_cluster
    server_ids = ids(c)
    with ProxyThread(config(c)) as to_primary, ProxyThread(config(c, on_no_replica="error")) as to_error:
        for r in c.replicas:
            c.stop_sql_thread(r)
        for p in (to_primary, to_error):
            wait_until(lambda p=p: not p.app.topology.online_replicas())
        assert reads(to_primary, c, 20) == Counter({server_ids[c.primary.name]: 20})
        with pytest.raises(pymysql.MySQLError) as exc:
            reads(to_error, c, 1)
        assert "no replica is usable" in str(exc.value)
    c.heal()


def test_read_only_error_triggers_an_immediate_probe(healthy_cluster: Cluster) -> None:
    """ERROR 1290 from the server believed to be primary makes the monitor look again at once."""
    c = healthy_cluster
    text = config(c).replace("interval_seconds = 0.2", "interval_seconds = 30")
    with ProxyThread(text) as p:
        conn = pymysql.connect(
            host=p.host,
            port=p.port,
            user=c.app_user,
            password=c.app_password,
            database="rwtest",
            autocommit=True,
        )
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS ro_signal (v INT)")
            c.set_read_only(c.primary, True)
            try:
                with pytest.raises(pymysql.MySQLError) as exc:
                    cur.execute("INSERT INTO ro_signal VALUES (1)")
                assert exc.value.args[0] in (1290, 1836)
                assert p.app.stats.read_only_errors == 1
                # With a 30 s interval, only the signal can make the monitor notice within 2 s.
                wait_until(lambda: p.app.topology.by_name[c.primary.name].reason is not None, timeout=2)
            finally:
                c.set_read_only(c.primary, False)
        conn.close()


def test_status_command_prints_the_topology(
    auto_proxy: ProxyThread, healthy_cluster: Cluster, capsys
) -> None:
    from rwproxy.cli import main

    admin = auto_proxy.app.admin_http
    assert admin is not None
    assert main(["status", "--admin", f"{admin.host}:{admin.port}"]) == 0
    out = capsys.readouterr().out
    assert "ready" in out
    for node in healthy_cluster.nodes:
        assert f"{node.host}:{node.port}" in out
    assert out.count("online") == len(healthy_cluster.nodes)
    assert main(["status", "--admin", "127.0.0.1:1"]) == 1
