"""Connection-phase packets: greeting, SSL request, handshake response, auth switch, COM_CHANGE_USER."""

from __future__ import annotations

import contextlib
from dataclasses import asdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
from rwproxy.protocol.constants import Capability as C
from rwproxy.protocol.errors import LocalProtocolError, MalformedPacket, RemoteProtocolError

from .support import fixture_payloads, fixture_text

SALT = bytes(range(0x41, 0x41 + 20))
SERVER_CAPS = int(
    C.LONG_PASSWORD | C.PROTOCOL_41 | C.SECURE_CONNECTION | C.PLUGIN_AUTH | C.TRANSACTIONS | C.CONNECT_WITH_DB
    | C.PLUGIN_AUTH_LENENC_CLIENT_DATA | C.DEPRECATE_EOF | C.SSL | C.CONNECT_ATTRS
)  # fmt: skip
BASE = int(C.PROTOCOL_41 | C.SECURE_CONNECTION)


# --- HandshakeV10 ------------------------------------------------------------------------------------


def test_handshake_round_trip() -> None:
    payload = make_handshake_v10(
        server_version="8.0.36-rwproxy", connection_id=77, auth_plugin_data=SALT, capabilities=SERVER_CAPS,
        auth_plugin_name="caching_sha2_password",
    )  # fmt: skip
    assert payload[0] == 10
    hs = parse_handshake_v10(payload)
    assert hs == HandshakeV10(10, "8.0.36-rwproxy", 77, SALT, SERVER_CAPS, 45, 2, "caching_sha2_password", 0)
    # The reserved bytes stay zero.
    start = len(b"\x0a8.0.36-rwproxy\x00") + 4 + 8 + 1 + 2 + 1 + 2 + 2
    assert payload[start] == 21 and payload[start + 1 : start + 11] == bytes(10)
    assert make_handshake_v10(**asdict(hs)) == payload


def test_handshake_without_plugin_auth() -> None:
    caps = BASE | C.LONG_PASSWORD
    hs = parse_handshake_v10(
        make_handshake_v10(server_version="5.0", connection_id=1, auth_plugin_data=SALT, capabilities=caps)
    )
    assert (hs.auth_plugin_data, hs.auth_plugin_name) == (SALT, "")


def test_handshake_minimal_old_server() -> None:
    # Protocol 10 greeting that stops after the lower capability flags.
    payload = b"\x0a3.23\x00" + b"\x01\x00\x00\x00" + b"12345678" + b"\x00" + b"\x00\x02"
    hs = parse_handshake_v10(payload)
    assert (hs.auth_plugin_data, hs.capabilities, hs.charset) == (b"12345678", 0x200, 0)


def test_handshake_errors() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_handshake_v10(b"\x09abc\x00")
    assert info.value.errno == 1043
    payload = make_handshake_v10(
        server_version="x", connection_id=1, auth_plugin_data=SALT, capabilities=SERVER_CAPS
    )
    for cut in (5, 20, 40):
        with pytest.raises(MalformedPacket):
            parse_handshake_v10(payload[:cut])
    with pytest.raises(LocalProtocolError):
        make_handshake_v10(server_version="x", connection_id=1, auth_plugin_data=b"short", capabilities=0)
    with pytest.raises(LocalProtocolError):
        make_handshake_v10(
            server_version="x",
            connection_id=1,
            auth_plugin_data=SALT,
            capabilities=1,
            mariadb_ext_capabilities=4,
        )


def test_handshake_captured_mariadb() -> None:
    (payload,) = fixture_payloads("mariadb_handshake_v10")
    hs = parse_handshake_v10(payload)
    assert hs.server_version.startswith("5.5.5-10.11.")
    assert hs.auth_plugin_data == bytes.fromhex(fixture_text("salt.txt"))
    assert hs.auth_plugin_name == "mysql_native_password"
    assert not hs.capabilities & C.LONG_PASSWORD  # MariaDB's marker
    assert hs.capabilities & C.PROTOCOL_41 and hs.capabilities & C.PLUGIN_AUTH
    assert hs.mariadb_ext_capabilities != 0
    assert make_handshake_v10(**asdict(hs)) == payload


# --- SSLRequest / HandshakeResponse41 ------------------------------------------------------------------


def test_ssl_request() -> None:
    payload = make_ssl_request(BASE, 1 << 24, 45)
    assert len(payload) == 32
    assert parse_handshake_response(payload) == SslRequest(BASE | C.SSL, 1 << 24, 45)


LONG_AUTH = b"\x01" * 300  # needs the int<lenenc> length
RESPONSES = [
    {"capabilities": BASE | C.PLUGIN_AUTH_LENENC_CLIENT_DATA, "username": "u", "auth_response": LONG_AUTH},
    {"capabilities": BASE, "username": "app", "auth_response": SALT},
    {"capabilities": int(C.PROTOCOL_41), "username": "old", "auth_response": b"scramble"},
    {"capabilities": BASE | C.CONNECT_WITH_DB, "username": "u", "auth_response": b"", "database": "shop"},
    {"capabilities": BASE | C.PLUGIN_AUTH, "username": "u", "auth_response": SALT,
     "auth_plugin_name": "caching_sha2_password"},
    {"capabilities": BASE | C.PLUGIN_AUTH | C.CONNECT_WITH_DB | C.CONNECT_ATTRS | C.SSL, "username": "ünï",
     "auth_response": SALT, "database": "d", "auth_plugin_name": "mysql_native_password",
     "connect_attrs": {"_client_name": "x", "program_name": "é"}},
    {"capabilities": BASE | C.ZSTD_COMPRESSION_ALGORITHM, "username": "z", "auth_response": b"",
     "zstd_compression_level": 7},
]  # fmt: skip


@pytest.mark.parametrize("fields", RESPONSES)
def test_handshake_response_round_trip(fields: dict[str, object]) -> None:
    payload = make_handshake_response(**fields)  # type: ignore[arg-type]
    response = parse_handshake_response(payload)
    assert isinstance(response, HandshakeResponse41)
    expected = {
        "database": None,
        "auth_plugin_name": None,
        "connect_attrs": {},
        "zstd_compression_level": None,
    }
    expected.update(fields)
    got = asdict(response)
    assert {k: got[k] for k in expected} == expected
    assert make_handshake_response(**{k: v for k, v in got.items()}) == payload
    # Every truncation is malformed, never anything else (the optional tail may legitimately end early).
    for cut in range(len(payload)):
        with contextlib.suppress(MalformedPacket):
            parse_handshake_response(payload[:cut])


def test_handshake_response_tolerates_missing_nul_at_end() -> None:
    payload = make_handshake_response(capabilities=BASE | C.PLUGIN_AUTH, username="u", auth_plugin_name="p")
    response = parse_handshake_response(payload[:-1])
    assert isinstance(response, HandshakeResponse41) and response.auth_plugin_name == "p"


def test_pre41_client_rejected() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_handshake_response(b"\x85\x00\x00\x00\x00root\x00scramble")
    assert (info.value.errno, info.value.sqlstate) == (1043, "08S01")
    with pytest.raises(LocalProtocolError):
        make_handshake_response(capabilities=0, username="x")


def test_make_handshake_response_limits() -> None:
    with pytest.raises(LocalProtocolError):
        make_handshake_response(capabilities=BASE, username="u", auth_response=b"x" * 256)
    with pytest.raises(LocalProtocolError):
        make_handshake_response(capabilities=int(C.PROTOCOL_41), username="u", auth_response=b"a\x00b")


def test_handshake_response_captured_pymysql() -> None:
    (payload,) = fixture_payloads("pymysql_handshake_response")
    response = parse_handshake_response(payload)
    assert isinstance(response, HandshakeResponse41)
    assert (response.username, response.database, response.auth_plugin_name) == (
        "rw", "rwtest", "mysql_native_password",
    )  # fmt: skip
    assert len(response.auth_response) == 20
    assert response.connect_attrs["_client_name"] == "pymysql"
    assert make_handshake_response(**asdict(response)) == payload


def test_handshake_response_captured_mariadb_cli() -> None:
    (payload,) = fixture_payloads("mariadb_cli_handshake_response")
    response = parse_handshake_response(payload)
    assert isinstance(response, HandshakeResponse41)
    assert response.username == "rw" and response.database == "rwtest"
    assert response.capabilities & C.CONNECT_ATTRS and response.capabilities & C.SESSION_TRACK
    assert response.connect_attrs["_client_name"] == "libmariadb"
    assert response.connect_attrs["program_name"] == "mysql"
    assert make_handshake_response(**asdict(response)) == payload


# --- auth switch / more data ---------------------------------------------------------------------------


def test_auth_switch_round_trip() -> None:
    payload = make_auth_switch_request("mysql_native_password", SALT + b"\x00")
    assert payload == b"\xfemysql_native_password\x00" + SALT + b"\x00"
    assert parse_auth_switch_request(payload) == AuthSwitchRequest("mysql_native_password", SALT + b"\x00")
    with pytest.raises(MalformedPacket):
        parse_auth_switch_request(b"\x01abc")
    with pytest.raises(MalformedPacket):
        parse_auth_switch_request(b"\xfeabc")


def test_auth_more_data_round_trip() -> None:
    assert make_auth_more_data(b"\x04") == b"\x01\x04"
    assert parse_auth_more_data(b"\x01-----BEGIN") == b"-----BEGIN"
    with pytest.raises(MalformedPacket):
        parse_auth_more_data(b"\x02")


# --- COM_CHANGE_USER -------------------------------------------------------------------------------


CHANGE_USERS = [
    (BASE, {"username": "u", "auth_response": SALT, "database": "db", "charset": None}),
    (BASE, {"username": "u", "auth_response": b"", "database": None, "charset": 33}),
    (int(C.PROTOCOL_41), {"username": "u", "auth_response": b"old", "database": "x", "charset": None}),
    (BASE | C.PLUGIN_AUTH | C.CONNECT_ATTRS,
     {"username": "u", "auth_response": SALT, "database": None, "charset": 45,
      "auth_plugin_name": "mysql_native_password", "connect_attrs": {"a": "b"}}),
]  # fmt: skip


@pytest.mark.parametrize(("caps", "fields"), CHANGE_USERS)
def test_change_user_round_trip(caps: int, fields: dict[str, object]) -> None:
    payload = make_com_change_user(caps, **fields)  # type: ignore[arg-type]
    assert payload[0] == 0x11
    change = parse_com_change_user(payload, caps)
    expected = {"auth_plugin_name": None, "connect_attrs": {}, **fields}
    assert asdict(change) == expected
    assert make_com_change_user(caps, **asdict(change)) == payload


def test_change_user_errors() -> None:
    with pytest.raises(MalformedPacket):
        parse_com_change_user(b"\x03u\x00", BASE)
    with pytest.raises(MalformedPacket):
        parse_com_change_user(b"\x11u\x00\x14abc", BASE)
    with pytest.raises(LocalProtocolError):
        make_com_change_user(BASE, username="u", auth_response=b"x" * 256)
    with pytest.raises(LocalProtocolError):
        make_com_change_user(BASE | C.PLUGIN_AUTH, username="u", charset=None, auth_plugin_name="p")
    assert parse_com_change_user(b"\x11u\x00\x00db\x00", BASE) == ChangeUser("u", b"", "db", None, None, {})


# --- fuzz --------------------------------------------------------------------------------------------


@given(st.binary(max_size=80))
def test_handshake_parsers_on_garbage(data: bytes) -> None:
    for parse in (
        parse_handshake_v10,
        parse_handshake_response,
        parse_auth_switch_request,
        parse_auth_more_data,
    ):
        with contextlib.suppress(RemoteProtocolError):
            parse(data)
    for caps in (0, BASE, SERVER_CAPS):
        with contextlib.suppress(RemoteProtocolError):
            parse_com_change_user(b"\x11" + data, caps)


CAPTURED = ["mariadb_handshake_v10", "pymysql_handshake_response", "mariadb_cli_handshake_response"]


@given(st.sampled_from(CAPTURED), st.data())
def test_handshake_parsers_on_mutated_captures(name: str, data: st.DataObject) -> None:
    (payload,) = fixture_payloads(name)
    mutated = bytearray(payload[: data.draw(st.integers(0, len(payload)))])
    for _ in range(data.draw(st.integers(0, 3))):
        if mutated:
            mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
    for parse in (parse_handshake_v10, parse_handshake_response):
        with contextlib.suppress(RemoteProtocolError):
            parse(bytes(mutated))
