"""A session's link to one backend: its connection to a server, opened or taken from the pool, and
brought up to date with the session (the replay log: USE/COM_INIT_DB, constant SETs,
COM_SET_OPTION, in order; a connection remembers the last entry it applied, ``applied_seq``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxy.backend.connection import BackendConnection, BackendError
from proxy.protocol.constants import Command
from proxy.protocol.results import ResponseKind
from proxy.router.session_state import SessionState
from proxy.topology.model import Node

if TYPE_CHECKING:
    from proxy.frontend.session import ClientSession
    from proxy.stats import ProxyStats

__all__ = ["connection_for", "replay_state"]


async def connection_for(session: ClientSession, node: Node) -> BackendConnection:
    """``session``'s connection to ``node``: its own, else one from the pool; state replayed.

    A lost connection to the primary while the session had a transaction or pinned state there is
    an error (2013), never a silent new connection without that state."""
    app = session.app
    state = session.state
    conn = session.conns.get(node.name)
    if conn is not None and not conn.usable:
        session.drop_connection(conn)
        conn = None
        pin = state.pin()
        if node is app.topology.primary and (state.in_transaction or pin is not None):
            lost = "transaction" if state.in_transaction else pin.name.lower() if pin is not None else ""
            state.reset()
            raise BackendError(
                f"rwproxy: lost the connection to the primary {node.name}; the session's {lost} "
                "state there is gone (a transaction was rolled back)",
                2013,
            )
    if conn is None:
        conn = await app.pool.acquire(
            node_name=node.name,
            host=node.host,
            port=node.port,
            creds=app.backend_credentials(session.user),
            client_flags=session.client_flags,
            collation_id=session.collation,
        )
        if session.closed:
            app.pool.release(conn)
            raise BackendError("client disconnected", 2013)
        session.conns[node.name] = conn
    await replay_state(conn, state, app.stats)
    return conn


async def replay_state(conn: BackendConnection, state: SessionState, stats: ProxyStats) -> None:
    """Replay on ``conn`` every session command it has not applied; BackendError when one fails."""
    for entry in state.replay_after(conn.applied_seq):
        kind = ResponseKind.QUERY if entry.command == Command.QUERY else ResponseKind.SIMPLE
        outcome, _data = await conn.call_keep(entry.command, entry.payload, kind)
        if not outcome.ok:
            stats.replay_failures += 1
            raise BackendError(
                f"rwproxy could not restore session state on {conn.node_name}: "
                f"{entry.payload[:200].decode('utf-8', 'replace')!r} failed there",
                outcome.error_code or 1105,
            )
        conn.applied_seq = entry.seq
    conn.applied_seq = max(conn.applied_seq, state.replay_seq)
