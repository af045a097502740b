"""A session's link to one backend: its connection to a server, opened or taken from the pool, and
brought up to date with the session (the replay log: USE/COM_INIT_DB, constant SETs,
COM_SET_OPTION, in order; a connection remembers the last entry it applied, ``applied_seq``).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from rwproxy.backend.connection import BackendConnection, BackendError, BadConnReason, Result
from rwproxy.backend.pool import reset_connection
from rwproxy.protocol.constants import Command
from rwproxy.protocol.errors import ProtocolError
from rwproxy.protocol.results import ResponseKind
from rwproxy.protocol.wire import read_uint_lenenc
from rwproxy.router.session_state import SessionState
from rwproxy.router.statement import Effect, StatementInfo
from rwproxy.topology.model import Node

if TYPE_CHECKING:
    from rwproxy.frontend.session import ClientSession
    from rwproxy.observability.stats import ProxyStats

__all__ = ["connection_for", "lost_state", "note_statement", "replay_state"]

log = logging.getLogger(__name__)


async def connection_for(
    session: ClientSession, node: Node, *, login_database: str | None = None
) -> BackendConnection:
    """``session``'s connection to ``node``: its own, else one from the pool; state replayed.
    ``login_database``: the database the caller selects on it next (the handshake's).

    A lost connection whose server session held state that cannot be rebuilt (a transaction, a
    pin, user variables assigned in a query, LAST_INSERT_ID) is an error (2013), never a silent
    new connection without that state; one that held only replayable state is replaced (logged)."""
    app = session.app
    state = session.state
    conn = session.conns.get(node.name)
    if conn is not None and not conn.usable:
        session.drop_connection(conn)
        lost = lost_state(session, node, conn)
        if lost is not None:
            state.reset()
            raise BackendError(
                f"rwproxy: lost the connection to {node.name}; the session's {lost} there is gone"
                + (" (a transaction was rolled back)" if lost == "transaction" else ""),
                2013,
            )
        app.stats.backend_replaced += 1
        log.info(
            "session %d: backend connection to %s (thread %d) was lost (%s); replaced by a new one, "
            "session state replayed",
            session.id,
            node.name,
            conn.thread_id,
            (conn.bad or BadConnReason.LOST).value,
        )
        conn = None
    if conn is None:
        conn = await app.pool.acquire(
            node_name=node.name,
            host=node.host,
            port=node.port,
            creds=app.backend_credentials(session.user),
            client_flags=session.client_flags,
            collation_id=session.collation,
            needs_no_database=state.database is None and login_database is None,
            signature=state.signature() if session.mux is not None else None,
        )
        if session.closed:
            app.pool.release(conn)
            raise BackendError("client disconnected", 2013)
        session.conns[node.name] = conn
        if session.mux is not None:
            session.mux.dirty = True
    await replay_state(conn, state, app.stats)
    return conn


def lost_state(session: ClientSession, node: Node, conn: BackendConnection) -> str | None:
    """What the session loses with ``conn`` that no replay can give back, or None."""
    state = session.state
    if node is session.app.topology.primary:
        if state.in_transaction:
            return "transaction"
        pin = state.pin()
        if pin is not None:
            return pin.name.lower().replace("_", " ")
    return conn.unreplayable


def note_statement(
    session: ClientSession, conn: BackendConnection, info: StatementInfo, outcome: Result, before: int
) -> None:
    """After a statement that is not a plain read ran on ``conn``: what its server session now holds.

    ``before``: the session's replay_seq before the statement's effects were applied."""
    state = session.state
    conn.database = state.database
    if session.mux is not None:
        session.mux.dirty = True
    if not outcome.ok:
        return
    effects = info.effects
    if effects & Effect.SETS_USER_VAR and state.replay_seq != before and session.mux is not None:
        for entry in state.replay_after(before):
            m = _MUX_SWITCH.search(entry.payload)
            if m is not None:
                session.mux.off = m.group(1).lower() in (b"0", b"off", b"false")
    if effects & Effect.ASSIGNS_USER_VAR_IN_QUERY:
        conn.unreplayable = conn.unreplayable or "user variables assigned inside a query"
    elif effects & _SETS and state.replay_seq == before and not info.effects & Effect.SETS_GLOBAL:
        conn.unreplayable = conn.unreplayable or "variables set from expressions"
    terminal = outcome.terminal
    if terminal is not None and len(terminal) > 2 and terminal[0] == 0 and _insert_id(terminal):
        conn.unreplayable = conn.unreplayable or LAST_INSERT_ID


LAST_INSERT_ID = "LAST_INSERT_ID() value"
# SET @rwproxy_multiplex = 0 | 1 (also 'off'/'on'): multiplexing off/on for this session.
_MUX_SWITCH = re.compile(rb"@rwproxy_multiplex\s*:?=\s*['\"]?(\w+)", re.IGNORECASE)
_SETS = Effect.SETS_USER_VAR | Effect.SETS_SESSION_VAR


def _insert_id(ok: bytes) -> int:
    """The last-insert-id field of an OK packet payload (0 when it cannot be read)."""
    try:
        _affected, pos = read_uint_lenenc(ok, 1)
        value, _ = read_uint_lenenc(ok, pos)
    except ProtocolError:
        return 0
    return value


async def replay_state(conn: BackendConnection, state: SessionState, stats: ProxyStats) -> None:
    """Replay on ``conn`` every session command it has not applied; BackendError when one fails."""
    if conn.applied_seq < 0:
        await adopt(conn, state, stats)
        return
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
        if entry.command == Command.INIT_DB:
            conn.database = entry.payload.decode("utf-8", "surrogateescape")
    conn.applied_seq = max(conn.applied_seq, state.replay_seq)


async def adopt(conn: BackendConnection, state: SessionState, stats: ProxyStats) -> None:
    """Bring a connection lent by another session (``conn.signature``: the state it holds) to
    ``state``: nothing when it holds the same, the missing tail when it holds a prefix, else
    COM_RESET_CONNECTION and the whole replay log. BackendError when that fails."""
    wanted = state.signature()
    held = conn.signature
    todo: tuple[tuple[str, int, bytes], ...]
    if held == wanted:
        todo = ()
    elif held is not None and len(held) < len(wanted) and wanted[: len(held)] == held:
        todo = wanted[len(held) :]
    else:
        stats.mux_resets += 1
        if not await reset_connection(conn):
            conn.mark_bad(BadConnReason.RESET_FAILED)
            raise BackendError(f"rwproxy could not reset a backend connection to {conn.node_name}", 2013)
        todo = wanted
    conn.signature = None
    for _key, command, payload in todo:
        stats.mux_replays += 1
        kind = ResponseKind.QUERY if command == Command.QUERY else ResponseKind.SIMPLE
        outcome, _data = await conn.call_keep(command, payload, kind)
        if not outcome.ok:
            stats.replay_failures += 1
            conn.mark_bad(BadConnReason.STATE_CHANGED)
            raise BackendError(
                f"rwproxy could not restore session state on {conn.node_name}: "
                f"{payload[:200].decode('utf-8', 'replace')!r} failed there",
                outcome.error_code or 1105,
            )
        if command == Command.INIT_DB:
            conn.database = payload.decode("utf-8", "surrogateescape")
    conn.applied_seq = state.replay_seq


def release_all(session: ClientSession) -> None:
    """Give every backend connection of ``session`` back: to the pool, or discarded when busy or
    when its multi-statements setting changed."""
    conns = list(session.conns.values())
    session.conns.clear()
    for conn in conns:
        if conn.busy:
            session.app.pool.discard(conn, BadConnReason.ABANDONED)
        elif session.multi_statements_changed:
            session.app.pool.discard(conn, BadConnReason.STATE_CHANGED)
        else:
            session.app.pool.release(conn)
    session.multi_statements_changed = False
