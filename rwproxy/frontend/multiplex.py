"""Multiplexing: between statements, a session that holds nothing binding it to its backend
connections parks them in the pool, which may lend them to other sessions (``Pool.park``).

A parked connection stays the session's: its next statement uses it at no cost, unless the pool
lent it away in the meantime; then the session takes any connection, and its state (the replay log:
database, SETs, charset, user variables set from constants, LAST_INSERT_ID) is replayed there only
where the connection's state differs (``SessionState.signature``; see ``backend_link.adopt``).
Prepared statements are prepared again on demand (``rwproxy.frontend.prepared``).

What binds a session (``bind_reason``): an open transaction, autocommit off, temporary tables,
named locks, LOCK TABLES, SQL-level PREPARE, state that cannot be replayed (user variables assigned
inside a query, SETs from expressions), an open cursor or long data of a prepared statement, a
changed multi-statement option, or multiplexing turned off (``[[users]] multiplex = false``,
``SET @rwproxy_multiplex = 0`` in the session). A connection that produced a LAST_INSERT_ID value
has it read back (``SELECT LAST_INSERT_ID()``) before it is parked, so that it can be replayed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rwproxy.backend.connection import BackendConnection, BackendError
from rwproxy.frontend.backend_link import LAST_INSERT_ID
from rwproxy.protocol.constants import Command
from rwproxy.protocol.framing import frame
from rwproxy.protocol.packets import first_value
from rwproxy.protocol.results import ResponseKind
from rwproxy.protocol.statements import replace_stmt_id

if TYPE_CHECKING:
    from rwproxy.frontend.session import ClientSession

__all__ = ["Multiplexer", "bind_reason", "multiplexer_for"]

_STMT_CLOSE = bytes((Command.STMT_CLOSE, 0, 0, 0, 0))


def multiplexer_for(session: ClientSession) -> Multiplexer | None:
    """The session's multiplexer, None when its user has ``multiplex = false``."""
    return Multiplexer(session) if session.app.user_multiplex(session.user) else None


def bind_reason(session: ClientSession, mux: Multiplexer) -> str | None:
    """Why ``session`` must keep its backend connections now (a metric label), None when it may
    lend them."""
    state = session.state
    if state.in_transaction:
        return "transaction"
    if not state.autocommit:
        return "autocommit_off"
    pin = state.pin()
    if pin is not None:
        return pin.name.lower()
    if state.user_vars_in_query:
        return "user_vars"
    if mux.off:
        return "disabled"
    if session.multi_statements_changed:
        return "multi_statements_option"
    for conn in session.conns.values():
        if conn.unreplayable is not None and conn.unreplayable != LAST_INSERT_ID:
            return "unreplayable"
    if len(session.stmts) and session.stmts.bound_to_connection():
        return "cursor"
    return None


class Multiplexer:
    """One session's side of multiplexing: parks and unparks its connections; the pool's ``Lender``."""

    __slots__ = ("bound", "dirty", "off", "session")

    def __init__(self, session: ClientSession) -> None:
        self.session = session
        self.bound: str | None = "new"  # the last bind reason (None: connections parked)
        self.off = False  # SET @rwproxy_multiplex = 0
        # Something a statement did may change the bind reason or the connections to park
        # (set by backend_link for statements with effects and for new connections).
        self.dirty = True

    # -- hook: after every command (ClientSession.finish_command) ----------------------------

    def after_command(self) -> None:
        session = self.session
        if self.bound is None and not self.dirty:
            # The hot path: lending already, and the statement changed nothing but maybe the
            # transaction state (a plain read or write).
            state = session.state
            if (
                not state.in_transaction
                and state.autocommit
                and not session.multi_statements_changed
                and not len(session.stmts)
            ):
                if session.app.pool.waiting:
                    for conn in session.conns.values():
                        session.app.pool.offer(conn)
                return
        self.dirty = False
        conns = session.conns
        if not conns:
            self.bound = None
            return
        reason = bind_reason(session, self)
        pool = session.app.pool
        if reason is not None:
            if reason != self.bound:
                session.app.stats.mux_pins[reason] += 1
                self.bound = reason
                for conn in conns.values():
                    pool.unpark(conn)
            return
        for conn in conns.values():
            if conn.unreplayable == LAST_INSERT_ID and conn.usable:
                session.busy = True  # the client's next command waits in the decoder
                session.spawn(self._read_last_insert_id())
                return
        self.bound = None
        for conn in conns.values():
            pool.park(conn, self)
        if pool.waiting:
            for conn in conns.values():
                pool.offer(conn)

    async def _read_last_insert_id(self) -> None:
        session = self.session
        state = session.state
        for conn in list(session.conns.values()):
            if conn.unreplayable != LAST_INSERT_ID or not conn.usable:
                continue
            in_sync = conn.applied_seq == state.replay_seq
            try:
                outcome, data = await conn.call_keep(
                    Command.QUERY, b"SELECT LAST_INSERT_ID()", ResponseKind.QUERY
                )
            except BackendError:
                continue  # lost: the next statement on it reports it (backend_link.lost_state)
            value = first_value(data, conn.client_flags) if outcome.ok else None
            if value is None or not value.isdigit():
                conn.unreplayable = "LAST_INSERT_ID() value (could not be read)"  # keeps the connection
                continue
            conn.unreplayable = None
            if int(value):
                state.set_last_insert_id(int(value))
            if in_sync:
                conn.applied_seq = state.replay_seq
        self.dirty = True
        session.finish_command()  # runs after_command again: parks what it can

    # -- Lender (rwproxy.backend.pool) ---------------------------------------------------------

    def can_lend(self, conn: BackendConnection) -> bool:
        session = self.session
        return not session.busy and self.bound is None and not session.closed

    def signature_of(self, conn: BackendConnection) -> tuple[object, ...] | None:
        state = self.session.state
        return state.signature() if conn.applied_seq == state.replay_seq else None

    def lend(self, conn: BackendConnection) -> tuple[object, ...] | None:
        session = self.session
        signature = self.signature_of(conn)
        if session.conns.get(conn.node_name) is conn:
            del session.conns[conn.node_name]
        for stmt in session.stmts.all():  # its server-side statements would only leak there
            target = stmt.on.pop(conn, None)
            if target is not None and conn.usable:
                conn.request(frame(replace_stmt_id(_STMT_CLOSE, target.backend_id), 0), None, None)
        session.stmts.forget_connection(conn)
        session.app.stats.mux_handoffs += 1
        return signature
