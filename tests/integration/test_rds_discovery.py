"""RDS discovery end to end: moto in server mode (a real AWS API on loopback, boto3 unpatched) lists
the instances, ``address_map`` points their endpoints at the real local MariaDB cluster, and rwproxy
routes real queries by what it discovered.

What moto cannot show, and these tests therefore do not claim: real RDS endpoint DNS, instance
status transitions (moto says "available" at once, so "creating"/"modifying" are covered by the unit
tests of the mapping only), the time RDS needs for a failover, and that a real Aurora writer turns
read-only by itself — here the test changes the real cluster's roles to match what moto says.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pymysql
import pytest

from rwproxy.dev.cluster import Cluster, ClusterNode
from rwproxy.discovery.aws import AwsClients
from rwproxy.discovery.rds_actions import RdsActionError, RdsActions
from tests.support.aws import MotoEndpoint, rds_address
from tests.support.builders import cluster_config
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster


def rds_config(cluster: Cluster, moto: MotoEndpoint, selector: str, mapping: dict[str, ClusterNode]) -> str:
    lines = [
        "[monitor]",
        "interval_seconds = 0.2",
        f'user = "{cluster.monitor_user}"',
        f'password = "{cluster.monitor_password}"',
        "[topology]",
        'source = "rds"',
        selector,
        "refresh_interval_seconds = 0.3",
        "[topology.address_map]",
        *(f'"{rds_address(name)}:3306" = "{node.host}:{node.port}"' for name, node in mapping.items()),
        moto.aws_toml(),
    ]
    return cluster_config(cluster, *lines, admin={"http_listen": "127.0.0.1:0"}, nodes=())


def wait_until(what: str, check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {what}")
        time.sleep(0.05)


def read_ids(conn: pymysql.Connection, n: int = 40) -> set[int]:
    ids = set()
    with conn.cursor() as cur:
        for _ in range(n):
            cur.execute("SELECT @@server_id")
            ids.add(int(cur.fetchone()[0]))
    return ids


def primary_id(conn: pymysql.Connection) -> int:
    with conn.cursor() as cur:
        cur.execute("/* rwproxy:primary */ SELECT @@server_id")
        return int(cur.fetchone()[0])


@pytest.fixture
def client() -> Iterator[Callable[[ProxyThread, Cluster], pymysql.Connection]]:
    opened: list[pymysql.Connection] = []

    def make(p: ProxyThread, cluster: Cluster) -> pymysql.Connection:
        conn = pymysql.connect(
            host=p.host,
            port=p.port,
            user=cluster.app_user,
            password=cluster.app_password,
            database="rwtest",
            autocommit=True,
            connect_timeout=10,
            read_timeout=30,
        )
        opened.append(conn)
        return conn

    yield make
    for c in opened:
        c.close()


def create_mysql(rds: Any, name: str, source: str | None = None, **kw: Any) -> None:
    if source is None:
        rds.create_db_instance(
            DBInstanceIdentifier=name,
            Engine="mysql",
            DBInstanceClass="db.t3.micro",
            AllocatedStorage=20,
            MasterUsername="admin",
            MasterUserPassword="admin-password",
            Port=3306,
            **kw,
        )
    else:
        rds.create_db_instance_read_replica(
            DBInstanceIdentifier=name, SourceDBInstanceIdentifier=source, **kw
        )


def test_rds_mysql_replicas_appear_and_leave_without_client_errors(
    healthy_cluster: Cluster, moto: MotoEndpoint, client: Any
) -> None:
    cluster = healthy_cluster
    rds = moto.client("rds")
    r_a, r_b = cluster.replicas
    create_mysql(rds, "t1-primary")
    create_mysql(rds, "t1-replica-a", source="t1-primary")
    mapping = {"t1-primary": cluster.primary, "t1-replica-a": r_a, "t1-replica-b": r_b}
    with ProxyThread(rds_config(cluster, moto, 'instance_id = "t1-primary"', mapping)) as p:
        conn = client(p, cluster)
        # Discovered at start: the primary takes writes, the one replica takes every read.
        assert primary_id(conn) == cluster.primary.server_id
        wait_until("reads on replica a only", lambda: read_ids(conn) == {r_a.server_id})
        assert {n.name for n in p.app.topology.nodes} == {"t1-primary", "t1-replica-a"}

        # A new read replica in RDS starts taking reads within the refresh interval, no restart.
        create_mysql(rds, "t1-replica-b", source="t1-primary")
        wait_until("reads on both replicas", lambda: read_ids(conn) == {r_a.server_id, r_b.server_id})

        # A deleted one stops taking reads; the same client session goes on without an error.
        rds.delete_db_instance(DBInstanceIdentifier="t1-replica-a", SkipFinalSnapshot=True)
        wait_until("reads on replica b only", lambda: read_ids(conn) == {r_b.server_id})
        assert "t1-replica-a" not in p.app.topology.by_name
        assert primary_id(conn) == cluster.primary.server_id
        status = p.run(_status(p))
        instances = {i["name"]: i for i in status["discovery"]["instances"]}
        assert set(instances) == {"t1-primary", "t1-replica-b"}
        assert instances["t1-primary"]["intended_role"] == "primary"
        assert instances["t1-replica-b"]["endpoint"] == f"{rds_address('t1-replica-b')}:3306"


async def _status(p: ProxyThread) -> dict[str, Any]:
    from rwproxy.admin.http import status

    assert p.app is not None
    return status(p.app, started=time.monotonic())


def test_tag_discovery_and_unreachable_api_keeps_servers(
    healthy_cluster: Cluster, moto: MotoEndpoint, client: Any
) -> None:
    cluster = healthy_cluster
    rds = moto.client("rds")
    tag = [{"Key": "rwproxy-cluster", "Value": "t2"}]
    create_mysql(rds, "t2-primary", Tags=tag)
    create_mysql(rds, "t2-replica", source="t2-primary", Tags=tag)
    create_mysql(rds, "t2-other")  # untagged: not ours
    mapping = {
        "t2-primary": cluster.primary,
        "t2-replica": cluster.replicas[0],
        "t2-other": cluster.replicas[1],
    }
    selector = 'tag_filters = { "rwproxy-cluster" = "t2" }'
    with ProxyThread(rds_config(cluster, moto, selector, mapping)) as p:
        conn = client(p, cluster)
        assert {n.name for n in p.app.topology.nodes} == {"t2-primary", "t2-replica"}
        assert p.app.topology.primary is not None and p.app.topology.primary.name == "t2-primary"
        wait_until("reads on the tagged replica", lambda: read_ids(conn) == {cluster.replicas[0].server_id})

        # The API goes away: the last known servers stay, reads go on.
        discovery = p.app.aws.discovery
        assert discovery is not None
        discovery.clients = AwsClients(
            discovery.clients.settings.model_copy(update={"endpoint_url": "http://127.0.0.1:9"})
        )
        assert p.run(discovery.refresh_once()) is False
        assert discovery.stats.last_error
        assert {n.name for n in p.app.topology.nodes} == {"t2-primary", "t2-replica"}
        assert read_ids(conn, 10) == {cluster.replicas[0].server_id}


def test_aurora_failover_followed_with_the_real_roles(
    fresh_cluster: Cluster, moto: MotoEndpoint, client: Any
) -> None:
    cluster = fresh_cluster
    rds = moto.client("rds")
    rds.create_db_cluster(
        DBClusterIdentifier="t3-aurora",
        Engine="aurora-mysql",
        MasterUsername="admin",
        MasterUserPassword="admin-password",
    )
    old, new = cluster.primary, cluster.replicas[0]
    mapping = {"t3-aurora-1": old, "t3-aurora-2": new, "t3-aurora-3": cluster.replicas[1]}
    for name in mapping:  # the first instance created is the writer
        rds.create_db_instance(
            DBInstanceIdentifier=name,
            DBClusterIdentifier="t3-aurora",
            Engine="aurora-mysql",
            DBInstanceClass="db.r6g.large",
        )
    with ProxyThread(rds_config(cluster, moto, 'cluster_id = "t3-aurora"', mapping)) as p:
        conn = client(p, cluster)
        assert primary_id(conn) == old.server_id
        wait_until(
            "reads on both readers", lambda: read_ids(conn) == {new.server_id, cluster.replicas[1].server_id}
        )
        discovery = p.app.aws.discovery
        assert discovery is not None and discovery.disagreements == {}

        # FailoverDBCluster through rwproxy's action interface; moto swaps IsClusterWriter.
        actions = RdsActions(AwsClients(p.app.config.aws), discovery=discovery)
        result = p.run(actions.failover_db_cluster("t3-aurora", target="t3-aurora-2"))
        assert result.action == "FailoverDBCluster" and result.target == "t3-aurora"
        # RDS now says t3-aurora-2 is the writer, but the real server is still read_only: the
        # monitor's view wins (writes stay on the writable server) and the difference is reported.
        wait_until("disagreement reported", lambda: "t3-aurora-2" in discovery.disagreements)
        assert "read_only = ON" in discovery.disagreements["t3-aurora-2"]
        assert primary_id(conn) == old.server_id
        doc = p.run(_status(p))
        node = next(n for n in doc["nodes"] if n["name"] == "t3-aurora-2")
        assert "RDS says writer" in node["role_disagreement"]

        # What Aurora does by itself, done on the real cluster: the target becomes writable and the
        # old writer comes back as a read-only reader.
        cluster.promote(new)
        cluster.rejoin(old)
        wait_until("the new writer is the primary", lambda: primary_id(conn) == new.server_id)
        wait_until("roles agree again", lambda: discovery.disagreements == {})
        wait_until(
            "reads on the old writer and the other reader",
            lambda: read_ids(conn) == {old.server_id, cluster.replicas[1].server_id},
        )
        with conn.cursor() as cur:  # a write goes through, to the new writer
            cur.execute("CREATE TABLE IF NOT EXISTS rds_failover (id INT PRIMARY KEY)")
            cur.execute("REPLACE INTO rds_failover VALUES (1)")


def test_rds_actions_against_moto(moto: MotoEndpoint) -> None:
    import asyncio

    from rwproxy.config.aws_sections import AwsConfig

    rds = moto.client("rds")
    create_mysql(rds, "t4-primary", MultiAZ=True)
    create_mysql(rds, "t4-replica", source="t4-primary")
    clients = AwsClients(AwsConfig(region="us-east-1", endpoint_url=moto.url, max_attempts=1))

    async def run() -> None:
        actions = RdsActions(clients)
        # moto accepts ForceFailover but nothing changes behind it: only the call is shown here.
        result = await actions.reboot_with_failover("t4-primary")
        assert result.action == "RebootDBInstance" and result.target == "t4-primary"
        with pytest.raises(RdsActionError) as refused:
            await actions.promote_read_replica("t4-replica")
        assert refused.value.code == "NotAllowed" and "one-way" in str(refused.value)
        allowed = RdsActions(clients, allow_promote_read_replica=True)
        # moto answers OK but leaves the source/replica fields as they were (a real RDS promotion
        # detaches the replica; only a real account shows that).
        assert (await allowed.promote_read_replica("t4-replica")).action == "PromoteReadReplica"
        with pytest.raises(RdsActionError) as missing:
            await actions.failover_db_cluster("t4-no-such-cluster")
        assert missing.value.code == "DBClusterNotFoundFault"

    asyncio.run(run())
