"""A client that negotiated CLIENT_QUERY_ATTRIBUTES, with in-memory transports (no sockets): what the
backends receive (never the attribute bytes), where the attributes route, and what is offered."""

from __future__ import annotations

from rwproxy.app import advertised_capabilities
from rwproxy.backend.connection import _BASE_FLAGS, ALIGNED_FLAGS, BackendConnection
from rwproxy.frontend.query_attributes import QUERY_ATTRIBUTES
from rwproxy.frontend.session import ClientSession
from rwproxy.protocol.constants import Capability
from rwproxy.protocol.framing import frame
from rwproxy.protocol.wire import str_lenenc

from .test_flow_control import CAPS, FakeTransport, resultset, wired

QA = int(Capability.QUERY_ATTRIBUTES)
MARIADB_CAPS = 0xF7FFFFFE & ~QA  # what MariaDB 10.11 offers: no query attributes


def _attr(name: bytes, value: bytes) -> bytes:
    """The COM_QUERY prefix for one string attribute."""
    return b"\x01\x01\x00\x01\xfe\x00" + str_lenenc(name) + str_lenenc(value)


def _with_primary(session: ClientSession) -> FakeTransport:
    conn = BackendConnection(
        node_name="p",
        pool_key=(),
        client_flags=CAPS,
        server_capabilities=CAPS,
        server_version="10.11",
        thread_id=2,
        status_flags=2,
    )
    transport = FakeTransport()
    conn.transport = transport
    session.conns["p"] = conn
    return transport


def test_offered_to_clients_whatever_the_backend_never_asked_of_a_backend() -> None:
    assert advertised_capabilities(MARIADB_CAPS, tls=False, local_infile=False) & QA
    assert advertised_capabilities(0xFFFFFFFF, tls=False, local_infile=False) & QA
    assert not (ALIGNED_FLAGS | _BASE_FLAGS) & QA  # open_backend's flags can never carry it
    assert QUERY_ATTRIBUTES == QA  # the literal the command path tests


async def test_the_backend_gets_the_plain_query() -> None:
    session, conn, replica = wired()
    session.client_flags = CAPS | QA
    session.data_received(frame(b"\x03\x00\x01SELECT c FROM t", 0))
    assert bytes(replica.data) == frame(b"\x03SELECT c FROM t", 0)
    conn.data_received(b"".join(resultset(1)))
    assert not session.busy


async def test_route_attribute_sends_a_read_to_the_primary() -> None:
    session, _conn, replica = wired()
    primary = _with_primary(session)
    session.client_flags = CAPS | QA
    session.data_received(frame(b"\x03" + _attr(b"rwproxy_route", b"primary") + b"SELECT c FROM t", 0))
    assert bytes(primary.data) == frame(b"\x03SELECT c FROM t", 0)
    assert not replica.data
    assert [r.name for _, r in session.app.stats.routes] == ["HINT_PRIMARY"]


async def test_other_attributes_do_not_change_the_route() -> None:
    session, _conn, replica = wired()
    primary = _with_primary(session)
    session.client_flags = CAPS | QA
    session.data_received(frame(b"\x03" + _attr(b"traceparent", b"00-1-2-01") + b"SELECT c FROM t", 0))
    assert bytes(replica.data) == frame(b"\x03SELECT c FROM t", 0)
    assert not primary.data


async def test_a_malformed_prefix_is_an_error_and_the_session_goes_on() -> None:
    session, _conn, replica = wired()
    session.client_flags = CAPS | QA
    session.data_received(frame(b"\x03\x00\x07SELECT c FROM t", 0))  # parameter_set_count 7
    client = session.transport
    assert b"Malformed COM_QUERY query attributes" in bytes(client.data)  # type: ignore[union-attr]
    assert not replica.data and not session.closed and not session.busy
    session.data_received(frame(b"\x03\x00\x01SELECT c FROM t", 0))
    assert bytes(replica.data) == frame(b"\x03SELECT c FROM t", 0)


async def test_a_client_without_the_flag_is_relayed_byte_for_byte() -> None:
    session, _conn, replica = wired()
    primary = _with_primary(session)
    packet = frame(b"\x03\x00\x01SELECT c FROM t", 0)  # no flag: these bytes are SQL text
    session.data_received(packet)
    assert bytes(replica.data) + bytes(primary.data) == packet


def test_the_offer_can_be_switched_off() -> None:
    from rwproxy.app import ProxyApp
    from rwproxy.config import parse_config

    from .test_flow_control import CONFIG

    assert ProxyApp(parse_config(CONFIG)).server_capabilities & QA
    off = ProxyApp(parse_config("[proxy]\nquery_attributes = false\n" + CONFIG))
    assert not off.server_capabilities & QA
    assert type(off.server_capabilities) is int  # tested per command: a plain int, not an IntFlag
    assert not advertised_capabilities(0xFFFFFFFF, tls=False, local_infile=False, query_attributes=False) & QA
