"""Query attributes (CLIENT_QUERY_ATTRIBUTES): COM_QUERY and COM_STMT_EXECUTE made plain, attributes read.

The COM_STMT_EXECUTE oracle is mysql-connector-python's own packet builder (no socket): the packet it
builds for a server with query attributes, made plain, must be exactly the packet it builds for a
server without them.
"""

from __future__ import annotations

import datetime
import struct
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mysql.connector.protocol import MySQLProtocol

from rwproxy.protocol.constants import ColumnType
from rwproxy.protocol.errors import MalformedPacket
from rwproxy.protocol.query_attributes import QueryAttribute, plain_execute, plain_query, value_end
from rwproxy.protocol.wire import str_lenenc, uint_lenenc

SQL = b"SELECT @@server_id"


def _query(attrs: list[tuple[bytes, int, int, bytes | None]], sql: bytes = SQL) -> bytes:
    """COM_QUERY with attributes: (name, type, flag byte, raw value or None for NULL)."""
    out = b"\x03" + uint_lenenc(len(attrs)) + b"\x01"
    if attrs:
        bitmap = bytearray((len(attrs) + 7) // 8)
        for i, (_, _, _, raw) in enumerate(attrs):
            if raw is None:
                bitmap[i // 8] |= 1 << (i % 8)
        out += bytes(bitmap) + b"\x01"
        out += b"".join(bytes((t, f)) + str_lenenc(name) for name, t, f, _ in attrs)
        out += b"".join(raw for *_, raw in attrs if raw is not None)
    return out + sql


def test_no_attributes_is_a_slice() -> None:
    assert plain_query(b"\x03\x00\x01" + SQL) == (b"\x03" + SQL, ())
    assert plain_query(b"\x03\x00\x01") == (b"\x03", ())  # an empty query stays an empty query
    # Non-minimal encodings are accepted, as the server does.
    assert plain_query(b"\x03\xfc\x00\x00\x01" + SQL) == (b"\x03" + SQL, ())


def test_the_protocol_docs_example() -> None:
    # From the COM_QUERY page: one string attribute a = '1'.
    payload = bytes.fromhex("030101000 1fe0001610131".replace(" ", "")) + b"select @@version_comment limit 1"
    plain, attrs = plain_query(payload)
    assert plain == b"\x03select @@version_comment limit 1"
    assert attrs == (QueryAttribute("a", ColumnType.STRING, False, b"\x011"),)
    assert attrs[0].text() == "1"


def test_attribute_values_of_each_kind() -> None:
    attrs = [
        (b"rwproxy_route", ColumnType.STRING, 0, str_lenenc(b"primary")),
        (b"nothing", ColumnType.NULL, 0, None),
        (b"tiny", ColumnType.TINY, 0, b"\xff"),
        (b"utiny", ColumnType.TINY, 0x80, b"\xff"),
        (b"long", ColumnType.LONGLONG, 0, struct.pack("<q", -5)),
        (b"dbl", ColumnType.DOUBLE, 0, struct.pack("<d", 2.5)),
        (b"flt", ColumnType.FLOAT, 0, struct.pack("<f", 0.5)),
        (b"when", ColumnType.DATETIME, 0, b"\x04\xea\x07\x0c\x04"),
        (b"dec", ColumnType.NEWDECIMAL, 0, str_lenenc(b"1.50")),
        (b"blob", ColumnType.BLOB, 0, str_lenenc(b"x" * 300)),
    ]
    plain, found = plain_query(_query(attrs))
    assert plain == b"\x03" + SQL
    assert [a.name for a in found] == [a[0].decode() for a in attrs]
    assert [a.text() for a in found] == [
        "primary",
        None,
        "-1",
        "255",
        "-5",
        "2.5",
        "0.5",
        None,
        "1.50",
        "x" * 300,
    ]
    assert found[1].raw is None and found[3].unsigned


def test_nine_attributes_need_a_two_byte_null_bitmap() -> None:
    attrs = [
        (b"a%d" % i, ColumnType.NULL if i == 8 else ColumnType.TINY, 0, None if i == 8 else b"\x07")
        for i in range(9)
    ]
    payload = _query(attrs)
    plain, found = plain_query(payload)
    assert plain == b"\x03" + SQL
    assert [a.text() for a in found] == ["7"] * 8 + [None]


@pytest.mark.parametrize(
    "payload",
    [
        b"\x03",  # no prefix at all
        b"\x03\x00",  # no parameter_set_count
        b"\x03\x00\x02" + SQL,  # parameter_set_count is always 1
        b"\x03\x01\x01",  # no NULL bitmap
        b"\x03\x01\x01\x00\x00\xfe\x00\x01a\x011" + SQL,  # new_params_bind_flag 0: no types
        b"\x03\x01\x01\x00\x02\xfe\x00\x01a\x011" + SQL,  # new_params_bind_flag 2
        b"\x03\x01\x01\x00\x01\xfe\x00\x05a",  # name longer than the packet
        b"\x03\x01\x01\x00\x01\x08\x00\x01a\x01\x02",  # LONGLONG value cut short
        b"\x03\x01\x01\x00\x01\xfe\x00\x01a\xfc\xff\xff",  # string value longer than the packet
        b"\x03\x01\x01\x00\x01\x0c\x00\x01a\x0b\x01",  # DATETIME length byte past the end
        b"\x03\xff\x01" + SQL,  # invalid int<lenenc>
    ],
)
def test_malformed_prefixes_raise(payload: bytes) -> None:
    with pytest.raises(MalformedPacket):
        plain_query(payload)


def test_value_end() -> None:
    assert value_end(b"\x01\x02", 0, ColumnType.SHORT) == 2
    assert value_end(b"\x00", 0, ColumnType.DATE) == 1  # a zero date: only its length byte
    assert value_end(b"\x03abc", 0, ColumnType.VAR_STRING) == 4
    assert value_end(b"", 0, ColumnType.NULL) == 0
    with pytest.raises(MalformedPacket):
        value_end(b"\x01", 0, ColumnType.LONG)


# -- COM_STMT_EXECUTE ------------------------------------------------------------------------

_PROTOCOL = MySQLProtocol()


def _execute(data: tuple[object, ...], attrs: list[tuple[str, object]] | None) -> bytes:
    params = tuple(range(len(data)))
    if attrs is None:  # as for a server without CLIENT_QUERY_ATTRIBUTES
        return b"\x17" + _PROTOCOL.make_stmt_execute(7, data, params, 0)
    return b"\x17" + _PROTOCOL.make_stmt_execute(7, data, params, 0, None, "utf8", attrs)


def test_execute_with_attributes_becomes_the_plain_packet() -> None:
    data = (5, "x", None, 2.5)
    payload = _execute(data, [("rwproxy_route", "primary"), ("n", 300)])
    assert payload[5] & 8  # PARAMETER_COUNT_AVAILABLE
    plain, attrs = plain_execute(payload, len(data), None)
    assert plain == _execute(data, None)
    assert [(a.name, a.text()) for a in attrs] == [("rwproxy_route", "primary"), ("n", "300")]


def test_execute_without_parameters() -> None:
    payload = _execute((), [("rwproxy_route", "replica")])
    plain, attrs = plain_execute(payload, 0, None)
    assert plain == _execute((), None) == b"\x17\x07\x00\x00\x00\x00\x01\x00\x00\x00"
    assert [a.text() for a in attrs] == ["replica"]
    # No parameters, no PARAMETER_COUNT_AVAILABLE: nothing follows the header.
    assert plain_execute(plain, 0, None) == (plain, ())


def test_execute_with_no_attributes_still_drops_count_and_names() -> None:
    data = (1, "two")
    payload = _execute(data, [])  # parameter_count and an empty name per parameter
    assert payload != _execute(data, None)
    assert plain_execute(payload, 2, None) == (_execute(data, None), ())


def test_execute_types_not_sent_again() -> None:
    # parameter_count 3 = 1 parameter + 2 attributes, new_params_bind_flag 0: the parameter's type
    # comes from the statement's last execution, the attributes are cut off (their names are unknown).
    head = b"\x17\x07\x00\x00\x00\x08\x01\x00\x00\x00"
    payload = head + b"\x03" + b"\x04" + b"\x00" + b"\x03abc" + b"\x05\x00\x00\x00"
    plain, attrs = plain_execute(payload, 1, b"\xfe\x00")
    assert plain == b"\x17\x07\x00\x00\x00\x00\x01\x00\x00\x00" + b"\x00" + b"\x00" + b"\x03abc"
    assert attrs == ()
    # Without the types, the end of the parameter values is unknown: only an error is safe.
    with pytest.raises(MalformedPacket):
        plain_execute(payload, 1, None)
    # ... unless there are no attributes to cut off.
    no_attrs = head[:5] + b"\x00" + head[6:] + b"\x01\x00\x00\x03abc"
    assert plain_execute(no_attrs, 1, None) == (head[:5] + b"\x00" + head[6:] + b"\x00\x00\x03abc", ())


def test_execute_null_bitmap_bits_past_the_parameters_are_cleared() -> None:
    # 1 parameter (not NULL) + 1 NULL attribute: the attribute's NULL bit must not reach the server.
    payload = _execute((9,), [("a", 1)])
    payload = payload[:11] + b"\x02" + payload[12:]  # mark the attribute NULL ...
    payload = payload[:-1]  # ... and drop its value
    plain, attrs = plain_execute(payload, 1, None)
    assert plain == _execute((9,), None)
    assert attrs == (QueryAttribute("a", ColumnType.TINY, True, None),)


@pytest.mark.parametrize(
    "payload",
    [
        b"\x17\x07\x00\x00\x00",  # too short
        b"\x17\x07\x00\x00\x00\x00\x01\x00\x00\x00\x01",  # parameter_count 1 < 2 parameters (below)
        b"\x17\x07\x00\x00\x00\x00\x01\x00\x00\x00\x02\x00\x01\x08\x00\x00\x01\x02",  # value cut short
    ],
)
def test_malformed_executes_raise(payload: bytes) -> None:
    with pytest.raises(MalformedPacket):
        plain_execute(payload, 2, None)


_VALUES = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**64 - 1),
    st.text(max_size=300),
    st.binary(max_size=70),
    st.floats(allow_nan=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.datetimes(min_value=datetime.datetime(1000, 1, 1)),
    st.dates(min_value=datetime.date(1000, 1, 1)),
    st.timedeltas(min_value=datetime.timedelta(days=-30), max_value=datetime.timedelta(days=30)),
)
_ATTR_VALUES = _VALUES.filter(lambda v: v is not None and not isinstance(v, Decimal))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(_VALUES, max_size=12),
    st.lists(st.tuples(st.text(min_size=1, max_size=20), _ATTR_VALUES), max_size=10),
)
def test_execute_plain_form_matches_the_client_library(
    data: list[object], attrs: list[tuple[str, object]]
) -> None:
    payload = _execute(tuple(data), attrs)
    plain, found = plain_execute(payload, len(data), None)
    assert plain == _execute(tuple(data), None)
    assert [a.name for a in found] == [name for name, _ in attrs]
    for attribute, (_, value) in zip(found, attrs, strict=True):
        if isinstance(value, int):
            assert attribute.text() == str(value)
        elif isinstance(value, str):
            assert attribute.text() == value
