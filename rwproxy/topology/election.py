"""Primary election: ``build_nodes`` turns every server's health (``rwproxy.topology.health``) into
the nodes of a topology snapshot, with exactly zero or one PRIMARY, replicas' read weights scaled by
their lag (``lag_factor``) and the soft-lag guard applied. Pure: no I/O, no clock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from rwproxy.topology.gtid import GtidPosition, parse_position
from rwproxy.topology.health import ServerHealth, ShunReason
from rwproxy.topology.model import Node, NodeState, Role, lag_order, lag_within

__all__ = ["ServerView", "build_nodes", "lag_factor", "lag_scaled_weight"]


@dataclass(frozen=True, slots=True)
class ServerView:
    """What ``build_nodes`` needs of one configured server."""

    name: str
    host: str
    port: int
    weight: int
    health: ServerHealth


def lag_factor(lag_seconds: float, max_lag: float) -> float:
    """How much of its configured weight a replica keeps at a given lag: 1 at no lag, falling
    linearly to 0.1 at ``max_lag`` (beyond it the replica is SHUNNED and gets nothing)::

        read_weight = weight * max(0.1, 1 - lag / max_lag)
    """
    return max(0.1, 1.0 - lag_seconds / max_lag)


def lag_scaled_weight(weight: int, lag: float | None, max_lag: float | None) -> float | None:
    """``Node.read_weight`` of a replica serving reads: ``weight * lag_factor(lag, max_lag)``; None
    (the configured weight applies) when the lag or the threshold is unknown."""
    if max_lag is None or lag is None:
        return None
    return weight * lag_factor(lag, max_lag)


def build_nodes(
    servers: Sequence[ServerView],
    previous_primary: str | None,
    max_lag: float | None = None,
    *,
    soft_lag: float | None = None,
    min_replicas: int = 1,
    refuse_split_brain: bool = False,
) -> tuple[Node, ...]:
    """Topology nodes, in configuration order, with exactly zero or one PRIMARY.

    The primary: the server configured ``primary`` if any; else, among ``auto`` servers last seen
    read_only = OFF, the previous primary while it is ONLINE, else the first ONLINE one in
    configuration order, else the previous primary, else the first. The other writable ``auto``
    servers become SHUNNED replicas (WRITABLE_NOT_PRIMARY): a second writable server is an old or a
    diverging primary, not a place to read from. Lag: the primary's is 0 unless it replicates itself.

    ``refuse_split_brain`` (failover.mode = "observe"): with two or more ONLINE writable ``auto``
    servers there is no primary at all (each is SHUNNED, SPLIT_BRAIN): writes are refused, never
    sent to a guess.

    A replica shunned only because its IO thread lost the primary (SQL thread running) keeps
    serving reads, with its last known lag, while the primary is failing (its last check failed or
    it is OFFLINE: the replica has everything it could get, and no one can write anywhere
    meanwhile), and also while the primary has not been checked since the replica lost it (the
    primary's failure is recorded before the replicas are judged by what the failure causes; the
    monitor checks the primary at once). A replica the failover controller is repointing to the
    primary (``ServerHealth.expect_repoint``) keeps serving the same way while its replication
    restarts (stopped threads, NULL lag, not yet replicating), for a bounded number of checks.
    """
    configured = [s for s in servers if s.health.configured_role is Role.PRIMARY]
    writable = [s for s in servers if s.health.configured_role is None and s.health.read_only is False]
    primary: ServerView | None
    if configured:
        primary = configured[0]
    else:
        online = [s for s in writable if s.health.state is NodeState.ONLINE]
        prev = [s for s in writable if s.name == previous_primary]
        prev_online = [s for s in prev if s.health.state is NodeState.ONLINE]
        pick = prev_online or online or prev or writable
        primary = pick[0] if pick else None
        if refuse_split_brain and len(online) > 1:
            return _split_brain(servers, {s.name for s in online}, max_lag)
    primary_health = primary.health if primary is not None else None
    nodes = []
    for s in servers:
        h = s.health
        state, reason = h.state, h.reason
        lag = h.lag_seconds
        if s is primary:
            role = Role.PRIMARY
            if lag is None and h.state is not NodeState.OFFLINE:
                lag = 0.0
        else:
            role = h.configured_role or Role.REPLICA
            if h.configured_role is None and h.read_only is False and state is NodeState.ONLINE:
                state, reason = NodeState.SHUNNED, ShunReason.WRITABLE_NOT_PRIMARY
            elif _usable_meanwhile(h, primary.name if primary else None, primary_health, max_lag):
                state, reason = NodeState.ONLINE, None
                lag = h.last_known_lag if h.last_known_lag is not None else 0.0
        weight = lag_scaled_weight(s.weight, lag, max_lag) if role is Role.REPLICA else None
        nodes.append(_node(s, role, state, reason, lag, weight))
    if soft_lag is not None:
        return _soft_lag_guard(tuple(nodes), soft_lag, min_replicas)
    return tuple(nodes)


SOFT_LAG_REASON = "lag_over_soft_threshold"


def _soft_lag_guard(nodes: tuple[Node, ...], soft_lag: float, min_replicas: int) -> tuple[Node, ...]:
    """Replicas over ``soft_lag`` get no reads (read_weight 0, reason SOFT_LAG_REASON), unless fewer
    than ``min_replicas`` replicas would serve: then the least-lagged of them keep serving."""
    serving = [n for n in nodes if n.role is Role.REPLICA and n.online and n.lag_seconds is not None]
    under = [n for n in serving if lag_within(n, soft_lag)]
    over = sorted((n for n in serving if n not in under), key=lambda n: (lag_order(n), n.name))
    keep = {n.name for n in over[: max(0, min_replicas - len(under))]}
    cut = {n.name for n in over} - keep
    if not cut:
        return nodes
    return tuple(replace(n, read_weight=0.0, reason=SOFT_LAG_REASON) if n.name in cut else n for n in nodes)


def _position(text: str | None) -> GtidPosition | None:
    try:
        return parse_position(text) if text else None
    except ValueError:
        return None


_MOVING = (ShunReason.REPLICATION_STOPPED, ShunReason.LAG_UNKNOWN)


def _usable_meanwhile(
    h: ServerHealth, primary: str | None, p: ServerHealth | None, max_lag: float | None
) -> bool:
    """Shunned only by replication state that a primary failure or a repoint causes, and it is that
    (see ``build_nodes``): keep serving reads."""
    if h.state is not NodeState.SHUNNED or h.failing:
        return False
    if h.last_known_lag is not None and max_lag is not None and h.last_known_lag > max_lag:
        return False
    if h.repoint_checks_left > 0 and h.repointing_to is not None and h.repointing_to == primary:
        return h.reason in _MOVING or h.reason is ShunReason.NOT_REPLICATING
    if h.reason not in _MOVING or not (h.io_running is False and h.sql_running is True):
        return False
    if p is None:
        return False
    if p.failing:
        return True
    # The primary has not been checked since this replica lost it: its failure may not be recorded.
    return h.io_lost_at is not None and (p.last_check_started is None or p.last_check_started < h.io_lost_at)


def _split_brain(
    servers: Sequence[ServerView], writable: set[str], max_lag: float | None
) -> tuple[Node, ...]:
    """No primary: every writable ONLINE server is SHUNNED (SPLIT_BRAIN); the rest stay replicas."""
    nodes = []
    for s in servers:
        h = s.health
        state, reason = h.state, h.reason
        if s.name in writable:
            state, reason = NodeState.SHUNNED, ShunReason.SPLIT_BRAIN
        lag = h.lag_seconds
        weight = lag_scaled_weight(s.weight, lag, max_lag) if state is NodeState.ONLINE else None
        nodes.append(_node(s, Role.REPLICA, state, reason, lag, weight))
    return tuple(nodes)


def _node(
    s: ServerView,
    role: Role,
    state: NodeState,
    reason: ShunReason | None,
    lag: float | None,
    read_weight: float | None,
) -> Node:
    """The published snapshot's node for ``s`` with what the caller decided about it."""
    h = s.health
    return Node(
        name=s.name,
        host=s.host,
        port=s.port,
        role=role,
        weight=s.weight,
        state=state,
        lag_seconds=lag,
        read_weight=read_weight,
        reason=reason.value if reason is not None else None,
        gtid=_position(h.gtid_position),
        gtid_waits=h.gtid_waits,
    )
