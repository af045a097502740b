"""``routing.sticky_replica``: a session's plain reads stay on one replica while it is usable.

Pure: ``stick(route, state, topology)`` takes the route ``policy.route`` chose and returns the one to
use. Only plain reads (``RouteReason.READ``) stick; hints, rules, lag limits and causal reads keep
their own choice. The replica is given up as soon as it leaves the usable ones (not ONLINE, drained,
weight 0); the next plain read picks again and sticks to that one.
"""

from __future__ import annotations

from rwproxy.router.policy import Route, RouteReason
from rwproxy.router.session_state import SessionState
from rwproxy.topology.model import Topology

__all__ = ["stick"]

_READ = RouteReason.READ


def stick(r: Route, state: SessionState, topology: Topology) -> Route:
    if r.reason is not _READ or r.node is None:
        return r
    name = state.sticky_replica
    if name is not None and name != r.node.name:
        node = topology.by_name.get(name)
        if node is not None and node in topology.eligible_replicas():
            return r.replace(node=node)
    state.sticky_replica = r.node.name
    return r
