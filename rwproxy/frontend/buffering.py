"""Write buffering for one session: a statement that needs the primary while there is none (a
failover or switchover is moving it, or it just became unreachable) waits for one, up to
``failover.buffer_timeout_seconds``, then runs there, instead of failing at once.

Never for a statement inside a transaction (the transaction lived on the old primary: the client
gets an error, never a silent replay elsewhere), and never while several servers are writable
(``observe`` mode refuses writes then). When to wait is decided in ``rwproxy.router.fallback``; the
session's send path (``ClientSession.connect_routed``) calls ``wait_for_primary``.

A failed connect to the primary is evidence: the monitor checks it at once (``Monitor.report_
unreachable``), and until a check that started after the failure says otherwise, the primary is
not "ready" even though the last published snapshot still calls it ONLINE.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rwproxy.backend.connection import BackendError
from rwproxy.router.policy import Route, RouteReason, primary_route
from rwproxy.router.statement import StatementInfo
from rwproxy.topology.model import Node

if TYPE_CHECKING:
    from rwproxy.frontend.host import SessionHost
    from rwproxy.frontend.session import ClientSession

__all__ = ["deadline", "no_primary_message", "primary_after_wait", "primary_ready", "wait_for_primary"]


def no_primary_message(app: SessionHost, r: Route) -> str:
    split = app.topology.split_brain
    if split and r.reason is RouteReason.NO_PRIMARY:
        return (
            f"rwproxy: {len(split)} servers are writable at once ({', '.join(split)}): writes are refused "
            "until only one is (failover.mode = observe never guesses)"
        )
    return f"rwproxy: {r.reason.value}"


def deadline(app: SessionHost) -> float:
    """When a statement that starts waiting now gives up (``time.monotonic`` clock)."""
    return time.monotonic() + app.config.failover.buffer_timeout_seconds


def primary_ready(app: SessionHost) -> bool:
    """A primary that can take statements now: ONLINE, its last check good, and no connect failure
    reported since its last check started."""
    failover = app.failover
    if failover is None or not failover.primary_ready():
        return False
    primary = app.topology.primary
    monitor = app.monitor
    return primary is not None and (monitor is None or not monitor.suspected(primary.name))


async def wait_for_primary(session: ClientSession, info: StatementInfo | None, until: float) -> Route:
    """Wait for a usable primary, then the statement's route; BackendError (for the client) at
    ``until`` (see ``deadline``)."""
    app = session.app
    failover = app.failover
    assert failover is not None
    started = time.monotonic()
    session.buffered = True
    try:
        ok = await failover.buffer.wait(lambda: primary_ready(app), max(0.0, until - started))
    finally:
        session.buffered = False
    if not ok:
        why = failover.buffer.reason if failover.buffer.active else "no usable primary"
        raise BackendError(
            f"rwproxy: waited {time.monotonic() - started:.1f} s for a primary ({why}); giving up", 1105
        )
    r = session.route(info) if info is not None else primary_route(app.topology)
    if r.node is None:
        raise BackendError(no_primary_message(app, r), 1105)
    return r


async def primary_after_wait(app: SessionHost) -> Node | None:
    """A usable primary once there is one (None: no write buffering, or the buffer timed out).
    For a login whose default database must be checked while the primary moves."""
    failover = app.failover
    if failover is None:
        return None
    timeout = app.config.failover.buffer_timeout_seconds
    if not await failover.buffer.wait(lambda: primary_ready(app), timeout):
        return None
    return app.topology.primary
