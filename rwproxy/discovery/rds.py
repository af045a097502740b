"""Pure mapping: RDS API responses (boto3 dicts) -> the servers rwproxy should monitor.

No I/O here. The inputs have the shape boto3 returns for ``describe_db_instances``
(``DBInstances[]``) and ``describe_db_clusters`` (``DBClusters[]``); only these fields are read:

* instance: ``DBInstanceIdentifier``, ``DBInstanceStatus``, ``Endpoint.Address``/``Port`` (absent while
  an instance is being created), ``AvailabilityZone``, ``DBInstanceClass``, ``DBClusterIdentifier``,
  ``ReadReplicaSourceDBInstanceIdentifier``, ``ReadReplicaDBInstanceIdentifiers``, ``TagList``;
* cluster: ``DBClusterMembers[].DBInstanceIdentifier`` / ``IsClusterWriter``.

Roles from the API are *intended* roles: the writer is listed first and every server is monitored
with ``role = "auto"``, so the monitor's ``read_only`` check decides who takes writes (a server RDS
calls the writer but which says read_only = ON does not get writes); ``role_disagreement`` words the
difference for logs and ``rwproxy status``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rwproxy.config.sections import ServerConfig
from rwproxy.topology.model import Role

__all__ = [
    "DiscoveredServer",
    "Discovery",
    "from_cluster",
    "from_source_instance",
    "from_tagged",
    "has_tags",
    "role_disagreement",
    "select",
]

AddressMap = Callable[[str, int], tuple[str, int]]


def _no_map(host: str, port: int) -> tuple[str, int]:
    return host, port


@dataclass(frozen=True, slots=True)
class DiscoveredServer:
    """One RDS instance as rwproxy sees it. ``endpoint``/``endpoint_port``: what RDS reports (IAM
    tokens are signed for it); ``host``/``port``: where rwproxy connects (after ``address_map``)."""

    name: str
    endpoint: str | None
    endpoint_port: int | None
    host: str | None
    port: int | None
    role: Role  # intended role according to the API
    status: str
    availability_zone: str | None = None
    instance_class: str | None = None
    cluster_id: str | None = None

    def server_config(self) -> ServerConfig:
        assert self.host is not None and self.port is not None
        return ServerConfig(name=self.name, host=self.host, port=self.port, role="auto")


@dataclass(frozen=True, slots=True)
class Discovery:
    """One read of the API: the servers that may take traffic (writer first) and the ones left out
    with the reason (status not accepted, no endpoint yet)."""

    servers: tuple[DiscoveredServer, ...]
    skipped: tuple[tuple[DiscoveredServer, str], ...] = ()

    def server_configs(self) -> tuple[ServerConfig, ...]:
        return tuple(s.server_config() for s in self.servers)

    @property
    def writers(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.servers if s.role is Role.PRIMARY)

    def summary(self) -> str:
        parts = [f"{s.name} ({s.role.value}, {s.host}:{s.port})" for s in self.servers]
        parts += [f"{s.name} (left out: {why})" for s, why in self.skipped]
        return ", ".join(parts) or "no instances"


def _server(instance: Mapping[str, Any], role: Role, address_map: AddressMap) -> DiscoveredServer:
    endpoint = instance.get("Endpoint") or {}
    address, port = endpoint.get("Address"), endpoint.get("Port")
    host, mapped_port = (None, None)
    if address and port:
        host, mapped_port = address_map(str(address), int(port))
    return DiscoveredServer(
        name=str(instance["DBInstanceIdentifier"]),
        endpoint=str(address) if address else None,
        endpoint_port=int(port) if port else None,
        host=host,
        port=mapped_port,
        role=role,
        status=str(instance.get("DBInstanceStatus") or "unknown"),
        availability_zone=instance.get("AvailabilityZone"),
        instance_class=instance.get("DBInstanceClass"),
        cluster_id=instance.get("DBClusterIdentifier"),
    )


def from_source_instance(
    source: Mapping[str, Any],
    replicas: Iterable[Mapping[str, Any]],
    address_map: AddressMap = _no_map,
) -> list[DiscoveredServer]:
    """RDS MySQL: ``source`` is the primary; ``replicas`` are the described instances named in its
    ``ReadReplicaDBInstanceIdentifiers`` (others, e.g. a replica promoted meanwhile, are ignored)."""
    wanted = set(source.get("ReadReplicaDBInstanceIdentifiers") or ())
    out = [_server(source, Role.PRIMARY, address_map)]
    out += [_server(r, Role.REPLICA, address_map) for r in replicas if r["DBInstanceIdentifier"] in wanted]
    return out


def from_cluster(
    cluster: Mapping[str, Any],
    instances: Iterable[Mapping[str, Any]],
    address_map: AddressMap = _no_map,
) -> list[DiscoveredServer]:
    """Aurora MySQL: ``DBClusterMembers[].IsClusterWriter`` gives the writer; ``instances`` are the
    described members (their instance endpoints are used, not the cluster's DNS names)."""
    writer = {
        m["DBInstanceIdentifier"]: bool(m.get("IsClusterWriter")) for m in cluster.get("DBClusterMembers", ())
    }
    out = [
        _server(i, Role.PRIMARY if writer[i["DBInstanceIdentifier"]] else Role.REPLICA, address_map)
        for i in instances
        if i["DBInstanceIdentifier"] in writer
    ]
    return _writer_first(out)


def has_tags(instance: Mapping[str, Any], tags: Mapping[str, str]) -> bool:
    present = {t.get("Key"): t.get("Value") for t in instance.get("TagList") or ()}
    return all(present.get(k) == v for k, v in tags.items())


def from_tagged(
    instances: Iterable[Mapping[str, Any]],
    tags: Mapping[str, str],
    cluster_writers: Collection[str] = (),
    address_map: AddressMap = _no_map,
) -> list[DiscoveredServer]:
    """Every instance carrying all ``tags``. Intended role: an Aurora member is the writer when it is
    in ``cluster_writers`` (from its cluster's description); an RDS instance is a replica when it has
    a ``ReadReplicaSourceDBInstanceIdentifier``, else a writer."""
    out = []
    for i in instances:
        if not has_tags(i, tags):
            continue
        if i.get("DBClusterIdentifier"):
            writer = i["DBInstanceIdentifier"] in cluster_writers
        else:
            writer = not i.get("ReadReplicaSourceDBInstanceIdentifier")
        out.append(_server(i, Role.PRIMARY if writer else Role.REPLICA, address_map))
    return _writer_first(out)


def _writer_first(servers: list[DiscoveredServer]) -> list[DiscoveredServer]:
    # Stable: writers first (the monitor prefers the first writable server), then by name.
    return sorted(servers, key=lambda s: (s.role is not Role.PRIMARY, s.name))


def select(servers: Iterable[DiscoveredServer], accepted_statuses: Collection[str]) -> Discovery:
    """Keep the servers that may take traffic: an accepted status and an endpoint. Duplicate names
    (the same instance reached twice) keep the first."""
    keep: list[DiscoveredServer] = []
    skipped: list[tuple[DiscoveredServer, str]] = []
    seen: set[str] = set()
    addresses: dict[tuple[str, int], str] = {}
    for s in servers:
        if s.name in seen:
            continue
        seen.add(s.name)
        if s.status not in accepted_statuses:
            skipped.append((s, f"status {s.status}"))
        elif s.host is None or s.port is None:
            skipped.append((s, "no endpoint yet"))
        elif (s.host.lower(), s.port) in addresses:
            other = addresses[(s.host.lower(), s.port)]
            skipped.append((s, f"address {s.host}:{s.port} is already used by {other} (check address_map)"))
        else:
            addresses[(s.host.lower(), s.port)] = s.name
            keep.append(s)
    return Discovery(servers=tuple(keep), skipped=tuple(skipped))


def role_disagreement(intended: Role, read_only: bool | None) -> str | None:
    """The API's intended role against the server's own read_only (None: not checked yet)."""
    if intended is Role.PRIMARY and read_only is True:
        return "RDS says writer, but the server is read_only = ON: it gets no writes"
    if intended is Role.REPLICA and read_only is False:
        return "RDS says reader, but the server is writable (read_only = OFF)"
    return None
