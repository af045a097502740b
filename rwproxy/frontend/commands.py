"""What each client command does. ``dispatch(session, payload)`` is called once per command packet.

Each handler either answers locally (``session.reply_ok``/``reply_error``) or builds a ``Request``
(route, payload, how its response ends, ...) and hands it to ``session.send``, the one send path
(the response is relayed unchanged). Prepared statements live in ``prepared``.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from rwproxy.backend.connection import BackendConnection, Result
from rwproxy.frontend import causal_tokens, kill, processlist, processlist_schema, session_ids, session_sets
from rwproxy.frontend.prepared import (
    BackendStatement,
    PreparedStatement,
    PreparedStatements,
    statement_id,
)
from rwproxy.frontend.query_attributes import QUERY_ATTRIBUTES, strip_execute, strip_query
from rwproxy.protocol.constants import Command, ErrorCode
from rwproxy.protocol.framing import frame
from rwproxy.protocol.query_attributes import QueryAttribute
from rwproxy.protocol.results import ResponseKind
from rwproxy.protocol.statements import replace_stmt_id
from rwproxy.router.attribute_hints import with_attribute_hints
from rwproxy.router.classifications import PLAIN_SELECT
from rwproxy.router.fallback import route_to_server
from rwproxy.router.policy import Route, primary_route
from rwproxy.router.session_state import Consistency
from rwproxy.router.statement import Effect, Kind, PrimaryReason, StatementInfo

if TYPE_CHECKING:
    from rwproxy.frontend.session import ClientSession

__all__ = ["After", "Inflight", "PreparedStatements", "Request", "dispatch"]

After = Callable[[BackendConnection, Result], None]
Run = Callable[[BackendConnection], Awaitable[None]]

_U32 = struct.Struct("<I")
_CURSOR_TYPE_READ_ONLY = 1
_SHOW = StatementInfo(kind=Kind.SHOW)
# Read per statement: module constants are ~10x cheaper than Enum.MEMBER lookups.
_KILL, _LOAD, _SET, _QUERY = Kind.KILL, Kind.LOAD, Kind.SET, ResponseKind.QUERY
_SHOW_KIND, _PLAIN_SELECT, _may_mention_id = Kind.SHOW, PLAIN_SELECT, session_ids.may_mention
_PROCESSLIST = PrimaryReason.PROCESSLIST


class Request:
    """One command for a backend, as a handler built it; ``session.inflight`` while it runs.

    A plain class (compiled: a C struct). ``kind`` None: no response (COM_STMT_SEND_LONG_DATA).
    ``stmt``: a prepared statement (prepared on the connection first, its id rewritten). ``run``:
    instead of relaying, what to do with the connection (COM_STMT_PREPARE rewrites the response).
    ``route`` changes when the statement waits or falls back (``send_path.reroute``)."""

    __slots__ = ("after", "argument", "info", "kind", "payload", "retried", "route", "run", "stmt")

    def __init__(
        self,
        route: Route,
        payload: bytes,
        kind: ResponseKind | None,
        info: StatementInfo | None,
        argument: bytes = b"",
        after: After | None = None,
        stmt: PreparedStatement | None = None,
        run: Run | None = None,
    ) -> None:
        self.route = route
        self.payload = payload
        self.kind = kind
        self.info = info
        self.argument = argument  # the SQL text (digests)
        self.after = after  # called with the connection and outcome when the response ended
        self.stmt = stmt
        self.run = run
        self.retried = False  # a read already run again after its replica failed (once only)


Inflight = Request  # the older name, still read by other modules (``session.inflight.route``)


def dispatch(session: ClientSession, payload: bytes) -> None:
    if payload[0] == 3:  # COM_QUERY: a direct call (compiled: no lookup, no argument parsing)
        _query(session, payload)
        return
    handler = _HANDLERS.get(payload[0])
    if handler is None:
        session.reply_error(ErrorCode.ER_UNKNOWN_COM_ERROR, "Unknown command", "08S01")
        return
    handler(session, payload)


# -- text protocol -------------------------------------------------------------------------


def _query(session: ClientSession, payload: bytes) -> None:
    attributes: tuple[QueryAttribute, ...] = ()
    # A client that negotiated query attributes: the prefix off (rwproxy.frontend.query_attributes).
    if session.client_flags & QUERY_ATTRIBUTES:
        if payload[1:3] == b"\x00\x01":  # the usual: no attribute (count 0, one set)
            payload = b"\x03" + payload[3:]
        else:
            plain = strip_query(session, payload)
            if plain is None:
                return
            payload, attributes = plain
    body = payload[1:]
    sql = body.decode("utf-8", "surrogateescape")
    app = session.app
    info = app.classifier.classify(sql)
    if attributes:
        info = with_attribute_hints(info, attributes)
    if info is not _PLAIN_SELECT and _may_mention_id(sql):  # CONNECTION_ID() -> the session id
        sql, payload, info = session_ids.with_session_id(session, sql, payload, info)
        body = payload[1:]
    kind = info.kind
    app.stats.kinds[kind] += 1
    if kind is _KILL:
        _kill_statement(session, info, payload)
        return
    if kind is _SHOW_KIND and processlist.answer(session, sql):
        return
    if info.primary_reason is _PROCESSLIST and processlist_schema.answer(session, sql):
        return
    if kind is _SET and "rwproxy_" in sql.lower():
        lowered = sql.lower()
        if "rwproxy_consistency" in lowered:
            _set_consistency(session, sql)
            return
        if "rwproxy_wait_gtid" in lowered:
            causal_tokens.answer_wait_gtid(session, sql)
            return
    if info.reads_user_vars and "rwproxy_last_gtid" in sql.lower():
        causal_tokens.answer_last_gtid(session, sql)
        return
    if kind is _LOAD and not app.config.proxy.local_infile and _is_local_load(sql):
        session.reply_error(
            ErrorCode.ER_NOT_SUPPORTED_YET,
            "LOAD DATA LOCAL INFILE is disabled in rwproxy (set proxy.local_infile = true to allow it)",
            "42000",
        )
        return
    session.send(Request(session.route(info, sql), payload, _QUERY, info, body))
    if kind is _SET:  # an evaluated SET: its read-back goes right behind it (session_sets)
        session_sets.pipeline(session)


_SET_CONSISTENCY = re.compile(r"\s*SET\s+@rwproxy_consistency\s*:?=\s*(['\"])(\w*)\1\s*;?\s*", re.IGNORECASE)


def _set_consistency(session: ClientSession, sql: str) -> None:
    """``SET @rwproxy_consistency = 'eventual' | 'read_your_writes' | 'primary'``: answered by rwproxy
    (a user variable assignment, so drivers and ORMs pass it through unchanged)."""
    m = _SET_CONSISTENCY.fullmatch(sql)
    if m is None:
        session.reply_error(
            ErrorCode.ER_PARSE_ERROR,
            "rwproxy: set the consistency alone, as SET @rwproxy_consistency = 'eventual' | "
            "'read_your_writes' | 'primary' | 'universal'",
            "42000",
        )
        return
    try:
        session.state.consistency = Consistency(m.group(2).lower())
    except ValueError:
        session.reply_error(
            ErrorCode.ER_WRONG_VALUE_FOR_VAR,
            f"Variable 'rwproxy_consistency' can't be set to the value of '{m.group(2)}' "
            "(eventual, read_your_writes, primary or universal)",
            "42000",
        )
        return
    session.reply_ok()


def _is_local_load(sql: str) -> bool:
    head = sql[:200].upper()
    return "LOCAL" in head


def _init_db(session: ClientSession, payload: bytes) -> None:
    name = payload[1:].decode("utf-8", "surrogateescape")
    info = StatementInfo(kind=Kind.USE, effects=Effect.CHANGES_DB, names=(name,))
    r = _primary_route(session)
    # COM_INIT_DB changes the database like USE: recorded in the replay log on success.
    session.send(Request(r, payload, ResponseKind.SIMPLE, info))


def _ping(session: ClientSession, payload: bytes) -> None:
    session.reply_ok()


def _quit(session: ClientSession, payload: bytes) -> None:
    session.close()


def _field_list(session: ClientSession, payload: bytes) -> None:
    session.send(Request(session.route(_SHOW), payload, ResponseKind.FIELDS, None))


def _statistics(session: ClientSession, payload: bytes) -> None:
    session.send(Request(_primary_route(session), payload, ResponseKind.ONE_PACKET, None))


def _set_option(session: ClientSession, payload: bytes) -> None:
    if len(payload) < 3:
        session.reply_error(ErrorCode.ER_MALFORMED_PACKET, "Malformed COM_SET_OPTION", "HY000")
        return
    # Multi-statement on/off: recorded like a SET so every connection of the session follows; those
    # connections no longer match their pool and are closed at the end instead of reused.
    session.multi_statements_changed = True
    session.state.set_option(payload[1:3])
    conn_before = session.state.replay_seq

    def after(conn: BackendConnection, outcome: Result) -> None:
        if outcome.ok:
            conn.applied_seq = max(conn.applied_seq, conn_before)

    session.send(Request(_primary_route(session), payload, ResponseKind.SIMPLE, None, b"", after))


def _reset_connection(session: ClientSession, payload: bytes) -> None:
    session.release_connections()
    database = session.state.database
    session.state.reset()
    session.state.database = database
    session.state.consistency = session.app.user_consistency(session.user)
    session.reply_ok()


def _change_user(session: ClientSession, payload: bytes) -> None:
    session.begin_reauth(payload)


def _process_kill(session: ClientSession, payload: bytes) -> None:
    if len(payload) < 5:
        session.reply_error(ErrorCode.ER_MALFORMED_PACKET, "Malformed COM_PROCESS_KILL", "HY000")
        return
    _kill(session, int(_U32.unpack_from(payload, 1)[0]), query_only=False)


def _kill_statement(session: ClientSession, info: StatementInfo, payload: bytes) -> None:
    names = info.names
    try:
        target = int(names[0]) if names else -1
    except ValueError:
        target = -1
    if target < 0:  # not a plain id (KILL USER ..., a syntax error): the primary answers
        session.send(Request(_primary_route(session), payload, ResponseKind.QUERY, None))
        return
    _kill(session, target, query_only=info.kill_query)


def _kill(session: ClientSession, target_id: int, *, query_only: bool) -> None:
    """KILL [QUERY] n: n is an rwproxy session id (rwproxy.frontend.kill)."""
    kill.kill(session, target_id, query_only=query_only)


# -- binary protocol (prepared statements) -------------------------------------------------


def _stmt_prepare(session: ClientSession, payload: bytes) -> None:
    sql = payload[1:].decode("utf-8", "surrogateescape")
    info = session.app.classifier.classify(sql)
    if info is not _PLAIN_SELECT and _may_mention_id(sql):  # CONNECTION_ID() -> the session id
        sql, payload, info = session_ids.with_session_id(session, sql, payload, info)
    sql_bytes = payload[1:]

    async def prepare(conn: BackendConnection) -> None:
        outcome, data = await conn.call_keep(Command.STMT_PREPARE, sql_bytes, ResponseKind.PREPARE)
        if outcome.ok and outcome.prepare_ok is not None:
            ok = outcome.prepare_ok
            backend_id = int(_U32.unpack_from(ok, 1)[0])
            cols = ok[5] | ok[6] << 8
            params = ok[7] | ok[8] << 8
            stmt = session.stmts.add(sql_bytes, info, params, cols)
            stmt.on[conn] = BackendStatement(backend_id)
            # The client sees rwproxy's id: rewrite it in the first packet (after the 4-byte header).
            data = data[:5] + _U32.pack(stmt.client_id) + data[9:]
        session.relay(data)
        session.finish_command()

    session.send(Request(session.route(info, sql), payload, ResponseKind.PREPARE, info, run=prepare))


def _stmt_execute(session: ClientSession, payload: bytes) -> None:
    stmt = _lookup(session, payload, "mysqld_stmt_execute")
    if stmt is None:
        return
    info = stmt.info
    if session.client_flags & QUERY_ATTRIBUTES:  # as in _query
        plain = strip_execute(session, stmt, payload)
        if plain is None:
            return
        payload = plain[0]
        if plain[1]:
            info = with_attribute_hints(info, plain[1])
    flags = payload[5] if len(payload) > 5 else 0
    conn = stmt.long_data_conn
    stmt.long_data_conn = None
    r = _route_to(session, conn) if conn is not None and conn.usable else session.route(info)

    def after(c: BackendConnection, outcome: Result) -> None:
        stmt.cursor_conn = c if flags & _CURSOR_TYPE_READ_ONLY and outcome.ok else None

    session.send(Request(r, payload, ResponseKind.QUERY, stmt.info, stmt.sql, after, stmt))


def _stmt_send_long_data(session: ClientSession, payload: bytes) -> None:
    stmt = _lookup(session, payload, None)
    if stmt is None:
        return
    conn = stmt.long_data_conn
    r = _route_to(session, conn) if conn is not None and conn.usable else session.route(stmt.info)
    session.send(Request(r, payload, None, None, stmt=stmt))


def _stmt_reset(session: ClientSession, payload: bytes) -> None:
    stmt = _lookup(session, payload, "mysqld_stmt_reset")
    if stmt is None:
        return
    conn = stmt.long_data_conn or stmt.cursor_conn
    stmt.long_data_conn = None
    stmt.cursor_conn = None
    if conn is None or not conn.usable or conn not in stmt.on:
        session.reply_ok()
        return
    session.send(Request(_route_to(session, conn), payload, ResponseKind.SIMPLE, None, stmt.sql, stmt=stmt))


def _stmt_fetch(session: ClientSession, payload: bytes) -> None:
    stmt = _lookup(session, payload, "mysqld_stmt_fetch")
    if stmt is None:
        return
    conn = stmt.cursor_conn
    if conn is None or not conn.usable or conn not in stmt.on:
        session.reply_error(ErrorCode.ER_UNKNOWN_STMT_HANDLER, "The statement has no open cursor", "HY000")
        return
    session.send(Request(_route_to(session, conn), payload, ResponseKind.ROWS, None, stmt.sql, stmt=stmt))


def _stmt_close(session: ClientSession, payload: bytes) -> None:
    if len(payload) < 5:
        return
    stmt = session.stmts.remove(statement_id(payload))
    if stmt is None:
        return
    for conn, bstmt in stmt.on.items():
        if conn.usable and session.conns.get(conn.node_name) is conn:
            conn.request(frame(replace_stmt_id(payload, bstmt.backend_id), 0), None, None)


def _lookup(session: ClientSession, payload: bytes, what: str | None) -> PreparedStatement | None:
    stmt = session.stmts.get(statement_id(payload)) if len(payload) >= 5 else None
    if stmt is None and what is not None:
        ident = statement_id(payload) if len(payload) >= 5 else -1
        session.reply_error(
            ErrorCode.ER_UNKNOWN_STMT_HANDLER,
            f"Unknown prepared statement handler ({ident}) given to {what}",
            "HY000",
        )
    return stmt


def _route_to(session: ClientSession, conn: BackendConnection) -> Route:
    """The route to the server of a connection that holds statement state (long data, a cursor)."""
    return route_to_server(session.app.topology, conn.node_name)


def _primary_route(session: ClientSession) -> Route:
    return primary_route(session.app.topology)


_HANDLERS: dict[int, Callable[[ClientSession, bytes], None]] = {
    Command.QUERY: _query,
    Command.INIT_DB: _init_db,
    Command.PING: _ping,
    Command.QUIT: _quit,
    Command.FIELD_LIST: _field_list,
    Command.STATISTICS: _statistics,
    Command.SET_OPTION: _set_option,
    Command.RESET_CONNECTION: _reset_connection,
    Command.CHANGE_USER: _change_user,
    Command.PROCESS_KILL: _process_kill,
    Command.STMT_PREPARE: _stmt_prepare,
    Command.STMT_EXECUTE: _stmt_execute,
    Command.STMT_SEND_LONG_DATA: _stmt_send_long_data,
    Command.STMT_RESET: _stmt_reset,
    Command.STMT_FETCH: _stmt_fetch,
    Command.STMT_CLOSE: _stmt_close,
}
