"""What the value of one ``SET`` assignment is made of: a constant, an expression rwproxy may evaluate
once on the primary and capture, or something that must not run twice (or at all) on another server.

Pure text analysis of the value part of ``name = <value>`` (everything after the ``=``), nothing else.

* CONSTANT: a literal (number, string with optional introducer and COLLATE, ``ON``/``OFF``/``NULL``,
  a bare word such as ``utf8mb4`` or ``READ``): the same on every server, so the statement text may
  simply be replayed.
* EVALUATE: built from constants, system and user variables, ``DEFAULT``, ``?`` placeholders, and
  built-in functions without side effects (``CONCAT``, ``REPLACE``, ``IF``, ``NOW`` ...), possibly in
  a ``(SELECT ...)`` without a table. Its result depends on the server or the moment (``@@sql_mode``
  is the primary's global default on a fresh session; ``DEFAULT`` is the server's global value), so
  it is evaluated once, on the primary, and the resulting value is what other servers get.
* UNSAFE: anything else: unknown functions (stored functions may write), side effects (``RAND``
  advances the session's seed, ``SLEEP``, ``BENCHMARK``, ``LAST_INSERT_ID(expr)``, sequences, file
  reads), subqueries that read tables, or text this scanner does not understand.
"""

from __future__ import annotations

import enum
import re

__all__ = ["ValueKind", "value_kind"]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


class ValueKind(enum.Enum):
    CONSTANT = "constant"
    EVALUATE = "evaluate"
    UNSAFE = "unsafe"


_TOKEN = re.compile(
    r"""\s+|/\*.*?\*/
    |(?P<str>(?:_[A-Za-z0-9]+\s*)?[NnXxBb]?'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
    |(?P<num>0[xX][0-9A-Fa-f]+|0[bB][01]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    |(?P<sysvar>@@(?:(?:GLOBAL|SESSION|LOCAL)\s*\.\s*)?(?:`(?:[^`]|``)*`|[A-Za-z0-9_$]+))
    |(?P<uservar>@(?:`(?:[^`]|``)*`|'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"|[A-Za-z0-9_$.]+))
    |(?P<word>[A-Za-z_$][A-Za-z0-9_$]*|`(?:[^`]|``)*`)
    |(?P<open>\()|(?P<close>\))|(?P<comma>,)|(?P<qmark>\?)
    |(?P<op>[-+*/%^&|~!<>=:.]+)""",
    re.S | re.X | re.I,
)

# Built-in functions without side effects on the session or the data (the deterministic ones and the
# clocks/identity ones: a captured value is what the session saw on the primary either way).
_SAFE_FUNCTIONS = _words(
    """
    CONCAT CONCAT_WS REPLACE IF IFNULL NULLIF COALESCE ISNULL LOWER UPPER LCASE UCASE TRIM LTRIM RTRIM
    SUBSTRING SUBSTR MID SUBSTRING_INDEX LEFT RIGHT LENGTH CHAR_LENGTH CHARACTER_LENGTH OCTET_LENGTH
    LOCATE POSITION INSTR FIND_IN_SET FIELD ELT MAKE_SET EXPORT_SET CAST CONVERT GREATEST LEAST ABS
    SIGN FLOOR CEIL CEILING ROUND TRUNCATE MOD POW POWER LPAD RPAD REPEAT REVERSE SPACE INSERT HEX
    UNHEX CHAR ASCII ORD STRCMP REGEXP_REPLACE REGEXP_SUBSTR REGEXP_INSTR QUOTE FORMAT
    NOW CURRENT_TIMESTAMP LOCALTIME LOCALTIMESTAMP SYSDATE CURDATE CURRENT_DATE CURTIME CURRENT_TIME
    UTC_DATE UTC_TIME UTC_TIMESTAMP UNIX_TIMESTAMP FROM_UNIXTIME DATE_FORMAT TIME_FORMAT DATE_ADD
    DATE_SUB ADDDATE SUBDATE ADDTIME SUBTIME TIMESTAMPADD TIMESTAMPDIFF TIMEDIFF DATEDIFF CONVERT_TZ
    DATE TIME TIMESTAMP YEAR MONTH DAY HOUR MINUTE SECOND STR_TO_DATE SEC_TO_TIME TIME_TO_SEC
    UUID DATABASE SCHEMA USER CURRENT_USER SESSION_USER SYSTEM_USER CURRENT_ROLE VERSION
    CONNECTION_ID CHARSET COLLATION COERCIBILITY MD5 SHA1 SHA SHA2 CRC32
    JSON_OBJECT JSON_ARRAY JSON_EXTRACT JSON_UNQUOTE JSON_QUOTE JSON_VALUE
    DECIMAL DATETIME BINARY VARCHAR NCHAR
    """
)
# Words that read as values without parentheses but are functions of the moment or the session.
_NILADIC = _words(
    """CURRENT_TIMESTAMP CURRENT_DATE CURRENT_TIME CURRENT_USER CURRENT_ROLE LOCALTIME LOCALTIMESTAMP
    UTC_DATE UTC_TIME UTC_TIMESTAMP"""
)
# Words that mean a table read, a row lock, a sequence step or a statement inside the value.
_UNSAFE_WORDS = _words("INTO FOR NEXT PREVIOUS LOCK SHARE WITH VALUES TABLE")


def value_kind(text: str) -> ValueKind:
    """The kind of the value ``text`` of one assignment (see the module docstring)."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip().rstrip(";")
    n = len(text)
    while pos < n:
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            return ValueKind.UNSAFE
        pos = m.end()
        group = m.lastgroup
        if group is not None:
            tokens.append((group, m.group()))
    if not tokens:
        return ValueKind.UNSAFE
    if _is_constant(tokens):
        return ValueKind.CONSTANT
    return _expression_kind(tokens)


def _is_constant(tokens: list[tuple[str, str]]) -> bool:
    kinds = [k for k, _ in tokens]
    if kinds == ["num"] or (kinds == ["op", "num"] and tokens[0][1] in "-+"):
        return True
    if kinds == ["word"]:
        w = tokens[0][1].upper()
        return w != "DEFAULT" and w not in _NILADIC
    i = 0
    while i < len(kinds) and kinds[i] == "str":
        i += 1
    if i == 0:
        return False
    if i == len(kinds):
        return True
    return len(kinds) == i + 2 and tokens[i][1].upper() == "COLLATE" and kinds[i + 1] in ("word", "str")


def _expression_kind(tokens: list[tuple[str, str]]) -> ValueKind:
    for i, (kind, tok) in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ("", "")
        if kind == "word":
            w = tok.upper()
            if nxt[0] == "open":
                if w == "LAST_INSERT_ID" and i + 2 < len(tokens) and tokens[i + 2][0] == "close":
                    continue  # reading it is harmless; LAST_INSERT_ID(expr) sets it
                if w not in _SAFE_FUNCTIONS:
                    return ValueKind.UNSAFE
            elif w == "FROM":
                if nxt[0] != "word" or nxt[1].upper() != "DUAL":
                    return ValueKind.UNSAFE  # a subquery reading a table
            elif w in _UNSAFE_WORDS:
                return ValueKind.UNSAFE
        elif kind == "open" and nxt[0] == "word" and nxt[1].upper() in _UNSAFE_WORDS:
            return ValueKind.UNSAFE
    return ValueKind.EVALUATE
