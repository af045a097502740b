"""Generic response packets, prepared-statement packets and a small result-set builder.

One frozen, slotted dataclass per packet with ``parse_*``/``make_*`` pairs. Capabilities are always
passed in. Payloads are the logical packet bodies (no frame header; see :mod:`rwproxy.protocol.framing`).
Connection-phase packets (handshake, auth switch, COM_CHANGE_USER) live in
:mod:`rwproxy.protocol.connection`, prepared-statement packets in :mod:`rwproxy.protocol.statements`; both
are re-exported here.

Text is decoded as UTF-8 with ``surrogateescape``: any bytes parse, and encoding the ``str`` back gives
the same bytes.

- OK: https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_ok_packet.html
- ERR: https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_err_packet.html
- EOF: https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_eof_packet.html
"""

from __future__ import annotations

from dataclasses import dataclass

from rwproxy.protocol.connection import (
    AuthSwitchRequest,
    ChangeUser,
    HandshakeResponse41,
    HandshakeV10,
    SslRequest,
    make_auth_more_data,
    make_auth_switch_request,
    make_com_change_user,
    make_handshake_response,
    make_handshake_v10,
    make_ssl_request,
    parse_auth_more_data,
    parse_auth_switch_request,
    parse_com_change_user,
    parse_handshake_response,
    parse_handshake_v10,
)
from rwproxy.protocol.constants import (
    UTF8MB4_GENERAL_CI,
    Capability,
    ColumnType,
    ServerStatus,
    sqlstate_for,
)
from rwproxy.protocol.errors import LocalProtocolError, MalformedPacket
from rwproxy.protocol.statements import (
    StmtExecute,
    StmtPrepareOk,
    make_stmt_execute,
    make_stmt_prepare_ok,
    parse_stmt_execute,
    parse_stmt_prepare_ok,
    replace_stmt_id,
)
from rwproxy.protocol.wire import (
    Buffer,
    read_str_fixed,
    read_str_lenenc,
    read_str_lenenc_or_null,
    read_str_rest,
    read_uint1,
    read_uint2,
    read_uint4,
    read_uint_lenenc,
    str_lenenc,
    uint1,
    uint2,
    uint4,
    uint_lenenc,
)
from rwproxy.protocol.wire import (
    decode_text as _dec,
)
from rwproxy.protocol.wire import (
    encode_text as _enc,
)

__all__ = [
    "AuthSwitchRequest",
    "ChangeUser",
    "ColumnDefinition41",
    "EofPacket",
    "ErrPacket",
    "HandshakeResponse41",
    "HandshakeV10",
    "OkPacket",
    "SslRequest",
    "StmtExecute",
    "StmtPrepareOk",
    "first_value",
    "make_auth_more_data",
    "make_auth_switch_request",
    "make_column_count",
    "make_column_definition41",
    "make_com_change_user",
    "make_eof",
    "make_err",
    "make_handshake_response",
    "make_handshake_v10",
    "make_ok",
    "make_resultset",
    "make_ssl_request",
    "make_stmt_execute",
    "make_stmt_prepare_ok",
    "make_text_row",
    "parse_auth_more_data",
    "parse_auth_switch_request",
    "parse_column_count",
    "parse_column_definition41",
    "parse_com_change_user",
    "parse_eof",
    "parse_err",
    "parse_handshake_response",
    "parse_handshake_v10",
    "parse_ok",
    "parse_stmt_execute",
    "parse_stmt_prepare_ok",
    "parse_text_row",
    "replace_stmt_id",
    "split_payloads",
]

_OK = 0x00
_EOF = 0xFE
_ERR = 0xFF
_PROTOCOL_41 = int(Capability.PROTOCOL_41)


# --- OK / ERR / EOF ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OkPacket:
    """OK_Packet (header 0x00, or 0xFE when it replaces EOF under ``CLIENT_DEPRECATE_EOF``).

    https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_ok_packet.html
    """

    affected_rows: int
    last_insert_id: int
    status_flags: int
    warnings: int
    info: bytes
    session_state: bytes = b""
    header: int = _OK


def parse_ok(payload: Buffer, capabilities: int) -> OkPacket:
    """Parse an OK packet.

    ``info`` is read as ``string<lenenc>`` when bytes remain, with or without ``CLIENT_SESSION_TRACK``:
    that is what MySQL and MariaDB send and what libmysql reads (the docs' ``string<EOF>`` is not what
    servers do). ``session_state`` is read when SESSION_TRACK is on and ``SESSION_STATE_CHANGED`` is set.
    """
    header, pos = read_uint1(payload, 0)
    if header == _EOF:
        if not capabilities & Capability.DEPRECATE_EOF:
            raise MalformedPacket("0xFE OK packet without CLIENT_DEPRECATE_EOF")
    elif header != _OK:
        raise MalformedPacket(f"not an OK packet: header 0x{header:02x}")
    affected_rows, pos = read_uint_lenenc(payload, pos)
    last_insert_id, pos = read_uint_lenenc(payload, pos)
    status_flags = warnings = 0
    if capabilities & Capability.PROTOCOL_41:
        status_flags, pos = read_uint2(payload, pos)
        warnings, pos = read_uint2(payload, pos)
    elif capabilities & Capability.TRANSACTIONS:
        status_flags, pos = read_uint2(payload, pos)
    info = session_state = b""
    if pos < len(payload):
        info, pos = read_str_lenenc(payload, pos)
        if capabilities & Capability.SESSION_TRACK and status_flags & ServerStatus.SESSION_STATE_CHANGED:
            session_state, pos = read_str_lenenc(payload, pos)
    return OkPacket(affected_rows, last_insert_id, status_flags, warnings, info, session_state, header)


def make_ok(
    capabilities: int,
    *,
    affected_rows: int = 0,
    last_insert_id: int = 0,
    status_flags: int = ServerStatus.AUTOCOMMIT,
    warnings: int = 0,
    info: bytes = b"",
    session_state: bytes = b"",
    header: int = _OK,
) -> bytes:
    """Build an OK packet; ``header=0xFE`` for the end of a result set under ``CLIENT_DEPRECATE_EOF``.

    Like the server, ``info`` is omitted when empty and no session state follows.
    """
    if header not in (_OK, _EOF):
        raise LocalProtocolError(f"OK packet header must be 0x00 or 0xFE, got 0x{header:02x}")
    if header == _EOF and not capabilities & Capability.DEPRECATE_EOF:
        raise LocalProtocolError("0xFE OK packet requires CLIENT_DEPRECATE_EOF")
    track = bool(capabilities & Capability.SESSION_TRACK)
    if session_state and not (track and status_flags & ServerStatus.SESSION_STATE_CHANGED):
        raise LocalProtocolError("session_state needs CLIENT_SESSION_TRACK and SESSION_STATE_CHANGED")
    parts = [uint1(header), uint_lenenc(affected_rows), uint_lenenc(last_insert_id)]
    if capabilities & Capability.PROTOCOL_41:
        parts += [uint2(status_flags), uint2(warnings)]
    elif capabilities & Capability.TRANSACTIONS:
        parts.append(uint2(status_flags))
    if info or session_state:
        parts.append(str_lenenc(info))
    if session_state:
        parts.append(str_lenenc(session_state))
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class ErrPacket:
    """ERR_Packet. ``sqlstate`` is ``HY000`` when the packet carries none (pre-4.1 or early handshake).

    https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_err_packet.html
    """

    code: int
    sqlstate: str
    message: str


def parse_err(payload: Buffer, capabilities: int = _PROTOCOL_41) -> ErrPacket:
    """Parse an ERR packet (the ``#`` SQLSTATE marker is read only if present)."""
    header, pos = read_uint1(payload, 0)
    if header != _ERR:
        raise MalformedPacket(f"not an ERR packet: header 0x{header:02x}")
    code, pos = read_uint2(payload, pos)
    sqlstate = "HY000"
    if capabilities & Capability.PROTOCOL_41 and pos < len(payload) and payload[pos] == 0x23:  # '#'
        raw_state, pos = read_str_fixed(payload, pos + 1, 5)
        sqlstate = raw_state.decode("ascii", "replace")
    message, pos = read_str_rest(payload, pos)
    return ErrPacket(code, sqlstate, _dec(message))


def make_err(code: int, message: str, sqlstate: str | None = None, capabilities: int = _PROTOCOL_41) -> bytes:
    """Build an ERR packet; ``sqlstate`` defaults to the :data:`~rwproxy.protocol.constants.SQLSTATE` one."""
    state = sqlstate_for(code) if sqlstate is None else sqlstate
    if len(state) != 5 or not state.isascii():
        raise LocalProtocolError(f"SQLSTATE must be 5 ASCII characters, got {state!r}")
    head = uint1(_ERR) + uint2(code)
    if capabilities & Capability.PROTOCOL_41:
        head += b"#" + state.encode("ascii")
    return head + _enc(message)


@dataclass(frozen=True, slots=True)
class EofPacket:
    """EOF_Packet (without ``CLIENT_DEPRECATE_EOF``).

    https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_eof_packet.html
    """

    warnings: int
    status_flags: int


def parse_eof(payload: Buffer, capabilities: int = _PROTOCOL_41) -> EofPacket:
    """Parse an EOF packet (0xFE, shorter than 9 bytes)."""
    header, pos = read_uint1(payload, 0)
    if header != _EOF or len(payload) >= 9:
        raise MalformedPacket("not an EOF packet")
    if not capabilities & Capability.PROTOCOL_41:
        return EofPacket(0, 0)
    warnings, pos = read_uint2(payload, pos)
    status_flags, pos = read_uint2(payload, pos)
    return EofPacket(warnings, status_flags)


def make_eof(warnings: int = 0, status_flags: int = ServerStatus.AUTOCOMMIT) -> bytes:
    """Build a 4.1 EOF packet."""
    return uint1(_EOF) + uint2(warnings) + uint2(status_flags)


# --- text result sets --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ColumnDefinition41:
    """Protocol::ColumnDefinition41.

    https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_query_response_text_resultset_column_definition.html
    """

    catalog: str
    schema: str
    table: str
    org_table: str
    name: str
    org_name: str
    charset: int
    column_length: int
    column_type: int
    flags: int
    decimals: int


def make_column_count(count: int, capabilities: int = 0) -> bytes:
    """First packet of a text result set. With ``CLIENT_OPTIONAL_RESULTSET_METADATA`` a
    ``metadata_follows`` byte (1 = full metadata) follows the count.

    https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_query_response_text_resultset.html
    """
    out = uint_lenenc(count)
    if capabilities & Capability.OPTIONAL_RESULTSET_METADATA:
        out += b"\x01"
    return out


def parse_column_count(payload: Buffer) -> int:
    """The column count of a result set's first packet."""
    count, _ = read_uint_lenenc(payload, 0)
    return count


def make_column_definition41(
    name: str,
    *,
    schema: str = "",
    table: str = "",
    org_table: str = "",
    org_name: str = "",
    catalog: str = "def",
    charset: int = UTF8MB4_GENERAL_CI,
    column_length: int = 0,
    column_type: int = ColumnType.VAR_STRING,
    flags: int = 0,
    decimals: int = 0,
) -> bytes:
    """Build a ColumnDefinition41 packet."""
    return b"".join(
        [
            str_lenenc(_enc(catalog)),
            str_lenenc(_enc(schema)),
            str_lenenc(_enc(table)),
            str_lenenc(_enc(org_table)),
            str_lenenc(_enc(name)),
            str_lenenc(_enc(org_name)),
            b"\x0c",
            uint2(charset),
            uint4(column_length),
            uint1(column_type),
            uint2(flags),
            uint1(decimals),
            b"\x00\x00",
        ]
    )


def parse_column_definition41(payload: Buffer) -> ColumnDefinition41:
    """Parse a ColumnDefinition41 packet (COM_FIELD_LIST default values, if any, are ignored)."""
    texts: list[str] = []
    pos = 0
    for _ in range(6):
        raw, pos = read_str_lenenc(payload, pos)
        texts.append(_dec(raw))
    fixed_len, pos = read_uint_lenenc(payload, pos)
    if fixed_len < 10:
        raise MalformedPacket(f"column definition fixed part too short: {fixed_len}")
    block, _ = read_str_fixed(payload, pos, fixed_len)
    charset, p = read_uint2(block, 0)
    column_length, p = read_uint4(block, p)
    column_type, p = read_uint1(block, p)
    flags, p = read_uint2(block, p)
    decimals, p = read_uint1(block, p)
    catalog, schema, table, org_table, name, org_name = texts
    return ColumnDefinition41(
        catalog,
        schema,
        table,
        org_table,
        name,
        org_name,
        charset,
        column_length,
        column_type,
        flags,
        decimals,
    )


def make_text_row(values: list[bytes | None]) -> bytes:
    """A ProtocolText::ResultsetRow: each value ``string<lenenc>``, NULL as ``0xFB``.

    https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_query_response_text_resultset_row.html
    """
    return b"".join(b"\xfb" if v is None else str_lenenc(v) for v in values)


def parse_text_row(payload: Buffer, num_columns: int) -> list[bytes | None]:
    """Parse a text result row of ``num_columns`` values."""
    out: list[bytes | None] = []
    pos = 0
    for _ in range(num_columns):
        value, pos = read_str_lenenc_or_null(payload, pos)
        out.append(value)
    if pos != len(payload):
        raise MalformedPacket(f"{len(payload) - pos} trailing byte(s) after {num_columns} column values")
    return out


def make_resultset(
    capabilities: int,
    columns: list[str],
    rows: list[list[str | bytes | None]],
    status_flags: int = ServerStatus.AUTOCOMMIT,
) -> list[bytes]:
    """Payloads of a complete text result set of VAR_STRING utf8mb4 columns, for local answers.

    Column count, definitions, then (classic) an EOF, the rows, and an EOF; under
    ``CLIENT_DEPRECATE_EOF`` no EOF after the definitions and a final OK with header 0xFE.
    ``str`` values are UTF-8 encoded, ``bytes`` sent as they are, ``None`` is NULL.
    """
    encoded = [[_enc(v) if isinstance(v, str) else v for v in row] for row in rows]
    for row in encoded:
        if len(row) != len(columns):
            raise LocalProtocolError(f"row has {len(row)} values for {len(columns)} columns")
    out = [make_column_count(len(columns), capabilities)]
    for i, name in enumerate(columns):
        widest = max((len(row[i] or b"") for row in encoded), default=0)
        out.append(make_column_definition41(name, column_length=max(widest, 1) * 4))
    deprecate_eof = bool(capabilities & Capability.DEPRECATE_EOF)
    if not deprecate_eof:
        out.append(make_eof(0, status_flags))
    out.extend(make_text_row(row) for row in encoded)
    if deprecate_eof:
        out.append(make_ok(capabilities, status_flags=status_flags, header=_EOF))
    else:
        out.append(make_eof(0, status_flags))
    return out


def split_payloads(response: bytes) -> list[bytes]:
    """The payloads of the framed packets in ``response`` (bytes as read from a server; a truncated
    last packet gives what it has). For small whole responses, never for relayed results."""
    packets: list[bytes] = []
    pos = 0
    while pos + 4 <= len(response):
        length = response[pos] | response[pos + 1] << 8 | response[pos + 2] << 16
        packets.append(response[pos + 4 : pos + 4 + length])
        pos += 4 + length
    return packets


def first_value(response: bytes, capabilities: int) -> bytes | None:
    """The first column of the first row of a whole text result set (framed bytes, as read from the
    server), or None when the response is not a result set with a row (an ERR, an OK, no rows, NULL).
    For small housekeeping queries (e.g. ``SELECT MASTER_GTID_WAIT(...)``), not for relayed results."""
    packets = split_payloads(response)
    if not packets or not packets[0] or packets[0][0] in (0x00, 0xFF, 0xFB):
        return None
    try:
        columns, _ = read_uint_lenenc(packets[0], 0)
    except MalformedPacket:
        return None
    row_at = 1 + columns + (0 if capabilities & Capability.DEPRECATE_EOF else 1)
    if row_at >= len(packets):
        return None
    row = packets[row_at]
    if not row or (row[0] in (0xFE, 0xFF) and len(row) < 9):
        return None
    try:
        value, _ = read_str_lenenc_or_null(row, 0)
    except MalformedPacket:
        return None
    return value
