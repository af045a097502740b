"""Fixtures for tests through a real rwproxy in front of the real cluster."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mysql.connector
import pymysql
import pytest

from rwproxy.dev.cluster import Cluster
from rwproxy.dev.demo import demo_config_text
from tests.support.etcd import EtcdCluster, etcd_available
from tests.support.proxy import ProxyThread


@pytest.fixture(scope="session")
def proxy(cluster: Cluster) -> Iterator[ProxyThread]:
    """rwproxy on a free loopback port in front of the session cluster."""
    with ProxyThread(demo_config_text(cluster, 0)) as p:
        yield p


@pytest.fixture(autouse=True)
def _shared_proxy_sees_a_healthy_cluster(request: pytest.FixtureRequest) -> None:
    """Tests on the shared proxy start once it sees every server ONLINE again: an earlier test may
    have disturbed the shared cluster (stopped replication, killed a replica) and healed it, and the
    monitor re-admits a server only after successes_to_online good checks."""
    if "proxy" not in request.fixturenames:
        return
    p: ProxyThread = request.getfixturevalue("proxy")
    request.getfixturevalue("cluster").heal()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if all(n.online for n in p.app.topology.nodes):
            return
        time.sleep(0.05)


@pytest.fixture(scope="session")
def server_ids(cluster: Cluster) -> dict[str, int]:
    """role name → @@server_id: 'primary', and the replica node names."""
    ids = {"primary": int(cluster.sql(cluster.primary, "SELECT @@server_id")[0][0])}
    for r in cluster.replicas:
        ids[r.name] = int(cluster.sql(r, "SELECT @@server_id")[0][0])
    return ids


@pytest.fixture
def connect(proxy: ProxyThread, cluster: Cluster) -> Iterator[Callable[..., pymysql.Connection]]:
    """``connect(**overrides)`` → a PyMySQL connection through the proxy (closed after the test)."""
    opened: list[pymysql.Connection] = []

    def make(**kw: Any) -> pymysql.Connection:
        args: dict[str, Any] = {
            "host": proxy.host,
            "port": proxy.port,
            "user": cluster.app_user,
            "password": cluster.app_password,
            "database": "rwtest",
            "autocommit": True,
            "connect_timeout": 10,
            "read_timeout": 60,
        }
        args.update(kw)
        conn = pymysql.connect(**args)
        opened.append(conn)
        return conn

    yield make
    for c in opened:
        with contextlib.suppress(Exception):
            c.close()


@pytest.fixture
def mc_connect(proxy: ProxyThread, cluster: Cluster) -> Iterator[Callable[..., Any]]:
    """mysql-connector-python (pure Python) connections through the shared proxy, closed after."""
    opened: list[Any] = []

    def make(**kw: Any) -> Any:
        args: dict[str, Any] = {
            "host": proxy.host,
            "port": proxy.port,
            "user": cluster.app_user,
            "password": cluster.app_password,
            "database": "rwtest",
            "use_pure": True,
            "autocommit": True,
            "connection_timeout": 10,
        }
        args.update(kw)
        conn = mysql.connector.connect(**args)
        opened.append(conn)
        return conn

    yield make
    for c in opened:
        with contextlib.suppress(Exception):
            c.close()


@pytest.fixture
def direct(cluster: Cluster) -> Iterator[Callable[..., pymysql.Connection]]:
    """``direct(node=None, **overrides)`` → a PyMySQL connection straight to a server."""
    opened: list[pymysql.Connection] = []

    def make(node: Any = None, **kw: Any) -> pymysql.Connection:
        args = {**cluster.dsn(node), "database": "rwtest", "autocommit": True, **kw}
        conn = pymysql.connect(**args)
        opened.append(conn)
        return conn

    yield make
    for c in opened:
        with contextlib.suppress(Exception):
            c.close()


@pytest.fixture(scope="session")
def etcd_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """A real 3-member etcd cluster on loopback (free ports, own data dirs), stopped at the end.
    Data dirs on tmpfs when there is one: etcd fsyncs every write, and a shared disk under load
    makes that slower than the tests' request timeout."""
    if not etcd_available():  # an error, not a skip: CI must run these tests (.ci/run installs it)
        pytest.fail("etcd is not installed: apt-get install -y etcd-server (.ci/run does)")
    shm = Path("/dev/shm")
    base = Path(tempfile.mkdtemp(prefix="rwproxy-etcd-", dir=shm)) if shm.is_dir() else None
    with EtcdCluster(base or tmp_path_factory.mktemp("etcd"), size=3) as etcd:
        yield etcd
