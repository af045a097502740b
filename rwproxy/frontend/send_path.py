"""The slow half of the one send path (``ClientSession.send`` is the fast half): what a statement
goes through when it cannot be written at once to a connection the session holds.

* ``connect_routed``: a connection for the statement in flight: after waiting for a primary (write
  buffering) or for a replica to apply the session's last write (causal), or where it falls back
  when its server cannot be reached; prepared there when it is a prepared statement;
* ``retry_read``: a plain autocommit replica read whose connection failed before anything reached
  the client runs once more elsewhere;
* ``check_read_timeout``: ``routing.replica_read_timeout_seconds`` (called by the sweep in
  ``rwproxy.frontend.read_timeouts``);
* ``reroute`` / ``fail_statement``: the statement in flight moves to another route / cannot run.

Every choice is a pure function of ``rwproxy.router.fallback``; only I/O and bookkeeping are here.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING

from rwproxy.backend.connection import BackendConnection, BackendError, BadConnReason
from rwproxy.frontend import buffering, causal, universal, unreachable
from rwproxy.frontend.kill import kill_backend_query
from rwproxy.frontend.prepared import prepare_on
from rwproxy.router.fallback import CONNECT_ERRORS, may_retry_read, read_fallback, waits_after_connect_failure
from rwproxy.router.policy import Route, RouteReason, Target

if TYPE_CHECKING:
    from rwproxy.frontend.commands import Request
    from rwproxy.frontend.session import ClientSession

__all__ = ["check_read_timeout", "connect_routed", "fail_statement", "reroute", "retry_read"]

log = logging.getLogger(__name__)


async def connect_routed(session: ClientSession, req: Request, wait: bool) -> BackendConnection | None:
    """A connection for ``req`` (the statement in flight); ``wait``: for a primary first. None when
    the statement failed (the client was told why)."""
    app = session.app
    tried: list[str] = []
    deadline: float | None = None
    while True:
        if wait:  # for a primary (write buffering) before connecting
            wait = False
            if deadline is None:
                deadline = buffering.deadline(app)
            try:
                routed = await buffering.wait_for_primary(session, req.info, deadline)
            except BackendError as exc:
                fail_statement(session, exc)
                return None
            if session.inflight is not req:  # the client left meanwhile
                return None
            reroute(session, routed)
        r = req.route
        position = None
        if r.reason is RouteReason.UNIVERSAL_WAIT:
            routed, position = await universal.resolve(session, req)
            if session.inflight is not req:  # the client left meanwhile
                return None
            reroute(session, routed)
            r = req.route
        if r.reason is RouteReason.CAUSAL_WAIT:
            reroute(session, await causal.resolve(session, r, position))
            r = req.route
        node = r.node
        if node is None:
            fail_statement(session, BackendError(f"rwproxy: {RouteReason.NO_PRIMARY.value}", 2013))
            return None
        try:
            conn = await session.connection_for(node)
        except BackendError as exc:
            if exc.errno in CONNECT_ERRORS:
                unreachable.connect_failed(app, node.name, exc)
            if waits_after_connect_failure(
                r,
                exc.errno,
                buffering=app.failover is not None,
                in_transaction=session.state.in_transaction,
                split_brain=bool(app.topology.split_brain),
            ):
                reroute(session, r.replace(node=None))  # not counted anywhere while it waits
                wait = True
                continue
            tried.append(node.name)
            info = req.info
            fallback = read_fallback(
                r,
                app.topology,
                tried,
                app.routing.policy_options,
                random.random(),
                info.max_lag if info is not None else None,
            )
            if fallback is None:
                fail_statement(session, exc)
                return None
            app.stats.replica_fallbacks += 1
            reroute(session, fallback)
            continue
        if session.closed:
            return None
        stmt = req.stmt
        if stmt is not None and conn not in stmt.on:
            await prepare_on(conn, stmt)  # BackendError: the client gets the server's error
        return conn


def retry_read(session: ClientSession, req: Request, failed_on: str) -> bool:
    """Run a plain autocommit read again elsewhere (once) after its replica ``failed_on`` failed
    before sending anything to the client (lost, or stopped by a read timeout)."""
    state = session.state
    if req.retried or not may_retry_read(
        req.route, in_transaction=state.in_transaction, autocommit=state.autocommit
    ):
        return False
    app = session.app
    info = req.info
    r = read_fallback(
        req.route,
        app.topology,
        (failed_on,),
        app.routing.policy_options,
        random.random(),
        info.max_lag if info is not None else None,
    )
    if r is None:
        return False
    req.retried = True
    app.stats.replica_fallbacks += 1
    reroute(session, r)
    session.resend(req)
    return True


def check_read_timeout(session: ClientSession, now: float, timeout: float) -> None:
    """Called by the read-timeout sweep every fraction of ``timeout``: a replica read in flight
    since an earlier sweep for ``timeout`` seconds or more is stopped (KILL QUERY where the server
    still answers; the connection is dropped: ``ClientSession.failed`` retries or reports it).
    Time while the client is slow to read (flow control) does not count."""
    req = session.inflight
    conn = session.active
    if req is None or conn is None or req.route.target is Target.PRIMARY or session.writing_paused:
        session.read_mark = None
        return
    if session.read_mark is not req:
        session.read_mark = req
        session.read_since = now
        return
    if now - session.read_since < timeout:
        return
    session.read_mark = None
    session.app.stats.read_timeouts += 1
    log.info(
        "session %d: read on %s exceeded routing.replica_read_timeout_seconds = %g s: stopping it",
        session.id,
        conn.node_name,
        timeout,
    )
    kill_backend_query(session.app, conn, session.user)
    conn.abort(BadConnReason.READ_TIMEOUT)


def reroute(session: ClientSession, r: Route) -> None:
    """The statement in flight now runs on ``r`` (after a causal wait, buffering or a fallback)."""
    inflight = session.inflight
    if inflight is None or inflight.route is r:
        return
    outstanding = session.app.routing.outstanding
    if outstanding is not None:
        if inflight.route.node is not None:
            outstanding[inflight.route.node.name] -= 1
        if r.node is not None:
            outstanding[r.node.name] += 1
    inflight.route = r


def fail_statement(session: ClientSession, exc: BackendError) -> None:
    """The statement in flight cannot run: tell the client (when the command has a response),
    go on with the next one."""
    if session.closed:
        return
    inflight = session.inflight
    if inflight is None or inflight.kind is not None:
        session.reply_error(exc.errno, str(exc), exc.sqlstate)
    session.finish_command()
