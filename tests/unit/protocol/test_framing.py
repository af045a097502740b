"""Framing: headers, sequence ids, the 0xFFFFFF split.

Every decode is fed whole, byte by byte, and with trailing data.
"""

from __future__ import annotations

import itertools
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rwproxy.protocol.constants import MAX_FRAME_PAYLOAD
from rwproxy.protocol.errors import LocalProtocolError, PacketsOutOfOrder, PacketTooLarge
from rwproxy.protocol.framing import PacketDecoder, frame, frame_header, frames_needed, parse_header

from .support import decode_all, feed_variants, fixture_frames

M = MAX_FRAME_PAYLOAD


def test_frame_small() -> None:
    assert frame(b"\x03SELECT 1", 0) == b"\x09\x00\x00\x00\x03SELECT 1"
    assert frame(b"", 5) == b"\x00\x00\x00\x05"
    assert frame(b"x", 256 + 3)[3] == 3  # seq wraps modulo 256
    assert frame_header(10, 300) == b"\x0a\x00\x00\x2c"
    assert parse_header(b"\x0a\x00\x00\x2c") == (10, 44)
    with pytest.raises(LocalProtocolError):
        frame_header(M + 1, 0)


@pytest.mark.parametrize(
    ("length", "frames"), [(0, 1), (1, 1), (M - 1, 1), (M, 2), (M + 1, 2), (2 * M, 3), (2 * M + 5, 3)]
)
def test_frames_needed(length: int, frames: int) -> None:
    assert frames_needed(length) == frames


def test_frames_needed_negative() -> None:
    with pytest.raises(LocalProtocolError):
        frames_needed(-1)


@pytest.mark.parametrize("length", [M - 1, M, M + 1, 2 * M])
def test_split_layout(length: int) -> None:
    payload = bytes(range(256)) * (length // 256) + bytes(length % 256)
    data = frame(payload, 254)
    headers = []
    pos = 0
    while pos < len(data):
        n, seq = parse_header(data, pos)
        headers.append((n, seq))
        pos += 4 + n
    assert len(headers) == frames_needed(length)
    assert [seq for _, seq in headers] == [(254 + i) % 256 for i in range(len(headers))]
    assert all(n == M for n, _ in headers[:-1]) and headers[-1][0] < M
    decoder = PacketDecoder(4 * M)
    decoder.feed(data + frame(b"next", 7))
    assert decoder.next_packet() == (254, payload)
    assert decoder.last_seq == (254 + len(headers) - 1) % 256
    assert decoder.next_packet() == (7, b"next")
    assert decoder.last_seq == 7
    assert decoder.next_packet() is None
    assert decoder.buffered == 0


@pytest.mark.parametrize("name", ["mariadb_resultset_classic", "mariadb_stmt_execute_result"])
def test_decode_captured_stream(name: str) -> None:
    frames = fixture_frames(name)
    stream = b"".join(frames)
    expected = [(f[3], f[4:]) for f in frames]
    for _, chunks in feed_variants(stream):
        assert decode_all(chunks) == (expected, 0)
    for _, chunks in feed_variants(stream + b"\x05\x00\x00"):  # trailing partial header
        assert decode_all(chunks) == (expected, 3)


def test_split_packet_fed_in_pieces() -> None:
    payload = b"a" * (M + 10)
    data = frame(payload, 0) + frame(b"tail", 2)
    chunks = [data[i : i + 1_000_003] for i in range(0, len(data), 1_000_003)]
    chunks[-1:] = [chunks[-1][:-3], chunks[-1][-3:]]
    assert decode_all(chunks, 2 * M) == ([(0, payload), (2, b"tail")], 0)


def test_too_large_raised_from_header_alone() -> None:
    decoder = PacketDecoder(100)
    decoder.feed(frame_header(101, 0))  # no body yet
    with pytest.raises(PacketTooLarge) as info:
        decoder.next_packet()
    assert (info.value.errno, info.value.sqlstate) == (1153, "08S01")
    decoder = PacketDecoder(100)
    decoder.feed(frame(b"x" * 100, 0))
    assert decoder.next_packet() == (0, b"x" * 100)


def test_too_large_split_before_buffering() -> None:
    decoder = PacketDecoder(M + 5)
    decoder.feed(frame_header(M, 0))
    assert decoder.next_packet() is None  # first frame alone fits
    decoder.feed(b"z" * M + frame_header(6, 1))
    with pytest.raises(PacketTooLarge):
        decoder.next_packet()


def test_small_limit_rejects_first_split_frame() -> None:
    decoder = PacketDecoder(1000)
    decoder.feed(frame_header(M, 0))
    with pytest.raises(PacketTooLarge):
        decoder.next_packet()


def test_continuation_out_of_order() -> None:
    decoder = PacketDecoder(2 * M)
    decoder.feed(frame_header(M, 3) + bytes(M) + frame_header(1, 9) + b"x")
    with pytest.raises(PacketsOutOfOrder) as info:
        decoder.next_packet()
    assert info.value.errno == 1156


def test_decoder_validation_and_buffered() -> None:
    with pytest.raises(LocalProtocolError):
        PacketDecoder(-1)
    decoder = PacketDecoder(10)
    assert decoder.next_packet() is None and decoder.last_seq is None
    decoder.feed(b"")
    decoder.feed(b"\x02\x00")
    assert decoder.buffered == 2 and decoder.next_packet() is None
    decoder.feed(b"\x00\x01h")
    assert decoder.next_packet() is None
    decoder.feed(bytearray(b"i\x00\x00\x00\x02"))
    assert decoder.next_packet() == (1, b"hi")
    assert decoder.buffered == 4
    assert decoder.next_packet() == (2, b"")
    assert decoder.buffered == 0


def test_pending_header_announces_a_packet_before_its_body() -> None:
    decoder = PacketDecoder(1 << 20)
    assert decoder.pending_header() is None
    decoder.feed(frame_header(70000, 1)[:3])
    assert decoder.pending_header() is None
    decoder.feed(b"\x01" + b"x" * 10)
    assert decoder.pending_header() == (70000, 1)
    assert decoder.next_packet() is None  # still waiting for the body
    decoder.clear()
    assert decoder.empty and decoder.pending_header() is None
    decoder.feed(frame(b"ok", 0))
    assert decoder.next_packet() == (0, b"ok")


def test_big_buffer_is_dropped_once_consumed() -> None:
    """An idle connection keeps no memory of its largest packet (nor of a split one)."""
    decoder = PacketDecoder(2 * M)
    for payload in (b"x" * 300_000, b"y" * (M + 10)):
        decoder.feed(frame(payload, 0))
        assert decoder.next_packet() == (0, payload)
        assert decoder.empty
        assert sys.getsizeof(decoder._buf) < 1024  # the bytearray itself, not the 300 KB it held
    decoder.feed(frame(b"a", 0) + frame(b"b" * 100_000, 0))
    assert decoder.next_packet() == (0, b"a")
    assert decoder.next_packet() == (0, b"b" * 100_000)
    assert sys.getsizeof(decoder._buf) < 1024


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@given(
    st.lists(st.tuples(st.binary(max_size=40), st.integers(0, 255)), max_size=6),
    st.lists(st.integers(min_value=0), max_size=8),
)
def test_round_trip_small(packets: list[tuple[bytes, int]], cuts: list[int]) -> None:
    data = b"".join(frame(p, s) for p, s in packets)
    expected = [(s, p) for p, s in packets]
    assert decode_all(_chunked(data, cuts), 64) == (expected, 0)


@settings(max_examples=12, deadline=None)
@given(
    st.integers(min_value=M - 2, max_value=M + 2) | st.sampled_from([2 * M, 2 * M + 1]), st.integers(0, 255)
)
def test_round_trip_around_split(length: int, seq: int) -> None:
    payload = b"\x5a" * length
    data = frame(payload, seq)
    assert len(data) == length + 4 * frames_needed(length)
    decoder = PacketDecoder(length)
    mid = len(data) // 2
    decoder.feed(data[:mid])
    assert decoder.next_packet() is None
    decoder.feed(data[mid:])
    assert decoder.next_packet() == (seq, payload)
    assert decoder.last_seq == (seq + frames_needed(length) - 1) % 256


@given(st.binary(max_size=64))
def test_garbage_parses_or_raises_remote(data: bytes) -> None:
    decoder = PacketDecoder(16)
    decoder.feed(data)
    while True:
        try:
            packet = decoder.next_packet()
        except PacketTooLarge:
            return
        if packet is None:
            return
        assert len(packet[1]) <= 16
