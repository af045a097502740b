"""OK / ERR / EOF, column definitions, text rows and the local result-set builder."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import asdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rwproxy.protocol.constants import Capability, ColumnType
from rwproxy.protocol.errors import LocalProtocolError, MalformedPacket, RemoteProtocolError
from rwproxy.protocol.framing import frame
from rwproxy.protocol.packets import (
    ColumnDefinition41,
    EofPacket,
    ErrPacket,
    OkPacket,
    make_column_count,
    make_column_definition41,
    make_eof,
    make_err,
    make_ok,
    make_resultset,
    make_text_row,
    parse_column_count,
    parse_column_definition41,
    parse_eof,
    parse_err,
    parse_ok,
    parse_text_row,
)

from .support import decode_all, feed_variants, fixture_frames, fixture_payloads

P41 = int(Capability.PROTOCOL_41)
TRACK = P41 | Capability.SESSION_TRACK
DEPRECATE = P41 | Capability.DEPRECATE_EOF
PYMYSQL_CAPS = 3842573  # what PyMySQL 1.2 sent in the captured handshake response


# --- OK ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caps", "fields", "payload"),
    [
        (P41, {}, b"\x00\x00\x00\x02\x00\x00\x00"),
        (
            P41,
            {"affected_rows": 300, "last_insert_id": 7, "status_flags": 3, "warnings": 1, "info": b"hi"},
            b"\x00\xfc\x2c\x01\x07\x03\x00\x01\x00\x02hi",
        ),
        (int(Capability.TRANSACTIONS), {"status_flags": 1}, b"\x00\x00\x00\x01\x00"),
        (0, {"info": b"x"}, b"\x00\x00\x00\x01x"),
        (
            TRACK,
            {"status_flags": 0x4002, "session_state": b"\x01\x02\x01d"},
            b"\x00\x00\x00\x02\x40\x00\x00\x00\x04\x01\x02\x01d",
        ),
        (DEPRECATE, {"header": 0xFE}, b"\xfe\x00\x00\x02\x00\x00\x00"),
    ],
)
def test_ok_round_trip(caps: int, fields: dict[str, int | bytes], payload: bytes) -> None:
    assert make_ok(caps, **fields) == payload  # type: ignore[arg-type]
    ok = parse_ok(payload, caps)
    for key, value in fields.items():
        assert getattr(ok, key) == value


def test_ok_errors() -> None:
    with pytest.raises(MalformedPacket):
        parse_ok(b"\xfe\x00\x00\x02\x00\x00\x00", P41)  # 0xFE needs DEPRECATE_EOF
    with pytest.raises(MalformedPacket):
        parse_ok(b"\xff\x00", P41)
    with pytest.raises(MalformedPacket):
        parse_ok(b"\x00\x00\x00\x02", P41)
    with pytest.raises(MalformedPacket):  # state flag set but state missing
        parse_ok(b"\x00\x00\x00\x00\x40\x00\x00\x00", TRACK)
    with pytest.raises(LocalProtocolError):
        make_ok(P41, header=0xFE)
    with pytest.raises(LocalProtocolError):
        make_ok(P41, header=0x01)
    with pytest.raises(LocalProtocolError):
        make_ok(P41, session_state=b"x")


@pytest.mark.parametrize(
    ("name", "caps", "expected"),
    [
        ("mariadb_auth_ok", PYMYSQL_CAPS, OkPacket(0, 0, 2, 0, b"", b"")),
        ("mariadb_ok_insert", PYMYSQL_CAPS, OkPacket(2, 1, 1, 0, b"Records: 2  Duplicates: 0  Warnings: 0")),
        ("mariadb_ok_session_schema", TRACK, OkPacket(0, 0, 0x4002, 0, b"", b"\x01\x07\x06rwtest")),
        ("mariadb_ok_session_track", TRACK, OkPacket(0, 0, 0x4000, 0, b"", b"\x00\x0f\x0aautocommit\x03OFF")),
    ],
)
def test_ok_captured(name: str, caps: int, expected: OkPacket) -> None:
    (payload,) = fixture_payloads(name)
    ok = parse_ok(payload, caps)
    assert ok == expected
    fields = asdict(ok)
    assert make_ok(caps, **fields) == payload


# --- ERR / EOF ---------------------------------------------------------------------------------------


def test_err_round_trip() -> None:
    payload = make_err(1045, "Access denied for user 'x'@'h' (using password: YES)")
    assert payload[:9] == b"\xff\x15\x04#28000"
    assert parse_err(payload) == ErrPacket(
        1045, "28000", "Access denied for user 'x'@'h' (using password: YES)"
    )
    assert parse_err(make_err(1105, "é", "HY001"), P41) == ErrPacket(1105, "HY001", "é")
    assert make_err(1040, "x", capabilities=0) == b"\xff\x10\x04x"
    assert parse_err(b"\xff\x10\x04x", 0) == ErrPacket(1040, "HY000", "x")
    assert parse_err(b"\xff\x10\x04Too many", P41) == ErrPacket(1040, "HY000", "Too many")  # no '#' marker
    with pytest.raises(LocalProtocolError):
        make_err(1, "x", "toolong")
    with pytest.raises(MalformedPacket):
        parse_err(b"\x00\x10\x04x")
    with pytest.raises(MalformedPacket):
        parse_err(b"\xff\x10\x04#42")


def test_err_captured() -> None:
    (payload,) = fixture_payloads("mariadb_err_no_table")
    err = parse_err(payload, PYMYSQL_CAPS)
    assert err == ErrPacket(1146, "42S02", "Table 'rwtest.no_such_table' doesn't exist")
    assert make_err(err.code, err.message, err.sqlstate, PYMYSQL_CAPS) == payload


def test_eof_round_trip() -> None:
    assert make_eof() == b"\xfe\x00\x00\x02\x00"
    assert parse_eof(make_eof(3, 0x0B)) == EofPacket(3, 0x0B)
    assert parse_eof(b"\xfe", 0) == EofPacket(0, 0)
    with pytest.raises(MalformedPacket):
        parse_eof(b"\xfe" + bytes(8))
    with pytest.raises(MalformedPacket):
        parse_eof(b"\x00\x00\x00\x02\x00")


# --- result sets -------------------------------------------------------------------------------------


def test_column_definition_round_trip() -> None:
    payload = make_column_definition41(
        "n", schema="db", table="t", org_table="tt", org_name="nn", column_length=20,
        column_type=ColumnType.LONGLONG, flags=0x21, decimals=0, charset=63,
    )  # fmt: skip
    col = parse_column_definition41(payload)
    assert col == ColumnDefinition41("def", "db", "t", "tt", "n", "nn", 63, 20, 8, 0x21, 0)
    fields = asdict(col)
    assert make_column_definition41(fields.pop("name"), **fields) == payload
    with pytest.raises(MalformedPacket):
        parse_column_definition41(payload[:-3])


def test_text_row_round_trip() -> None:
    values: list[bytes | None] = [b"1", None, b"", b"x" * 300]
    payload = make_text_row(values)
    assert payload[:4] == b"\x011\xfb\x00"
    assert parse_text_row(payload, 4) == values
    with pytest.raises(MalformedPacket):
        parse_text_row(payload, 3)  # trailing bytes
    with pytest.raises(MalformedPacket):
        parse_text_row(payload, 5)


def test_column_count() -> None:
    assert make_column_count(3) == b"\x03"
    assert make_column_count(3, Capability.OPTIONAL_RESULTSET_METADATA) == b"\x03\x01"
    assert parse_column_count(b"\xfc\x00\x01") == 256


def test_captured_resultset_classic() -> None:
    count, *defs, eof1, row, eof2 = fixture_payloads("mariadb_resultset_classic")
    assert parse_column_count(count) == 3
    cols = [parse_column_definition41(d) for d in defs]
    assert [c.name for c in cols] == ["a", "b", "c"]
    assert [c.column_type for c in cols] == [ColumnType.LONG, ColumnType.NULL, ColumnType.VAR_STRING]
    assert parse_eof(eof1) == parse_eof(eof2) == EofPacket(0, 0)
    assert parse_text_row(row, 3) == [b"1", None, b"x"]
    for payload, col in zip(defs, cols, strict=True):
        fields = asdict(col)
        assert make_column_definition41(fields.pop("name"), **fields) == payload


def test_captured_resultset_deprecate_eof() -> None:
    count, *defs, row, ok = fixture_payloads("mariadb_resultset_deprecate_eof")
    assert parse_column_count(count) == len(defs) == 3
    assert parse_text_row(row, 3) == [b"1", None, b"x"]
    assert parse_ok(ok, DEPRECATE) == OkPacket(0, 0, 2, 0, b"", b"", 0xFE)


def _read_resultset(payloads: list[bytes], caps: int) -> tuple[list[str], list[list[bytes | None]], int]:
    pos = 0
    count = parse_column_count(payloads[pos])
    names = [parse_column_definition41(p).name for p in payloads[1 : 1 + count]]
    pos = 1 + count
    if not caps & Capability.DEPRECATE_EOF:
        parse_eof(payloads[pos], caps)
        pos += 1
    rows = [parse_text_row(p, count) for p in payloads[pos:-1]]
    if caps & Capability.DEPRECATE_EOF:
        status = parse_ok(payloads[-1], caps).status_flags
    else:
        status = parse_eof(payloads[-1], caps).status_flags
    return names, rows, status


@pytest.mark.parametrize("caps", [P41, int(DEPRECATE), int(DEPRECATE | Capability.SESSION_TRACK)])
def test_make_resultset(caps: int) -> None:
    payloads = make_resultset(caps, ["@@rwproxy_version", "n"], [["0.1", None], [b"\xff", "é"]], 3)
    eof_count = sum(1 for p in payloads if p[0] == 0xFE)
    assert eof_count == (1 if caps & Capability.DEPRECATE_EOF else 2)
    names, rows, status = _read_resultset(payloads, caps)
    assert names == ["@@rwproxy_version", "n"]
    assert rows == [[b"0.1", None], [b"\xff", "é".encode()]]
    assert status == 3
    # The whole response framed from seq 1 decodes back packet by packet, whole or byte by byte.
    stream = b"".join(frame(p, i + 1) for i, p in enumerate(payloads))
    for _, chunks in feed_variants(stream):
        packets, left = decode_all(chunks)
        assert [p for _, p in packets] == payloads and left == 0


def test_make_resultset_rejects_ragged_rows() -> None:
    with pytest.raises(LocalProtocolError):
        make_resultset(P41, ["a", "b"], [["x"]])


def test_make_resultset_empty() -> None:
    payloads = make_resultset(DEPRECATE, ["a"], [])
    assert _read_resultset(payloads, DEPRECATE) == (["a"], [], 2)


# --- fuzz: any bytes parse or raise RemoteProtocolError --------------------------------------------

CAPS = st.sampled_from([0, P41, int(TRACK), int(DEPRECATE), int(TRACK | DEPRECATE), PYMYSQL_CAPS])
PARSERS: list[Callable[[bytes, int], object]] = [
    parse_ok,
    parse_err,
    parse_eof,
    lambda p, c: parse_column_definition41(p),
    lambda p, c: parse_text_row(p, c % 5),
    lambda p, c: parse_column_count(p),
]


@given(st.binary(max_size=48), CAPS)
def test_parsers_on_garbage(data: bytes, caps: int) -> None:
    for parse in PARSERS:
        with contextlib.suppress(RemoteProtocolError):
            parse(data, caps)


@given(st.sampled_from(["mariadb_ok_insert", "mariadb_ok_session_schema", "mariadb_err_no_table"]), st.data())
def test_parsers_on_mutated_captures(name: str, data: st.DataObject) -> None:
    (payload,) = fixture_payloads(name)
    cut = data.draw(st.integers(0, len(payload)))
    flip = data.draw(st.integers(0, len(payload) - 1))
    mutated = bytearray(payload[:cut])
    if flip < len(mutated):
        mutated[flip] ^= data.draw(st.integers(1, 255))
    for parse in PARSERS:
        with contextlib.suppress(RemoteProtocolError):
            parse(bytes(mutated), int(TRACK))


def test_fixture_frames_have_expected_sequence_ids() -> None:
    assert [f[3] for f in fixture_frames("mariadb_resultset_classic")] == list(range(1, 8))
