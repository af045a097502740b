"""The fixed classifications the scanners answer with: shared, immutable :class:`StatementInfo` values.

Returning one shared instance per fixed answer keeps the fast path allocation-free. They are frozen;
a caller that needs a variant (a hint, lock names) uses :func:`dataclasses.replace`.
"""

from __future__ import annotations

from rwproxy.router.statement import Effect, Kind, PrimaryReason, StatementInfo

__all__ = [
    "BEGIN",
    "BEGIN_READ_ONLY",
    "CALL",
    "COMMIT",
    "COMMIT_CHAIN",
    "DDL",
    "DELETE",
    "EMPTY",
    "EXECUTE_IMMEDIATE",
    "EXPLAIN_INTO",
    "FLUSH_READ_LOCK",
    "GET_DIAGNOSTICS",
    "HANDLER",
    "INSERT",
    "LOAD",
    "LOCK_EFFECTS",
    "LOCK_INSTANCE",
    "LOCK_TABLES",
    "OTHER",
    "PLAIN_SELECT",
    "REPLACE",
    "ROLLBACK",
    "ROLLBACK_CHAIN",
    "ROLLBACK_TO",
    "SAVEPOINT",
    "SHOW",
    "SHOW_PRIMARY",
    "SHOW_SESSION",
    "UNLOCK_TABLES",
    "UNPARSEABLE",
    "UNPARSEABLE_PARSED",
    "UPDATE",
    "XA_IDLE",
    "XA_RECOVER",
]

_R = PrimaryReason
_E = Effect

#: The shared result for every plain read. Never mutate it (it is frozen anyway).
PLAIN_SELECT = StatementInfo(kind=Kind.SELECT)

SHOW = StatementInfo(Kind.SHOW)
SHOW_SESSION = StatementInfo(Kind.SHOW, _R.SESSION_FUNCTION)
SHOW_PRIMARY = StatementInfo(Kind.SHOW, _R.OTHER)
EXPLAIN_INTO = StatementInfo(Kind.SHOW, _R.SELECT_INTO, _E.ASSIGNS_USER_VAR_IN_QUERY)
INSERT = StatementInfo(Kind.INSERT, _R.WRITE)
UPDATE = StatementInfo(Kind.UPDATE, _R.WRITE)
DELETE = StatementInfo(Kind.DELETE, _R.WRITE)
REPLACE = StatementInfo(Kind.REPLACE, _R.WRITE)
LOAD = StatementInfo(Kind.LOAD, _R.WRITE)
DDL = StatementInfo(Kind.DDL, _R.DDL, _E.ENDS_TXN)
CALL = StatementInfo(Kind.CALL, _R.CALL)
HANDLER = StatementInfo(Kind.HANDLER, _R.HANDLER)
OTHER = StatementInfo(Kind.OTHER, _R.OTHER)
EMPTY = OTHER  # a query with no statement at all ("", ";", only a comment)
GET_DIAGNOSTICS = StatementInfo(Kind.OTHER, _R.SESSION_FUNCTION)
UNPARSEABLE = StatementInfo(Kind.OTHER, _R.UNPARSEABLE, unparseable=True)
UNPARSEABLE_PARSED = StatementInfo(Kind.OTHER, _R.UNPARSEABLE, used_parser=True, unparseable=True)
BEGIN = StatementInfo(Kind.BEGIN, _R.TRANSACTION, _E.STARTS_TXN)
BEGIN_READ_ONLY = StatementInfo(Kind.BEGIN, _R.TRANSACTION, _E.STARTS_TXN, read_only_txn=True)
COMMIT = StatementInfo(Kind.COMMIT, _R.TRANSACTION, _E.ENDS_TXN)
COMMIT_CHAIN = StatementInfo(Kind.COMMIT, _R.TRANSACTION, _E.ENDS_TXN | _E.STARTS_TXN)
ROLLBACK = StatementInfo(Kind.ROLLBACK, _R.TRANSACTION, _E.ENDS_TXN)
ROLLBACK_CHAIN = StatementInfo(Kind.ROLLBACK, _R.TRANSACTION, _E.ENDS_TXN | _E.STARTS_TXN)
ROLLBACK_TO = StatementInfo(Kind.ROLLBACK, _R.TRANSACTION)
SAVEPOINT = StatementInfo(Kind.SAVEPOINT, _R.TRANSACTION)
XA_IDLE = StatementInfo(Kind.COMMIT, _R.TRANSACTION)  # XA END / XA PREPARE: transaction not over yet
XA_RECOVER = StatementInfo(Kind.SHOW, _R.TRANSACTION)
LOCK_TABLES = StatementInfo(Kind.LOCK_TABLES, _R.LOCK_TABLES, _E.LOCKS_TABLES | _E.ENDS_TXN)
LOCK_INSTANCE = StatementInfo(Kind.LOCK_TABLES, _R.LOCK_TABLES, _E.LOCKS_TABLES)
UNLOCK_TABLES = StatementInfo(Kind.UNLOCK_TABLES, _R.LOCK_TABLES, _E.UNLOCKS_TABLES)
FLUSH_READ_LOCK = StatementInfo(Kind.DDL, _R.LOCK_TABLES, _E.LOCKS_TABLES | _E.ENDS_TXN)
EXECUTE_IMMEDIATE = StatementInfo(Kind.EXECUTE, _R.SQL_PREPARE)

#: The effects whose ``names`` (lock names) depend on literals, so are filled per statement.
LOCK_EFFECTS = _E.ACQUIRES_NAMED_LOCK | _E.RELEASES_NAMED_LOCK
