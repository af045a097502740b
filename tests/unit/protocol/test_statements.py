"""Prepared-statement packets: COM_STMT_PREPARE_OK, COM_STMT_EXECUTE (with and without query attributes)."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rwproxy.protocol.constants import Capability, Command, CursorType
from rwproxy.protocol.errors import LocalProtocolError, MalformedPacket, RemoteProtocolError
from rwproxy.protocol.statements import (
    StmtExecute,
    StmtPrepareOk,
    make_stmt_execute,
    make_stmt_prepare_ok,
    parse_stmt_execute,
    parse_stmt_prepare_ok,
    replace_stmt_id,
)

from .support import fixture_payloads

P41 = int(Capability.PROTOCOL_41)
QA = P41 | int(Capability.QUERY_ATTRIBUTES)
PYMYSQL_CAPS = 3842573


def test_prepare_ok_round_trip() -> None:
    payload = make_stmt_prepare_ok(0xDEADBEEF, 3, 2, 1)
    assert payload == b"\x00\xef\xbe\xad\xde\x03\x00\x02\x00\x00\x01\x00"
    assert parse_stmt_prepare_ok(payload) == StmtPrepareOk(0xDEADBEEF, 3, 2, 1)
    assert parse_stmt_prepare_ok(payload[:10]) == StmtPrepareOk(0xDEADBEEF, 3, 2, 0)  # pre-4.1 length
    assert parse_stmt_prepare_ok(payload + b"\x01") == StmtPrepareOk(0xDEADBEEF, 3, 2, 1)  # metadata_follows
    with pytest.raises(MalformedPacket):
        parse_stmt_prepare_ok(payload[:9])
    with pytest.raises(MalformedPacket):
        parse_stmt_prepare_ok(b"\xff" + payload[1:])


def test_prepare_ok_captured() -> None:
    payload = fixture_payloads("mariadb_stmt_prepare")[0]
    assert parse_stmt_prepare_ok(payload) == StmtPrepareOk(1, 2, 2, 0)
    assert make_stmt_prepare_ok(1, 2, 2, 0) == payload


@pytest.mark.parametrize(
    "payload",
    [
        make_stmt_prepare_ok(1, 0, 0),
        struct.pack("<BIBI", Command.STMT_EXECUTE, 1, 0, 1),
        struct.pack("<BIH", Command.STMT_SEND_LONG_DATA, 1, 0) + b"data",
        struct.pack("<BI", Command.STMT_CLOSE, 1),
        struct.pack("<BI", Command.STMT_RESET, 1),
        struct.pack("<BII", Command.STMT_FETCH, 1, 100),
    ],
)
def test_replace_stmt_id(payload: bytes) -> None:
    out = replace_stmt_id(payload, 0x01020304)
    assert out[0] == payload[0] and out[5:] == payload[5:]
    assert struct.unpack_from("<I", out, 1)[0] == 0x01020304
    assert replace_stmt_id(memoryview(out), 1) == payload


def test_replace_stmt_id_errors() -> None:
    with pytest.raises(MalformedPacket):
        replace_stmt_id(b"\x17\x01\x00", 5)
    with pytest.raises(LocalProtocolError):
        replace_stmt_id(b"\x03SELECT 1", 5)


def test_execute_captured() -> None:
    (payload,) = fixture_payloads("client_stmt_execute")
    e = parse_stmt_execute(payload, 2, PYMYSQL_CAPS)
    assert e == StmtExecute(
        statement_id=1, flags=0, iteration_count=1, null_bitmap=b"\x00", new_params_bound=True,
        param_types=b"\x08\x00\xfd\x00", values=struct.pack("<q", 41) + b"\x02hi",
    )  # fmt: skip
    assert make_stmt_execute(e, PYMYSQL_CAPS) == payload


def test_execute_layouts() -> None:
    head = struct.pack("<BIBI", 0x17, 9, 0, 1)
    # No parameters.
    e = parse_stmt_execute(head, 0, P41)
    assert (e.null_bitmap, e.new_params_bound, e.param_types, e.values) == (b"", False, None, b"")
    # Re-execution without re-binding types.
    e = parse_stmt_execute(head + b"\x02\x00" + b"\x05\x00\x00\x00", 2, P41)
    assert (e.null_bitmap, e.new_params_bound, e.param_types, e.values) == (
        b"\x02",
        False,
        None,
        b"\x05\x00\x00\x00",
    )
    # Query attributes: parameter_count and names; one named attribute on a statement without '?'.
    flags = int(CursorType.PARAMETER_COUNT_AVAILABLE)
    qa_head = struct.pack("<BIBI", 0x17, 9, flags, 1)
    payload = qa_head + b"\x01" + b"\x00" + b"\x01" + b"\xfd\x00" + b"\x03tag" + b"\x02hi"
    e = parse_stmt_execute(payload, 0, QA)
    assert (e.parameter_count, e.param_names, e.param_types, e.values) == (
        1,
        (b"tag",),
        b"\xfd\x00",
        b"\x02hi",
    )
    assert make_stmt_execute(e, QA) == payload
    # Query attributes on, but no count flag and no '?': nothing follows.
    e = parse_stmt_execute(head, 0, QA)
    assert e.parameter_count is None and make_stmt_execute(e, QA) == head
    # Zero attributes announced.
    e = parse_stmt_execute(qa_head + b"\x00", 0, QA)
    assert e.parameter_count == 0 and e.null_bitmap == b"" and make_stmt_execute(e, QA) == qa_head + b"\x00"


def test_execute_errors() -> None:
    head = struct.pack("<BIBI", 0x17, 9, 0, 1)
    with pytest.raises(MalformedPacket):
        parse_stmt_execute(b"\x16" + head[1:], 0, P41)
    with pytest.raises(MalformedPacket):
        parse_stmt_execute(head + b"\x00\x02", 1, P41)  # bind flag must be 0/1
    with pytest.raises(MalformedPacket):
        parse_stmt_execute(head + b"\x00\x01\x08", 1, P41)  # truncated types
    base = StmtExecute(1, 0, 1, b"\x00", True, b"\x08\x00", b"")
    with pytest.raises(LocalProtocolError):
        make_stmt_execute(base, QA)  # QA needs parameter_count
    with pytest.raises(LocalProtocolError):
        make_stmt_execute(StmtExecute(1, 0, 1, b"\x00", True, b"\x08\x00", b"", 1, None), P41)
    with pytest.raises(LocalProtocolError):
        make_stmt_execute(StmtExecute(1, 0, 1, b"\x00", True, b"\x08\x00", b"", 1, None), QA)  # names needed
    with pytest.raises(LocalProtocolError):
        make_stmt_execute(StmtExecute(1, 0, 1, b"", True, None, b""), P41)
    with pytest.raises(LocalProtocolError):
        make_stmt_execute(StmtExecute(1, 0, 1, b"\x00", True, b"\x08", b""), P41)
    with pytest.raises(LocalProtocolError):
        make_stmt_execute(StmtExecute(1, 0, 1, b"\x00", False, b"\x08\x00", b""), P41)
    with pytest.raises(LocalProtocolError):
        make_stmt_execute(StmtExecute(1, 0, 1, b"\x00\x00", True, b"\x08\x00", b"", 1, (b"a",)), QA)


@st.composite
def executes(draw: st.DrawFn) -> tuple[StmtExecute, int, int]:
    """A consistent (StmtExecute, num_params, capabilities)."""
    qa = draw(st.booleans())
    num_params = draw(st.integers(0, 20))
    flags = draw(st.sampled_from([0, 1, 8, 9]))
    count = num_params
    parameter_count = None
    has = num_params > 0 or (qa and bool(flags & 8))
    if has and qa:
        count = parameter_count = draw(st.integers(0, 20))
    bitmap, bound, types, names = b"", False, None, None
    if has and count > 0:
        bitmap = draw(st.binary(min_size=(count + 7) // 8, max_size=(count + 7) // 8))
        bound = draw(st.booleans())
        if bound:
            types = draw(st.binary(min_size=2 * count, max_size=2 * count))
            if qa:
                names = tuple(draw(st.lists(st.binary(max_size=300), min_size=count, max_size=count)))
    e = StmtExecute(
        draw(st.integers(0, 2**32 - 1)), flags, draw(st.integers(0, 2**32 - 1)), bitmap, bound, types,
        draw(st.binary(max_size=40)), parameter_count, names,
    )  # fmt: skip
    return e, num_params, QA if qa else P41


@given(executes())
def test_execute_round_trip(case: tuple[StmtExecute, int, int]) -> None:
    e, num_params, caps = case
    payload = make_stmt_execute(e, caps)
    assert payload[0] == Command.STMT_EXECUTE
    assert parse_stmt_execute(payload, num_params, caps) == e
    assert replace_stmt_id(payload, 7)[5:] == payload[5:]


@given(st.binary(max_size=60), st.integers(0, 9), st.sampled_from([0, P41, QA]))
def test_parsers_on_garbage(data: bytes, num_params: int, caps: int) -> None:
    for payload in (data, b"\x17" + data, b"\x00" + data):
        for parse in (
            lambda p: parse_stmt_execute(p, num_params, caps),
            parse_stmt_prepare_ok,
        ):
            with contextlib.suppress(RemoteProtocolError):
                parse(payload)
