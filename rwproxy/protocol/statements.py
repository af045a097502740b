"""Prepared-statement packets: COM_STMT_PREPARE_OK, COM_STMT_EXECUTE, and statement-id rewriting.

https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_command_phase_ps.html

Re-exported by :mod:`rwproxy.protocol.packets`.
"""

from __future__ import annotations

from dataclasses import dataclass

from rwproxy.protocol.constants import Capability, Command, CursorType
from rwproxy.protocol.errors import LocalProtocolError, MalformedPacket
from rwproxy.protocol.wire import (
    Buffer,
    read_str_fixed,
    read_str_lenenc,
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

__all__ = [
    "StmtExecute",
    "StmtPrepareOk",
    "make_stmt_execute",
    "make_stmt_prepare_ok",
    "parse_stmt_execute",
    "parse_stmt_prepare_ok",
    "replace_stmt_id",
]

_OK = 0x00

# --- prepared statements -----------------------------------------------------------------------------

#: Commands whose payload carries a statement id at offsets 1..5.
_STMT_ID_HEADERS = frozenset(
    {
        _OK,  # COM_STMT_PREPARE_OK
        Command.STMT_EXECUTE,
        Command.STMT_SEND_LONG_DATA,
        Command.STMT_CLOSE,
        Command.STMT_RESET,
        Command.STMT_FETCH,
    }
)


@dataclass(frozen=True, slots=True)
class StmtPrepareOk:
    """COM_STMT_PREPARE_OK (first packet of a successful COM_STMT_PREPARE response).

    https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_stmt_prepare.html
    """

    statement_id: int
    num_columns: int
    num_params: int
    warnings: int


def parse_stmt_prepare_ok(payload: Buffer) -> StmtPrepareOk:
    """Parse COM_STMT_PREPARE_OK (a trailing ``metadata_follows`` byte, if any, is ignored)."""
    header, pos = read_uint1(payload, 0)
    if header != _OK:
        raise MalformedPacket(f"not a COM_STMT_PREPARE_OK: header 0x{header:02x}")
    statement_id, pos = read_uint4(payload, pos)
    num_columns, pos = read_uint2(payload, pos)
    num_params, pos = read_uint2(payload, pos)
    _, pos = read_uint1(payload, pos)  # reserved filler
    warnings = 0
    if pos < len(payload):
        warnings, pos = read_uint2(payload, pos)
    return StmtPrepareOk(statement_id, num_columns, num_params, warnings)


def make_stmt_prepare_ok(statement_id: int, num_columns: int, num_params: int, warnings: int = 0) -> bytes:
    """Build COM_STMT_PREPARE_OK."""
    head = uint1(_OK) + uint4(statement_id)
    return head + uint2(num_columns) + uint2(num_params) + b"\x00" + uint2(warnings)


def replace_stmt_id(payload: Buffer, new_id: int) -> bytes:
    """Copy of ``payload`` with the statement id at bytes 1..5 replaced.

    Works on COM_STMT_PREPARE_OK and on COM_STMT_EXECUTE / SEND_LONG_DATA / CLOSE / RESET / FETCH.
    """
    if len(payload) < 5:
        raise MalformedPacket(f"statement packet too short for an id: {len(payload)} bytes")
    if payload[0] not in _STMT_ID_HEADERS:
        raise LocalProtocolError(f"packet with header 0x{payload[0]:02x} carries no statement id")
    return bytes(payload[:1]) + uint4(new_id) + bytes(payload[5:])


@dataclass(frozen=True, slots=True)
class StmtExecute:
    """COM_STMT_EXECUTE, decoded down to the raw parameter values.

    ``param_types`` is the raw ``2 * count`` type bytes (``None`` unless ``new_params_bound``); ``values``
    is everything after them, undecoded. Under ``CLIENT_QUERY_ATTRIBUTES`` the packet also carries
    ``parameter_count`` (which overrides ``num_params`` and may add named query attributes) and one
    ``param_names`` entry per parameter when types are sent; otherwise both are ``None``.

    https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_stmt_execute.html
    """

    statement_id: int
    flags: int
    iteration_count: int
    null_bitmap: bytes
    new_params_bound: bool
    param_types: bytes | None
    values: bytes
    parameter_count: int | None = None
    param_names: tuple[bytes, ...] | None = None


def parse_stmt_execute(payload: Buffer, num_params: int, capabilities: int) -> StmtExecute:
    """Parse COM_STMT_EXECUTE (command byte included); ``num_params`` comes from COM_STMT_PREPARE_OK.

    :func:`make_stmt_execute` rebuilds the exact bytes (given minimal ``int<lenenc>`` encodings).
    """
    command, pos = read_uint1(payload, 0)
    if command != Command.STMT_EXECUTE:
        raise MalformedPacket(f"not a COM_STMT_EXECUTE: command 0x{command:02x}")
    statement_id, pos = read_uint4(payload, pos)
    flags, pos = read_uint1(payload, pos)
    iteration_count, pos = read_uint4(payload, pos)
    query_attrs = bool(capabilities & Capability.QUERY_ATTRIBUTES)
    count = num_params
    parameter_count: int | None = None
    null_bitmap = b""
    bound = False
    types: bytes | None = None
    names: tuple[bytes, ...] | None = None
    if num_params > 0 or (query_attrs and flags & CursorType.PARAMETER_COUNT_AVAILABLE):
        if query_attrs:
            parameter_count, pos = read_uint_lenenc(payload, pos)
            count = parameter_count
        if count > 0:
            null_bitmap, pos = read_str_fixed(payload, pos, (count + 7) // 8)
            bound_flag, pos = read_uint1(payload, pos)
            if bound_flag > 1:
                raise MalformedPacket(f"new_params_bind_flag must be 0 or 1, got {bound_flag}")
            bound = bound_flag == 1
            if bound and query_attrs:
                type_parts: list[bytes] = []
                name_list: list[bytes] = []
                for _ in range(count):
                    one_type, pos = read_str_fixed(payload, pos, 2)
                    name, pos = read_str_lenenc(payload, pos)
                    type_parts.append(one_type)
                    name_list.append(name)
                types, names = b"".join(type_parts), tuple(name_list)
            elif bound:
                types, pos = read_str_fixed(payload, pos, 2 * count)
    values, pos = read_str_rest(payload, pos)
    return StmtExecute(
        statement_id, flags, iteration_count, null_bitmap, bound, types, values, parameter_count, names
    )


def make_stmt_execute(e: StmtExecute, capabilities: int) -> bytes:
    """Build COM_STMT_EXECUTE (command byte included) from a :class:`StmtExecute`."""
    query_attrs = bool(capabilities & Capability.QUERY_ATTRIBUTES)
    parts = [uint1(Command.STMT_EXECUTE), uint4(e.statement_id), uint1(e.flags), uint4(e.iteration_count)]
    if e.parameter_count is not None:
        if not query_attrs:
            raise LocalProtocolError("parameter_count needs CLIENT_QUERY_ATTRIBUTES")
        parts.append(uint_lenenc(e.parameter_count))
        has_params = e.parameter_count > 0
        if has_params and len(e.null_bitmap) != (e.parameter_count + 7) // 8:
            raise LocalProtocolError("null_bitmap length does not match parameter_count")
    else:
        has_params = bool(e.null_bitmap)
        if has_params and query_attrs:
            raise LocalProtocolError("CLIENT_QUERY_ATTRIBUTES needs parameter_count")
    if not has_params:
        if e.new_params_bound or e.param_types is not None or e.null_bitmap:
            raise LocalProtocolError("parameters bound without a parameter count / NULL bitmap")
    else:
        parts += [e.null_bitmap, uint1(1 if e.new_params_bound else 0)]
        if e.new_params_bound:
            if e.param_types is None or len(e.param_types) % 2:
                raise LocalProtocolError("new_params_bound needs 2 type bytes per parameter")
            if e.param_names is not None:
                if len(e.param_names) * 2 != len(e.param_types):
                    raise LocalProtocolError("param_names and param_types disagree on the count")
                for i, name in enumerate(e.param_names):
                    parts += [e.param_types[2 * i : 2 * i + 2], str_lenenc(name)]
            elif query_attrs:
                raise LocalProtocolError("CLIENT_QUERY_ATTRIBUTES needs param_names when types are sent")
            else:
                parts.append(e.param_types)
        elif e.param_types is not None or e.param_names is not None:
            raise LocalProtocolError("param_types given but new_params_bound is false")
    parts.append(e.values)
    return b"".join(parts)
