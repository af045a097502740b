"""Tests of rwproxy.router.set_values and rwproxy.router.set_replay: which SETs replay as text, which are
evaluated on the primary and captured, which pin. Tables of cases."""

from __future__ import annotations

import pytest

from rwproxy.router.classify import classify
from rwproxy.router.session_state import PinReason, SessionState
from rwproxy.router.set_replay import (
    SetPlanKind,
    captured_statement,
    plan_set,
    readback_columns,
    readback_query,
)
from rwproxy.router.set_values import ValueKind, value_kind
from tests.fixtures.driver_init import DRIVERS

TEXT, CAPTURE, PIN, ONCE = SetPlanKind.TEXT, SetPlanKind.CAPTURE, SetPlanKind.PIN, SetPlanKind.ONCE
C, E, U = ValueKind.CONSTANT, ValueKind.EVALUATE, ValueKind.UNSAFE
CHARSET = ("character_set_client", "character_set_results", "character_set_connection")

VALUES = [
    ("1", C),
    ("-5", C),
    ("2147483", C),
    ("'+00:00'", C),
    ('"+00:00"', C),
    ("_utf8mb4'x' COLLATE utf8mb4_bin", C),
    ("'a' 'b'", C),
    ("ON", C),
    ("NULL", C),
    ("utf8mb4", C),
    ("'ANSI';", C),
    ("DEFAULT", E),
    ("CURRENT_TIMESTAMP", E),
    ("?", E),
    ("@@sql_mode", E),
    ("@@global.sql_mode", E),
    ("@old_mode", E),
    ("1 + 1", E),
    ("concat(@@sql_mode,',STRICT_TRANS_TABLES')", E),
    ("CONCAT(CONCAT(@@sql_mode, ',STRICT_ALL_TABLES'), ',NO_AUTO_VALUE_ON_ZERO')", E),
    ("REPLACE(@@SESSION.sql_mode, 'NO_ZERO_DATE', '')", E),
    ("(SELECT CONCAT(@@sql_mode, ',PIPES_AS_CONCAT'))", E),
    ("(SELECT REPLACE(@@sql_mode, 'ONLY_FULL_GROUP_BY', '') FROM DUAL)", E),
    ("IFNULL(@OLD_SQL_MODE,'')", E),
    ("NOW()", E),
    ("@@server_id", E),
    ("LAST_INSERT_ID()", E),
    ("CAST(@@wait_timeout AS CHAR(10))", E),
    ("LAST_INSERT_ID(5)", U),  # sets it
    ("RAND()", U),  # advances the session's seed
    ("SLEEP(1)", U),
    ("app_mode(@@sql_mode)", U),  # a stored function may write
    ("(SELECT m FROM t LIMIT 1)", U),  # reads a table
    ("NEXT VALUE FOR s", U),
    ("NEXTVAL(s)", U),
    ("", U),
    ("'unterminated", U),
]


@pytest.mark.parametrize(("text", "kind"), VALUES, ids=[v[0] or "empty" for v in VALUES])
def test_value_kind(text: str, kind: ValueKind) -> None:
    assert value_kind(text) is kind


PLANS = [
    # (sql, plan kind, read back)
    ("SET sql_mode = 'ANSI'", TEXT, ()),
    ("SET NAMES utf8mb4", TEXT, ()),
    ("SET NAMES 'utf8mb4' COLLATE 'utf8mb4_unicode_ci'", TEXT, ()),
    ("SET character_set_results = NULL", TEXT, ()),
    ("SET @@session.time_zone='+00:00'", TEXT, ()),
    ("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", TEXT, ()),
    ("SET SESSION TRANSACTION READ ONLY", TEXT, ()),
    ("SET @x = 5, @y = 'a'", TEXT, ()),
    ("SET timestamp = DEFAULT", TEXT, ()),  # DEFAULT is "the clock" on every server: never capture it
    ("/* app */ SET time_zone = '+00:00'", TEXT, ()),
    ("SET SQL_SELECT_LIMIT=DEFAULT", CAPTURE, ("sql_select_limit",)),
    ("SET sql_mode = DEFAULT", CAPTURE, ("sql_mode",)),
    ("SET NAMES DEFAULT", CAPTURE, (*CHARSET, "collation_connection")),
    ("SET sql_mode = ?", CAPTURE, ("sql_mode",)),  # a prepared SET: the parameter is only on the primary
    (
        "SET autocommit=1, session_track_schema=1, sql_mode = concat(@@sql_mode,',STRICT_TRANS_TABLES')",
        CAPTURE,
        ("session_track_schema", "sql_mode"),
    ),
    ("SET autocommit=1, sql_mode='ANSI'", CAPTURE, ("sql_mode",)),  # autocommit must not be replayed
    ("SET GLOBAL max_connections = 10, SESSION wait_timeout = 5", CAPTURE, ("wait_timeout",)),
    (
        "SET NAMES utf8mb4, @@SESSION.sql_mode = CONCAT(@@sql_mode, ',X'), @@SESSION.wait_timeout = 2147483",
        CAPTURE,
        (*CHARSET, "sql_mode", "wait_timeout", "collation_connection"),  # collation after its charset
    ),
    ("SET @@SESSION.sql_mode = REPLACE(@@SESSION.sql_mode, 'NO_ZERO_DATE', '');", CAPTURE, ("sql_mode",)),
    ("SET sql_mode = app_mode(@@sql_mode)", PIN, ()),
    ("SET sql_mode = (SELECT m FROM t)", PIN, ()),
    ("SET sql_mode = 'ANSI', time_zone = RAND()", PIN, ()),
    ("SET @x = GET_LOCK('a', 1)", PIN, ()),
    ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", ONCE, ()),  # the next transaction only
    ("SET ROLE DEFAULT", TEXT, ()),
    ("SET ROLE app_reader", TEXT, ()),
]


@pytest.mark.parametrize(("sql", "kind", "readback"), PLANS, ids=[p[0][:60] for p in PLANS])
def test_plan(sql: str, kind: SetPlanKind, readback: tuple[str, ...]) -> None:
    plan = plan_set(classify(sql), sql.encode())
    assert plan.kind is kind
    assert plan.readback == readback


def test_user_variables_in_a_captured_set() -> None:
    sql = "SET @a = 1, @started = NOW(), @f = app_func(), sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')"
    plan = plan_set(classify(sql), sql.encode())
    assert plan.kind is CAPTURE
    assert plan.readback == ("sql_mode", "@started")  # NOW(): the primary's value is captured
    assert plan.user_sql == b"SET @a = 1"  # a constant: replayed as written
    assert plan.user_vars_unknown  # app_func(): reads that mention user variables go to the primary


def test_clock_in_a_user_variable_is_captured() -> None:
    """SET @t = CURRENT_TIMESTAMP must not be replayed as text (a replica would read its own clock)."""
    state = SessionState()
    sql = "SET @t = CURRENT_TIMESTAMP"
    state.apply(classify(sql), sql.encode(), True)
    assert state.capture == ("@t",)
    assert readback_query(state.capture) == b"SELECT @t, HEX(@t), COLLATION(@t)"
    state.record_capture(
        state.capture, [(251, b"2026-12-04"), (253, b"323032362D31322D3034"), (253, b"latin1_swedish_ci")]
    )
    assert [e.payload for e in state.replay_after(0)] == [
        b"SET @t = _latin1 X'323032362D31322D3034' COLLATE latin1_swedish_ci"
    ]
    assert state.pin() is None and not state.user_vars_in_query


@pytest.mark.parametrize(
    ("value", "hexed", "collation", "literal"),
    [
        ((8, b"5"), b"5", b"binary", b"5"),
        ((8, b"18446744073709551615"), b"FFFFFFFFFFFFFFFF", b"binary", b"18446744073709551615"),
        ((246, b"1.50"), b"2", b"binary", b"1.50"),  # decimal stays decimal
        ((5, b"1.5"), b"2", b"binary", b"1.5e0"),  # double stays double
        ((5, b"1e300"), b"", b"binary", b"1e300"),
        (
            (251, b"h\xc3\xa9llo"),
            b"68C3A96C6C6F",
            b"utf8mb4_general_ci",
            b"_utf8mb4 X'68C3A96C6C6F' COLLATE utf8mb4_general_ci",
        ),
        ((251, b"\x00\xff"), b"00FF", b"binary", b"_binary X'00FF'"),
        ((251, None), None, b"binary", b"NULL"),
    ],
)
def test_user_variable_literals(value, hexed, collation, literal: bytes) -> None:
    assert captured_statement(("@v",), [value, (253, hexed), (253, collation)]) == b"SET @v = " + literal


def test_user_variable_that_cannot_be_written_only_sends_its_reads_to_the_primary() -> None:
    state = SessionState()
    state.record_capture(("@v",), [(5, b"inf"), (253, b""), (253, b"binary")])
    assert state.pin() is None and state.user_vars_in_query


@pytest.mark.parametrize("driver", DRIVERS, ids=[d.name for d in DRIVERS])
def test_no_driver_init_statement_pins(driver) -> None:
    state = SessionState()
    for sql in driver.statements:
        state.apply(classify(sql), sql.encode(), True)
        if state.capture is not None:  # what rwproxy.frontend.session_sets does after the SET
            values = [
                v
                for n in state.capture
                for v in ([(253, b"x"), (253, b"78"), (253, b"binary")] if n[0] == "@" else [(253, b"x")])
            ]
            assert len(values) == readback_columns(state.capture)
            state.record_capture(state.capture, values)
            state.capture = None
    assert state.pin() is None
    assert not state.user_vars_in_query


def test_readback_query() -> None:
    assert (
        readback_query(("sql_mode", "wait_timeout")) == b"SELECT @@SESSION.sql_mode, @@SESSION.wait_timeout"
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([(253, b"STRICT_TRANS_TABLES,ANSI")], b"SET @@SESSION.v = 'STRICT_TRANS_TABLES,ANSI'"),
        ([(8, b"2147483")], b"SET @@SESSION.v = 2147483"),  # a quoted number is ERROR 1232
        ([(5, b"10.000000")], b"SET @@SESSION.v = 10.000000"),
        ([(253, None)], b"SET @@SESSION.v = NULL"),  # character_set_results = NULL
        ([(253, b"it's")], b"SET @@SESSION.v = 'it''s'"),  # doubling works in every sql_mode
        ([(8, b"abc")], b"SET @@SESSION.v = 'abc'"),
    ],
)
def test_captured_statement(values, expected: bytes) -> None:
    assert captured_statement(("v",), values) == expected


@pytest.mark.parametrize("value", [b"a\\b", "é".encode(), b"\x00"])
def test_captured_statement_refuses_values_it_cannot_quote_safely(value: bytes) -> None:
    assert captured_statement(("v",), [(253, value)]) is None


def test_capture_then_record_replaces_the_log_entry() -> None:
    state = SessionState()
    sql = "SET sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')"
    state.apply(classify(sql), sql.encode(), True)
    assert state.capture == ("sql_mode",)
    assert state.replay_after(0) == []  # nothing until the values are known
    state.record_capture(("sql_mode",), [(253, b"ANSI_QUOTES")])
    state.capture = None
    state.apply(classify("SET sql_mode = 'TRADITIONAL'"), b"SET sql_mode = 'TRADITIONAL'", True)
    assert [e.payload for e in state.replay_after(0)] == [b"SET sql_mode = 'TRADITIONAL'"]  # superseded


def test_next_transaction_only_set_is_not_replayed() -> None:
    state = SessionState()
    sql = "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"
    state.apply(classify(sql), sql.encode(), True)
    assert state.replay_after(0) == [] and state.pin() is None


def test_unreadable_values_pin() -> None:
    state = SessionState()
    state.record_capture(("sql_mode",), None)
    assert state.pin() is PinReason.UNREPLAYABLE_SET


def test_failed_set_captures_nothing() -> None:
    state = SessionState()
    sql = "SET sql_mode = CONCAT(@@sql_mode, ',NOPE')"
    state.apply(classify(sql), sql.encode(), False)
    assert state.capture is None and state.pin() is None


def test_reset_drops_a_pending_capture() -> None:
    state = SessionState(capture=("sql_mode",))
    state.reset()
    assert state.capture is None


def test_long_sets_are_planned_without_the_cache() -> None:
    sql = "SET @big = '" + "x" * 5000 + "', sql_mode = CONCAT(@@sql_mode, ',X')"
    plan = plan_set(classify(sql), sql.encode())
    assert plan.kind is CAPTURE and plan.readback == ("sql_mode",)
    assert plan.user_sql is not None and len(plan.user_sql) > 5000
