"""Read-your-writes for one session: learn the GTID of its commits, wait for it on a replica.

The routing decision itself is pure (``rwproxy.router.policy``: CAUSAL_APPLIED / CAUSAL_WAIT /
CAUSAL_PRIMARY); this module does the two pieces of I/O-adjacent work it needs:

* ``learn_gtid``: the GTID a backend reported in the OK packet of a commit (session tracking, see
  ``rwproxy.protocol.session_track``) becomes the session's ``causal_gtid``;
* ``resolve``: for a CAUSAL_WAIT route, wait on the chosen replica until it has applied that GTID
  (``MASTER_GTID_WAIT`` / ``WAIT_FOR_EXECUTED_GTID_SET``, up to ``causal_wait_timeout_seconds``), or
  give the primary instead. Counted in ``ProxyStats.causal_waits`` by outcome.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rwproxy.backend.connection import BackendError, Result
from rwproxy.protocol.constants import Command
from rwproxy.protocol.packets import first_value
from rwproxy.protocol.results import ResponseKind
from rwproxy.protocol.session_track import tracked_gtid
from rwproxy.router.causal_token import read_gtid
from rwproxy.router.policy import Route, RouteReason, Target
from rwproxy.router.session_state import SessionState
from rwproxy.router.statement import PrimaryReason, StatementInfo
from rwproxy.topology.gtid import wait_statement

if TYPE_CHECKING:
    from rwproxy.frontend.session import ClientSession

__all__ = ["learn_gtid", "note_statement", "resolve"]

log = logging.getLogger(__name__)


# Statements that may have changed data: in read_your_writes, the session's reads go to the primary
# after one of them until the GTID of its commit is known.
_WRITES = frozenset(
    {
        PrimaryReason.WRITE,
        PrimaryReason.DDL,
        PrimaryReason.CALL,
        PrimaryReason.SEQUENCE,
        PrimaryReason.MULTI_STATEMENT,
        PrimaryReason.UNPARSEABLE,
        PrimaryReason.OTHER,
    }
)


def note_statement(state: SessionState, info: StatementInfo | None) -> None:
    """A statement of a read_your_writes session ended with OK: if it may have written, its reads
    go to the primary until the commit's GTID is learned (``learn_gtid``)."""
    if info is not None and info.primary_reason in _WRITES:
        state.write_unconfirmed = True


def learn_gtid(state: SessionState, outcome: Result) -> None:
    """Take the GTID from a response whose final OK says the session state changed."""
    terminal = outcome.terminal
    gtid = tracked_gtid(terminal) if terminal is not None else None
    if gtid is not None:
        state.causal_gtid = gtid
        state.write_unconfirmed = False
        state.wait_gtid = None  # the session's own commit ends its @rwproxy_wait_gtid token


async def resolve(session: ClientSession, r: Route, gtid: str | None = None) -> Route:
    """The route to run a CAUSAL_WAIT read on: ``r`` once its replica applied ``gtid`` (default: the
    session's last write and/or token), else the primary (CAUSAL_FALLBACK)."""
    app = session.app
    if gtid is None:
        gtid = read_gtid(session.state)
    node = r.node
    assert node is not None
    if gtid is not None:
        timeout = app.config.routing.causal_wait_timeout_seconds
        outcome = None
        data = b""
        flags = 0
        try:
            conn = await session.connection_for(node)
            flags = conn.client_flags
            outcome, data = await conn.call_keep(
                Command.QUERY, wait_statement(gtid, timeout), ResponseKind.QUERY
            )
        except BackendError as exc:
            log.debug("session %d: causal wait on %s failed: %s", session.id, node.name, exc)
        if outcome is not None and outcome.ok and first_value(data, flags) == b"0":
            app.stats.causal_waits["applied"] += 1
            return r
        app.stats.causal_waits["timeout" if outcome is not None and outcome.ok else "error"] += 1
    return Route(Target.PRIMARY, app.topology.primary, RouteReason.CAUSAL_FALLBACK)
