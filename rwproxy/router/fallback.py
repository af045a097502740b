"""What a statement does when its server cannot serve it: pure decisions, no I/O, no clock.

The session's one send path (``rwproxy.frontend.session``) asks these functions, for text and prepared
statements alike:

* ``waits_for_primary``: before sending, a statement for the primary waits in the write buffer
  (failover / switchover) instead of failing;
* ``waits_after_connect_failure``: opening a connection to the primary failed because it is not
  there (a connect error): the statement waits for a primary too;
* ``read_fallback``: a read whose replica could not be used (cannot connect, read timeout) runs on
  another usable replica not tried yet, else on the primary, else nowhere;
* ``route_to_server``: the route to the server of a connection that holds statement state (a
  prepared statement's long data or open cursor).
"""

from __future__ import annotations

from collections.abc import Collection

from rwproxy.router.policy import PolicyOptions, Route, RouteReason, Target, pick_replica
from rwproxy.topology.model import Node, Topology, lag_within

__all__ = [
    "CONNECT_ERRORS",
    "may_retry_read",
    "read_fallback",
    "route_to_server",
    "waits_after_connect_failure",
    "waits_for_primary",
]

# Connect errors that mean "the server is not there" (not: the transaction there is gone).
CONNECT_ERRORS = frozenset({2002, 2003, 2005, 2006, 1040, 1053})

# Reads that may move to another replica: nothing about them depends on the replica chosen. A
# read_your_writes read (CAUSAL_*) goes to the primary instead: another replica may lack the write.
_ANY_REPLICA = frozenset(
    {
        RouteReason.READ,
        RouteReason.HINT_REPLICA,
        RouteReason.RULE_REPLICA,
        RouteReason.REPLICA_RETRY,
    }
)
_PRIMARY, _REPLICA = Target.PRIMARY, Target.REPLICA


def waits_for_primary(
    r: Route, *, buffering: bool, buffer_active: bool, in_transaction: bool, split_brain: bool
) -> bool:
    """Before sending: ``r`` needs the primary while there is none (``r.node`` None) or while it
    moves (``buffer_active``); the statement waits when write buffering is on (``buffering``:
    failover configured), never inside a transaction (it lived on the old primary) and never while
    several servers are writable (observe mode refuses writes then)."""
    if not buffering or r.target is not _PRIMARY or in_transaction or split_brain:
        return False
    return r.node is None or buffer_active


def waits_after_connect_failure(
    r: Route, errno: int, *, buffering: bool, in_transaction: bool, split_brain: bool
) -> bool:
    """A connection to ``r``'s primary could not be opened (``errno``): wait for a primary?"""
    if not buffering or r.target is not _PRIMARY or in_transaction or split_brain:
        return False
    return errno in CONNECT_ERRORS


def read_fallback(
    r: Route,
    topology: Topology,
    tried: Collection[str],
    options: PolicyOptions,
    rand: float,
    max_lag: float | None = None,
) -> Route | None:
    """Where a read routed by ``r`` runs when the servers in ``tried`` could not serve it.

    Another usable replica not tried yet (REPLICA_RETRY; within ``max_lag`` when the statement has
    one), for reads that may run on any replica; else the primary when it is ONLINE and
    ``routing.on_no_replica = "primary"`` (REPLICA_UNREACHABLE); else None (the statement fails).
    Statements for the primary never fall back."""
    if r.target is not _REPLICA:
        return None
    if r.reason in _ANY_REPLICA:
        candidates = tuple(
            n for n in topology.eligible_replicas() if n.name not in tried and _within(n, max_lag)
        )
        node = pick_replica(options, candidates, rand)
        if node is not None:
            return Route(_REPLICA, node, RouteReason.REPLICA_RETRY)
    primary = topology.primary
    if primary is None or not primary.online or primary.name in tried or not options.on_no_replica_primary:
        return None
    return Route(_PRIMARY, primary, RouteReason.REPLICA_UNREACHABLE)


def may_retry_read(r: Route, *, in_transaction: bool, autocommit: bool) -> bool:
    """A statement whose server failed before it sent anything to the client (the connection was
    lost, or stopped by routing.replica_read_timeout_seconds) may run again elsewhere: only a read
    routed to a replica outside any transaction (then it changed nothing and saw nothing that
    another server lacks); where is ``read_fallback``'s choice."""
    return r.target is _REPLICA and not in_transaction and autocommit


def route_to_server(topology: Topology, name: str) -> Route:
    """The route to server ``name`` (its node None when it left the topology)."""
    node = topology.by_name.get(name)
    target = _PRIMARY if node is not None and node is topology.primary else _REPLICA
    return Route(target, node, RouteReason.STATEMENT)


def _within(node: Node, max_lag: float | None) -> bool:
    return max_lag is None or lag_within(node, max_lag)
