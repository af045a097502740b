"""SET statements: which session state a ``SET ...`` changes, and whether it must reach the primary.

Covers ``SET autocommit``, ``SET [GLOBAL|SESSION|LOCAL|PERSIST[_ONLY]] var = ...`` lists (system and
user variables, ``@@scope.var``), ``SET NAMES`` / ``CHARACTER SET`` / ``CHARSET``, ``SET [scope]
TRANSACTION``, ``SET PASSWORD`` / ``[DEFAULT] ROLE`` and MariaDB ``SET STATEMENT ... FOR <stmt>``.
A value that calls GET_LOCK / RELEASE_LOCK makes the SET a named-lock statement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rwproxy.router import token_analysis
from rwproxy.router.classifications import LOCK_EFFECTS
from rwproxy.router.digest import digest_code
from rwproxy.router.sql_scan import (
    STR_DQ,
    STR_SQ,
    Delegate,
    Scan,
    split_top_level,
    top_level_word,
    unquote,
    word,
)
from rwproxy.router.statement import Effect, Kind, PrimaryReason, StatementInfo
from rwproxy.router.token_analysis import analyse_tokens, lock_names

__all__ = ["Assignment", "scan_set", "set_assignments"]

_R = PrimaryReason
_E = Effect

_SET_ACCOUNT = StatementInfo(Kind.SET, _R.DDL, _E.ENDS_TXN)  # SET PASSWORD, SET DEFAULT ROLE
_SET_GLOBAL = StatementInfo(Kind.SET, _R.SESSION_COMMAND, _E.SETS_GLOBAL)
_SET_NEXT_TXN = StatementInfo(Kind.SET, _R.SESSION_COMMAND, _E.SETS_SESSION_VAR, names=("transaction",))
_SET_AUTOCOMMIT_ON = StatementInfo(Kind.SET, _R.SESSION_COMMAND, _E.SETS_AUTOCOMMIT, autocommit=True)
_SET_AUTOCOMMIT_OFF = StatementInfo(Kind.SET, _R.SESSION_COMMAND, _E.SETS_AUTOCOMMIT, autocommit=False)
_SET_ROLE = StatementInfo(Kind.SET, _R.SESSION_COMMAND, _E.SETS_SESSION_VAR, names=("role",))

# Bound once: a method call on an imported name compiles without LOAD_METHOD in CPython 3.11.
_risky_search = token_analysis.RISKY.search

_ISOLATION = re.compile(r"\bISOLATION\b", re.I)
_READ_MODE = re.compile(r"\bREAD\s+(?:ONLY|WRITE)\b", re.I)
_ASSIGNMENT = re.compile(
    rf"""\s*(?:(?P<scope>GLOBAL|SESSION|LOCAL|PERSIST_ONLY|PERSIST)\b\s*)?
    (?:(?P<sys>@@(?:(?P<sysscope>GLOBAL|SESSION|LOCAL|PERSIST_ONLY|PERSIST)\s*\.\s*)?)|(?P<user>@))?
    (?P<name>`(?:[^`]|``)*`|{STR_SQ}|{STR_DQ}|[A-Za-z0-9_$]+(?:\s*\.\s*[A-Za-z0-9_$]+)?)
    \s*(?P<rest>.*)""",
    re.I | re.S | re.X,
)
_SET_AUTOCOMMIT = re.compile(
    r"""\s*(?:(?:SESSION|LOCAL)\s+|@@(?:(?:SESSION|LOCAL)\s*\.\s*)?)?AUTOCOMMIT\s*:?=\s*
    (?:(1|ON|TRUE|'ON'|"ON")|0|OFF|FALSE|'OFF'|"OFF")\s*\Z""",
    re.I | re.X,
)
_ASSIGN_OP = re.compile(r":?=\s*")
_SCOPES = {"GLOBAL": True, "PERSIST": True, "PERSIST_ONLY": True, "SESSION": False, "LOCAL": False}
_BOOL_VALUES = {"0": False, "1": True, "on": True, "off": False, "true": True, "false": False}


def scan_set(code: str, pos: int) -> Scan:
    """The scanner for ``SET``: ``pos`` is just after the keyword. None when the form is not understood."""
    ac = _SET_AUTOCOMMIT.match(code, pos)
    if ac is not None:  # the most frequent SET of all, once or twice per transaction in many drivers
        return _SET_AUTOCOMMIT_ON if ac.group(1) is not None else _SET_AUTOCOMMIT_OFF
    keyword, after = word(code, pos)
    if keyword == "TRANSACTION":
        return _SET_NEXT_TXN
    if keyword == "STATEMENT":  # MariaDB SET STATEMENT var=value [, ...] FOR <statement>
        inner = top_level_word(code, after, "FOR")
        return None if inner is None else Delegate(inner, as_show=False)
    if keyword == "PASSWORD":
        return _SET_ACCOUNT
    if keyword == "ROLE":
        return _SET_ROLE
    if keyword == "DEFAULT" and word(code, after)[0] == "ROLE":
        return _SET_ACCOUNT
    if keyword in _SCOPES:
        keyword2, after2 = word(code, after)
        if keyword2 == "TRANSACTION":
            if _SCOPES[keyword]:
                return _SET_GLOBAL
            names: list[str] = []
            if _ISOLATION.search(code, after2):
                names.append("transaction_isolation")
            if _READ_MODE.search(code, after2):
                names.append("transaction_read_only")
            return StatementInfo(Kind.SET, _R.SESSION_COMMAND, _E.SETS_SESSION_VAR, names=tuple(names))
    return _scan_assignments(code, pos)


def _scan_assignments(code: str, pos: int) -> Scan:
    """``SET [scope] a = ..., [scope] @@b = ..., @c := ...``: effects and session variable names."""
    items = _parse_assignments(code, pos)
    if items is None:
        return None
    effects = _E.NONE
    names: list[str] = []
    autocommit: bool | None = None
    for item in items:
        target = item.target
        if target == "user":
            effects |= _E.SETS_USER_VAR
        elif target == "global":
            effects |= _E.SETS_GLOBAL
        elif target == "autocommit":
            effects |= _E.SETS_AUTOCOMMIT
            autocommit = _BOOL_VALUES.get(item.value.strip().strip("'\"").lower())
        else:  # a session variable, or NAMES / CHARACTER SET / CHARSET
            effects |= _E.SETS_SESSION_VAR
            name = "names" if target == "names" else item.name
            if name not in names:
                names.append(name)
    reason = _R.SESSION_COMMAND
    locks: tuple[str, ...] = ()
    if _risky_search(code.upper()) is not None:  # e.g. SET @x = GET_LOCK('a', 0)
        info = analyse_tokens(digest_code(code), Kind.SET, None)
        if info.effects & LOCK_EFFECTS:
            effects |= info.effects & LOCK_EFFECTS
            reason = _R.NAMED_LOCK
            locks = lock_names(code)
    return StatementInfo(Kind.SET, reason, effects, names=tuple(names) + locks, autocommit=autocommit)


@dataclass(frozen=True, slots=True)
class Assignment:
    """One item of a ``SET a = x, @b = y, NAMES z`` list, for deciding how to replay it.

    ``target``: ``"session"`` (a session system variable), ``"global"`` (GLOBAL/PERSIST scope),
    ``"autocommit"``, ``"user"`` (``@name``), or ``"names"`` (``NAMES`` / ``CHARACTER SET`` /
    ``CHARSET``). ``name``: the lower-cased variable name (``"names"``/``"character set"`` for charset
    items). ``value``: the text after ``=`` (after the keyword for charset items). ``text``: the item
    as written.
    """

    target: str
    name: str
    value: str
    text: str


def set_assignments(code: str, pos: int) -> list[Assignment] | None:
    """The assignments of ``SET ...`` (``pos`` just after the keyword), or None for the other forms
    (``SET TRANSACTION``, ``SET ROLE``, ``SET STATEMENT``, ``SET PASSWORD``) and what is not understood."""
    keyword, after = word(code, pos)
    if keyword in ("TRANSACTION", "STATEMENT", "PASSWORD", "ROLE", "DEFAULT"):
        return None
    if keyword in _SCOPES and word(code, after)[0] == "TRANSACTION":
        return None
    return _parse_assignments(code, pos)


def _parse_assignments(code: str, pos: int) -> list[Assignment] | None:
    """The assignment list after ``SET`` (``pos``), None when an item is not understood."""
    out: list[Assignment] = []
    sticky_global = False
    for item in split_top_level(code, pos):
        m = _ASSIGNMENT.match(item)
        if m is None:
            return None
        if m.group("scope") is not None:
            sticky_global = _SCOPES[m.group("scope").upper()]
        name_token = m.group("name")
        rest = m.group("rest")
        if m.group("user") is not None:
            op = _ASSIGN_OP.match(rest)
            if op is None:
                return None
            out.append(Assignment("user", name_token, rest[op.end() :], item.strip()))
            continue
        if name_token[0] in "'\"":
            return None
        name = "".join(unquote(name_token).split()).lower()
        if m.group("sys") is None and name in ("names", "charset", "character"):
            if name == "character":
                set_kw, after_set = word(rest, 0)
                if set_kw != "SET":
                    return None
                rest = rest[after_set:]
            out.append(Assignment("names", name, rest, item.strip()))
            continue
        op = _ASSIGN_OP.match(rest)
        if op is None:
            return None
        # @@name without a scope is SESSION; a bare name takes the scope of the last scope keyword.
        scope = m.group("sysscope")
        is_global = _SCOPES[scope.upper()] if scope is not None else sticky_global and m.group("sys") is None
        target = "global" if is_global else "autocommit" if name == "autocommit" else "session"
        out.append(Assignment(target, name, rest[op.end() :], item.strip()))
    return out
