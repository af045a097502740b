"""Errors are split by blame and carry the (errno, sqlstate) to answer with."""

from __future__ import annotations

import pytest

from rwproxy.protocol.errors import (
    LocalProtocolError,
    MalformedPacket,
    PacketsOutOfOrder,
    PacketTooLarge,
    ProtocolError,
    RemoteProtocolError,
)


@pytest.mark.parametrize(
    ("cls", "errno", "sqlstate", "base"),
    [
        (MalformedPacket, 1835, "HY000", RemoteProtocolError),
        (PacketTooLarge, 1153, "08S01", RemoteProtocolError),
        (PacketsOutOfOrder, 1156, "08S01", RemoteProtocolError),
        (RemoteProtocolError, 1835, "HY000", ProtocolError),
        (LocalProtocolError, 1105, "HY000", ProtocolError),
    ],
)
def test_defaults(cls: type[ProtocolError], errno: int, sqlstate: str, base: type[ProtocolError]) -> None:
    exc = cls("boom")
    assert isinstance(exc, base)
    assert (exc.errno, exc.sqlstate, str(exc)) == (errno, sqlstate, "boom")
    assert cls.__name__ in repr(exc)


def test_explicit_errno_derives_sqlstate() -> None:
    exc = RemoteProtocolError("bad handshake", errno=1043)
    assert (exc.errno, exc.sqlstate) == (1043, "08S01")
    exc = LocalProtocolError("x", errno=1105, sqlstate="42000")
    assert exc.sqlstate == "42000"


def test_local_and_remote_are_disjoint() -> None:
    assert not issubclass(LocalProtocolError, RemoteProtocolError)
    assert not issubclass(RemoteProtocolError, LocalProtocolError)
