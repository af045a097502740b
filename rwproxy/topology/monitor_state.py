"""What the monitor keeps per server (``ServerStats``: counters and the published role/state for
``rwproxy status`` and metrics; ``Slot``: its task, connection, health), the ``HealthPolicy`` made
from ``[monitor]`` settings, and how a newly published snapshot is noted in the stats."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rwproxy.topology.health import HealthPolicy, ServerHealth, ShunReason
from rwproxy.topology.model import Node, NodeState, Role, Topology
from rwproxy.topology.probe import Flavor

if TYPE_CHECKING:
    import aiomysql

    from rwproxy.config import MonitorConfig, ServerConfig

__all__ = ["ServerStats", "Slot", "configured_role", "health_policy", "note_changes"]

log = logging.getLogger("rwproxy.topology.monitor")  # the monitor's lines, whichever module writes


@dataclass(slots=True)
class ServerStats:
    """What the monitor knows about one server; times are ``clock()`` (monotonic) seconds.
    ``role``/``state``/``reason`` are the published ones (after primary election)."""

    name: str
    checks: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    connects: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    last_check_at: float | None = None
    last_check_seconds: float | None = None  # duration of the last check, connect included
    last_lag_seconds: float | None = None  # from the last successful check; None: NULL / not a replica
    read_only: bool | None = None
    version: str | None = None
    gtid_position: str | None = None
    role: Role = Role.REPLICA
    state: NodeState = NodeState.OFFLINE
    reason: str | None = ShunReason.NOT_CHECKED.value
    detail: str = "not checked yet"
    state_since: float | None = None
    state_changes: int = 0
    role_mismatch: str | None = None
    lag_source: str | None = None  # "heartbeat" or "seconds_behind_master" (replicas, last check)


@dataclass(eq=False, slots=True)
class Slot:
    server: ServerConfig
    health: ServerHealth
    stats: ServerStats
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    conn: aiomysql.Connection | None = None
    flavor: Flavor | None = None
    task: asyncio.Task[None] | None = None
    relogin: bool = False  # the monitor credentials changed: reconnect before the next check
    suspect_at: float | None = None  # a session could not connect at this time (report_unreachable)


def note_changes(
    previous: Topology | None, topology: Topology, slots: Mapping[str, Slot], now: float
) -> None:
    """A new snapshot: a server whose published role/state/reason changed gets it in its stats and
    one INFO line."""
    for node in topology.nodes:
        old = previous.by_name.get(node.name) if previous is not None else None
        if old is not None and (old.role, old.state, old.reason) == (node.role, node.state, node.reason):
            continue
        slot = slots[node.name]
        st = slot.stats
        detail = slot.health.detail
        if node.reason == ShunReason.WRITABLE_NOT_PRIMARY.value and topology.primary is not None:
            detail = f"read_only = OFF, but {topology.primary.name} is the primary"
        st.role, st.state, st.reason, st.detail = node.role, node.state, node.reason, detail
        st.state_since = now
        st.state_changes += 1
        log.info("monitor: %s: %s -> %s: %s", node.name, _show(old), _show(node), detail)


def health_policy(settings: MonitorConfig) -> HealthPolicy:
    return HealthPolicy(
        failures_to_offline=settings.failures_to_offline,
        successes_to_online=settings.successes_to_online,
        max_replication_lag=settings.max_replication_lag_seconds,
        soft_replication_lag=settings.soft_replication_lag_seconds,
        min_replicas=settings.min_replicas,
    )


def configured_role(role: str) -> Role | None:
    return {"primary": Role.PRIMARY, "replica": Role.REPLICA}.get(role)


def _show(node: Node | None) -> str:
    if node is None:
        return "unchecked"
    text = f"{node.role.value} {node.state.name}"
    return text + (f" ({node.reason})" if node.reason else "")
