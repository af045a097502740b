"""Two rwproxy processes in front of one real MariaDB cluster agree through a real 3-member etcd
cluster ([coordination]): one promotion per failover, a leader killed in the middle of one, an
instance cut off from etcd. failover.mode = "promote", lease 3 s, checks every 0.2 s.
"""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from rwproxy.dev.cluster import Cluster, ClusterNode
from rwproxy.dev.demo import server_tables, user_table
from rwproxy.drill.instances import render_coordination
from rwproxy.drill.scenarios import DrillOptions, run_drill
from tests.support.etcd import EtcdCluster, etcd_available
from tests.support.flaky_link import FlakyLink
from tests.support.proxy_process import ProxyProcess

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(not etcd_available(), reason="etcd is not installed (apt-get install etcd-server)"),
]

TTL = 3
TOKEN = "coordination-test-token"


def config(
    c: Cluster, cluster: str, instance: str, endpoints: list[str], failures_to_offline: int = 3
) -> str:
    lines = [
        "[proxy]",
        'listen = ["{listen}"]',
        "shutdown_grace_seconds = 1",
        "[admin]",
        'http_listen = "{admin}"',
        f'bearer_token = "{TOKEN}"',
        "[monitor]",
        "interval_seconds = 0.2",
        "connect_timeout_seconds = 0.5",
        "check_timeout_seconds = 0.5",
        f"failures_to_offline = {failures_to_offline}",
        "successes_to_online = 2",
        "[failover]",
        'mode = "promote"',
        f'user = "{c.failover_user}"',
        f'password = "{c.failover_password}"',
        f'replication_user = "{c.repl_user}"',
        f'replication_password = "{c.repl_password}"',
        "min_interval_seconds = 0",
        "catchup_timeout_seconds = 2",
        "[coordination]",
        "etcd = [" + ", ".join(f'"{e}"' for e in endpoints) + "]",
        f'cluster = "{cluster}"',
        f'instance = "{instance}"',
        f"lease_ttl_seconds = {TTL}",
        "request_timeout_seconds = 0.8",
        *user_table(c),
        'default_database = "rwtest"',
        *server_tables(c, roles=False),
    ]
    return "\n".join(lines)


class Instances:
    """The proxies of one test, stopped (SIGTERM) at the end."""

    def __init__(self, c: Cluster, etcd: EtcdCluster, base: Path) -> None:
        self.c = c
        self.etcd = etcd
        self.base = base
        self.cluster = f"t{uuid.uuid4().hex[:8]}"
        self.procs: list[ProxyProcess] = []

    def start(
        self, name: str, endpoints: list[str] | None = None, failures_to_offline: int = 3
    ) -> ProxyProcess:
        text = config(self.c, self.cluster, name, endpoints or self.etcd.endpoints, failures_to_offline)
        p = ProxyProcess(text, self.base / name)
        self.procs.append(p)
        return p.start()

    def published(self) -> dict[str, Any] | None:
        return self.etcd.get_json(f"/rwproxy/{self.cluster}/primary")

    def stop(self) -> None:
        for p in self.procs:
            p.stop()


@pytest.fixture
def instances(fresh_cluster: Cluster, etcd_cluster: EtcdCluster, tmp_path: Path) -> Iterator[Instances]:
    fresh_cluster.sql(fresh_cluster.primary, "CREATE TABLE IF NOT EXISTS rwtest.drill (seq INT PRIMARY KEY)")
    fresh_cluster.wait_replicas_caught_up()
    group = Instances(fresh_cluster, etcd_cluster, tmp_path)
    try:
        yield group
    finally:
        group.stop()


def _wait(cond: Any, timeout: float, what: str, *, logs: tuple[ProxyProcess, ...] = ()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except (OSError, KeyError, TypeError):
            pass
        time.sleep(0.05)
    tails = "\n".join(f"--- {p.directory.name}:\n{p.log_text()[-3000:]}" for p in logs)
    raise AssertionError(f"not within {timeout} s: {what}\n{tails}")


def _coord(p: ProxyProcess) -> dict[str, Any]:
    doc = p.status()["coordination"]
    assert isinstance(doc, dict)
    return doc


def _primary_of(p: ProxyProcess) -> str | None:
    for node in p.status()["nodes"]:
        if node["role"] == "primary" and str(node["state"]).upper() == "ONLINE":
            return str(node["name"])
    return None


def _writable(c: Cluster, nodes: list[ClusterNode]) -> list[str]:
    return [n.name for n in nodes if int(c.admin_sql(n, "SELECT @@global.read_only")[0][0]) == 0]


def _insert(p: ProxyProcess, c: Cluster, seq: int) -> None:
    with (
        pymysql.connect(
            host=p.host,
            port=p.port,
            user=c.app_user,
            password=c.app_password,
            database="rwtest",
            autocommit=True,
            connect_timeout=5,
            read_timeout=15,
        ) as conn,
        conn.cursor() as cur,
    ):
        cur.execute("INSERT INTO rwtest.drill (seq) VALUES (%s)", (seq,))


def _source_port(c: Cluster, node: ClusterNode) -> int | None:
    st = c.replica_status(node)
    return None if st is None else int(st.get("Master_Port") or 0)


def _switchover(p: ProxyProcess) -> tuple[int, str]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{p.admin_port}/switchover",
        data=b"{}",
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _failovers(p: ProxyProcess) -> int:
    return int(p.status()["failover"]["failovers"].get("ok", 0))


def _two_instances(group: Instances) -> tuple[ProxyProcess, ProxyProcess]:
    a = group.start("a")
    _wait(lambda: _coord(a)["is_leader"], 10, "a leads", logs=(a,))
    b = group.start("b")
    _wait(lambda: _coord(b)["leader"] == "a" and _coord(b)["etcd_up"], 10, "b follows a", logs=(b,))
    primary = group.c.primary.name
    _wait(lambda: (group.published() or {}).get("primary") == primary, 10, "a published the primary")
    assert (group.published() or {}).get("epoch") == 1
    return a, b


def test_one_promotion_and_both_route_writes_to_it(instances: Instances) -> None:
    c = instances.c
    a, b = _two_instances(instances)
    assert a.metric("rwproxy_coordination_is_leader") == 1
    assert b.metric("rwproxy_coordination_is_leader") == 0
    assert a.metric("rwproxy_coordination_etcd_up") == b.metric("rwproxy_coordination_etcd_up") == 1
    old, r1, r2 = c.primary, *c.replicas
    c.kill_node(old)
    _wait(lambda: _primary_of(a) in (r1.name, r2.name), 20, "a promoted a replica", logs=(a, b))
    new = c.node(_primary_of(a) or "")
    _wait(lambda: _primary_of(b) == new.name, 10, "b follows the new primary", logs=(b,))
    assert _writable(c, [r1, r2]) == [new.name]  # exactly one former replica became writable
    c.primary = new
    _insert(a, c, 1)
    _insert(b, c, 2)
    assert {int(r[0]) for r in c.sql(new, "SELECT seq FROM rwtest.drill")} == {1, 2}
    published = instances.published()
    assert published is not None and published["primary"] == new.name and published["epoch"] == 2
    assert published["from"] == old.name and published["leader"] == "a"
    assert _failovers(a) == 1 and _failovers(b) == 0
    assert "not failing over" in b.log_text()
    other = r2 if new is r1 else r1
    _wait(lambda: _source_port(c, other) == new.port, 10, f"{other.name} replicates from {new.name}")
    time.sleep(1.0)  # nobody promotes a second time
    assert _writable(c, [r1, r2]) == [new.name]
    assert instances.published() == published
    assert b.metric("rwproxy_coordination_epoch") == 2
    # A planned switchover: refused on the follower, done (and published, epoch 3) by the leader.
    code, text = _switchover(b)
    assert code == 409 and "a leads, not b" in text, text
    code, text = _switchover(a)
    assert code == 200, text
    _wait(lambda: (instances.published() or {}).get("epoch") == 3, 10, "switchover published")
    moved = c.node(str((instances.published() or {})["primary"]))
    assert moved is not new and _writable(c, [r1, r2]) == [moved.name]
    _wait(lambda: _primary_of(b) == moved.name, 10, "b follows the switchover", logs=(b,))


def test_leader_killed_during_failover_leaves_one_primary(instances: Instances) -> None:
    c = instances.c
    a, b = _two_instances(instances)
    old, r1, r2 = c.primary, *c.replicas
    c.kill_node(old)
    _wait(lambda: f"failover: primary {old.name} is down" in a.log_text(), 20, "a fails over", logs=(a,))
    a.kill()  # SIGKILL in the middle of the failover (before, during or right after the promotion)
    killed = time.monotonic()
    _wait(lambda: _coord(b)["is_leader"], TTL + 10, "b takes the lease", logs=(b,))
    took = time.monotonic() - killed
    _wait(lambda: _primary_of(b) in (r1.name, r2.name), 20, "b routes to a promoted replica", logs=(b,))
    new = c.node(_primary_of(b) or "")
    _wait(lambda: (instances.published() or {}).get("primary") == new.name, 10, "etcd names it", logs=(b,))
    published = instances.published()
    assert published is not None and published["epoch"] == 2, published
    assert _writable(c, [r1, r2]) == [new.name]
    other = r2 if new is r1 else r1
    _wait(lambda: _source_port(c, other) == new.port, 15, f"{other.name} replicates from {new.name}")
    c.primary = new
    _insert(b, c, 1)
    time.sleep(1.0)
    assert _writable(c, [r1, r2]) == [new.name]
    assert (instances.published() or {}).get("epoch") == 2
    print(f"\nleader SIGKILLed mid-failover: the other took the lease after {took:.1f} s (TTL {TTL} s)")


def test_next_leader_finishes_a_promotion_it_did_not_start(instances: Instances) -> None:
    """The leader froze half-way: a replica is writable, the others still point at the dead
    primary, nothing was published. The next leader adopts the writable one and finishes."""
    c = instances.c
    a, b = _two_instances(instances)
    old, r1, r2 = c.primary, *c.replicas
    assert a.proc is not None
    a.proc.send_signal(signal.SIGSTOP)  # frozen: no renewals, no steps
    c.kill_node(old)
    for statement in ("STOP REPLICA", "RESET REPLICA ALL", "SET GLOBAL read_only = 0"):
        c.admin_sql(r1, statement)  # what the frozen leader had done: r2 is not repointed
    a.kill()
    _wait(lambda: _coord(b)["is_leader"], TTL + 10, "b takes the lease", logs=(b,))
    _wait(lambda: (instances.published() or {}).get("primary") == r1.name, 10, "b adopts r1", logs=(b,))
    published = instances.published()
    assert published is not None and published["epoch"] == 2 and published["from"] == old.name
    _wait(lambda: _source_port(c, r2) == r1.port, 10, f"{r2.name} repointed to {r1.name}", logs=(b,))
    assert _writable(c, [r1, r2]) == [r1.name]
    assert _primary_of(b) == r1.name and _failovers(b) == 0  # adopted, not promoted again
    assert "adopting" in b.log_text()
    c.primary = r1
    _insert(b, c, 1)


def test_instance_cut_off_from_etcd_only_observes(instances: Instances) -> None:
    c = instances.c
    with FlakyLink(("127.0.0.1", instances.etcd.members[0].client_port)) as link:
        b = instances.start("b", [f"127.0.0.1:{link.port}"])  # b reaches etcd only through the link
        _wait(lambda: _coord(b)["is_leader"], 10, "b leads", logs=(b,))
        # a needs more failed checks than b to call the primary dead, so that b (cut off) has
        # judged it dead, and refused to fail over, before a's promotion makes it visible.
        a = instances.start("a", failures_to_offline=8)
        _wait(lambda: _coord(a)["leader"] == "b", 10, "a follows b", logs=(a,))
        link.down()
        _wait(lambda: not _coord(b)["etcd_up"], 10, "b sees etcd unreachable", logs=(b,))
        doc = _coord(b)
        assert doc["mode"] == "observe-only" and not doc["is_leader"] and not doc["may_promote"]
        assert "etcd is unreachable" in doc["why_not_leader"]
        assert b.metric("rwproxy_coordination_etcd_up") == 0
        assert b.metric("rwproxy_coordination_is_leader") == 0
        _wait(lambda: _coord(a)["is_leader"], TTL + 10, "a takes the lease", logs=(a,))
        old, r1, r2 = c.primary, *c.replicas
        c.kill_node(old)
        _wait(lambda: _primary_of(a) in (r1.name, r2.name), 20, "a promoted a replica", logs=(a, b))
        new = c.node(_primary_of(a) or "")
        _wait(lambda: _primary_of(b) == new.name, 10, "b follows the servers' read_only", logs=(b,))
        assert _writable(c, [r1, r2]) == [new.name]
        assert _failovers(b) == 0 and _failovers(a) == 1
        assert "not failing over: etcd is unreachable" in b.log_text()
        c.primary = new
        _insert(b, c, 1)  # b routes writes to the primary it sees
        link.up()
        _wait(lambda: _coord(b)["etcd_up"] and _coord(b)["leader"] == "a", 10, "b is back, following a")
        doc = _coord(b)
        assert doc["agrees_with_published"] and doc["published"]["primary"] == new.name
        assert b.metric("rwproxy_coordination_etcd_up") == 1


def test_drill_across_two_instances_says_which_one_led(instances: Instances) -> None:
    c = instances.c
    a, b = _two_instances(instances)
    options = DrillOptions(
        "failover",
        proxy=f"127.0.0.1:{b.port}",  # the workload goes through the follower
        user=c.app_user,
        password=c.app_password,
        admin=f"127.0.0.1:{b.admin_port}",
        also_admin=(f"127.0.0.1:{a.admin_port}",),
        duration=5.0,
        fault_after=1.0,
        writers=2,
        readers=2,
        quiet=True,
    )
    result = run_drill(options, cluster=c)
    block = result.report["coordination"]
    assert block["acted"] == ["a"], block
    by_name = {i["instance"]: i for i in block["instances"]}
    assert by_name["a"]["led_before"] and by_name["a"]["led_after"] and by_name["a"]["actions"] == 1
    assert not by_name["b"]["led_before"] and by_name["b"]["actions"] == 0
    assert result.report["verification"]["lost_acknowledged"] == 0
    assert "led by           a" in "\n".join(render_coordination(block))
