"""Wire primitives named after the MySQL docs' basic data types, as reader/writer pairs.

https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_data_types.html

Readers take ``(buf, pos)`` and return ``(value, new_pos)``; they work on ``bytes`` and ``memoryview``
with offsets (no copies beyond the returned value, no ``BytesIO``) and raise :class:`MalformedPacket`
on truncation or an invalid encoding, never ``IndexError``/``struct.error``. String readers return
``bytes``. Writers return ``bytes`` and raise :class:`LocalProtocolError` for unencodable values.
"""

from __future__ import annotations

import struct

from rwproxy.protocol.errors import LocalProtocolError, MalformedPacket

__all__ = [
    "LENENC_NULL",
    "Buffer",
    "decode_text",
    "encode_text",
    "read_str_fixed",
    "read_str_lenenc",
    "read_str_lenenc_or_null",
    "read_str_null",
    "read_str_rest",
    "read_uint1",
    "read_uint2",
    "read_uint3",
    "read_uint4",
    "read_uint8",
    "read_uint_lenenc",
    "read_uint_lenenc_or_null",
    "str_lenenc",
    "str_null",
    "uint1",
    "uint2",
    "uint3",
    "uint4",
    "uint8",
    "uint_lenenc",
]

Buffer = bytes | memoryview

#: First byte of a length-encoded value that stands for SQL NULL (in text result rows).
LENENC_NULL = 0xFB

_U2 = struct.Struct("<H")
_U4 = struct.Struct("<I")
_U8 = struct.Struct("<Q")


def _need(buf: Buffer, pos: int, n: int, what: str) -> None:
    if pos < 0 or pos + n > len(buf):
        raise MalformedPacket(f"truncated {what}: need {n} byte(s) at offset {pos}, have {len(buf) - pos}")


# --- fixed-length integers: int<n> -------------------------------------------------------------------


def read_uint1(buf: Buffer, pos: int) -> tuple[int, int]:
    """``int<1>``."""
    _need(buf, pos, 1, "int<1>")
    return buf[pos], pos + 1


def read_uint2(buf: Buffer, pos: int) -> tuple[int, int]:
    """``int<2>`` little-endian."""
    _need(buf, pos, 2, "int<2>")
    return _U2.unpack_from(buf, pos)[0], pos + 2


def read_uint3(buf: Buffer, pos: int) -> tuple[int, int]:
    """``int<3>`` little-endian."""
    _need(buf, pos, 3, "int<3>")
    return buf[pos] | (buf[pos + 1] << 8) | (buf[pos + 2] << 16), pos + 3


def read_uint4(buf: Buffer, pos: int) -> tuple[int, int]:
    """``int<4>`` little-endian."""
    _need(buf, pos, 4, "int<4>")
    return _U4.unpack_from(buf, pos)[0], pos + 4


def read_uint8(buf: Buffer, pos: int) -> tuple[int, int]:
    """``int<8>`` little-endian."""
    _need(buf, pos, 8, "int<8>")
    return _U8.unpack_from(buf, pos)[0], pos + 8


def uint1(value: int) -> bytes:
    """Encode ``int<1>``."""
    return _fixed(value, 1)


def uint2(value: int) -> bytes:
    """Encode ``int<2>``."""
    return _fixed(value, 2)


def uint3(value: int) -> bytes:
    """Encode ``int<3>``."""
    return _fixed(value, 3)


def uint4(value: int) -> bytes:
    """Encode ``int<4>``."""
    return _fixed(value, 4)


def uint8(value: int) -> bytes:
    """Encode ``int<8>``."""
    return _fixed(value, 8)


def _fixed(value: int, n: int) -> bytes:
    try:
        return int(value).to_bytes(n, "little")
    except OverflowError:
        raise LocalProtocolError(f"{value} does not fit in int<{n}>") from None


# --- length-encoded integers: int<lenenc> ------------------------------------------------------------


def read_uint_lenenc_or_null(buf: Buffer, pos: int) -> tuple[int | None, int]:
    """``int<lenenc>`` where ``0xFB`` means NULL (returned as ``None``), as in text result rows.

    ``0xFF`` is never a valid first byte (it would be an ERR packet) and raises :class:`MalformedPacket`.
    Non-minimal encodings (e.g. ``0xFC 0x01 0x00``) are accepted, as the server does.
    """
    _need(buf, pos, 1, "int<lenenc>")
    first = buf[pos]
    if first < 0xFB:
        return first, pos + 1
    if first == 0xFC:
        return read_uint2(buf, pos + 1)
    if first == 0xFD:
        return read_uint3(buf, pos + 1)
    if first == 0xFE:
        return read_uint8(buf, pos + 1)
    if first == LENENC_NULL:
        return None, pos + 1
    raise MalformedPacket(f"invalid int<lenenc> first byte 0x{first:02x} at offset {pos}")


def read_uint_lenenc(buf: Buffer, pos: int) -> tuple[int, int]:
    """``int<lenenc>``; the NULL marker ``0xFB`` is an error here (use :func:`read_uint_lenenc_or_null`)."""
    value, end = read_uint_lenenc_or_null(buf, pos)
    if value is None:
        raise MalformedPacket(f"unexpected NULL int<lenenc> at offset {pos}")
    return value, end


def uint_lenenc(value: int) -> bytes:
    """Encode ``int<lenenc>`` in its minimal form."""
    if value < 0:
        raise LocalProtocolError(f"int<lenenc> cannot be negative: {value}")
    if value < 0xFB:
        return bytes((value,))
    if value <= 0xFFFF:
        return b"\xfc" + value.to_bytes(2, "little")
    if value <= 0xFFFFFF:
        return b"\xfd" + value.to_bytes(3, "little")
    if value <= 0xFFFFFFFFFFFFFFFF:
        return b"\xfe" + value.to_bytes(8, "little")
    raise LocalProtocolError(f"{value} does not fit in int<lenenc>")


# --- strings -----------------------------------------------------------------------------------------


def read_str_fixed(buf: Buffer, pos: int, n: int) -> tuple[bytes, int]:
    """``string<fix>`` of ``n`` bytes."""
    _need(buf, pos, n, f"string[{n}]")
    return bytes(buf[pos : pos + n]), pos + n


def read_str_rest(buf: Buffer, pos: int) -> tuple[bytes, int]:
    """``string<EOF>``: everything up to the end of the payload."""
    _need(buf, pos, 0, "string<EOF>")
    return bytes(buf[pos:]), len(buf)


def read_str_null(buf: Buffer, pos: int) -> tuple[bytes, int]:
    """``string<NUL>``: bytes up to (excluding) a NUL; the position moves past the NUL."""
    _need(buf, pos, 0, "string<NUL>")
    if isinstance(buf, memoryview):
        # memoryview has no find(); copy only the tail we scan.
        end = bytes(buf[pos:]).find(b"\x00")
        end = -1 if end < 0 else end + pos
    else:
        end = buf.find(b"\x00", pos)
    if end < 0:
        raise MalformedPacket(f"string<NUL> at offset {pos} has no terminating NUL")
    return bytes(buf[pos:end]), end + 1


def read_str_lenenc(buf: Buffer, pos: int) -> tuple[bytes, int]:
    """``string<lenenc>``; a NULL marker is an error here (use :func:`read_str_lenenc_or_null`)."""
    n, pos = read_uint_lenenc(buf, pos)
    return read_str_fixed(buf, pos, n)


def read_str_lenenc_or_null(buf: Buffer, pos: int) -> tuple[bytes | None, int]:
    """``string<lenenc>`` or ``0xFB`` (NULL, returned as ``None``): a text-row column value."""
    n, pos = read_uint_lenenc_or_null(buf, pos)
    if n is None:
        return None, pos
    return read_str_fixed(buf, pos, n)


def str_lenenc(value: bytes) -> bytes:
    """Encode ``string<lenenc>``."""
    return uint_lenenc(len(value)) + value


def str_null(value: bytes) -> bytes:
    """Encode ``string<NUL>``; the value itself must not contain NUL."""
    if b"\x00" in value:
        raise LocalProtocolError("string<NUL> value contains a NUL byte")
    return value + b"\x00"


def decode_text(raw: bytes) -> str:
    """Protocol text (names, messages) as str; any bytes survive a round trip with encode_text."""
    return raw.decode("utf-8", "surrogateescape")


def encode_text(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")
