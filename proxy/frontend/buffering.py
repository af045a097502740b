"""Write buffering for one session: a statement that needs the primary while there is none (a
failover or switchover is moving it, or it just became unreachable) waits for one, up to
``failover.buffer_timeout_seconds``, then runs there, instead of failing at once.

Never for a statement inside a transaction (the transaction lived on the old primary: the client
gets an error, never a silent replay elsewhere), and never while several servers are writable
(``observe`` mode refuses writes then).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from proxy.backend.connection import BackendError
from proxy.protocol.results import ResponseKind
from proxy.router.policy import Route, RouteReason, Target, primary_route
from proxy.router.statement import StatementInfo

if TYPE_CHECKING:
    from proxy.app import ProxyApp
    from proxy.frontend.session import ClientSession

__all__ = ["may_wait", "no_primary_message", "primary_down", "send_when_primary", "wait_for_primary"]

# Connect errors that mean "the server is not there" (not: the transaction there is gone).
_CONNECT_ERRORS = frozenset({2002, 2003, 2005, 2006, 1040, 1053})


def may_wait(session: ClientSession) -> bool:
    return not session.state.in_transaction and not session.app.topology.split_brain


def no_primary_message(app: ProxyApp, r: Route) -> str:
    split = app.topology.split_brain
    if split and r.reason is RouteReason.NO_PRIMARY:
        return (
            f"rwproxy: {len(split)} servers are writable at once ({', '.join(split)}): writes are refused "
            "until only one is (failover.mode = observe never guesses)"
        )
    return f"rwproxy: {r.reason.value}"


def primary_down(session: ClientSession, r: Route, exc: BackendError) -> bool:
    """Opening a connection to the primary failed because it is not there: wait for a primary?"""
    app = session.app
    if app.failover is None or r.target is not Target.PRIMARY or exc.errno not in _CONNECT_ERRORS:
        return False
    if not may_wait(session):
        return False
    if app.monitor is not None and r.node is not None:
        app.monitor.request_probe(r.node.name)  # do not wait for the next interval to notice
    return True


async def wait_for_primary(session: ClientSession, info: StatementInfo | None) -> Route:
    """Wait for a usable primary (prepared statements), then the statement's route; BackendError
    (for the client) after failover.buffer_timeout_seconds."""
    app = session.app
    failover = app.failover
    assert failover is not None
    started = time.monotonic()
    session.buffered = True
    try:
        ok = await failover.buffer.wait(failover.primary_ready, app.config.failover.buffer_timeout_seconds)
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


async def send_when_primary(session: ClientSession, payload: bytes, kind: ResponseKind) -> None:
    """Wait for a usable primary, route the statement again, send it (or fail with a clear error)."""
    inflight = session.inflight
    try:
        r = await wait_for_primary(session, inflight.info if inflight is not None else None)
    except BackendError as exc:
        if session.inflight is not None:
            session.fail_statement(exc)
        return
    if session.inflight is None:  # the client left meanwhile
        return
    session.reroute(r)
    await session.send_routed(r, payload, kind)
