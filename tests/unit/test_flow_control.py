"""Backpressure between a slow client and a backend, with in-memory transports (no sockets)."""

from __future__ import annotations

import asyncio

from rwproxy.app import ProxyApp
from rwproxy.backend.connection import BackendConnection
from rwproxy.config import parse_config
from rwproxy.frontend.session import _COMMAND, ClientSession
from rwproxy.protocol.constants import Capability
from rwproxy.protocol.framing import frame
from tests.support.builders import config_text, server

CONFIG = config_text(
    servers=[
        server("p", "127.0.0.1", port=3306, role="primary"),
        server("r", "127.0.0.1", port=3307, role="replica"),
    ]
)
CAPS = int(Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.TRANSACTIONS)
COLDEF = b"\x03def\x00\x00\x00\x01c\x01c\x0c\x08\x00\x0b\x00\x00\x00\x03\x00\x00\x00\x00"
EOF_ = b"\xfe\x00\x00\x02\x00"


def resultset(rows: int) -> list[bytes]:
    out = [frame(b"\x01", 1), frame(COLDEF, 2), frame(EOF_, 3)]
    out += [frame(b"\x03abc", 4 + i) for i in range(rows)]
    out.append(frame(EOF_, 4 + rows))
    return out


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()
        self.paused = False

    def write(self, data) -> None:  # type: ignore[no-untyped-def]
        self.data += data

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name, default=None):  # type: ignore[no-untyped-def]
        return ("127.0.0.1", 1) if name == "peername" else default

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


def wired() -> tuple[ClientSession, BackendConnection, FakeTransport]:
    app = ProxyApp(parse_config(CONFIG))
    session = ClientSession(app)
    session.transport = FakeTransport()
    session.phase = _COMMAND
    session.user = "app"
    session.client_flags = CAPS
    conn = BackendConnection(
        node_name="r",
        pool_key=(),
        client_flags=CAPS,
        server_capabilities=CAPS,
        server_version="10.11",
        thread_id=1,
        status_flags=2,
    )
    backend = FakeTransport()
    conn.transport = backend
    session.conns["r"] = conn
    return session, conn, backend


async def test_backend_paused_while_client_is_slow_and_resumed_after_the_response_ended() -> None:
    session, conn, backend = wired()
    session.data_received(frame(b"\x03SELECT c FROM t", 0))
    assert session.busy and backend.data.endswith(b"SELECT c FROM t")
    packets = resultset(10)
    conn.data_received(b"".join(packets[:5]))
    session.pause_writing()  # the client's buffer is full
    assert backend.paused
    conn.data_received(b"".join(packets[5:]))  # the response ends while the client is paused
    assert not session.busy
    session.resume_writing()
    assert not backend.paused, "a backend paused for a slow client must be resumed after its response ended"
    # The next statement on the same backend is read normally.
    session.data_received(frame(b"\x03SELECT c FROM t", 0))
    conn.data_received(b"".join(resultset(1)))
    assert not session.busy


async def test_new_statement_while_client_still_slow_is_held_then_released() -> None:
    session, _conn, backend = wired()
    session.pause_writing()
    session.data_received(frame(b"\x03SELECT c FROM t", 0))
    assert backend.paused  # no reading ahead for a client that is not reading
    session.resume_writing()
    assert not backend.paused


def test_relay_is_byte_exact_across_arbitrary_chunking() -> None:
    async def run() -> None:
        for chunk in (1, 3, 7, 64, 10_000):
            session, conn, _ = wired()
            session.data_received(frame(b"\x03SELECT c FROM t", 0))
            stream = b"".join(resultset(50))
            for i in range(0, len(stream), chunk):
                conn.data_received(stream[i : i + chunk])
            assert bytes(session.transport.data) == stream  # type: ignore[union-attr]
            assert not session.busy

    asyncio.run(run())
