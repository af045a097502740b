"""One scanner per statement verb, decided from the first keywords: :data:`SCANNERS`.

A scanner takes ``(code, pos)`` with ``pos`` just after the verb and answers a :data:`Scan`: a
:class:`StatementInfo`, a :class:`Delegate` (classify the statement at ``pos`` instead), or None when
the keywords do not decide (the classifier then lexes, or parses with sqlglot). Scanners are pure and
cheap: they run on the raw text of comment-free, single-statement queries, before any lexing.
SELECT-like verbs (SELECT, VALUES, TABLE, DO, WITH) have no scanner: see :mod:`token_analysis`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from rwproxy.router import classifications as c
from rwproxy.router import sql_scan
from rwproxy.router.set_statements import scan_set
from rwproxy.router.sql_scan import Delegate, Scan, name_list, qualified_name, unquote, word
from rwproxy.router.statement import Effect, Kind, PrimaryReason, StatementInfo

__all__ = ["SCANNERS", "Scanner", "as_show"]

_R = PrimaryReason
_E = Effect

#: ``(code, position after the verb) -> Scan``.
Scanner = Callable[[str, int], Scan]

# Bound once: a method call on an imported name compiles without LOAD_METHOD in CPython 3.11.
_qident_match = sql_scan.QIDENT.match

_CREATE_TEMP = re.compile(r"\s+(?:OR\s+REPLACE\s+)?TEMPORARY\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?=\S)", re.I)
_DROP_TABLE = re.compile(r"\s+(TEMPORARY\s+)?TABLES?\s+(?:IF\s+EXISTS\s+)?(?=\S)", re.I)
_FLUSH_LOCK = re.compile(r"\bWITH\s+READ\s+LOCK\b|\bFOR\s+EXPORT\b", re.I)
_CHAIN = re.compile(r"\bAND\s+CHAIN\b", re.I)
_READ_ONLY = re.compile(r"\bREAD\s+ONLY\b", re.I)
_FORMAT_VALUE = re.compile(r"\s*=\s*[A-Za-z_]+")
_SHOW_SESSION_RE = re.compile(
    r"""\s*(?:(?:SESSION|LOCAL)\s+STATUS|STATUS|WARNINGS|ERRORS|PROFILES?
    |COUNT\s*\(\s*\*\s*\)\s*(?:WARNINGS|ERRORS))\b""",
    re.I | re.X,
)
_SHOW_PRIMARY_RE = re.compile(
    r"\s*(?:MASTER\s+STATUS|BINARY\s+LOG\s+STATUS|(?:EXPLAIN|ANALYZE)\b(?:\s+FORMAT\s*=\s*\w+)?\s+FOR)\b",
    re.I,
)
_KILL = re.compile(r"\s*(?:(?:HARD|SOFT)\s+)?(?:(CONNECTION|QUERY)\s+)?(?:(ID)\s+)?([0-9]+)\s*\Z", re.I)
_USING_VAR = re.compile(r"\bUSING\s+@", re.I)

_EXPLAINABLE = frozenset({"SELECT", "WITH", "TABLE", "VALUES", "UPDATE", "DELETE", "INSERT", "REPLACE"})
_OTHER_VERBS = frozenset(
    {
        "CHECK",
        "CHECKSUM",
        "CACHE",
        "INSTALL",
        "UNINSTALL",
        "RESET",
        "PURGE",
        "CHANGE",
        "STOP",
        "SHUTDOWN",
        "RESTART",
        "BINLOG",
        "CLONE",
        "IMPORT",
        "SIGNAL",
        "RESIGNAL",
        "BACKUP",
    }
)


def as_show(inner: StatementInfo) -> StatementInfo:
    """EXPLAIN ANALYZE / ANALYZE <stmt>: runs the statement, reports a plan."""
    if inner.primary_reason is None and inner.effects == _E.NONE and not inner.reads_user_vars:
        return c.SHOW
    return replace(inner, kind=Kind.SHOW)


def _const(info: StatementInfo) -> Scanner:
    def scanner(code: str, pos: int) -> Scan:
        return info

    return scanner


def _scan_create(code: str, pos: int) -> Scan:
    m = _CREATE_TEMP.match(code, pos)
    if m is None:
        return c.DDL
    item = qualified_name(code, m.end())
    names = (item[0],) if item is not None else ()
    return StatementInfo(Kind.DDL, _R.DDL, _E.CREATES_TEMP_TABLE, names=names)


def _scan_drop(code: str, pos: int) -> Scan:
    keyword, after = word(code, pos)
    if keyword == "PREPARE":
        return _named(Kind.DEALLOCATE, _E.DEALLOCATES_SQL, code, after)
    m = _DROP_TABLE.match(code, pos)
    if m is None:
        return c.DDL
    names = name_list(code, m.end())
    if m.group(1) is not None:
        return StatementInfo(Kind.DDL, _R.DDL, _E.DROPS_TEMP_TABLE, names=names)
    # DROP TABLE also drops a temporary table of that name (and then does not commit): report the names
    # so session state can forget such temp tables.
    return StatementInfo(Kind.DDL, _R.DDL, _E.ENDS_TXN | _E.DROPS_TEMP_TABLE, names=names)


def _scan_analyze(code: str, pos: int) -> Scan:
    keyword, after = word(code, pos)
    if keyword in ("TABLE", "NO_WRITE_TO_BINLOG", "LOCAL"):
        return c.DDL
    if keyword == "FORMAT":
        fmt = _FORMAT_VALUE.match(code, after)
        if fmt is None:
            return None
        pos = fmt.end()
        keyword, after = word(code, pos)
    if keyword in _EXPLAINABLE or code[pos:].lstrip().startswith("("):
        return Delegate(pos, as_show=True)  # MariaDB ANALYZE <stmt>: executes it
    return None


def _scan_explain(code: str, pos: int) -> Scan:
    analyze = False
    while True:
        keyword, after = word(code, pos)
        if keyword in ("EXTENDED", "PARTITIONS"):
            pos = after
        elif keyword == "ANALYZE":
            analyze = True
            pos = after
        elif keyword == "FORMAT":
            fmt = _FORMAT_VALUE.match(code, after)
            if fmt is None:
                return c.SHOW
            pos = fmt.end()
        elif keyword == "INTO":  # EXPLAIN FORMAT=JSON INTO @var <stmt>
            return c.EXPLAIN_INTO
        elif keyword == "FOR":  # EXPLAIN FOR CONNECTION n: a connection id of one backend
            return c.SHOW_PRIMARY
        else:
            break
    if analyze and (keyword in _EXPLAINABLE or code[pos:].lstrip().startswith("(")):
        return Delegate(pos, as_show=True)
    return c.SHOW  # plain EXPLAIN never executes; DESCRIBE/DESC/EXPLAIN <table>


def _scan_show(code: str, pos: int) -> Scan:
    if _SHOW_SESSION_RE.match(code, pos):
        return c.SHOW_SESSION
    if _SHOW_PRIMARY_RE.match(code, pos):
        return c.SHOW_PRIMARY
    return c.SHOW


def _scan_begin(code: str, pos: int) -> Scan:
    keyword, _ = word(code, pos)
    if keyword in ("", "WORK"):
        return c.BEGIN
    if keyword == "NOT":  # BEGIN NOT ATOMIC ... END (MariaDB compound statement)
        return c.OTHER
    return None


def _scan_start(code: str, pos: int) -> Scan:
    keyword, after = word(code, pos)
    if keyword == "TRANSACTION":
        return c.BEGIN_READ_ONLY if _READ_ONLY.search(code, after) else c.BEGIN
    return c.OTHER  # START SLAVE / REPLICA / GROUP_REPLICATION ...


def _scan_commit(code: str, pos: int) -> Scan:
    return c.COMMIT_CHAIN if _CHAIN.search(code, pos) else c.COMMIT


def _scan_rollback(code: str, pos: int) -> Scan:
    keyword, after = word(code, pos)
    if keyword == "WORK":
        keyword, after = word(code, after)
    if keyword == "TO":
        return c.ROLLBACK_TO
    return c.ROLLBACK_CHAIN if _CHAIN.search(code, pos) else c.ROLLBACK


def _scan_release(code: str, pos: int) -> Scan:
    keyword, _ = word(code, pos)
    return c.SAVEPOINT if keyword == "SAVEPOINT" else None


def _scan_xa(code: str, pos: int) -> Scan:
    keyword, _ = word(code, pos)
    if keyword in ("START", "BEGIN"):
        return c.BEGIN
    if keyword in ("END", "PREPARE"):
        return c.XA_IDLE
    if keyword == "COMMIT":
        return c.COMMIT
    if keyword == "ROLLBACK":
        return c.ROLLBACK
    if keyword == "RECOVER":
        return c.XA_RECOVER
    return None


def _scan_use(code: str, pos: int) -> Scan:
    m = _qident_match(code, pos)
    if m is None or m.group(2) is not None or code[m.end() :].strip():
        return None
    return StatementInfo(Kind.USE, _R.SESSION_COMMAND, _E.CHANGES_DB, names=(unquote(m.group(1)),))


def _scan_lock(code: str, pos: int) -> Scan:
    keyword, _ = word(code, pos)
    if keyword in ("TABLES", "TABLE"):
        return c.LOCK_TABLES
    if keyword == "INSTANCE":
        return c.LOCK_INSTANCE
    return None


def _scan_unlock(code: str, pos: int) -> Scan:
    keyword, _ = word(code, pos)
    return c.UNLOCK_TABLES if keyword in ("TABLES", "TABLE", "INSTANCE") else None


def _scan_flush(code: str, pos: int) -> Scan:
    return c.FLUSH_READ_LOCK if _FLUSH_LOCK.search(code, pos) else c.DDL


def _scan_load(code: str, pos: int) -> Scan:
    keyword, _ = word(code, pos)
    if keyword in ("DATA", "XML"):
        return c.LOAD
    if keyword == "INDEX":
        return c.OTHER
    return None


def _named(kind: Kind, effect: Effect, code: str, pos: int) -> Scan:
    m = _qident_match(code, pos)
    if m is None or m.group(2) is not None:
        return None
    # SQL-level prepared statement names are case-insensitive: lower-cased.
    return StatementInfo(kind, _R.SQL_PREPARE, effect, names=(unquote(m.group(1)).lower(),))


def _scan_prepare(code: str, pos: int) -> Scan:
    return _named(Kind.PREPARE, _E.PREPARES_SQL, code, pos)


def _scan_execute(code: str, pos: int) -> Scan:
    keyword, _ = word(code, pos)
    if keyword == "IMMEDIATE":
        return c.EXECUTE_IMMEDIATE
    info = _named(Kind.EXECUTE, _E.NONE, code, pos)
    if isinstance(info, StatementInfo) and _USING_VAR.search(code, pos):
        return replace(info, reads_user_vars=True)
    return info


def _scan_deallocate(code: str, pos: int) -> Scan:
    keyword, after = word(code, pos)
    if keyword != "PREPARE":
        return None
    return _named(Kind.DEALLOCATE, _E.DEALLOCATES_SQL, code, after)


def _scan_kill(code: str, pos: int) -> Scan:
    m = _KILL.match(code, pos)
    if m is None:  # KILL USER ..., KILL <expression>
        query = word(code, pos)[0] == "QUERY"
        return StatementInfo(Kind.KILL, _R.KILL, kill_query=query)
    query = m.group(1) is not None and m.group(1).upper() == "QUERY"
    if m.group(2) is not None:  # MariaDB KILL QUERY ID <query id>: not a connection id
        return StatementInfo(Kind.KILL, _R.KILL, kill_query=True)
    return StatementInfo(Kind.KILL, _R.KILL, names=(str(int(m.group(3))),), kill_query=query)


def _scan_get(code: str, pos: int) -> Scan:
    keyword, after = word(code, pos)
    if keyword in ("CURRENT", "STACKED"):
        keyword, _ = word(code, after)
    return c.GET_DIAGNOSTICS if keyword == "DIAGNOSTICS" else None


#: Upper-cased verb -> its scanner. A verb not listed here is SELECT-like or left to sqlglot.
SCANNERS: dict[str, Scanner] = {
    "INSERT": _const(c.INSERT),
    "UPDATE": _const(c.UPDATE),
    "DELETE": _const(c.DELETE),
    "REPLACE": _const(c.REPLACE),
    "LOAD": _scan_load,
    "CREATE": _scan_create,
    "DROP": _scan_drop,
    "ALTER": _const(c.DDL),
    "TRUNCATE": _const(c.DDL),
    "RENAME": _const(c.DDL),
    "GRANT": _const(c.DDL),
    "REVOKE": _const(c.DDL),
    "OPTIMIZE": _const(c.DDL),
    "REPAIR": _const(c.DDL),
    "ANALYZE": _scan_analyze,
    "FLUSH": _scan_flush,
    "BEGIN": _scan_begin,
    "START": _scan_start,
    "COMMIT": _scan_commit,
    "ROLLBACK": _scan_rollback,
    "SAVEPOINT": _const(c.SAVEPOINT),
    "RELEASE": _scan_release,
    "XA": _scan_xa,
    "SET": scan_set,
    "USE": _scan_use,
    "SHOW": _scan_show,
    "DESCRIBE": _scan_explain,
    "DESC": _scan_explain,
    "EXPLAIN": _scan_explain,
    "HELP": _const(c.SHOW),
    "CALL": _const(c.CALL),
    "HANDLER": _const(c.HANDLER),
    "LOCK": _scan_lock,
    "UNLOCK": _scan_unlock,
    "PREPARE": _scan_prepare,
    "EXECUTE": _scan_execute,
    "DEALLOCATE": _scan_deallocate,
    "KILL": _scan_kill,
    "GET": _scan_get,
    **{verb: _const(c.OTHER) for verb in _OTHER_VERBS},
}
