"""SELECT ... FROM information_schema.PROCESSLIST answered by rwproxy from its session table.

On a server this table lists that server's threads: through rwproxy those are pooled backend
connections (ids no client knows, shared by several sessions over time). rwproxy answers instead,
with the same rows as SHOW FULL PROCESSLIST (:mod:`rwproxy.frontend.processlist`, same visibility
rules) as the table's columns ``ID, USER, HOST, DB, COMMAND, TIME, STATE, INFO, TIME_MS``: the
statement is parsed and run by sqlglot's executor over those rows (WHERE, ORDER BY, GROUP BY,
aggregates, LIMIT). A statement it cannot run alone - a join with another table, a subquery on one,
a column it does not have - gets ERR 1235 naming the reason, never the server's backend threads.

The classifier marks statements that mention PROCESSLIST (``PrimaryReason.PROCESSLIST``); only those
get here, and :func:`answer` takes them when they name ``information_schema.PROCESSLIST``.
:func:`evaluate` is pure.
"""

from __future__ import annotations

import decimal
import re
from typing import TYPE_CHECKING, Any

from rwproxy.frontend.processlist import (
    Column,
    ProcessRow,
    encode_result,
    process_rows,
    see_all_sessions,
    visible_rows,
)
from rwproxy.protocol.constants import ColumnFlag, ColumnType, ErrorCode

if TYPE_CHECKING:
    from rwproxy.frontend.session import ClientSession

__all__ = ["NotAnswerable", "answer", "evaluate", "mentions_processlist"]

_MENTION = re.compile(r"information_schema`?\s*\.\s*`?processlist\b", re.I)
_NN = int(ColumnFlag.NOT_NULL)

# The table's columns (name, type, length, flags, decimals), as MariaDB describes them.
_BASE: dict[str, Column] = {
    c[0]: c
    for c in (
        ("ID", ColumnType.LONGLONG, 4, _NN, 0),
        ("USER", ColumnType.VAR_STRING, 128, _NN, 0),
        ("HOST", ColumnType.VAR_STRING, 64, _NN, 0),
        ("DB", ColumnType.VAR_STRING, 64, 0, 0),
        ("COMMAND", ColumnType.VAR_STRING, 16, _NN, 0),
        ("TIME", ColumnType.LONG, 7, _NN, 0),
        ("STATE", ColumnType.VAR_STRING, 64, 0, 0),
        ("INFO", ColumnType.BLOB, 65535, 0, 0),
        ("TIME_MS", ColumnType.NEWDECIMAL, 24, _NN, 3),
    )
}


class NotAnswerable(Exception):
    """The statement cannot be answered from the session table alone (the message says why)."""


def mentions_processlist(sql: str) -> bool:
    return _MENTION.search(sql) is not None


def answer(session: ClientSession, sql: str) -> bool:
    """Take ``sql`` if it reads information_schema.PROCESSLIST (True); the answer comes later."""
    if not mentions_processlist(sql):
        return False
    session.busy = True
    session.spawn(_answer(session, sql))
    return True


async def _answer(session: ClientSession, sql: str) -> None:
    rows = await visible_rows(session, sql.strip())  # worker processes: every worker's sessions
    if rows is None:
        see_all = await see_all_sessions(session)
        rows = process_rows(session, see_all=see_all, statement=sql.strip())
    if session.closed:
        return
    try:
        columns, values = evaluate(sql, rows)
    except NotAnswerable as exc:
        session.reply_error(
            ErrorCode.ER_NOT_SUPPORTED_YET,
            f"rwproxy answers information_schema.PROCESSLIST from its own sessions and cannot run "
            f"this statement: {exc}",
            "42000",
        )
    else:
        data = encode_result(columns, values, session.client_flags, session.status_flags())
        if session.transport is not None and not session.transport.is_closing():
            session.transport.write(data)
    session.finish_command()


def _table(rows: list[ProcessRow]) -> list[dict[str, Any]]:
    return [
        {
            "id": r.id,
            "user": r.user,
            "host": r.host,
            "db": r.db,
            "command": r.command,
            "time": r.time,
            "state": r.state,
            "info": r.info,
            "time_ms": decimal.Decimal(r.time * 1000),
        }
        for r in rows
    ]


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, decimal.Decimal):
        return f"{value:.3f}"
    return str(value)


def _column(name: str, base: str | None, values: list[object]) -> Column:
    if base is not None and base.upper() in _BASE:
        _, kind, length, flags, decimals = _BASE[base.upper()]
        return (name, kind, length, flags, decimals)
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, int):  # bool too
        return (name, ColumnType.LONGLONG, 21, 0, 0)
    if isinstance(sample, float):
        return (name, ColumnType.DOUBLE, 22, 0, 31)
    if isinstance(sample, decimal.Decimal):
        return (name, ColumnType.NEWDECIMAL, 24, 0, 3)
    return (name, ColumnType.VAR_STRING, 256, 0, 0)


def evaluate(sql: str, rows: list[ProcessRow]) -> tuple[list[Column], list[list[str | None]]]:
    """Run ``sql`` over ``rows`` as information_schema.PROCESSLIST: column definitions and text rows.

    Raises :class:`NotAnswerable` when it is not one SELECT over that table alone."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.executor import execute

    try:
        trees = [t for t in sqlglot.parse(sql, read="mysql") if t is not None]
    except Exception as exc:  # ParseError, TokenError, ...
        raise NotAnswerable(f"cannot parse it ({exc})") from None
    if len(trees) != 1 or not isinstance(trees[0], exp.Select):
        raise NotAnswerable("it is not a single SELECT")
    tree = trees[0]
    for table in tree.find_all(exp.Table):
        if (table.db.lower(), table.name.lower()) != ("information_schema", "processlist"):
            raise NotAnswerable(f"it reads {table.sql(dialect='mysql')} too")

    def lower(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Identifier):
            return exp.Identifier(this=node.name.lower(), quoted=False)
        return node

    try:
        result = execute(
            tree.copy().transform(lower), tables={"information_schema": {"processlist": _table(rows)}}
        )
    except Exception as exc:  # sqlglot's OptimizeError, ExecuteError, ...
        raise NotAnswerable(str(exc) or type(exc).__name__) from None
    # Names as a server would give them: alias, column as written, or the expression's text.
    names: list[tuple[str, str | None]] = []
    for projection in tree.expressions:
        if isinstance(projection, exp.Star) or (
            isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
        ):
            names.extend((base, base) for base in _BASE)
        elif isinstance(projection, exp.Alias):
            inner = projection.this
            names.append((projection.alias, inner.name if isinstance(inner, exp.Column) else None))
        elif isinstance(projection, exp.Column):
            names.append((projection.name, projection.name))
        else:
            names.append((projection.sql(dialect="mysql"), None))
    if len(names) != len(result.columns):
        names = [(c.upper(), c) for c in result.columns]
    columns = [_column(name, base, [row[i] for row in result.rows]) for i, (name, base) in enumerate(names)]
    return columns, [[_text(v) for v in row] for row in result.rows]
