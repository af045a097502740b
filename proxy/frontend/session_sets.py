"""Capture of evaluated SETs: after a ``SET sql_mode = CONCAT(@@sql_mode, ...)`` (and the like, see
``proxy.router.set_replay``) succeeded on the primary, read the resulting session variables back on
the same connection and record them as constants in the session's replay log, before the session's
next statement runs. The client already has the SET's own response; the read-back is rwproxy's.

``readback_values`` (pure) reads the one-row result of the read-back.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from proxy.backend.connection import BackendConnection, BackendError
from proxy.protocol.constants import Capability, Command
from proxy.protocol.errors import MalformedPacket
from proxy.protocol.packets import parse_column_definition41, parse_text_row
from proxy.protocol.results import ResponseKind
from proxy.protocol.wire import read_uint_lenenc
from proxy.router.set_replay import readback_query

if TYPE_CHECKING:
    from proxy.frontend.session import ClientSession

__all__ = ["capture", "readback_values"]

log = logging.getLogger(__name__)

Values = list[tuple[int, bytes | None]]  # (column type, text value or NULL) per column


def capture(session: ClientSession, conn: BackendConnection) -> None:
    """Start reading back the values of the SET that just ran on ``conn``; the command finishes after."""
    names = session.state.capture
    session.state.capture = None
    if names is None:
        session.finish_command()
        return
    session.spawn(_capture(session, conn, names))


async def _capture(session: ClientSession, conn: BackendConnection, names: tuple[str, ...]) -> None:
    values: Values | None = None
    try:
        outcome, data = await conn.call_keep(Command.QUERY, readback_query(names), ResponseKind.QUERY)
        if outcome.ok:
            values = readback_values(data, conn.client_flags, len(names))
    except BackendError as exc:
        log.info("session %d: reading back SET values on %s failed: %s", session.id, conn.node_name, exc)
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
    packets: list[bytes] = []
    pos = 0
    while pos + 4 <= len(response):
        length = response[pos] | response[pos + 1] << 8 | response[pos + 2] << 16
        packets.append(response[pos + 4 : pos + 4 + length])
        pos += 4 + length
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
