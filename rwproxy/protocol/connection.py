"""Connection-phase packets: handshake, SSL request, handshake response, auth switch, COM_CHANGE_USER.

https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html

Re-exported by :mod:`rwproxy.protocol.packets`. Same conventions: frozen slotted dataclasses, pure
``parse_*``/``make_*`` functions, capabilities passed in, text as UTF-8 with ``surrogateescape``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rwproxy.protocol.constants import UTF8MB4_GENERAL_CI, Capability, Command, ErrorCode, ServerStatus
from rwproxy.protocol.errors import LocalProtocolError, MalformedPacket, RemoteProtocolError
from rwproxy.protocol.wire import (
    Buffer,
    read_str_fixed,
    read_str_lenenc,
    read_str_null,
    read_str_rest,
    read_uint1,
    read_uint2,
    read_uint4,
    read_uint_lenenc,
    str_lenenc,
    str_null,
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
    "HandshakeResponse41",
    "HandshakeV10",
    "SslRequest",
    "make_auth_more_data",
    "make_auth_switch_request",
    "make_com_change_user",
    "make_handshake_response",
    "make_handshake_v10",
    "make_ssl_request",
    "parse_auth_more_data",
    "parse_auth_switch_request",
    "parse_com_change_user",
    "parse_handshake_response",
    "parse_handshake_v10",
]

_SSL_REQUEST_SIZE = 32
_DEFAULT_MAX_PACKET = 1 << 24


def _read_str_null_or_rest(buf: Buffer, pos: int) -> tuple[bytes, int]:
    """``string<NUL>``, tolerating a missing terminator at the end of the packet (old libmysql)."""
    try:
        return read_str_null(buf, pos)
    except MalformedPacket:
        return read_str_rest(buf, pos)


def _read_connect_attrs(buf: Buffer, pos: int) -> tuple[dict[str, str], int]:
    total, pos = read_uint_lenenc(buf, pos)
    block, pos = read_str_fixed(buf, pos, total)
    attrs: dict[str, str] = {}
    p = 0
    while p < len(block):
        key, p = read_str_lenenc(block, p)
        value, p = read_str_lenenc(block, p)
        attrs[_dec(key)] = _dec(value)
    return attrs, pos


def _connect_attrs(attrs: dict[str, str]) -> bytes:
    body = b"".join(str_lenenc(_enc(k)) + str_lenenc(_enc(v)) for k, v in attrs.items())
    return uint_lenenc(len(body)) + body


# --- Protocol::HandshakeV10 --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HandshakeV10:
    """Protocol::HandshakeV10, the server's greeting.

    ``auth_plugin_data`` is the whole scramble (20 bytes from MySQL/MariaDB) without the NUL the packet
    appends; ``capabilities`` is the full 32-bit set. MariaDB clears ``CLIENT_LONG_PASSWORD`` (its
    ``CLIENT_MYSQL``) and puts its extended capabilities in the last 4 reserved bytes:
    ``mariadb_ext_capabilities`` (0 otherwise).

    https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase_packets_protocol_handshake_v10.html
    """

    protocol_version: int
    server_version: str
    connection_id: int
    auth_plugin_data: bytes
    capabilities: int
    charset: int
    status_flags: int
    auth_plugin_name: str
    mariadb_ext_capabilities: int = 0


def parse_handshake_v10(payload: Buffer) -> HandshakeV10:
    """Parse the server greeting (protocol version 10 only)."""
    version, pos = read_uint1(payload, 0)
    if version != 10:
        raise RemoteProtocolError(
            f"unsupported handshake protocol version {version}", errno=ErrorCode.ER_HANDSHAKE_ERROR
        )
    server_version, pos = read_str_null(payload, pos)
    connection_id, pos = read_uint4(payload, pos)
    data, pos = read_str_fixed(payload, pos, 8)
    _, pos = read_uint1(payload, pos)  # filler
    capabilities, pos = read_uint2(payload, pos)
    charset = status_flags = ext_caps = 0
    plugin = b""
    if pos < len(payload):
        charset, pos = read_uint1(payload, pos)
        status_flags, pos = read_uint2(payload, pos)
        cap_hi, pos = read_uint2(payload, pos)
        capabilities |= cap_hi << 16
        data_len, pos = read_uint1(payload, pos)
        reserved, pos = read_str_fixed(payload, pos, 10)
        if not capabilities & Capability.LONG_PASSWORD:
            ext_caps = int.from_bytes(reserved[6:], "little")
        if capabilities & Capability.SECURE_CONNECTION:
            part2, pos = read_str_fixed(payload, pos, max(13, data_len - 8))
            data += part2
            if data_len:
                data = data[: max(data_len, 8)]
            if data.endswith(b"\x00"):
                data = data[:-1]
        if capabilities & Capability.PLUGIN_AUTH:
            plugin, pos = _read_str_null_or_rest(payload, pos)
    return HandshakeV10(
        version,
        _dec(server_version),
        connection_id,
        data,
        capabilities,
        charset,
        status_flags,
        _dec(plugin),
        ext_caps,
    )


def make_handshake_v10(
    *,
    server_version: str,
    connection_id: int,
    auth_plugin_data: bytes,
    capabilities: int,
    charset: int = UTF8MB4_GENERAL_CI,
    status_flags: int = ServerStatus.AUTOCOMMIT,
    auth_plugin_name: str = "mysql_native_password",
    protocol_version: int = 10,
    mariadb_ext_capabilities: int = 0,
) -> bytes:
    """Build the server greeting. The 10 reserved bytes stay zero unless ``mariadb_ext_capabilities``
    is given (only meaningful without ``CLIENT_LONG_PASSWORD``; used to re-encode MariaDB greetings)."""
    if len(auth_plugin_data) < 8:
        raise LocalProtocolError("auth_plugin_data must be at least 8 bytes")
    if mariadb_ext_capabilities and capabilities & Capability.LONG_PASSWORD:
        raise LocalProtocolError("MariaDB extended capabilities need CLIENT_LONG_PASSWORD cleared")
    plugin_auth = bool(capabilities & Capability.PLUGIN_AUTH)
    parts = [
        uint1(protocol_version),
        str_null(_enc(server_version)),
        uint4(connection_id),
        auth_plugin_data[:8],
        b"\x00",
        uint2(capabilities & 0xFFFF),
        uint1(charset & 0xFF),
        uint2(status_flags),
        uint2(capabilities >> 16),
        uint1(len(auth_plugin_data) + 1 if plugin_auth else 0),
        bytes(6) + uint4(mariadb_ext_capabilities),
    ]
    if capabilities & Capability.SECURE_CONNECTION:
        parts.append((auth_plugin_data[8:] + b"\x00").ljust(13, b"\x00"))
    if plugin_auth:
        parts.append(str_null(_enc(auth_plugin_name)))
    return b"".join(parts)


# --- Protocol::SSLRequest / Protocol::HandshakeResponse41 --------------------------------------------


@dataclass(frozen=True, slots=True)
class SslRequest:
    """Protocol::SSLRequest: the 32-byte prefix of a handshake response, sent before the TLS handshake.

    https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase_packets_protocol_ssl_request.html
    """

    capabilities: int
    max_packet_size: int
    charset: int
    mariadb_ext_capabilities: int = 0


@dataclass(frozen=True, slots=True)
class HandshakeResponse41:
    """Protocol::HandshakeResponse41.

    ``database`` is ``None`` without ``CLIENT_CONNECT_WITH_DB``; ``auth_plugin_name`` is ``None`` without
    ``CLIENT_PLUGIN_AUTH``; ``zstd_compression_level`` is set only with
    ``CLIENT_ZSTD_COMPRESSION_ALGORITHM``. ``mariadb_ext_capabilities`` is what a MariaDB client puts in the
    last 4 filler bytes when the greeting was MariaDB-style (0 otherwise); the same holds for
    :class:`SslRequest`.

    https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase_packets_protocol_handshake_response.html
    """

    capabilities: int
    max_packet_size: int
    charset: int
    username: str
    auth_response: bytes
    database: str | None
    auth_plugin_name: str | None
    connect_attrs: dict[str, str] = field(default_factory=dict)
    zstd_compression_level: int | None = None
    mariadb_ext_capabilities: int = 0


def _read_fixed_prefix(payload: Buffer) -> tuple[int, int, int, int, int]:
    capabilities, pos = read_uint2(payload, 0)
    if not capabilities & Capability.PROTOCOL_41:
        raise RemoteProtocolError(
            "pre-4.1 client (no CLIENT_PROTOCOL_41) is not supported", errno=ErrorCode.ER_HANDSHAKE_ERROR
        )
    capabilities, pos = read_uint4(payload, 0)
    max_packet_size, pos = read_uint4(payload, pos)
    charset, pos = read_uint1(payload, pos)
    _, pos = read_str_fixed(payload, pos, 19)  # filler
    ext_caps, pos = read_uint4(payload, pos)  # MariaDB: extended capabilities; else filler
    return capabilities, max_packet_size, charset, ext_caps, pos


def parse_handshake_response(payload: Buffer) -> SslRequest | HandshakeResponse41:
    """Parse the client's answer to the greeting: an :class:`SslRequest` (32 bytes with ``CLIENT_SSL``)
    or a :class:`HandshakeResponse41`. Pre-4.1 clients raise :class:`RemoteProtocolError` (1043).

    The auth response is read per the client's flags: ``int<lenenc>`` length with
    ``PLUGIN_AUTH_LENENC_CLIENT_DATA``, a 1-byte length with ``SECURE_CONNECTION``, else NUL-terminated.
    """
    capabilities, max_packet_size, charset, ext_caps, pos = _read_fixed_prefix(payload)
    if len(payload) == _SSL_REQUEST_SIZE and capabilities & Capability.SSL:
        return SslRequest(capabilities, max_packet_size, charset, ext_caps)
    username, pos = read_str_null(payload, pos)
    if capabilities & Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA:
        auth_response, pos = read_str_lenenc(payload, pos)
    elif capabilities & Capability.SECURE_CONNECTION:
        n, pos = read_uint1(payload, pos)
        auth_response, pos = read_str_fixed(payload, pos, n)
    else:
        auth_response, pos = read_str_null(payload, pos)
    database: str | None = None
    plugin: str | None = None
    attrs: dict[str, str] = {}
    zstd_level: int | None = None
    if capabilities & Capability.CONNECT_WITH_DB and pos < len(payload):
        raw_db, pos = _read_str_null_or_rest(payload, pos)
        database = _dec(raw_db)
    if capabilities & Capability.PLUGIN_AUTH and pos < len(payload):
        raw_plugin, pos = _read_str_null_or_rest(payload, pos)
        plugin = _dec(raw_plugin)
    if capabilities & Capability.CONNECT_ATTRS and pos < len(payload):
        attrs, pos = _read_connect_attrs(payload, pos)
    if capabilities & Capability.ZSTD_COMPRESSION_ALGORITHM and pos < len(payload):
        zstd_level, pos = read_uint1(payload, pos)
    return HandshakeResponse41(
        capabilities,
        max_packet_size,
        charset,
        _dec(username),
        auth_response,
        database,
        plugin,
        attrs,
        zstd_level,
        ext_caps,
    )


def make_ssl_request(
    capabilities: int,
    max_packet_size: int = _DEFAULT_MAX_PACKET,
    charset: int = UTF8MB4_GENERAL_CI,
    mariadb_ext_capabilities: int = 0,
) -> bytes:
    """Build an SSLRequest (``CLIENT_SSL`` is added to ``capabilities``)."""
    capabilities |= Capability.SSL | Capability.PROTOCOL_41
    return _fixed_prefix(capabilities, max_packet_size, charset, mariadb_ext_capabilities)


def _fixed_prefix(capabilities: int, max_packet_size: int, charset: int, ext_caps: int) -> bytes:
    return uint4(capabilities) + uint4(max_packet_size) + uint1(charset) + bytes(19) + uint4(ext_caps)


def make_handshake_response(
    *,
    capabilities: int,
    username: str,
    auth_response: bytes = b"",
    database: str | None = None,
    auth_plugin_name: str | None = None,
    connect_attrs: dict[str, str] | None = None,
    max_packet_size: int = _DEFAULT_MAX_PACKET,
    charset: int = UTF8MB4_GENERAL_CI,
    zstd_compression_level: int | None = None,
    mariadb_ext_capabilities: int = 0,
) -> bytes:
    """Build a HandshakeResponse41 (used by tests and backend-side code).

    Optional fields are written when their capability flag is set (``None`` as an empty string).
    """
    if not capabilities & Capability.PROTOCOL_41:
        raise LocalProtocolError("HandshakeResponse41 needs CLIENT_PROTOCOL_41")
    parts = [
        _fixed_prefix(capabilities, max_packet_size, charset, mariadb_ext_capabilities),
        str_null(_enc(username)),
    ]
    if capabilities & Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA:
        parts.append(str_lenenc(auth_response))
    elif capabilities & Capability.SECURE_CONNECTION:
        if len(auth_response) > 255:
            raise LocalProtocolError("auth response over 255 bytes needs PLUGIN_AUTH_LENENC_CLIENT_DATA")
        parts.append(uint1(len(auth_response)) + auth_response)
    else:
        parts.append(str_null(auth_response))
    if capabilities & Capability.CONNECT_WITH_DB:
        parts.append(str_null(_enc(database or "")))
    if capabilities & Capability.PLUGIN_AUTH:
        parts.append(str_null(_enc(auth_plugin_name or "")))
    if capabilities & Capability.CONNECT_ATTRS:
        parts.append(_connect_attrs(connect_attrs or {}))
    if capabilities & Capability.ZSTD_COMPRESSION_ALGORITHM:
        parts.append(uint1(3 if zstd_compression_level is None else zstd_compression_level))
    return b"".join(parts)


# --- auth switch / more data -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthSwitchRequest:
    """Protocol::AuthSwitchRequest (0xFE, plugin name, plugin data — usually the scramble plus NUL).

    https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase_packets_protocol_auth_switch_request.html
    """

    plugin_name: str
    data: bytes


def make_auth_switch_request(plugin_name: str, data: bytes) -> bytes:
    """Build an AuthSwitchRequest; ``data`` is sent as is (append the NUL yourself: MySQL does)."""
    return b"\xfe" + str_null(_enc(plugin_name)) + data


def parse_auth_switch_request(payload: Buffer) -> AuthSwitchRequest:
    """Parse an AuthSwitchRequest."""
    header, pos = read_uint1(payload, 0)
    if header != 0xFE:
        raise MalformedPacket(f"not an AuthSwitchRequest: header 0x{header:02x}")
    name, pos = read_str_null(payload, pos)
    data, pos = read_str_rest(payload, pos)
    return AuthSwitchRequest(_dec(name), data)


def make_auth_more_data(data: bytes) -> bytes:
    """Protocol::AuthMoreData: 0x01 then plugin data.

    https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase_packets_protocol_auth_more_data.html
    """
    return b"\x01" + data


def parse_auth_more_data(payload: Buffer) -> bytes:
    """The plugin data of an AuthMoreData packet."""
    header, pos = read_uint1(payload, 0)
    if header != 0x01:
        raise MalformedPacket(f"not an AuthMoreData packet: header 0x{header:02x}")
    return read_str_rest(payload, pos)[0]


# --- COM_CHANGE_USER ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChangeUser:
    """COM_CHANGE_USER. ``database`` is ``None`` for an empty name; ``charset`` and ``auth_plugin_name``
    are ``None`` when the client did not send them.

    https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_change_user.html
    """

    username: str
    auth_response: bytes
    database: str | None
    charset: int | None
    auth_plugin_name: str | None
    connect_attrs: dict[str, str] = field(default_factory=dict)


def parse_com_change_user(payload: Buffer, capabilities: int) -> ChangeUser:
    """Parse COM_CHANGE_USER (command byte included) sent by a client with ``capabilities``."""
    command, pos = read_uint1(payload, 0)
    if command != Command.CHANGE_USER:
        raise MalformedPacket(f"not a COM_CHANGE_USER: command 0x{command:02x}")
    username, pos = read_str_null(payload, pos)
    if capabilities & Capability.SECURE_CONNECTION:
        n, pos = read_uint1(payload, pos)
        auth_response, pos = read_str_fixed(payload, pos, n)
    else:
        auth_response, pos = read_str_null(payload, pos)
    database, pos = _read_str_null_or_rest(payload, pos)
    charset: int | None = None
    plugin: str | None = None
    attrs: dict[str, str] = {}
    if pos < len(payload):
        charset, pos = read_uint2(payload, pos)
    if capabilities & Capability.PLUGIN_AUTH and pos < len(payload):
        raw_plugin, pos = _read_str_null_or_rest(payload, pos)
        plugin = _dec(raw_plugin)
    if capabilities & Capability.CONNECT_ATTRS and pos < len(payload):
        attrs, pos = _read_connect_attrs(payload, pos)
    return ChangeUser(_dec(username), auth_response, _dec(database) or None, charset, plugin, attrs)


def make_com_change_user(
    capabilities: int,
    *,
    username: str,
    auth_response: bytes = b"",
    database: str | None = None,
    charset: int | None = UTF8MB4_GENERAL_CI,
    auth_plugin_name: str | None = None,
    connect_attrs: dict[str, str] | None = None,
) -> bytes:
    """Build COM_CHANGE_USER (command byte included). The trailing fields are written only when the
    ones before them are (``charset`` first, then plugin name, then attributes)."""
    parts = [uint1(Command.CHANGE_USER), str_null(_enc(username))]
    if capabilities & Capability.SECURE_CONNECTION:
        if len(auth_response) > 255:
            raise LocalProtocolError("COM_CHANGE_USER auth response longer than 255 bytes")
        parts.append(uint1(len(auth_response)) + auth_response)
    else:
        parts.append(str_null(auth_response))
    parts.append(str_null(_enc(database or "")))
    if charset is not None:
        parts.append(uint2(charset))
        if capabilities & Capability.PLUGIN_AUTH and auth_plugin_name is not None:
            parts.append(str_null(_enc(auth_plugin_name)))
            if capabilities & Capability.CONNECT_ATTRS and connect_attrs is not None:
                parts.append(_connect_attrs(connect_attrs))
    elif auth_plugin_name is not None or connect_attrs:
        raise LocalProtocolError("COM_CHANGE_USER plugin name / attributes need a charset before them")
    return b"".join(parts)
