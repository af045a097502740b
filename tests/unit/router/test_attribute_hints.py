"""Routing hints from query attributes: the same StatementInfo fields as the comment hints."""

from __future__ import annotations

import struct

import pytest

from rwproxy.protocol.constants import ColumnType
from rwproxy.protocol.query_attributes import QueryAttribute
from rwproxy.protocol.wire import str_lenenc
from rwproxy.router.attribute_hints import with_attribute_hints
from rwproxy.router.classifications import PLAIN_SELECT
from rwproxy.router.classify import Classifier
from rwproxy.router.statement import Hint, StatementInfo


def _s(name: str, value: str) -> QueryAttribute:
    return QueryAttribute(name, ColumnType.STRING, False, str_lenenc(value.encode()))


def _i(name: str, value: int) -> QueryAttribute:
    return QueryAttribute(name, ColumnType.LONGLONG, False, struct.pack("<q", value))


def _d(name: str, value: float) -> QueryAttribute:
    return QueryAttribute(name, ColumnType.DOUBLE, False, struct.pack("<d", value))


_NULL = QueryAttribute("rwproxy_route", ColumnType.NULL, False, None)


@pytest.mark.parametrize(
    ("attributes", "hint", "max_lag"),
    [
        ([], None, None),
        ([_s("rwproxy_route", "primary")], Hint.PRIMARY, None),
        ([_s("rwproxy_route", "replica")], Hint.REPLICA, None),
        ([_s("RWPROXY_ROUTE", " Primary ")], Hint.PRIMARY, None),  # case-insensitive
        ([_s("rwproxy_route", "master")], None, None),  # unknown value: ignored
        ([_NULL], None, None),
        ([_s("rwproxy_max_lag", "5")], None, 5.0),
        ([_i("rwproxy_max_lag", 3)], None, 3.0),
        ([_d("rwproxy_max_lag", 0.5)], None, 0.5),
        ([_i("rwproxy_max_lag", -1)], None, None),  # negative: ignored
        ([_s("rwproxy_max_lag", "soon")], None, None),
        ([_s("rwproxy_max_lag", "nan")], None, None),
        ([_s("traceparent", "00-abc"), _s("route", "primary")], None, None),  # not ours
        ([_s("rwproxy_route", "replica"), _s("rwproxy_route", "primary")], Hint.PRIMARY, None),  # last wins
        ([_s("rwproxy_route", "replica"), _s("rwproxy_max_lag", "2")], Hint.REPLICA, 2.0),
    ],
)
def test_attributes_to_hints(
    attributes: list[QueryAttribute], hint: Hint | None, max_lag: float | None
) -> None:
    info = with_attribute_hints(PLAIN_SELECT, attributes)
    assert (info.hint, info.max_lag) == (hint, max_lag)
    if hint is None and max_lag is None:
        assert info is PLAIN_SELECT  # nothing to change: the shared instance, not a copy
    assert PLAIN_SELECT.hint is None  # the cached classification is never changed


@pytest.mark.parametrize(
    ("sql", "attributes", "hint", "max_lag"),
    [
        # An attribute wins over a comment of the same kind ...
        ("/* rwproxy:replica */ SELECT 1", [_s("rwproxy_route", "primary")], Hint.PRIMARY, None),
        ("/* rwproxy:max_lag=9 */ SELECT 1", [_s("rwproxy_max_lag", "1")], None, 1.0),
        # ... and a kind the attributes do not give keeps the comment's value.
        ("/* rwproxy:max_lag=9 */ SELECT 1", [_s("rwproxy_route", "replica")], Hint.REPLICA, 9.0),
        ("/* rwproxy:primary */ SELECT 1", [_s("rwproxy_max_lag", "1")], Hint.PRIMARY, 1.0),
        ("/* rwproxy:primary */ SELECT 1", [_s("other", "x")], Hint.PRIMARY, None),
    ],
)
def test_attributes_win_over_comments(
    sql: str, attributes: list[QueryAttribute], hint: Hint | None, max_lag: float | None
) -> None:
    classified = Classifier(100).classify(sql)
    info = with_attribute_hints(classified, attributes)
    assert (info.hint, info.max_lag) == (hint, max_lag)


def test_other_fields_are_kept() -> None:
    info = StatementInfo(kind=PLAIN_SELECT.kind, names=("t",), reads_user_vars=True)
    hinted = with_attribute_hints(info, [_s("rwproxy_route", "primary")])
    assert hinted.names == ("t",) and hinted.reads_user_vars and hinted.hint is Hint.PRIMARY
