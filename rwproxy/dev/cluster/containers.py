"""A MySQL 8.4 replication cluster in Docker containers (testcontainers), for MySQL-only behaviour
(caching_sha2_password, gtid_executed, SHOW REPLICA STATUS with Source_ columns).

NOT RUN on the development machine this was written on (it has no Docker engine): it follows the
documented testcontainers 4.x and MySQL 8.4 interfaces and shares all SQL with the local MariaDB
cluster, which is tested, but expect to fix small things the first time it meets a real engine.
Importing this module needs neither docker nor testcontainers; starting a cluster does.

Layout: a user-defined Docker network; each container has the network alias of its node name
(``node1``...), which replicas use as SOURCE_HOST; tests reach each node through its mapped port.
"""

from __future__ import annotations

import contextlib
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pymysql

from rwproxy.dev.cluster.base import Cluster, ClusterError, ClusterNode, ClusterUnavailable
from rwproxy.dev.cluster.flavor import MYSQL

__all__ = ["DEFAULT_IMAGE", "DockerCluster", "docker_available"]

DEFAULT_IMAGE = "mysql:8.4"
_ROOT_PASSWORD = "rwroot-secret"
_NON_FATAL = {signal.SIGSTOP, signal.SIGCONT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2}


def docker_available() -> bool:
    """A Docker engine answers (``docker.from_env(timeout=3).ping()``)."""
    try:
        import docker

        return bool(docker.from_env(timeout=3).ping())
    except Exception:
        return False


def _mysql_container_class() -> Any:
    try:
        from testcontainers.community.mysql import MySqlContainer
    except ImportError:
        try:
            from testcontainers.mysql import MySqlContainer
        except ImportError as exc:
            raise ClusterUnavailable("pip install 'testcontainers>=4.4' for the Docker cluster") from exc
    return MySqlContainer


class DockerCluster(Cluster):
    kind = "docker"

    def __init__(self, replicas: int = 2, image: str = DEFAULT_IMAGE) -> None:
        super().__init__(MYSQL)
        self.replica_count = replicas
        self.image = image
        self._network: Any = None
        self._containers: list[Any] = []

    def _start(self) -> None:
        container_class = _mysql_container_class()
        from testcontainers.core.network import Network

        if not docker_available():
            raise ClusterUnavailable(
                "no Docker engine answers (docker.from_env().ping() failed); start one, or use the local "
                "MariaDB cluster: RWPROXY_TEST_CLUSTER=local (apt-get install mariadb-server)"
            )
        self._network = Network().create()
        containers = []
        for i in range(1, self.replica_count + 2):
            name = f"node{i}"
            # The image's entrypoint runs its own setup first with these options too, so nothing here
            # may block writes (read_only is set over SQL, with SET PERSIST, once it is up).
            command = [
                f"--server-id={i}",
                "--log-bin=mysql-bin",
                "--relay-log=relay-bin",
                "--gtid-mode=ON",
                "--enforce-gtid-consistency=ON",
                "--log-replica-updates=ON",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=64M",
                "--max-allowed-packet=64M",
                "--innodb-flush-log-at-trx-commit=2",
                "--sync-binlog=0",
                "--plugin-load-add=semisync_source.so",
                "--plugin-load-add=semisync_replica.so",
            ]
            c = (
                container_class(self.image, username="root", password=_ROOT_PASSWORD, dbname=self.database)
                .with_network(self._network)
                .with_network_aliases(name)
                .with_command(command)
            )
            containers.append((name, i, c))
            self._containers.append(c)
        # The first start also creates testcontainers' reaper (not thread-safe): alone, then the rest.
        containers[0][2].start()
        with ThreadPoolExecutor(len(containers)) as pool:
            list(pool.map(lambda t: t[2].start(), containers[1:]))
        for name, i, c in containers:
            node = ClusterNode(
                name,
                c.get_container_host_ip(),
                int(c.get_exposed_port(3306)),
                i,
                container=c,
                datadir="/var/lib/mysql",
            )
            self.nodes.append(node)
        self.primary = self.nodes[0]
        # Forget whatever the entrypoint binlogged (its own CREATE DATABASE...): the primary's binlog
        # then starts with our users, which the replicas replay from the start.
        for node in self.nodes:
            self.admin_sql(node, "RESET BINARY LOGS AND GTIDS")
            self.admin_sql(node, f"DROP DATABASE IF EXISTS `{self.database}`")
            self.admin_sql(node, "RESET BINARY LOGS AND GTIDS")
        for node in self.replicas:
            self.set_read_only(node, True)

    def _admin_connect(self, node: ClusterNode, **kw: Any) -> pymysql.Connection:
        params: dict[str, Any] = {
            "host": node.host,
            "port": node.port,
            "user": "root",
            "password": _ROOT_PASSWORD,
            "autocommit": True,
            "connect_timeout": 5,
        }
        return pymysql.connect(**{**params, **kw})

    def _source_address(self, node: ClusterNode) -> tuple[str, int]:
        return (node.name, 3306)

    def _wrapped(self, node: ClusterNode) -> Any:
        return node.container.get_wrapped_container()

    def is_running(self, node: ClusterNode) -> bool:
        w = self._wrapped(node)
        w.reload()
        return bool(w.status == "running")

    def kill_node(self, node: ClusterNode, sig: int = signal.SIGKILL) -> None:
        w = self._wrapped(node)
        w.kill(signal=signal.Signals(sig).name)
        if sig not in _NON_FATAL:
            w.wait(timeout=60)

    def stop_node(self, node: ClusterNode) -> None:
        self._wrapped(node).stop(timeout=60)

    def start_node(self, node: ClusterNode) -> None:
        if self.is_running(node):
            return
        self._wrapped(node).start()
        # Docker may publish 3306 on a different host port after a restart.
        node.port = int(node.container.get_exposed_port(3306))
        deadline = time.monotonic() + 120
        while True:
            try:
                self._admin_connect(node, connect_timeout=2).close()
                return
            except pymysql.err.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise ClusterError(f"{node.name} did not come back within 120 s: {exc}") from exc
                time.sleep(0.2)

    def _shutdown(self) -> None:
        for c in self._containers:
            with contextlib.suppress(Exception):
                c.stop()
        if self._network is not None:
            with contextlib.suppress(Exception):
                self._network.remove()
