"""CONNECTION_ID() rewritten to the session id: a table of statements."""

from __future__ import annotations

import pytest

from rwproxy.router.connection_id import may_mention, rewrite_connection_id

T = "CAST(0000000042 AS UNSIGNED)"


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT CONNECTION_ID()", f"SELECT {T} AS `CONNECTION_ID()`"),
        ("select  connection_id( ) ", f"select  {T} AS `connection_id( )` "),
        ("SELECT CONNECTION_ID() AS cid", f"SELECT {T} AS cid"),
        ("SELECT CONNECTION_ID() cid", f"SELECT {T} cid"),
        ("SELECT CONNECTION_ID()+0, 1", f"SELECT {T}+0 AS `CONNECTION_ID()+0`, 1"),
        ("SELECT 1, CONNECTION_ID() FROM t", f"SELECT 1, {T} AS `CONNECTION_ID()` FROM t"),
        (
            "SELECT CONCAT('c', CONNECTION_ID())",
            f"SELECT CONCAT('c', {T}) AS `CONCAT('c', CONNECTION_ID())`",
        ),
        ("SELECT DISTINCT CONNECTION_ID()", f"SELECT DISTINCT {T} AS `CONNECTION_ID()`"),
        ("SELECT CONNECTION_ID() /* c */ , 2", f"SELECT {T} AS `CONNECTION_ID()` /* c */ , 2"),
        (
            "SELECT (SELECT CONNECTION_ID())",
            f"SELECT (SELECT {T} AS `CONNECTION_ID()`) AS `(SELECT CONNECTION_ID())`",
        ),
        ("SELECT a FROM t WHERE owner = CONNECTION_ID()", "SELECT a FROM t WHERE owner = 42"),
        (
            "INSERT INTO t VALUES (CONNECTION_ID(), 'CONNECTION_ID()')",
            "INSERT INTO t VALUES (42, 'CONNECTION_ID()')",
        ),
        ("KILL QUERY CONNECTION_ID()", "KILL QUERY 42"),
        ("SET @me = CONNECTION_ID()", "SET @me = 42"),
        ("SELECT CONNECTION_ID(); SELECT 1", f"SELECT {T} AS `CONNECTION_ID()`; SELECT 1"),
        ("SELECT 1 /*! , CONNECTION_ID() */", f"SELECT 1 /*! , {T} AS `CONNECTION_ID()` */"),
        ("SELECT CONNECTION_ID() UNION SELECT 7", f"SELECT {T} AS `CONNECTION_ID()` UNION SELECT 7"),
    ],
)
def test_rewrite(sql: str, expected: str) -> None:
    assert may_mention(sql)
    assert rewrite_connection_id(sql, 42) == expected


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 'CONNECTION_ID()'",
        'SELECT "connection_id()"',
        "SELECT `CONNECTION_ID()` FROM t",
        "SELECT 1 /* CONNECTION_ID() */",
        "SELECT 1 -- CONNECTION_ID()\n",
        "SELECT 1 # CONNECTION_ID()",
        "SELECT db.CONNECTION_ID()",
        "SELECT CONNECTION_ID(1)",
        "SELECT LAST_INSERT_ID()",
        "SELECT 'it''s CONNECTION_ID()'",
        "SELECT 'unterminated CONNECTION_ID()",
    ],
)
def test_left_alone(sql: str) -> None:
    assert rewrite_connection_id(sql, 42) is None


def test_other_id_functions_are_not_tokenized() -> None:
    sql = "INSERT INTO t VALUES " + ",".join(f"({i}, user_id({i}))" for i in range(2000))
    assert may_mention(sql) and rewrite_connection_id(sql, 42) is None


def test_prefilter() -> None:
    assert not may_mention("SELECT c FROM sbtest1 WHERE id = 5")
    assert not may_mention("UPDATE t SET user_id = 3")
    assert may_mention("SELECT Connection_Id ()")


def test_large_id_is_not_padded_away() -> None:
    assert rewrite_connection_id("SELECT CONNECTION_ID()", 12345678901) == (
        "SELECT CAST(12345678901 AS UNSIGNED) AS `CONNECTION_ID()`"
    )


def test_backquote_in_alias_is_doubled() -> None:
    out = rewrite_connection_id("SELECT CONCAT(`a`, CONNECTION_ID()) FROM t", 7)
    assert (
        out == "SELECT CONCAT(`a`, CAST(0000000007 AS UNSIGNED)) AS `CONCAT(``a``, CONNECTION_ID())` FROM t"
    )
