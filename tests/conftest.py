"""Shared fixtures.

The replication cluster (``rwproxy.dev.cluster``) is started once per session, on first use. Which kind
follows ``RWPROXY_TEST_CLUSTER`` (local|docker), else Docker if an engine answers, else local
MariaDB processes. Nothing here skips: if the cluster cannot start, every test that needs it errors
with the reason (CI must run them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pymysql
import pytest

from rwproxy.dev.cluster import Cluster, ClusterNode, start_cluster

__all__ = [
    "cluster",
    "cluster_dsn",
    "fresh_cluster",
    "healthy_cluster",
    "moto",
    "primary_conn",
    "primary_dsn",
    "replica_dsns",
]


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """One primary + two replicas for the whole session; stopped at the end, failures or not.
    Tests that disturb it (kill, delay, stop replication) put it back (``cluster.heal()``)."""
    c = start_cluster("auto")
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def healthy_cluster(cluster: Cluster) -> Cluster:
    """The session cluster after ``heal()``: every node up, no delay, replicas caught up."""
    cluster.heal()
    return cluster


@pytest.fixture
def fresh_cluster() -> Iterator[Cluster]:
    """A private cluster for one test (promotion, divergence...); ~2 s locally, much more in Docker."""
    c = start_cluster("auto")
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="session")
def cluster_dsn(cluster: Cluster) -> Callable[..., dict[str, Any]]:
    """``cluster_dsn(node=None, **overrides)`` → pymysql/aiomysql connect kwargs for the app user
    (default node: the current primary)."""

    def dsn(node: ClusterNode | None = None, **overrides: Any) -> dict[str, Any]:
        return {**cluster.dsn(node), **overrides}

    return dsn


@pytest.fixture
def primary_dsn(cluster_dsn: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return cluster_dsn()


@pytest.fixture
def replica_dsns(cluster: Cluster, cluster_dsn: Callable[..., dict[str, Any]]) -> list[dict[str, Any]]:
    return [cluster_dsn(r) for r in cluster.replicas]


@pytest.fixture
def primary_conn(cluster: Cluster) -> Iterator[pymysql.Connection]:
    """An autocommit app-user connection to the current primary, closed after the test."""
    conn = cluster.connect(cluster.primary)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture(scope="session")
def moto() -> Iterator[Any]:
    """moto in server mode on loopback (``tests.support.aws.MotoEndpoint``): a real AWS API endpoint."""
    from tests.support.aws import MotoEndpoint

    endpoint = MotoEndpoint().start()
    try:
        yield endpoint
    finally:
        endpoint.stop()
