"""The RDS discovery task: read the topology from the RDS API every ``refresh_interval_seconds``
and hand the server list to the monitor.

    discovery = RdsDiscovery(config.topology_source, AwsClients(config.aws), on_servers=monitor.set_servers)
    await discovery.start()        # first read done (or failed and logged), task running
    discovery.check_roles(monitor.stats)   # after each monitor snapshot: API role vs read_only
    await discovery.stop()

boto3 calls run in a worker thread (``asyncio.to_thread``), never on the event loop. A failed read is
retried with exponential backoff (1 s, 2 s, 4 s ... capped at the refresh interval); while the API
cannot be read the last known server list stays in place (an API outage never empties the topology).
``on_servers`` is called only when the list of (name, address) pairs changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rwproxy.config.aws_sections import TopologyConfig
from rwproxy.config.sections import ServerConfig
from rwproxy.discovery.aws import AwsClients, AwsError, error_code
from rwproxy.discovery.rds import (
    DiscoveredServer,
    Discovery,
    from_cluster,
    from_source_instance,
    from_tagged,
    has_tags,
    role_disagreement,
    select,
)
from rwproxy.topology.model import Role

__all__ = ["RdsDiscovery", "read_discovery"]

log = logging.getLogger(__name__)

_FIRST_BACKOFF = 1.0


def _instances(rds: Any, **kwargs: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in rds.get_paginator("describe_db_instances").paginate(**kwargs):
        out.extend(page.get("DBInstances", ()))
    return out


def _instances_by_id(rds: Any, ids: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(0, len(ids), 100):  # the filter takes at most 100 values
        out += _instances(rds, Filters=[{"Name": "db-instance-id", "Values": ids[i : i + 100]}])
    return out


def read_discovery(rds: Any, topology: TopologyConfig) -> Discovery:
    """One blocking read of the API (run it in a thread). Raises botocore/AwsError errors."""
    mapper = topology.map_address
    servers: list[DiscoveredServer]
    if topology.instance_id:
        found = _instances(rds, DBInstanceIdentifier=topology.instance_id)
        if not found:
            raise AwsError(f"RDS instance {topology.instance_id!r} not found")
        source = found[0]
        if source.get("ReadReplicaSourceDBInstanceIdentifier"):
            log.warning(
                "discovery: %s is itself a read replica of %s; topology.instance_id should name the source",
                topology.instance_id,
                source["ReadReplicaSourceDBInstanceIdentifier"],
            )
        replica_ids = list(source.get("ReadReplicaDBInstanceIdentifiers") or ())
        replicas = _instances_by_id(rds, replica_ids) if replica_ids else []
        servers = from_source_instance(source, replicas, mapper)
    elif topology.cluster_id:
        clusters = rds.describe_db_clusters(DBClusterIdentifier=topology.cluster_id).get("DBClusters", [])
        if not clusters:
            raise AwsError(f"Aurora cluster {topology.cluster_id!r} not found")
        members = _instances(rds, Filters=[{"Name": "db-cluster-id", "Values": [topology.cluster_id]}])
        servers = from_cluster(clusters[0], members, mapper)
    else:
        instances = _instances(rds)
        tagged = [i for i in instances if has_tags(i, topology.tag_filters)]
        cluster_ids = sorted({str(i["DBClusterIdentifier"]) for i in tagged if i.get("DBClusterIdentifier")})
        writers: set[str] = set()
        for cid in cluster_ids:
            for cluster in rds.describe_db_clusters(DBClusterIdentifier=cid).get("DBClusters", []):
                members = cluster.get("DBClusterMembers", ())
                writers |= {m["DBInstanceIdentifier"] for m in members if m.get("IsClusterWriter")}
        servers = from_tagged(instances, topology.tag_filters, writers, mapper)
    return select(servers, topology.accepted_statuses)


@dataclass(slots=True)
class DiscoveryStats:
    reads: int = 0
    failures: int = 0
    last_ok_at: float | None = None  # time.time()
    last_error: str | None = None
    changes: int = 0


class RdsDiscovery:
    def __init__(
        self,
        topology: TopologyConfig,
        clients: AwsClients,
        on_servers: Callable[[tuple[ServerConfig, ...]], None],
        *,
        first_backoff: float = _FIRST_BACKOFF,
    ) -> None:
        self.topology = topology
        self.clients = clients
        self._on_servers = on_servers
        self._first_backoff = first_backoff
        self.current: Discovery | None = None
        self.stats = DiscoveryStats()
        self.disagreements: dict[str, str] = {}  # server name -> what differs (for rwproxy status)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._failing = False

    # -- public ------------------------------------------------------------------------------

    @property
    def endpoints(self) -> dict[str, tuple[str, int]]:
        """Server name -> the RDS endpoint (host, port) as RDS reports it (IAM tokens are for it)."""
        current = self.current
        if current is None:
            return {}
        return {
            s.name: (s.endpoint, s.endpoint_port)
            for s in current.servers
            if s.endpoint is not None and s.endpoint_port is not None
        }

    def intended_role(self, name: str) -> Role | None:
        current = self.current
        if current is None:
            return None
        return next((s.role for s in current.servers if s.name == name), None)

    async def start(self) -> None:
        """Read once (a failure is logged, not raised: the task keeps trying), then run the loop."""
        await self.refresh_once()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="rwproxy-rds-discovery")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def request_refresh(self) -> None:
        """Read the API now instead of at the next interval (after a failover action, say)."""
        self._wake.set()

    async def refresh_once(self) -> bool:
        """One read; applies the result. False when the API could not be read (logged)."""
        self.stats.reads += 1
        try:
            rds = await asyncio.to_thread(self.clients.client, "rds")
            discovery = await asyncio.to_thread(read_discovery, rds, self.topology)
        except Exception as exc:
            self.stats.failures += 1
            self.stats.last_error = _describe(exc)
            if not self._failing:
                log.warning(
                    "discovery: cannot read the RDS API: %s (keeping the last known servers)",
                    self.stats.last_error,
                )
            self._failing = True
            return False
        if self._failing:
            log.info("discovery: the RDS API answers again")
        self._failing = False
        self.stats.last_ok_at, self.stats.last_error = time.time(), None
        self._apply(discovery)
        return True

    def check_roles(self, read_only: Mapping[str, bool | None]) -> None:
        """Compare the API's intended roles with what the servers say (``read_only`` by server
        name, from the monitor). The monitor's view is what routing follows; a difference is logged
        once when it appears and kept in ``disagreements`` for ``rwproxy status``."""
        current = self.current
        if current is None:
            return
        now: dict[str, str] = {}
        for s in current.servers:
            text = role_disagreement(s.role, read_only.get(s.name))
            if text is not None:
                now[s.name] = text
        for name, text in now.items():
            if self.disagreements.get(name) != text:
                log.warning("discovery: %s: %s; following the server", name, text)
        for name in self.disagreements.keys() - now.keys():
            log.info("discovery: %s: RDS and the server agree on its role again", name)
        self.disagreements = now

    def status(self) -> dict[str, Any]:
        """For /status: what RDS says about each instance."""
        current = self.current
        servers = [] if current is None else [*current.servers, *(s for s, _ in current.skipped)]
        skipped = {} if current is None else {s.name: why for s, why in current.skipped}
        return {
            "source": "rds",
            "last_ok_at": self.stats.last_ok_at,
            "last_error": self.stats.last_error,
            "reads": self.stats.reads,
            "failures": self.stats.failures,
            "instances": [
                {
                    "name": s.name,
                    "endpoint": f"{s.endpoint}:{s.endpoint_port}" if s.endpoint else None,
                    "intended_role": s.role.value,
                    "status": s.status,
                    "availability_zone": s.availability_zone,
                    "instance_class": s.instance_class,
                    "left_out": skipped.get(s.name),
                    "role_disagreement": self.disagreements.get(s.name),
                }
                for s in servers
            ],
        }

    # -- internals ---------------------------------------------------------------------------

    def _apply(self, discovery: Discovery) -> None:
        previous = self.current
        self.current = discovery
        key = [(s.name, s.host, s.port) for s in discovery.servers]
        old_key = None if previous is None else [(s.name, s.host, s.port) for s in previous.servers]
        old_skipped = None if previous is None else previous.skipped
        if (
            key != old_key
            or discovery.skipped != old_skipped
            or discovery.writers != (previous and previous.writers)
        ):
            log.info("discovery: RDS lists %s", discovery.summary())
        if key != old_key:
            self.stats.changes += 1
            self._on_servers(discovery.server_configs())

    async def _run(self) -> None:
        interval = self.topology.refresh_interval_seconds
        backoff = self._first_backoff
        ok = self.current is not None
        while True:
            delay = interval if ok else min(backoff, interval)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            ok = await self.refresh_once()
            backoff = self._first_backoff if ok else min(backoff * 2, interval)


def _describe(exc: BaseException) -> str:
    code = error_code(exc)
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{code}: {text}" if code and code not in text else text
