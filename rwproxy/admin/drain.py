"""Operator drain: take a replica out of the read choice without touching running work.

    set_drained(app, "db2", True)    # no NEW statement goes to db2; statements running there finish
    set_drained(app, "db2", False)   # back in the read choice (if the monitor has it ONLINE)

The drained names live in ``app.drained`` (a frozenset); ``ProxyApp.set_topology`` applies them to
every snapshot the monitor publishes (``Topology.with_drained``), so a drain survives state changes.
Only replicas can be drained: every write and every transaction must run on the primary, so draining
it would change nothing; move the primary with a switchover instead. A drained server that later
becomes the primary (failover) keeps the flag but still takes the primary's statements.

Sessions keep the backend connections they already hold to a drained server (open cursors and
long-data uploads finish there); the pool keeps its idle ones. Nothing new is routed to them.
"""

from __future__ import annotations

import logging
from typing import Protocol

from rwproxy.topology.model import Role, Topology

__all__ = ["DrainError", "DrainTarget", "set_drained"]

log = logging.getLogger(__name__)


class DrainError(ValueError):
    """The drain request cannot be done; ``str()`` says why (shown to the operator)."""


class DrainTarget(Protocol):
    topology: Topology
    drained: frozenset[str]


def set_drained(app: DrainTarget, name: str, drained: bool) -> bool:
    """Drain (``drained=True``) or undrain ``name``. Returns False when it already was so.

    Raises DrainError for an unknown server or when draining the current primary.
    """
    topology = app.topology
    node = topology.by_name.get(name)
    if node is None:
        known = ", ".join(n.name for n in topology.nodes)
        raise DrainError(f"unknown server {name!r} (servers: {known})")
    if drained and node.role is Role.PRIMARY and name not in app.drained:
        raise DrainError(
            f"{name} is the primary: writes and transactions cannot go elsewhere, so it cannot be "
            "drained; switch the primary to another server first (SWITCHOVER TO <name>)"
        )
    if (name in app.drained) == drained:
        return False
    app.drained = app.drained | {name} if drained else app.drained - {name}
    app.topology = app.topology.with_drained(app.drained)
    log.info("admin: %s %s", name, "drained: no new statements go there" if drained else "undrained")
    return True
