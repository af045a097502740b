"""Tests of rwproxy.router.digest: lexing, digests, hints."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rwproxy.router import digest as digest_module
from rwproxy.router.digest import digest_code, digest_hash, digest_text, is_bare, lex, parse_hints
from rwproxy.router.statement import Hint

DIGESTS = [
    ("SELECT c FROM sbtest1 WHERE id=4242", "SELECT c FROM sbtest1 WHERE id=?"),
    ("SELECT  c\n\tFROM t   WHERE a = 'x' AND b = \"y\"", "SELECT c FROM t WHERE a = ? AND b = ?"),
    ("SELECT * FROM t WHERE a IN (1, 2,3)", "SELECT * FROM t WHERE a IN (...)"),
    (
        "SELECT * FROM t WHERE a in ('x') AND b NOT IN (1,2)",
        "SELECT * FROM t WHERE a IN (...) AND b NOT IN (...)",
    ),
    ("SELECT * FROM t WHERE a IN (SELECT 1)", "SELECT * FROM t WHERE a IN (SELECT ?)"),
    (
        "SELECT 0x1F, X'0F', b'01', 0b11, N'x', _utf8mb4'x', 1.5e3, .5, -3",
        "SELECT ?, ?, ?, ?, ?, ?, ?, ?, -?",
    ),
    ("SELECT 'it''s', 'a\\'b', \"q\\\"x\"", "SELECT ?, ?, ?"),
    ("SELECT t1.c2, abc1, 1abc FROM t1", "SELECT t1.c2, abc1, 1abc FROM t1"),
    ("SELECT `t 1`.`c'2` FROM `x` WHERE `a` = 5", "SELECT `t 1`.`c'2` FROM `x` WHERE `a` = ?"),
    ("INSERT INTO t (a, b) VALUES (1, 'a'), (2, 'b'),(3,'c')", "INSERT INTO t (a, b) VALUES (...)"),
    ("INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (...)"),
    ("SELECT 1 /* comment */ FROM t -- tail", "SELECT ? FROM t"),
    ("SELECT 1 # tail\nFROM t", "SELECT ? FROM t"),
    ("SELECT /*! STRAIGHT_JOIN */ a FROM t", "SELECT STRAIGHT_JOIN a FROM t"),
    ("/* rwproxy:primary */ SELECT 1", "/* rwproxy:primary */ SELECT ?"),
    ("SELECT /*+ rwproxy:replica rwproxy:max_lag=5 */ 1", "/* rwproxy:replica rwproxy:max_lag=5 */ SELECT ?"),
    ("SELECT 1; SELECT 'a;b';", "SELECT ?; SELECT ?"),
    ("SELECT 1;", "SELECT ?"),
    ("SELECT @x, @@sql_mode", "SELECT @x, @@sql_mode"),
    ("", ""),
    ("/* nothing */", ""),
    # Backquoted names: kept verbatim, whatever they hold.
    ("SELECT `t 1`.`c2` FROM `t1` WHERE `id` = 5", "SELECT `t 1`.`c2` FROM `t1` WHERE `id` = ?"),
    ("SELECT `1e5`, `123`, `.5` FROM t WHERE a = 1.5", "SELECT `1e5`, `123`, `.5` FROM t WHERE a = ?"),
    ("SELECT `a``b` FROM `x` WHERE c IN (1, 2)", "SELECT `a``b` FROM `x` WHERE c IN (...)"),
    ("SELECT 'a`b', `c'd` FROM t WHERE e = 'f'", "SELECT ?, `c'd` FROM t WHERE e = ?"),
    ("SELECT '`x`' , `1e5` FROM t", "SELECT ? , `1e5` FROM t"),
    ("SELECT `é1`.`$2` FROM `_t` WHERE `_t`.`k` = 0x1F", "SELECT `é1`.`$2` FROM `_t` WHERE `_t`.`k` = ?"),
    ("SELECT `unterminated FROM t WHERE a = 1", "SELECT `unterminated FROM t WHERE a = ?"),
]


@pytest.mark.parametrize(("sql", "expected"), DIGESTS)
def test_digest_text(sql: str, expected: str) -> None:
    assert digest_text(sql) == expected


def test_literals_share_a_digest() -> None:
    a = digest_text("SELECT c FROM t WHERE id=1 FOR UPDATE")
    b = digest_text("SELECT c FROM t WHERE id = 2 FOR UPDATE")
    assert digest_text("SELECT c FROM t WHERE id=123 FOR UPDATE") == a
    assert a != b  # whitespace around '=' is kept: different text, different digest


def test_digest_hash() -> None:
    text = digest_text("SELECT c FROM t WHERE id=1")
    h = digest_hash(text)
    assert isinstance(h, int) and 0 <= h < 2**64
    assert digest_hash(text) == h
    assert digest_hash(digest_text("SELECT c FROM t WHERE id=2")) == h
    assert digest_hash("SELECT c FROM u WHERE id=?") != h
    assert digest_hash("\udcff") >= 0  # lone surrogates do not raise
    assert digest_hash("SELECT ?") == 0xC148796E1220075A  # pinned: stable across processes and releases


def test_lex_statements() -> None:
    assert lex("SELECT 1").statements == ("SELECT 1",)
    assert lex("  SELECT 1 ;").statements == ("SELECT 1",)
    assert lex("SELECT 1; SELECT 2").statements == ("SELECT 1", "SELECT 2")
    assert lex("SELECT ';' ; SELECT `;`").statements == ("SELECT ';'", "SELECT `;`")
    assert lex("SELECT 1 /*! , 2 */").statements == ("SELECT 1   , 2",)
    assert lex("SELECT 1 -- x; SELECT 2").statements == ("SELECT 1",)
    assert lex("SELECT 1 --x").statements == ("SELECT 1 --x",)  # not a comment: no space after --
    assert lex("SELECT 'open").statements == ("SELECT 'open",)
    assert lex("SELECT 1 /* open").statements == ("SELECT 1",)
    assert lex(";;").statements == ()
    assert lex("SELECT a */ b").statements == ("SELECT a */ b",)  # stray close kept as code


def test_lex_hints() -> None:
    hints = lex("/* rwproxy:primary */ SELECT 1").hints
    assert hints is not None and hints.route is Hint.PRIMARY
    assert lex("SELECT 1").hints is None
    assert lex("/* plain */ SELECT 1").hints is None
    hints = lex("/* rwproxy:max_lag=2.5 */ SELECT 1").hints
    assert hints is not None and hints.route is None and hints.get("max_lag") == "2.5"
    assert hints.comment() == "/* rwproxy:max_lag=2.5 */"


def test_compound_statements_stay_whole() -> None:
    sql = "CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END"
    assert lex(sql).statements == (sql,)
    assert len(lex("CREATE FUNCTION f() RETURNS INT RETURN 1; SELECT 1").statements) == 2


def test_is_bare() -> None:
    assert is_bare("INSERT INTO t VALUES ('a;b', \"--\", `#`)")
    assert not is_bare("SELECT 1; SELECT 2")
    assert not is_bare("SELECT 1 -- c")
    assert not is_bare("SELECT 1 # c")
    assert not is_bare("SELECT /* c */ 1")
    assert not is_bare("SELECT 'open")
    assert is_bare("SELECT 5--3")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_digest_never_raises(sql: str) -> None:
    text = digest_text(sql)
    assert isinstance(text, str)
    assert digest_text(sql) == text
    digest_hash(text)


# Pieces of SQL that exercise the digest's shortcuts: backquoted names (plain and not), literals next to
# names and dots, IN lists and VALUES rows, comments, hints (with the characters re.I folds onto ASCII).
_PIECES = st.sampled_from(
    [
        "`", "``", "`t`", "`t 1`", "`1e5`", "`a``b`", "`c'2`", "`é`", "`$1`", "'", "''", '"', "\\",
        "'a`b'", "'it''s'", "0", "1", "0x1F", "0b1", ".5", "1e5", "x", "X", "N", "_utf8mb4", "t1", ".",
        "$", "_", "é", "٣", "²", " ", "  ", "\t", "\n", "(", ")", ",", "?", "IN", "in", "VALUES", "value",
        "SELECT", "=", "-", ";", "/*", "*/", "/*!", "#", "-- ", "rwproxy:", "RWPROXY :", "primary",
        "replica", "max_lag=5", "\u017f", "\u212a", "\u0130", "\u0131",
    ]
)  # fmt: skip
_SQL_PIECES = st.one_of(st.lists(_PIECES, max_size=25).map("".join), st.text(max_size=60))


def _digest_code_reference(code: str) -> str:
    """digest_code with the backquote-preserving callback always used (the general path)."""
    text = digest_module._LITERAL_OR_BACKTICK.sub(digest_module._keep_backticks, code)
    text = " ".join(text.split())
    if digest_module._GLUED.search(text) is not None:
        text = digest_module._INTRODUCER.sub("?", text)
    text = digest_module._IN_LIST.sub("IN (...)", text)
    return digest_module._VALUES_ROWS.sub("VALUES (...)", text)


@settings(max_examples=1500, deadline=None)
@given(_SQL_PIECES)
def test_digest_shortcuts_are_exact(code: str) -> None:
    """The plain-backquote shortcut and the substring pre-checks change nothing."""
    assert digest_code(code) == _digest_code_reference(code)
    if digest_module._PLAIN_BACKTICKS.fullmatch(code) is not None:
        assert digest_module._LITERAL.sub("?", code) == digest_module._LITERAL_OR_BACKTICK.sub(
            digest_module._keep_backticks, code
        )


@settings(max_examples=1500, deadline=None)
@given(_SQL_PIECES)
def test_digest_text_is_lex_then_digest_code(sql: str) -> None:
    lexed = lex(sql)
    text = "; ".join(digest_code(s) for s in lexed.statements)
    if lexed.hints is not None:
        text = f"{lexed.hints.comment()} {text}" if text else lexed.hints.comment()
    assert digest_text(sql) == text
    assert is_bare(sql) == (digest_module._bare_end(sql) == len(sql))


_HINT_DIRECTIVE_RE_I = re.compile(r"rwproxy\s*:\s*([A-Za-z_][A-Za-z0-9_]*)(?:\s*=\s*([^\s,*/]+))?", re.I)


@settings(max_examples=1500, deadline=None)
@given(_SQL_PIECES)
def test_hint_directive_pattern_equals_case_insensitive_one(comment: str) -> None:
    assert digest_module._HINT_DIRECTIVE.findall(comment) == _HINT_DIRECTIVE_RE_I.findall(comment)


def test_hint_directives_folded_letters() -> None:
    # re.I lets [A-Za-z] match these four non-ASCII letters; the explicit pattern keeps that.
    hints = parse_hints("/* RwProxy:max_\u017fag=5 rwproxy:\u212a=1 */ SELECT 1")
    assert hints is not None and hints.params == (("max_\u017fag", "5"), ("k", "1"))


def test_lone_route_hints_are_shared() -> None:
    a = lex("/* rwproxy:primary */ SELECT 1").hints
    assert a is not None and a is lex("SELECT /*+ rwproxy:primary */ 2").hints
    b = lex("-- rwproxy:replica\nSELECT 1").hints
    assert b is not None and b.route is Hint.REPLICA and b.params == ()
