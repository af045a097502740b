"""Sans-I/O MySQL client/server protocol codec: bytes in, packets and decisions out.

This package contains no networking code at all: no sockets, no asyncio, no clock. The caller reads
bytes, feeds them to a :class:`~rwproxy.protocol.framing.PacketDecoder`, parses payloads with the
``parse_*`` functions, builds replies with ``make_*`` and frames them with
:func:`~rwproxy.protocol.framing.frame`.

https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basics.html
"""

from rwproxy.protocol.auth import (
    AuthFailed,
    AuthFailReason,
    AuthOk,
    AuthStep,
    RsaKeyPair,
    SendMore,
    ServerAuthenticator,
    UserCredential,
)
from rwproxy.protocol.constants import (
    SQLSTATE,
    UTF8MB4_GENERAL_CI,
    Capability,
    ColumnType,
    Command,
    ErrorCode,
    ServerStatus,
)
from rwproxy.protocol.errors import (
    LocalProtocolError,
    MalformedPacket,
    PacketsOutOfOrder,
    PacketTooLarge,
    ProtocolError,
    RemoteProtocolError,
)
from rwproxy.protocol.framing import PacketDecoder, frame, frames_needed

__all__ = [
    "SQLSTATE",
    "UTF8MB4_GENERAL_CI",
    "AuthFailReason",
    "AuthFailed",
    "AuthOk",
    "AuthStep",
    "Capability",
    "ColumnType",
    "Command",
    "ErrorCode",
    "LocalProtocolError",
    "MalformedPacket",
    "PacketDecoder",
    "PacketTooLarge",
    "PacketsOutOfOrder",
    "ProtocolError",
    "RemoteProtocolError",
    "RsaKeyPair",
    "SendMore",
    "ServerAuthenticator",
    "ServerStatus",
    "UserCredential",
    "frame",
    "frames_needed",
]
