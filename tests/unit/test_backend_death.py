"""A backend lost in the middle of a result (in-memory transports): between rows the client gets an
ERR packet naming the server and the session goes on; where no packet can end the result, it closes."""

from __future__ import annotations

import asyncio

import pytest

from rwproxy.protocol.framing import PacketDecoder, frame
from tests.unit.test_flow_control import FakeTransport, resultset, wired


@pytest.fixture(autouse=True)
def _closable(monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[FakeTransport] = []
    monkeypatch.setattr(FakeTransport, "close", lambda self: closed.append(self), raising=False)
    monkeypatch.setattr(FakeTransport, "abort", lambda self: closed.append(self), raising=False)


def _packets(data: bytes) -> list[tuple[int, bytes]]:
    decoder = PacketDecoder(1 << 24)
    decoder.feed(data)
    out = []
    while (packet := decoder.next_packet()) is not None:
        out.append(packet)
    assert decoder.empty, "the client got a partial packet"
    return out


def test_lost_between_rows_or_mid_row_ends_the_result_with_err() -> None:
    async def run() -> None:
        stream = b"".join(resultset(20))
        header = len(b"".join(resultset(20)[:3]))
        for cut in range(header + 1, len(stream) - 9):  # after the definitions, before the last EOF
            session, conn, _ = wired()
            session.data_received(frame(b"\x03SELECT c FROM t", 0))
            conn.data_received(stream[:header])
            conn.data_received(stream[header:cut])  # the last row may be cut anywhere
            conn.connection_lost(None)
            got = _packets(bytes(session.transport.data))  # type: ignore[union-attr]
            _, err = got[-1]
            assert err[0] == 0xFF and int.from_bytes(err[1:3], "little") == 2013, (cut, err)
            assert b"rwproxy" in err and b"backend r" in err
            assert [s for s, _ in got] == list(range(1, len(got) + 1)), "sequence ids run on"
            assert not session.busy and not session.closed

    asyncio.run(run())


def test_lost_inside_the_column_definitions_closes_the_client() -> None:
    async def run() -> None:
        stream = b"".join(resultset(5))
        session, conn, _ = wired()
        session.data_received(frame(b"\x03SELECT c FROM t", 0))
        conn.data_received(stream[:10])  # column count and part of the definition
        conn.connection_lost(None)
        assert session.closed

    asyncio.run(run())


def test_rows_reach_the_client_whole() -> None:
    async def run() -> None:
        stream = b"".join(resultset(30))
        header = len(b"".join(resultset(30)[:3]))
        for chunk in (1, 5, 13):
            session, conn, _ = wired()
            session.data_received(frame(b"\x03SELECT c FROM t", 0))
            for i in range(0, len(stream) - 20, chunk):
                conn.data_received(stream[i : i + chunk])
                data = bytes(session.transport.data)  # type: ignore[union-attr]
                if len(data) >= header:  # past the column definitions: only whole packets
                    _packets(data)

    asyncio.run(run())
