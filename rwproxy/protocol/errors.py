"""Protocol errors, split by blame (h11 style), each carrying the ``(errno, sqlstate)`` to answer with.

- :class:`RemoteProtocolError`: the peer sent bytes that break the protocol; the connection is desynced
  and must be dropped (after an ERR packet built from ``errno``/``sqlstate`` where one can still be sent).
- :class:`LocalProtocolError`: our own code asked the codec to build something invalid (a bug).

ERR packet: https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_err_packet.html
"""

from __future__ import annotations

from rwproxy.protocol.constants import ErrorCode, sqlstate_for

__all__ = [
    "LocalProtocolError",
    "MalformedPacket",
    "PacketTooLarge",
    "PacketsOutOfOrder",
    "ProtocolError",
    "RemoteProtocolError",
]


class ProtocolError(Exception):
    """Base class. ``errno``/``sqlstate`` default to the class's own, so ``raise MalformedPacket("...")``
    is enough; pass them explicitly to refine."""

    default_errno: int = ErrorCode.ER_UNKNOWN_ERROR

    def __init__(self, message: str, *, errno: int | None = None, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errno: int = self.default_errno if errno is None else errno
        self.sqlstate: str = sqlstate_for(self.errno) if sqlstate is None else sqlstate

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, errno={self.errno}, sqlstate={self.sqlstate!r})"


class RemoteProtocolError(ProtocolError):
    """The peer violated the protocol (its bytes cannot be understood)."""

    default_errno = ErrorCode.ER_MALFORMED_PACKET


class LocalProtocolError(ProtocolError):
    """We were asked to build or do something the protocol does not allow (a bug on our side)."""

    default_errno = ErrorCode.ER_UNKNOWN_ERROR


class MalformedPacket(RemoteProtocolError):
    """A payload is truncated or inconsistent (1835 ER_MALFORMED_PACKET, HY000)."""

    default_errno = ErrorCode.ER_MALFORMED_PACKET


class PacketsOutOfOrder(RemoteProtocolError):
    """A frame arrived with an unexpected sequence id (1156 ER_NET_PACKETS_OUT_OF_ORDER, 08S01)."""

    default_errno = ErrorCode.ER_NET_PACKETS_OUT_OF_ORDER


class PacketTooLarge(RemoteProtocolError):
    """A logical packet is larger than allowed (1153 ER_NET_PACKET_TOO_LARGE, 08S01)."""

    default_errno = ErrorCode.ER_NET_PACKET_TOO_LARGE
