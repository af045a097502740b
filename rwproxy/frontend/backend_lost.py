"""The backend connection of a session's statement in flight was lost, or stopped by a read
timeout (``ClientSession.failed``): the client gets an error and the session goes on, a read that
sent nothing yet is retried elsewhere, and a response cut inside a packet closes the session."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rwproxy.backend.connection import BackendConnection, BackendError, BadConnReason
from rwproxy.frontend import send_path
from rwproxy.protocol.packets import make_err

if TYPE_CHECKING:
    from rwproxy.frontend.session import ClientSession

__all__ = ["backend_failed"]

log = logging.getLogger("rwproxy.frontend.session")  # the session's lines, whichever module writes

_READ_TIMEOUT = BadConnReason.READ_TIMEOUT


def backend_failed(session: ClientSession, conn: BackendConnection, error: BackendError) -> None:
    """``conn`` (the statement in flight's) failed with ``error``: answer the client, go on."""
    session.drop_connection(conn)
    if session.closed:
        return
    timed_out = conn.bad is _READ_TIMEOUT
    if timed_out:
        error = BackendError(
            f"rwproxy: the read on {conn.node_name} did not finish within "
            f"{session.app.config.routing.replica_read_timeout_seconds:g} s "
            "(routing.replica_read_timeout_seconds); it was stopped",
            3024,
        )
    primary = session.app.topology.primary
    if primary is not None and conn.node_name == primary.name:
        session.state.in_transaction = False
    req = session.inflight
    if session._relayed:
        # Part of a response reached the client. Between rows an ERR packet ends it validly
        # (the session goes on); inside a packet nothing can repair the framing: close.
        seq = conn.err_sequence()
        if seq is None or req is None:
            log.warning("session %d: backend %s lost mid-response: %s", session.id, conn.node_name, error)
            session.close()
            return
        message = str(error) if timed_out else f"rwproxy: {error} in the middle of the result"
        session.app.stats.count_error(error.errno)
        session.write_packet(make_err(error.errno, message, error.sqlstate, session.client_flags), seq)
        session.finish_command()
        return
    if req is not None and send_path.retry_read(session, req, conn.node_name):
        return
    session.reply_error(error.errno, str(error), error.sqlstate)
    session.finish_command()
