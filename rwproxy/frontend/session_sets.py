"""Capture of evaluated SETs: after a ``SET sql_mode = CONCAT(@@sql_mode, ...)`` (and the like, see
``rwproxy.router.set_replay``) succeeded on the primary, read the resulting session variables back on
the same connection and record them as constants in the session's replay log, before the session's
next statement runs. The client already has the SET's own response; the read-back is rwproxy's.

Same round trip where possible: ``pipeline`` (called right after a COM_QUERY SET was written to a
connection) sends the read-back right behind it, so both responses usually arrive in one read and
``capture`` finishes synchronously. Otherwise (the SET waited for a connection, a prepared SET)
``capture`` sends the read-back itself once the SET's response is in.

``readback_values`` (pure) reads the one-row result of the read-back.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rwproxy.backend.connection import BackendConnection, BackendError, Result
from rwproxy.protocol.constants import Capability, Command
from rwproxy.protocol.errors import MalformedPacket
from rwproxy.protocol.framing import frame
from rwproxy.protocol.packets import parse_column_definition41, parse_text_row, split_payloads
from rwproxy.protocol.results import ResponseKind
from rwproxy.protocol.wire import read_uint_lenenc
from rwproxy.router.set_replay import SetPlanKind, plan_set, readback_columns, readback_query
from rwproxy.router.statement import Effect, Kind

if TYPE_CHECKING:
    from rwproxy.frontend.session import ClientSession

__all__ = ["capture", "pipeline", "readback_values"]

log = logging.getLogger(__name__)

Values = list[tuple[int, bytes | None]]  # (column type, text value or NULL) per column


_SETS = Effect.SETS_SESSION_VAR | Effect.SETS_USER_VAR
# Read-backs sent behind their SET, by id() of the session (session ids repeat across ProxyApps in
# one process), until the SET's response is in.
_pipelined: dict[int, _ReadBack] = {}
#: Read-backs done, by how: "pipelined" (same round trip as the SET) or "separate" (one more).
READBACKS = {"pipelined": 0, "separate": 0}


class _ReadBack:
    """The sink of a pipelined read-back: keeps the response; completes the capture once both the
    SET's response (``capture``) and its own are in, whichever comes last."""

    __slots__ = ("conn", "data", "finished", "names", "session", "values", "waiting")

    def __init__(self, session: ClientSession, conn: BackendConnection, names: tuple[str, ...]) -> None:
        self.session = session
        self.conn = conn
        self.names = names
        self.data = bytearray()
        self.values: Values | None = None
        self.finished = False
        self.waiting = False

    def relay(self, data: bytes) -> None:
        self.data += data

    def done(self, conn: BackendConnection, result: Result) -> None:
        if result.ok:
            self.values = readback_values(bytes(self.data), conn.client_flags, readback_columns(self.names))
        self._finish()

    def failed(self, conn: BackendConnection, error: BackendError) -> None:
        if _pipelined.get(id(self.session)) is self:  # lost before the SET's response: no capture
            del _pipelined[id(self.session)]
        self._finish()

    def _finish(self) -> None:
        self.finished = True
        if self.waiting:
            _record(self.session, self.conn, self.names, self.values)


def pipeline(session: ClientSession) -> None:
    """Right after a statement was written to ``session.active``: when it is a SET that will need a
    read-back, send the read-back behind it."""
    conn = session.active
    inflight = session.inflight
    if conn is None or inflight is None or inflight.after is not None:
        return  # not written yet (waits for a connection or a primary): called again once it is
    info = inflight.info
    if info is None or info.kind is not Kind.SET or not info.effects & _SETS or info.multi_statement:
        return
    plan = plan_set(info, inflight.argument)
    if plan.kind is not SetPlanKind.CAPTURE or not plan.readback:
        return
    readback = _ReadBack(session, conn, plan.readback)
    _pipelined[id(session)] = readback
    conn.request(frame(b"\x03" + readback_query(plan.readback), 0), ResponseKind.QUERY, readback)

    def after(c: BackendConnection, outcome: Result) -> None:
        if not outcome.ok and _pipelined.get(id(session)) is readback:
            del _pipelined[id(session)]  # the SET failed: nothing to capture, the response is dropped

    inflight.after = after


def capture(session: ClientSession, conn: BackendConnection) -> None:
    """Read back the values of the SET that just ran on ``conn``; the command finishes after."""
    names = session.state.capture
    session.state.capture = None
    if names is None:
        session.finish_command()
        return
    readback = _pipelined.pop(id(session), None)
    if readback is not None and readback.conn is conn and readback.names == names:
        READBACKS["pipelined"] += 1
        if readback.finished:
            _record(session, conn, names, readback.values)
        else:
            readback.waiting = True
        return
    READBACKS["separate"] += 1
    session.spawn(_capture(session, conn, names))


async def _capture(session: ClientSession, conn: BackendConnection, names: tuple[str, ...]) -> None:
    values: Values | None = None
    try:
        outcome, data = await conn.call_keep(Command.QUERY, readback_query(names), ResponseKind.QUERY)
        if outcome.ok:
            values = readback_values(data, conn.client_flags, readback_columns(names))
    except BackendError as exc:
        log.info("session %d: reading back SET values on %s failed: %s", session.id, conn.node_name, exc)
    _record(session, conn, names, values)


def _record(
    session: ClientSession, conn: BackendConnection, names: tuple[str, ...], values: Values | None
) -> None:
    state = session.state
    before = state.replay_seq
    state.record_capture(names, values)
    if conn.applied_seq == before:  # the SET ran here: this connection already has the values
        conn.applied_seq = state.replay_seq
    if values is None:
        log.info("session %d: SET values not read back; pinned to the primary", session.id)
    session.finish_command()


def readback_values(
    response: bytes, capabilities: int, columns: int
) -> list[tuple[int, bytes | None]] | None:
    """``(column type, text value)`` of each column of the single row of a text result set (framed
    bytes as read from the server), or None when the response is anything else."""
    packets = split_payloads(response)
    if not packets or not packets[0] or packets[0][0] in (0x00, 0xFF, 0xFB):
        return None
    try:
        count, _ = read_uint_lenenc(packets[0], 0)
        if count != columns or len(packets) < 1 + count + 1:
            return None
        types = [parse_column_definition41(p).column_type for p in packets[1 : 1 + count]]
        row_at = 1 + count + (0 if capabilities & Capability.DEPRECATE_EOF else 1)
        if row_at >= len(packets):
            return None
        row = packets[row_at]
        if not row or (row[0] in (0xFE, 0xFF) and len(row) < 9):
            return None
        values = parse_text_row(row, count)
    except MalformedPacket:
        return None
    return list(zip(types, values, strict=True))
