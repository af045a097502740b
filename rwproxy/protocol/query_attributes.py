"""MySQL 8 query attributes (``CLIENT_QUERY_ATTRIBUTES``): read them, and strip them off commands.

A client that negotiated ``CLIENT_QUERY_ATTRIBUTES`` (MySQL 8.0.23+ clients, when the server offers
it) sends a prefix in front of the SQL text of *every* COM_QUERY, and a parameter count plus a name
per parameter in COM_STMT_EXECUTE. rwproxy offers the capability to its clients and never asks a
backend for it (MariaDB does not know it), so each such command is rewritten into its plain form
before it is forwarded, and the attributes are read here (``rwproxy_route``, ``rwproxy_max_lag``:
see ``rwproxy.router.attribute_hints``).

COM_QUERY under ``CLIENT_QUERY_ATTRIBUTES``::

    int<1>        0x03
    int<lenenc>   parameter_count
    int<lenenc>   parameter_set_count     always 1
    if parameter_count > 0:
      binary      null_bitmap             (parameter_count + 7) / 8 bytes
      int<1>      new_params_bind_flag    always 1
      per parameter: int<2> type and flag, string<lenenc> name
      per parameter that is not NULL: its Binary Protocol Value
    string<EOF>   the SQL text

https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_query.html

COM_STMT_EXECUTE carries ``parameter_count`` when the statement has parameters or the flags have
``PARAMETER_COUNT_AVAILABLE``; the first ``num_params`` (from COM_STMT_PREPARE_OK) values are the
statement's parameters, the rest are attributes; types carry a name each.

https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_stmt_execute.html

Sans-I/O: functions over bytes; malformed input raises :class:`MalformedPacket`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from rwproxy.protocol.constants import ColumnType, CursorType
from rwproxy.protocol.errors import MalformedPacket

__all__ = [
    "QueryAttribute",
    "plain_execute",
    "plain_query",
    "value_end",
]

# The prefix of a COM_QUERY without attributes: parameter_count 0, parameter_set_count 1.
_NO_ATTRIBUTES: Final = b"\x00\x01"
_PARAMETER_COUNT_AVAILABLE: Final = int(CursorType.PARAMETER_COUNT_AVAILABLE)
_UNSIGNED: Final = 0x80

# Binary Protocol Value sizes: fixed-size types; date/time types have a length byte first; every
# other type (strings, blobs, DECIMAL, JSON, BIT, ENUM, SET, GEOMETRY) is a string<lenenc>.
_FIXED: Final[dict[int, int]] = {
    ColumnType.NULL: 0,
    ColumnType.TINY: 1,
    ColumnType.SHORT: 2,
    ColumnType.YEAR: 2,
    ColumnType.LONG: 4,
    ColumnType.INT24: 4,
    ColumnType.FLOAT: 4,
    ColumnType.LONGLONG: 8,
    ColumnType.DOUBLE: 8,
}
_LENGTH_BYTE: Final = frozenset(
    {ColumnType.DATE, ColumnType.DATETIME, ColumnType.TIMESTAMP, ColumnType.TIME, ColumnType.NEWDATE}
)
_INTS: Final = frozenset(
    {
        ColumnType.TINY,
        ColumnType.SHORT,
        ColumnType.YEAR,
        ColumnType.LONG,
        ColumnType.INT24,
        ColumnType.LONGLONG,
    }
)


def _lenenc(buf: bytes, pos: int) -> tuple[int, int]:
    """``int<lenenc>`` at ``pos``: (value, end). Local and inlined-simple: per command on the hot path."""
    n = len(buf)
    if pos >= n:
        raise MalformedPacket(f"truncated int<lenenc> at offset {pos}")
    first = buf[pos]
    if first < 0xFB:
        return first, pos + 1
    if first == 0xFC:
        size = 2
    elif first == 0xFD:
        size = 3
    elif first == 0xFE:
        size = 8
    else:
        raise MalformedPacket(f"invalid int<lenenc> first byte 0x{first:02x} at offset {pos}")
    end = pos + 1 + size
    if end > n:
        raise MalformedPacket(f"truncated int<lenenc> at offset {pos}")
    return int.from_bytes(buf[pos + 1 : end], "little"), end


def _str_lenenc(buf: bytes, pos: int) -> tuple[bytes, int]:
    length, start = _lenenc(buf, pos)
    end = start + length
    if end > len(buf):
        raise MalformedPacket(f"truncated string<lenenc> at offset {pos}")
    return buf[start:end], end


@dataclass(frozen=True, slots=True)
class QueryAttribute:
    """One query attribute: its name, type byte, unsigned flag and raw Binary Protocol Value
    (``None`` for SQL NULL)."""

    name: str
    type: int
    unsigned: bool
    raw: bytes | None

    def text(self) -> str | None:
        """The value as text (integers, floating point numbers and strings); None for NULL and for
        types rwproxy does not read (dates, times)."""
        raw = self.raw
        if raw is None:
            return None
        if self.type in _INTS:
            return str(int.from_bytes(raw, "little", signed=not self.unsigned))
        if self.type == ColumnType.DOUBLE:
            return repr(struct.unpack("<d", raw)[0])
        if self.type == ColumnType.FLOAT:
            return repr(struct.unpack("<f", raw)[0])
        if self.type in _FIXED or self.type in _LENGTH_BYTE:
            return None
        value, _ = _str_lenenc(raw, 0)
        return value.decode("utf-8", "replace")


def value_end(buf: bytes, pos: int, column_type: int) -> int:
    """Where the Binary Protocol Value of ``column_type`` that starts at ``pos`` ends."""
    size = _FIXED.get(column_type)
    if size is not None:
        end = pos + size
    elif column_type in _LENGTH_BYTE:
        if pos >= len(buf):
            raise MalformedPacket(f"truncated date/time value at offset {pos}")
        end = pos + 1 + buf[pos]
    else:
        length, start = _lenenc(buf, pos)
        end = start + length
    if end > len(buf):
        raise MalformedPacket(f"truncated parameter value of type {column_type} at offset {pos}")
    return end


def _is_null(bitmap: bytes, i: int) -> bool:
    return bool(bitmap[i >> 3] & (1 << (i & 7)))


def _read_attributes(
    payload: bytes, pos: int, count: int
) -> tuple[bytes, bool, list[tuple[bytes, bytes]], int]:
    """From the NULL bitmap on: ``(bitmap, bound, [(type, name)...], pos of the first value)``."""
    bitmap_len = (count + 7) // 8
    if pos + bitmap_len + 1 > len(payload):
        raise MalformedPacket("truncated query attributes: NULL bitmap")
    bitmap = payload[pos : pos + bitmap_len]
    pos += bitmap_len
    bound = payload[pos]
    pos += 1
    if bound > 1:
        raise MalformedPacket(f"new_params_bind_flag must be 0 or 1, got {bound}")
    types: list[tuple[bytes, bytes]] = []
    if bound:
        for _ in range(count):
            if pos + 2 > len(payload):
                raise MalformedPacket("truncated query attributes: parameter type")
            one_type = payload[pos : pos + 2]
            name, pos = _str_lenenc(payload, pos + 2)
            types.append((one_type, name))
    return bitmap, bound == 1, types, pos


def _values(
    payload: bytes, pos: int, bitmap: bytes, types: list[tuple[bytes, bytes]], first: int
) -> tuple[list[QueryAttribute], int]:
    """Read values ``first..len(types)-1`` starting at ``pos``; (attributes, end)."""
    out: list[QueryAttribute] = []
    for i in range(first, len(types)):
        one_type, name = types[i]
        if _is_null(bitmap, i):
            raw: bytes | None = None
        else:
            end = value_end(payload, pos, one_type[0])
            raw = payload[pos:end]
            pos = end
        out.append(
            QueryAttribute(name.decode("utf-8", "replace"), one_type[0], bool(one_type[1] & _UNSIGNED), raw)
        )
    return out, pos


def plain_query(payload: bytes) -> tuple[bytes, tuple[QueryAttribute, ...]]:
    """A COM_QUERY payload (command byte first) sent under ``CLIENT_QUERY_ATTRIBUTES``: the plain
    COM_QUERY for a server without it, and the attributes.

    The usual case, no attributes (``03 00 01 <sql>``), costs one slice."""
    if payload[1:3] == _NO_ATTRIBUTES:
        return b"\x03" + payload[3:], ()
    count, pos = _lenenc(payload, 1)
    sets, pos = _lenenc(payload, pos)
    if sets != 1:
        raise MalformedPacket(f"parameter_set_count must be 1, got {sets}")
    if count == 0:
        return b"\x03" + payload[pos:], ()
    bitmap, bound, types, pos = _read_attributes(payload, pos, count)
    if not bound:
        raise MalformedPacket("query attributes without their types (new_params_bind_flag 0)")
    attributes, pos = _values(payload, pos, bitmap, types, 0)
    return b"\x03" + payload[pos:], tuple(attributes)


def plain_execute(
    payload: bytes, num_params: int, last_types: bytes | None
) -> tuple[bytes, tuple[QueryAttribute, ...]]:
    """A COM_STMT_EXECUTE payload sent under ``CLIENT_QUERY_ATTRIBUTES``: the plain form for a server
    without it (``num_params`` from COM_STMT_PREPARE_OK) and the attributes that followed the
    parameters (empty when the client did not re-send the types: their names are not in the packet).

    ``last_types``: the ``2 * num_params`` type bytes of the statement's last execution that carried
    them, needed to find where the parameter values end when this one does not carry them.
    """
    if len(payload) < 10:
        raise MalformedPacket(f"COM_STMT_EXECUTE too short: {len(payload)} bytes")
    flags = payload[5]
    head = payload[:5] + bytes((flags & ~_PARAMETER_COUNT_AVAILABLE,)) + payload[6:10]
    if num_params == 0 and not flags & _PARAMETER_COUNT_AVAILABLE:
        return head + payload[10:], ()  # nothing follows but what a plain packet has
    count, pos = _lenenc(payload, 10)
    if count < num_params:
        raise MalformedPacket(f"parameter_count {count} is less than the statement's {num_params} parameters")
    if count == 0:
        return head, ()
    bitmap, bound, types, pos = _read_attributes(payload, pos, count)
    if num_params == 0:
        attributes, _ = _values(payload, pos, bitmap, types, 0) if bound else ([], 0)
        return head, tuple(attributes)
    # The plain NULL bitmap: the first num_params bits (bit offset 0, as the client's).
    plain_len = (num_params + 7) // 8
    plain_bitmap = bytearray(bitmap[:plain_len])
    spare = plain_len * 8 - num_params
    if spare:
        plain_bitmap[-1] &= 0xFF >> spare
    if bound:
        param_types = b"".join(t for t, _ in types[:num_params])
    elif last_types is not None and len(last_types) == 2 * num_params:
        param_types = last_types
    elif count == num_params:
        return head + bytes(plain_bitmap) + b"\x00" + payload[pos:], ()  # no attributes: no need to parse
    else:
        raise MalformedPacket("query attributes after parameters whose types were never sent")
    end = pos
    for i in range(num_params):
        if not _is_null(bitmap, i):
            end = value_end(payload, end, param_types[2 * i])
    extra: list[QueryAttribute] = []
    if bound and count > num_params:
        extra, _ = _values(payload, end, bitmap, types, num_params)
    parts = [head, bytes(plain_bitmap), b"\x01" if bound else b"\x00"]
    if bound:
        parts.append(param_types)
    parts.append(payload[pos:end])
    return b"".join(parts), tuple(extra)
