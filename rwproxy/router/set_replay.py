"""How a session ``SET`` that succeeded on the primary reaches the session's other backend connections.

Three answers (:class:`SetPlan`), decided per assignment (see :mod:`rwproxy.router.set_values`), and
a fourth, ONCE, for ``SET TRANSACTION ...`` without a scope (the next transaction only: not replayed):

* TEXT: every assignment is a session variable or user variable set to a constant: the statement is
  replayed as the client wrote it (no extra work on the primary).
* CAPTURE: some assignment has a value that depends on the server (``CONCAT(@@sql_mode, ...)``,
  ``DEFAULT``, ``@@x``, a ``?`` parameter, ``NOW()`` ...), or the statement also sets ``autocommit``
  or a GLOBAL variable (parts that must not be repeated). rwproxy reads the resulting values of the
  session variables it set back from the primary (:func:`readback_query`, one ``SELECT @@SESSION.x,
  ...`` without tables, right after the SET on the same connection) and records them as constants
  (:func:`captured_statement`). User variables given an expression (``@t = NOW()``, ``@old =
  @@sql_mode``) are read back too and replayed with their type and collation; constant ones are
  replayed as text; one given a value with side effects makes only the reads that mention user
  variables go to the primary.
  ``autocommit`` parts are never replayed: autocommit is tracked from the server's status flags.
* PIN: a value with side effects or table reads (unknown/stored functions, ``RAND()``, ``SLEEP``,
  ``(SELECT ... FROM t)``, ...): the session stays on the primary (PinReason.UNREPLAYABLE_SET).

Evaluating once on the primary (rather than running the statement again on each server, as
MaxScale does) is what makes a replica connection equal a direct session: ``@@sql_mode`` and
``DEFAULT`` mean the primary's global values, which a replica with other defaults does not have.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rwproxy.router.digest import digest_text
from rwproxy.router.set_statements import Assignment, set_assignments
from rwproxy.router.set_values import ValueKind, value_kind
from rwproxy.router.statement import Effect, Kind, PrimaryReason, StatementInfo

__all__ = [
    "SetPlan",
    "SetPlanKind",
    "Value",
    "captured_statement",
    "order_readback",
    "plan_set",
    "readback_columns",
    "readback_query",
]


class SetPlanKind(enum.Enum):
    ONCE = "applies to the next transaction only (SET TRANSACTION ...): runs on the primary, not replayed"
    TEXT = "replay the statement text"
    CAPTURE = "read the resulting values back from the primary and replay them as constants"
    PIN = "cannot be replayed: keep the session on the primary"


@dataclass(frozen=True, slots=True)
class SetPlan:
    kind: SetPlanKind
    # CAPTURE: the session system variables to read back (and user variables, as "@name"), in the
    # order the replayed SET assigns them.
    readback: tuple[str, ...] = ()
    user_sql: bytes | None = None  # CAPTURE: the constant user-variable assignments, as a SET
    user_vars_unknown: bool = False  # CAPTURE: a user variable got a value only the primary has


_ONCE = SetPlan(SetPlanKind.ONCE)
_TEXT = SetPlan(SetPlanKind.TEXT)
_PIN = SetPlan(SetPlanKind.PIN)

_LEAD_SET = re.compile(
    r"(?:\s+|/\*(?![!+]).*?\*/|#[^\n]*(?:\n|\Z)|--[ \t][^\n]*(?:\n|\Z))*SET\b", re.I | re.S
)
_NAME = re.compile(r"[a-z0-9_]+\Z")
_USER_NAME = re.compile(r"[A-Za-z0-9_$.]+\Z|`(?:[^`]|``)+`\Z")
# What SET NAMES / CHARACTER SET change, connection charset before its collation.
_CHARSET_VARS = (
    "character_set_client",
    "character_set_results",
    "character_set_connection",
    "collation_connection",
)
# DEFAULT for these means "no fixed value" on every server (the clock, the next insert id ...):
# replayed as written, never captured (a captured clock would stop it).
_DEFAULT_IS_DYNAMIC = frozenset(
    {"timestamp", "rand_seed1", "rand_seed2", "insert_id", "last_insert_id", "identity"}
)


def plan_set(info: StatementInfo, sql: bytes) -> SetPlan:
    """How to replay the SET ``sql`` (classified as ``info``) that succeeded on the primary.

    Cached by text (short texts only, so the cache stays small): a driver sends the same few SETs
    on every connection."""
    if len(sql) > _CACHED_TEXT_MAX:
        return _plan(info, sql)
    return _plan_cached(sql, info.primary_reason, info.names, info.effects)


_CACHED_TEXT_MAX = 2048


@functools.lru_cache(maxsize=1024)
def _plan_cached(
    sql: bytes, reason: PrimaryReason | None, names: tuple[str, ...], effects: Effect
) -> SetPlan:
    info = StatementInfo(Kind.SET, reason, effects, names=names)
    return _plan(info, sql)


def _plan(info: StatementInfo, sql: bytes) -> SetPlan:
    if info.primary_reason is not PrimaryReason.SESSION_COMMAND:
        return _PIN  # e.g. SET @x = GET_LOCK(...)
    if info.names == ("transaction",):
        # SET TRANSACTION without a scope: for the session's next transaction only, which starts on
        # the primary. Replaying it would hand it to some later statement on another connection.
        return _ONCE
    code = sql.decode("utf-8", "surrogateescape")
    lead = _LEAD_SET.match(code)
    items = set_assignments(code, lead.end()) if lead is not None else None
    if items is None:  # SET [SESSION] TRANSACTION ..., SET ROLE ...: constants, or not understood
        return _TEXT if _text_replayable(info, code) else _PIN
    return _plan_items(items)


def _plan_items(items: list[Assignment]) -> SetPlan:
    readback: list[str] = []
    user_items: list[str] = []
    user_readback: list[str] = []
    user_unknown = False
    capture = False
    for item in items:
        target = item.target
        if target in ("global", "autocommit"):
            capture = True  # those parts must not be repeated: replay only the session's own part
            continue
        if target == "user":
            kind = value_kind(item.value)
            if kind is ValueKind.CONSTANT:
                user_items.append(item.text)
            elif kind is ValueKind.EVALUATE and _USER_NAME.match(item.name):
                user_readback.append("@" + item.name)  # NOW(), @@sql_mode ...: the value is captured
                capture = True
            else:
                user_unknown = capture = True
            continue
        if target == "names":
            if not _charset_constant(item.value):
                capture = True
            readback.extend(_CHARSET_VARS)
            continue
        if _NAME.match(item.name) is None:
            return _PIN  # structured (key_cache.x) or odd names: not read back
        kind = value_kind(item.value)
        if kind is ValueKind.UNSAFE:
            return _PIN
        if kind is ValueKind.EVALUATE and not (
            item.name in _DEFAULT_IS_DYNAMIC and item.value.strip().rstrip(";").strip().upper() == "DEFAULT"
        ):
            capture = True
        readback.append(item.name)
    if not capture:
        return _TEXT
    ordered = order_readback((*readback, *user_readback))
    user_sql = ("SET " + ", ".join(user_items)).encode("utf-8", "surrogateescape") if user_items else None
    return SetPlan(SetPlanKind.CAPTURE, ordered, user_sql, user_unknown)


def order_readback(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` without repeats, in the order the replayed SET assigns them: system variables,
    collations after their character sets (setting a charset resets its collation), user variables."""
    unique = tuple(dict.fromkeys(names))
    return (
        tuple(n for n in unique if n[0] != "@" and not n.startswith("collation_"))
        + tuple(n for n in unique if n.startswith("collation_"))
        + tuple(n for n in unique if n[0] == "@")
    )


def _charset_constant(value: str) -> bool:
    """``utf8mb4``, ``'utf8mb4' COLLATE 'utf8mb4_bin'``: constants; ``DEFAULT`` or expressions are not."""
    upper = value.upper()
    return not re.search(r"\bDEFAULT\b|[@(?]", upper)


def _text_replayable(info: StatementInfo, code: str) -> bool:
    """The other SET forms: replayable as text when their values are constants and no autocommit or
    GLOBAL part rides along."""
    if info.effects & (Effect.SETS_AUTOCOMMIT | Effect.SETS_GLOBAL):
        return False
    return _NOT_REPLAYABLE.search(digest_text(code)) is None


_NOT_REPLAYABLE = re.compile(
    r"\(|\bSELECT\b|\bCURRENT_|\bLOCALTIME|\bUTC_|@@",  # (SET ROLE DEFAULT is a constant)
    re.IGNORECASE,
)


def readback_query(names: Sequence[str]) -> bytes:
    """``SELECT @@SESSION.a, ..., @u, HEX(@u), COLLATION(@u)``: the values a SET left (user variables,
    written ``@name`` in ``names``, with their bytes and collation). No tables: keeps the SET's warnings."""
    columns = [f"{n}, HEX({n}), COLLATION({n})" if n[0] == "@" else f"@@SESSION.{n}" for n in names]
    return ("SELECT " + ", ".join(columns)).encode()


def readback_columns(names: Sequence[str]) -> int:
    """How many columns :func:`readback_query` of ``names`` returns."""
    return sum(3 if n[0] == "@" else 1 for n in names)


# Column types whose text value is a number (MYSQL_TYPE_DECIMAL, TINY, SHORT, LONG, FLOAT, DOUBLE,
# LONGLONG, INT24, YEAR, NEWDECIMAL): replayed unquoted (a quoted number is ERROR 1232 for them).
_NUMERIC_TYPES = frozenset({0, 1, 2, 3, 4, 5, 8, 9, 13, 246})
_INTEGER_TYPES = frozenset({1, 2, 3, 8, 9})
_DECIMAL_TYPES = frozenset({0, 246})
_FLOAT_TYPES = frozenset({4, 5})
_NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\Z")
_INTEGER = re.compile(rb"-?\d+\Z")
_HEX = re.compile(rb"(?:[0-9A-Fa-f]{2})*\Z")
_COLLATION = re.compile(rb"([a-z0-9]+)(?:_[a-z0-9_]+)?\Z")
_PLAIN = re.compile(rb"[\x20-\x5b\x5d-\x7e]*\Z")  # printable ASCII without backslash

Value = tuple[int, bytes | None]  # (column type, text value or NULL)


def captured_statement(names: Sequence[str], values: Sequence[Value]) -> bytes | None:
    """``SET @@SESSION.a = <value>, @u = <value>, ...`` from the read-back ``(column type, text)``
    values, or None when a value cannot be written as a literal that means the same in every
    sql_mode and character set (a system variable's value with non-ASCII bytes or backslashes): the
    caller pins the session instead. User variables keep their type: integer, decimal, double (as
    ``<n>e0``), or a string of its own character set and collation (``_cs X'..' COLLATE c``)."""
    if len(values) != readback_columns(names) or not names:
        return None
    parts: list[bytes] = []
    at = 0
    for name in names:
        if name[0] == "@":
            literal = _user_literal(values[at], values[at + 1][1], values[at + 2][1])
            at += 3
            if literal is None:
                return None
            parts.append(name.encode() + b" = " + literal)
            continue
        column_type, value = values[at]
        at += 1
        if value is None:
            literal = b"NULL"
        elif column_type in _NUMERIC_TYPES and _NUMBER.match(value):
            literal = value
        elif _PLAIN.match(value):
            literal = b"'" + value.replace(b"'", b"''") + b"'"
        else:
            return None
        parts.append(b"@@SESSION." + name.encode() + b" = " + literal)
    return b"SET " + b", ".join(parts)


def _user_literal(value: Value, hexed: bytes | None, collation: bytes | None) -> bytes | None:
    column_type, text = value
    if text is None:
        return b"NULL"
    if column_type in _INTEGER_TYPES:
        return text if _INTEGER.match(text) else None
    if column_type in _DECIMAL_TYPES:
        return text if _NUMBER.match(text) else None
    if column_type in _FLOAT_TYPES:
        if not _NUMBER.match(text):
            return None  # inf / nan cannot be written
        return text if b"e" in text.lower() else text + b"e0"
    if hexed is None or collation is None or not _HEX.match(hexed):
        return None
    m = _COLLATION.match(collation)
    if m is None:
        return None
    if collation == b"binary":
        return b"_binary X'" + hexed + b"'"
    return b"_" + m.group(1) + b" X'" + hexed + b"' COLLATE " + collation
