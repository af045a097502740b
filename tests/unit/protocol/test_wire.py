"""Wire primitives: reader/writer pairs, truncation, NULL handling, bytes and memoryview alike."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rwproxy.protocol import wire
from rwproxy.protocol.errors import LocalProtocolError, MalformedPacket

FIXED = [
    (wire.read_uint1, wire.uint1, 1),
    (wire.read_uint2, wire.uint2, 2),
    (wire.read_uint3, wire.uint3, 3),
    (wire.read_uint4, wire.uint4, 4),
    (wire.read_uint8, wire.uint8, 8),
]
Reader = Callable[[wire.Buffer, int], tuple[object, int]]


@pytest.mark.parametrize(("read", "write", "n"), FIXED)
def test_fixed_int_round_trip(read: Reader, write: Callable[[int], bytes], n: int) -> None:
    for value in (0, 1, 2 ** (8 * n) - 1, 0x0102030405060708 % 2 ** (8 * n)):
        data = write(value)
        assert len(data) == n
        assert data == value.to_bytes(n, "little")
        assert read(b"xx" + data + b"yy", 2) == (value, 2 + n)
        assert read(memoryview(data), 0) == (value, n)
        with pytest.raises(MalformedPacket):
            read(data[:-1], 0)
    with pytest.raises(LocalProtocolError):
        write(2 ** (8 * n))
    with pytest.raises(LocalProtocolError):
        write(-1)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (250, b"\xfa"),
        (251, b"\xfc\xfb\x00"),
        (0xFFFF, b"\xfc\xff\xff"),
        (0x10000, b"\xfd\x00\x00\x01"),
        (0xFFFFFF, b"\xfd\xff\xff\xff"),
        (0x1000000, b"\xfe\x00\x00\x00\x01\x00\x00\x00\x00"),
        (2**64 - 1, b"\xfe" + b"\xff" * 8),
    ],
)
def test_lenenc_boundaries(value: int, encoded: bytes) -> None:
    assert wire.uint_lenenc(value) == encoded
    assert wire.read_uint_lenenc(encoded + b"tail", 0) == (value, len(encoded))
    assert wire.read_uint_lenenc_or_null(memoryview(encoded), 0) == (value, len(encoded))
    for cut in range(len(encoded)):
        with pytest.raises(MalformedPacket):
            wire.read_uint_lenenc(encoded[:cut], 0)


def test_lenenc_null_and_invalid() -> None:
    assert wire.read_uint_lenenc_or_null(b"\xfb", 0) == (None, 1)
    assert wire.read_str_lenenc_or_null(b"\xfb\x01a", 0) == (None, 1)
    assert wire.read_str_lenenc_or_null(b"\x01a", 0) == (b"a", 2)
    with pytest.raises(MalformedPacket):
        wire.read_uint_lenenc(b"\xfb", 0)
    with pytest.raises(MalformedPacket):
        wire.read_uint_lenenc_or_null(b"\xff", 0)
    with pytest.raises(LocalProtocolError):
        wire.uint_lenenc(-1)
    with pytest.raises(LocalProtocolError):
        wire.uint_lenenc(2**64)
    # Non-minimal encodings are read (the server accepts them too).
    assert wire.read_uint_lenenc(b"\xfc\x01\x00", 0) == (1, 3)


def test_strings() -> None:
    assert wire.str_null(b"abc") == b"abc\x00"
    assert wire.read_str_null(b"abc\x00def\x00", 0) == (b"abc", 4)
    assert wire.read_str_null(b"abc\x00def\x00", 4) == (b"def", 8)
    assert wire.read_str_null(memoryview(b"abc\x00def\x00"), 4) == (b"def", 8)
    assert wire.read_str_null(b"\x00", 0) == (b"", 1)
    with pytest.raises(MalformedPacket):
        wire.read_str_null(b"abc", 0)
    with pytest.raises(MalformedPacket):
        wire.read_str_null(memoryview(b"abc"), 0)
    with pytest.raises(LocalProtocolError):
        wire.str_null(b"a\x00b")
    assert wire.str_lenenc(b"hi") == b"\x02hi"
    assert wire.read_str_lenenc(b"\x02hi!", 0) == (b"hi", 3)
    with pytest.raises(MalformedPacket):
        wire.read_str_lenenc(b"\x05hi", 0)
    assert wire.read_str_fixed(b"abcdef", 1, 3) == (b"bcd", 4)
    with pytest.raises(MalformedPacket):
        wire.read_str_fixed(b"abc", 1, 3)
    assert wire.read_str_rest(b"abcdef", 2) == (b"cdef", 6)
    assert wire.read_str_rest(b"abc", 3) == (b"", 3)
    with pytest.raises(MalformedPacket):
        wire.read_str_rest(b"abc", 4)
    # Values read from a memoryview are independent bytes.
    value, _ = wire.read_str_fixed(memoryview(bytearray(b"xyz")), 0, 3)
    assert type(value) is bytes


@given(st.integers(min_value=0, max_value=2**64 - 1), st.binary(max_size=8))
def test_lenenc_int_round_trip(value: int, tail: bytes) -> None:
    data = wire.uint_lenenc(value) + tail
    assert wire.read_uint_lenenc(data, 0) == (value, len(data) - len(tail))


@given(st.binary(max_size=300), st.binary(max_size=4))
def test_lenenc_str_round_trip(value: bytes, tail: bytes) -> None:
    data = wire.str_lenenc(value) + tail
    assert wire.read_str_lenenc(data, 0) == (value, len(data) - len(tail))
    assert wire.read_str_lenenc(memoryview(data), 0) == (value, len(data) - len(tail))


READERS: list[Reader] = [
    wire.read_uint1,
    wire.read_uint2,
    wire.read_uint3,
    wire.read_uint4,
    wire.read_uint8,
    wire.read_uint_lenenc,
    wire.read_uint_lenenc_or_null,
    wire.read_str_lenenc,
    wire.read_str_lenenc_or_null,
    wire.read_str_null,
    wire.read_str_rest,
]


@given(st.binary(max_size=12), st.integers(min_value=0, max_value=14))
def test_readers_never_raise_anything_else(data: bytes, pos: int) -> None:
    for read in READERS:
        try:
            _, end = read(data, pos)
        except MalformedPacket:
            continue
        assert pos <= end <= len(data)
