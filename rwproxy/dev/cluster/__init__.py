"""A real MySQL/MariaDB replication cluster (primary + replicas, GTID) for the tests and for
``rwproxy demo``.

    with start_cluster() as cluster:
        print(cluster.describe())
        cluster.sql(cluster.primary, "CREATE TABLE rwtest.t (id INT PRIMARY KEY)")
        cluster.wait_replicas_caught_up()

``kind``: ``"local"`` runs mariadbd processes (``apt-get install mariadb-server``); ``"docker"``
runs MySQL 8.4 containers through testcontainers; ``"auto"`` follows ``RWPROXY_TEST_CLUSTER``
(local|docker) if set, else Docker when an engine answers, else local.
"""

from __future__ import annotations

import os

from rwproxy.dev.cluster.base import Cluster, ClusterError, ClusterNode, ClusterUnavailable
from rwproxy.dev.cluster.containers import DockerCluster, docker_available
from rwproxy.dev.cluster.flavor import Flavor
from rwproxy.dev.cluster.local import LocalCluster, reap_orphans
from rwproxy.dev.cluster.net import free_port, free_ports, wait_for_port
from rwproxy.dev.cluster.state import AttachedCluster, attach, default_state_path, write_state

__all__ = [
    "ENV_VAR",
    "AttachedCluster",
    "Cluster",
    "ClusterError",
    "ClusterNode",
    "ClusterUnavailable",
    "DockerCluster",
    "Flavor",
    "LocalCluster",
    "attach",
    "choose_kind",
    "default_state_path",
    "docker_available",
    "free_port",
    "free_ports",
    "reap_orphans",
    "start_cluster",
    "wait_for_port",
    "write_state",
]

ENV_VAR = "RWPROXY_TEST_CLUSTER"
_KINDS = ("local", "docker")


def choose_kind(kind: str = "auto") -> str:
    """Resolve ``"auto"``: the env var if set, else docker when an engine answers, else local."""
    if kind == "auto":
        forced = os.environ.get(ENV_VAR, "").strip().lower()
        if forced:
            if forced not in _KINDS:
                raise ValueError(f"{ENV_VAR}={forced!r}: expected one of {_KINDS}")
            return forced
        return "docker" if docker_available() else "local"
    if kind not in _KINDS:
        raise ValueError(f"kind={kind!r}: expected 'auto', 'local' or 'docker'")
    return kind


def start_cluster(
    kind: str = "auto", replicas: int = 2, base_dir: str | None = None, durable: bool = False
) -> Cluster:
    """Start a primary and ``replicas`` replicas, users and database ``rwtest`` created, replicas
    caught up. ``base_dir``/``durable`` apply to the local kind (durable: fsync every commit).
    Raises ``ClusterUnavailable`` when the chosen kind cannot run here, ``ClusterError`` when the
    servers do not come up (the message carries the error log tail)."""
    resolved = choose_kind(kind)
    cluster: Cluster
    if resolved == "docker":
        cluster = DockerCluster(replicas=replicas)
    else:
        cluster = LocalCluster(replicas=replicas, base_dir=base_dir, durable=durable)
    return cluster.start()
