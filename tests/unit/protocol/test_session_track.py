"""Session-state tracking in OK packets: the GTID of a commit, and stripping it for clients that did
not ask for CLIENT_SESSION_TRACK."""

from __future__ import annotations

import pytest

from rwproxy.protocol.constants import Capability, ServerStatus
from rwproxy.protocol.packets import make_ok
from rwproxy.protocol.session_track import (
    session_state_entries,
    strip_session_state,
    tracked_gtid,
    tracking_statement,
)
from rwproxy.protocol.wire import str_lenenc

TRACK = int(Capability.PROTOCOL_41 | Capability.SESSION_TRACK)
PLAIN = int(Capability.PROTOCOL_41)
CHANGED = int(ServerStatus.SESSION_STATE_CHANGED)
AC = int(ServerStatus.AUTOCOMMIT)


def _var(name: bytes, value: bytes) -> bytes:
    return bytes((0,)) + str_lenenc(str_lenenc(name) + str_lenenc(value))


def _gtids(text: bytes) -> bytes:
    return bytes((3,)) + str_lenenc(b"\x00" + str_lenenc(text))


def _schema(db: bytes) -> bytes:
    return bytes((1,)) + str_lenenc(str_lenenc(db))


def _ok(state: bytes, info: bytes = b"", affected: int = 1, header: int = 0) -> bytes:
    return make_ok(
        TRACK | Capability.DEPRECATE_EOF,
        affected_rows=affected,
        last_insert_id=7,
        status_flags=AC | CHANGED,
        info=info,
        session_state=state,
        header=header,
    )


def test_mariadb_last_gtid() -> None:
    assert tracked_gtid(_ok(_var(b"last_gtid", b"0-1-42"))) == "0-1-42"
    assert (
        tracked_gtid(_ok(_schema(b"db") + _var(b"autocommit", b"ON") + _var(b"LAST_GTID", b"1-2-3")))
        == "1-2-3"
    )


def test_mysql_own_gtid() -> None:
    gtid = b"3e11fa47-71ca-11e1-9e33-c80aa9429562:23"
    assert tracked_gtid(_ok(_gtids(gtid), info=b"Rows matched: 1")) == gtid.decode()


def test_no_gtid() -> None:
    assert tracked_gtid(_ok(_var(b"autocommit", b"ON"))) is None
    assert tracked_gtid(_ok(_var(b"last_gtid", b""))) is None
    assert tracked_gtid(make_ok(TRACK, status_flags=AC)) is None
    assert tracked_gtid(b"\xff\x10\x04#HY000boom") is None
    assert tracked_gtid(_ok(b"\x00\x09garbage")) is None  # truncated entry: no exception
    assert session_state_entries(make_ok(TRACK)) == []


@pytest.mark.parametrize("info", [b"", b"Rows matched: 1  Changed: 1  Warnings: 0"])
@pytest.mark.parametrize("header", [0x00, 0xFE])
def test_strip_gives_what_a_plain_client_gets(info: bytes, header: int) -> None:
    tracked = _ok(_var(b"last_gtid", b"0-1-42"), info=info, header=header)
    plain = make_ok(
        PLAIN | Capability.DEPRECATE_EOF,
        affected_rows=1,
        last_insert_id=7,
        status_flags=AC,
        info=info,
        header=header,
    )
    assert strip_session_state(tracked) == plain


def test_strip_leaves_other_packets_alone() -> None:
    ok = make_ok(TRACK, status_flags=AC, info=b"hello")
    assert strip_session_state(ok) is ok
    err = b"\xff\x10\x04#HY000boom"
    assert strip_session_state(err) is err
    big = _ok(_var(b"last_gtid", b"0-1-42"), affected=70000)
    assert strip_session_state(big)[1:5] == b"\xfd\x70\x11\x01"  # 3-byte lenenc affected rows kept


def test_tracking_statement_by_flavour() -> None:
    assert b"last_gtid" in tracking_statement("10.11.6-MariaDB-0+deb12u1", client_tracks=False)
    assert b"CONCAT_WS" in tracking_statement("10.11.6-MariaDB", client_tracks=True)
    assert b"OWN_GTID" in tracking_statement("8.4.3", client_tracks=False)
    assert tracking_statement("8.4.3", client_tracks=True) == b"SET SESSION session_track_gtids = OWN_GTID"
