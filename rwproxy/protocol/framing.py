"""Packet framing: 4-byte headers, sequence ids and the 16 MiB split, with no I/O.

https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_packets.html

Every frame is ``int<3> payload_length``, ``int<1> sequence_id``, then the payload. A payload of
``0xFFFFFF`` bytes or more is sent as consecutive ``0xFFFFFF``-byte frames followed by one shorter frame
(possibly empty); the receiver joins them into one logical packet. Sequence ids grow by one per frame,
modulo 256.

The caller owns the socket: ``decoder.feed(data)`` whatever arrived, then call
``decoder.next_packet()`` until it returns ``None`` ("need more data").
"""

from __future__ import annotations

import struct

from rwproxy.protocol.constants import MAX_FRAME_PAYLOAD
from rwproxy.protocol.errors import LocalProtocolError, PacketsOutOfOrder, PacketTooLarge

__all__ = [
    "HEADER",
    "HEADER_SIZE",
    "PacketDecoder",
    "frame",
    "frame_header",
    "frames_needed",
    "parse_header",
]

#: The header as one little-endian uint32: ``length | seq << 24``.
HEADER = struct.Struct("<I")
HEADER_SIZE = 4
# A buffer this big or bigger is dropped (not kept for reuse) once every byte in it was returned: an
# idle connection must not keep the memory of its largest packet.
_KEEP_AT_MOST = 64 * 1024


def frame_header(length: int, seq: int) -> bytes:
    """The 4-byte header of one frame (``length`` <= 0xFFFFFF, ``seq`` taken modulo 256)."""
    if not 0 <= length <= MAX_FRAME_PAYLOAD:
        raise LocalProtocolError(f"frame length {length} out of range")
    return HEADER.pack(length | ((seq & 0xFF) << 24))


def parse_header(header: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, int]:
    """``(payload_length, sequence_id)`` of the header at ``offset`` (caller guarantees 4 bytes)."""
    word: int = HEADER.unpack_from(header, offset)[0]
    return word & 0xFFFFFF, word >> 24


def frames_needed(length: int) -> int:
    """How many frames a payload of ``length`` bytes takes (an exact multiple of 0xFFFFFF needs a
    trailing empty frame; an empty payload is one empty frame)."""
    if length < 0:
        raise LocalProtocolError(f"negative payload length {length}")
    return length // MAX_FRAME_PAYLOAD + 1


def frame(payload: bytes | bytearray | memoryview, seq: int) -> bytes:
    """Frame one logical packet starting at sequence id ``seq``.

    The next packet of the exchange uses ``(seq + frames_needed(len(payload))) % 256``.
    """
    n = len(payload)
    if n < MAX_FRAME_PAYLOAD:
        return HEADER.pack(n | ((seq & 0xFF) << 24)) + bytes(payload)
    view = memoryview(payload)
    parts: list[bytes | memoryview] = []
    pos = 0
    while True:
        chunk = view[pos : pos + MAX_FRAME_PAYLOAD]
        parts.append(HEADER.pack(len(chunk) | ((seq & 0xFF) << 24)))
        parts.append(chunk)
        seq += 1
        pos += len(chunk)
        if len(chunk) < MAX_FRAME_PAYLOAD:
            break
    return b"".join(parts)


class PacketDecoder:
    """Incremental decoder: bytes in, ``(sequence_id, payload)`` logical packets out.

    ``max_payload`` caps one logical packet; :class:`PacketTooLarge` is raised by :meth:`next_packet` as
    soon as a header announces more than that, before the body is buffered. Frames of one logical packet
    must carry consecutive sequence ids (:class:`PacketsOutOfOrder` otherwise); checking the first frame's
    id against the exchange is the caller's job (it is returned).

    :meth:`feed` never raises; errors surface from :meth:`next_packet` and are final: after one, the
    connection is desynced and the decoder must be dropped.
    """

    __slots__ = ("_buf", "_pos", "last_seq", "max_payload")

    def __init__(self, max_payload: int) -> None:
        if max_payload < 0:
            raise LocalProtocolError(f"max_payload must be >= 0, got {max_payload}")
        self.max_payload = max_payload
        self._buf = bytearray()
        self._pos = 0
        #: Sequence id of the last frame of the last packet returned (== first unless it was split).
        self.last_seq: int | None = None

    def take_rest(self) -> bytes:
        """Remove and return every byte not yet returned as a packet (e.g. TLS bytes that follow a
        MySQL SSLRequest in the same read)."""
        rest = bytes(self._buf[self._pos :])
        self._buf = bytearray()
        self._pos = 0
        return rest

    def clear(self) -> None:
        """Drop every buffered byte and give the memory back (the connection is gone or refused)."""
        self._buf = bytearray()
        self._pos = 0

    def pending_header(self) -> tuple[int, int] | None:
        """``(payload_length, sequence_id)`` announced by the next frame not yet returned, or ``None``
        while fewer than 4 bytes of it arrived: lets a caller refuse a packet before its body arrives."""
        if len(self._buf) - self._pos < HEADER_SIZE:
            return None
        return parse_header(self._buf, self._pos)

    @property
    def empty(self) -> bool:
        """No bytes held (cheaper than ``buffered == 0``)."""
        return self._pos == len(self._buf)

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as part of a packet."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes (``b""`` is a no-op; EOF handling is the caller's)."""
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_packet(self) -> tuple[int, bytes] | None:
        """The next complete logical packet as ``(first_sequence_id, payload)``, or ``None``."""
        buf = self._buf
        start = self._pos
        avail = len(buf)
        if avail - start < HEADER_SIZE:
            return None
        length, seq = parse_header(buf, start)
        if length > self.max_payload:
            raise PacketTooLarge(f"packet of {length} bytes exceeds the limit of {self.max_payload}")
        end = start + HEADER_SIZE + length
        if length < MAX_FRAME_PAYLOAD:
            if end > avail:
                return None
            payload = bytes(buf[start + HEADER_SIZE : end])
            if end == avail and avail >= _KEEP_AT_MOST:
                self._buf = bytearray()
                end = 0
            self._pos = end
            self.last_seq = seq
            return seq, payload
        return self._next_split(start, seq)

    def _next_split(self, start: int, first_seq: int) -> tuple[int, bytes] | None:
        buf = self._buf
        avail = len(buf)
        spans: list[tuple[int, int]] = []
        total = 0
        pos = start
        expected = first_seq
        while True:
            if avail - pos < HEADER_SIZE:
                return None
            length, seq = parse_header(buf, pos)
            if seq != expected:
                raise PacketsOutOfOrder(
                    f"continuation frame has sequence id {seq}, expected {expected}",
                )
            total += length
            if total > self.max_payload:
                raise PacketTooLarge(f"packet of {total}+ bytes exceeds the limit of {self.max_payload}")
            body = pos + HEADER_SIZE
            if body + length > avail:
                return None
            spans.append((body, body + length))
            pos = body + length
            if length < MAX_FRAME_PAYLOAD:
                break
            expected = (expected + 1) & 0xFF
        view = memoryview(buf)
        try:
            payload = b"".join(view[a:b] for a, b in spans)
        finally:
            view.release()
        if pos == avail:
            self._buf = bytearray()
            pos = 0
        self._pos = pos
        self.last_seq = expected
        return first_seq, payload
