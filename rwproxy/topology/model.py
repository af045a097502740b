"""Topology snapshot types: immutable, swapped whole by whoever owns the topology (static config, or
the monitor: ``rwproxy.topology.monitor``). Readers take one reference per statement and never lock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from rwproxy.topology.gtid import GtidPosition

__all__ = [
    "Node",
    "NodeState",
    "Role",
    "Topology",
    "lag_order",
    "lag_within",
    "read_share",
    "weighted_choice",
]


class Role(enum.Enum):
    PRIMARY = "primary"
    REPLICA = "replica"


class NodeState(enum.Enum):
    ONLINE = "online"
    SHUNNED = "shunned"  # reachable but must not serve (lag, replication stopped, repeated failures)
    OFFLINE = "offline"  # unreachable or drained by an operator


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    host: str
    port: int
    role: Role
    weight: int = 1
    state: NodeState = NodeState.ONLINE
    # Seconds behind the primary; None means unknown, which is never treated as zero.
    lag_seconds: float | None = None
    # Share of reads after lag weighting (see election.lag_factor); None: ``weight`` as configured.
    read_weight: float | None = None
    # Why the node is not ONLINE (a ``rwproxy.topology.health.ShunReason`` value such as "lag_unknown");
    # None when ONLINE or when the topology is static.
    reason: str | None = None
    # Transactions the server has applied, as last seen by the monitor (None: unknown / static).
    gtid: GtidPosition | None = None
    # read_your_writes may wait on this server for a GTID (False on Aurora readers: the session's
    # reads after a write go to the primary, ``RouteReason.CAUSAL_NO_WAIT``).
    gtid_waits: bool = True
    # Drained by an operator (admin SQL / HTTP, ``rwproxy.admin.drain``): takes no new reads; statements
    # already running finish. Set by ``Topology.with_drained``, never by the monitor.
    drained: bool = False

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def online(self) -> bool:
        return self.state is NodeState.ONLINE


@dataclass(frozen=True, slots=True)
class Topology:
    """One consistent view of the servers. ``version`` grows with every published snapshot."""

    nodes: tuple[Node, ...]
    version: int = 0
    primary: Node | None = field(init=False)
    replicas: tuple[Node, ...] = field(init=False)
    by_name: dict[str, Node] = field(init=False, compare=False, repr=False)
    # Servers that are writable at once while failover.mode = "observe" (no primary then).
    split_brain: tuple[str, ...] = field(init=False, compare=False, repr=False)
    # Replicas that may serve reads (ONLINE, weight > 0) with cumulative weights, for choose_replica.
    _eligible: tuple[tuple[float, Node], ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        primaries = [n for n in self.nodes if n.role is Role.PRIMARY]
        object.__setattr__(self, "primary", primaries[0] if primaries else None)
        object.__setattr__(self, "replicas", tuple(n for n in self.nodes if n.role is Role.REPLICA))
        object.__setattr__(self, "by_name", {n.name: n for n in self.nodes})
        object.__setattr__(
            self, "split_brain", tuple(n.name for n in self.nodes if n.reason == "split_brain")
        )
        object.__setattr__(self, "_eligible", _cumulative(self.replicas))

    def choose_replica(self, rand: float) -> Node | None:
        """Weighted random choice among ONLINE replicas with weight > 0; ``rand`` in [0, 1)."""
        return _pick(self._eligible, rand)

    def eligible_replicas(self) -> tuple[Node, ...]:
        """Replicas that may serve reads: ONLINE with a weight > 0 (after lag scaling)."""
        return tuple(node for _, node in self._eligible)

    def online_replicas(self) -> tuple[Node, ...]:
        return tuple(n for n in self.replicas if n.online)

    def with_drained(self, names: frozenset[str]) -> Topology:
        """This snapshot with ``Node.drained`` set exactly for ``names`` (same version); ``self`` when
        nothing changes. Drained replicas leave the read choice; the primary's routing is unchanged."""
        if all((n.name in names) == n.drained for n in self.nodes):
            return self
        nodes = tuple(
            n if (n.name in names) == n.drained else replace(n, drained=n.name in names) for n in self.nodes
        )
        return Topology(nodes=nodes, version=self.version)


# -- the lag and weight rules: every caller (routing, election, switchover, admin) uses these ------


def lag_order(node: Node) -> float:
    """Sort key for "least lagged first": seconds behind the primary; unknown lag sorts last (it is
    never taken for zero)."""
    lag = node.lag_seconds
    return lag if lag is not None else _UNKNOWN_LAG


def lag_within(node: Node, max_lag: float) -> bool:
    """The node's lag is known and at most ``max_lag`` seconds (an unknown lag is never within)."""
    lag = node.lag_seconds
    return lag is not None and lag <= max_lag


def read_share(node: Node) -> float:
    """The weight a node's share of reads follows: ``read_weight`` (lag-scaled by the monitor,
    ``rwproxy.topology.election.lag_factor``) when set, else ``weight`` as configured."""
    return node.weight if node.read_weight is None else node.read_weight


_UNKNOWN_LAG = float("inf")


def _cumulative(nodes: tuple[Node, ...]) -> tuple[tuple[float, Node], ...]:
    out: list[tuple[float, Node]] = []
    total = 0.0
    for node in nodes:
        weight = read_share(node)
        if node.online and weight > 0 and not node.drained:
            total += weight
            out.append((total, node))
    return tuple(out)


def weighted_choice(nodes: tuple[Node, ...], rand: float) -> Node | None:
    """Weighted random choice among ONLINE nodes with weight > 0; ``rand`` in [0, 1)."""
    return _pick(_cumulative(nodes), rand)


def _pick(eligible: tuple[tuple[float, Node], ...], rand: float) -> Node | None:
    if not eligible:
        return None
    point = rand * eligible[-1][0]
    for bound, node in eligible:
        if point < bound:
            return node
    return eligible[-1][1]  # float rounding at rand close to 1.0
