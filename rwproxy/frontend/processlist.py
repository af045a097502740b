"""SHOW [FULL] PROCESSLIST answered by rwproxy from its session table.

Every row is an rwproxy client session: ``Id`` is the session id (the greeting's thread id, what
``CONNECTION_ID()`` returns and what ``KILL`` takes), ``User`` the rwproxy user, ``Host`` the
client's ``address:port``, ``db`` the session's database, ``Command`` ``Connect`` (handshake),
``Query`` (a statement in flight) or ``Sleep``, ``Time`` seconds in that state, ``State`` NULL or
``executing``, ``Info`` the statement in flight (first 100 characters unless FULL). MariaDB's extra
``Progress`` column is there when the primary is MariaDB. A user sees their own sessions; with
PROCESS on the primary (:mod:`rwproxy.frontend.privileges`) every session, as on a server.

``Time`` of a running statement is exact when latency or digest recording is on (the default);
otherwise, and for ``Sleep``, it follows the idle sweeper's marks (rwproxy.client_idle_timeout_seconds / 4,
at most 30 s, apart): the hot path keeps no clock of its own for this.

:func:`encode_processlist` is pure: rows in, result-set bytes out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rwproxy.backend.connection import BackendError
from rwproxy.frontend.privileges import PROCESS_PRIVILEGES, global_privileges
from rwproxy.protocol.constants import UTF8MB4_GENERAL_CI, Capability, ColumnFlag, ColumnType
from rwproxy.protocol.framing import frame
from rwproxy.protocol.packets import (
    make_column_count,
    make_column_definition41,
    make_eof,
    make_ok,
    make_text_row,
)

if TYPE_CHECKING:
    from rwproxy.frontend.host import SessionHost
    from rwproxy.frontend.session import ClientSession

__all__ = [
    "SHOW_PROCESSLIST",
    "Column",
    "ProcessRow",
    "answer",
    "encode_processlist",
    "encode_result",
    "is_mariadb",
    "process_rows",
    "see_all_sessions",
    "session_rows",
    "visible_rows",
]

log = logging.getLogger(__name__)

#: ``SHOW [FULL] PROCESSLIST`` alone (group 1: FULL).
SHOW_PROCESSLIST = re.compile(r"\s*SHOW\s+(FULL\s+)?PROCESSLIST\s*;?\s*", re.I)

_INFO_CHARS = 100  # SHOW PROCESSLIST without FULL cuts Info there, as servers do
_NN = int(ColumnFlag.NOT_NULL)


@dataclass(frozen=True, slots=True)
class ProcessRow:
    id: int
    user: str
    host: str
    db: str | None
    command: str
    time: int
    state: str | None
    info: str | None


# (name, type, length, flags, decimals), as MariaDB 10.11 describes SHOW PROCESSLIST.
_COLUMNS: tuple[tuple[str, int, int, int, int], ...] = (
    ("Id", ColumnType.LONGLONG, 11, _NN | int(ColumnFlag.UNSIGNED), 0),
    ("User", ColumnType.VAR_STRING, 512, _NN, 0),
    ("Host", ColumnType.VAR_STRING, 256, _NN, 0),
    ("db", ColumnType.VAR_STRING, 256, 0, 0),
    ("Command", ColumnType.VAR_STRING, 64, _NN, 0),
    ("Time", ColumnType.LONG, 7, _NN, 0),
    ("State", ColumnType.VAR_STRING, 120, 0, 0),
    ("Info", ColumnType.VAR_STRING, 400, 0, 0),
)
_PROGRESS = ("Progress", ColumnType.NEWDECIMAL, 7, _NN, 3)


#: (name, type, length, flags, decimals) of one column of a local result.
Column = tuple[str, int, int, int, int]


def encode_result(
    columns: list[Column], rows: list[list[str | None]], capabilities: int, status_flags: int
) -> bytes:
    """A whole framed text result set (sequence ids from 1): typed column definitions, text rows."""
    payloads = [make_column_count(len(columns), capabilities)]
    for name, kind, length, flags, decimals in columns:
        payloads.append(
            make_column_definition41(
                name,
                charset=UTF8MB4_GENERAL_CI,
                column_length=length * 4 if kind == ColumnType.VAR_STRING else length,
                column_type=kind,
                flags=flags,
                decimals=decimals,
            )
        )
    deprecate_eof = bool(capabilities & Capability.DEPRECATE_EOF)
    if not deprecate_eof:
        payloads.append(make_eof(0, status_flags))
    for values in rows:
        payloads.append(
            make_text_row([None if v is None else v.encode("utf-8", "surrogateescape") for v in values])
        )
    if deprecate_eof:
        payloads.append(make_ok(capabilities, status_flags=status_flags, header=0xFE))
    else:
        payloads.append(make_eof(0, status_flags))
    return b"".join(frame(p, seq) for seq, p in enumerate(payloads, start=1))


def encode_processlist(
    rows: list[ProcessRow], capabilities: int, status_flags: int, *, full: bool, progress: bool
) -> bytes:
    """SHOW [FULL] PROCESSLIST's whole framed result set for ``rows``."""
    columns = list(_COLUMNS) + ([_PROGRESS] if progress else [])
    if full:
        columns[7] = ("Info", ColumnType.LONG_BLOB if progress else ColumnType.VAR_STRING, 1 << 20, 0, 0)
    values: list[list[str | None]] = []
    for r in rows:
        info = r.info if full or r.info is None else r.info[:_INFO_CHARS]
        row = [str(r.id), r.user, r.host, r.db, r.command, str(r.time), r.state, info]
        if progress:
            row.append("0.000")
        values.append(row)
    return encode_result(columns, values, capabilities, status_flags)


def _host(session: ClientSession) -> str:
    transport = session.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return session.peer


def _row(session: ClientSession, viewer: ClientSession | None, now: float, perf_now: float) -> ProcessRow:
    count, since = session.idle_mark
    idle = int(now - since) if since and count == session.commands else 0
    if session.phase == 0:  # handshake
        return ProcessRow(
            session.id, "unauthenticated user", _host(session), None, "Connect", idle, "login", None
        )
    inflight = session.inflight
    if session is viewer:
        info: str | None = None  # filled in by the caller (the SHOW statement itself)
        command, state, seconds = "Query", "executing", 0
    elif session.busy:
        argument = inflight.argument if inflight is not None else b""
        info = argument.decode("utf-8", "replace") if argument else None
        seconds = int(perf_now - session.started) if session.timed and session.started else idle
        command, state = "Query", "executing"
    else:
        info, command, state, seconds = None, "Sleep", None, idle
    return ProcessRow(
        session.id,
        session.user,
        _host(session),
        session.state.database,
        command,
        max(seconds, 0),
        state,
        info,
    )


def process_rows(viewer: ClientSession, *, see_all: bool, statement: str) -> list[ProcessRow]:
    """The rows ``viewer`` may see, by session id; its own row shows ``statement``."""
    loop = asyncio.get_running_loop()
    now, perf_now = loop.time(), time.perf_counter()
    rows = []
    for sid in sorted(viewer.app.sessions):
        s = viewer.app.sessions[sid]
        if s.closed or not (see_all or s.user == viewer.user):
            continue
        row = _row(s, viewer, now, perf_now)
        if s is viewer:
            row = ProcessRow(row.id, row.user, row.host, row.db, row.command, 0, row.state, statement)
        rows.append(row)
    return rows


def session_rows(app: SessionHost) -> list[dict[str, object]]:
    """Every session of this worker process, for another worker's process list
    (``rwproxy.workers.processlist_forward``; that worker filters them for its viewer)."""
    loop = asyncio.get_running_loop()
    now, perf_now = loop.time(), time.perf_counter()
    sessions = list(app.sessions.values())
    return [dataclasses.asdict(_row(s, None, now, perf_now)) for s in sessions if not s.closed]


async def visible_rows(session: ClientSession, statement: str) -> list[ProcessRow] | None:
    """With worker processes, the process list of the whole instance that ``session`` may see;
    None in one process, or when the other workers did not answer in time (local rows then)."""
    from rwproxy.workers import processlist_forward

    remote = processlist_forward.current
    if remote is None:
        return None
    others = await remote.other_rows()
    if others is None or session.closed:
        return None
    rows = [ProcessRow(**r) for r in others]
    if any(r.user != session.user for r in rows):
        see_all = await _may_see_all(session)
    else:
        see_all = await see_all_sessions(session)
    rows = [r for r in rows if see_all or r.user == session.user]
    rows += process_rows(session, see_all=see_all, statement=statement)
    return sorted(rows, key=lambda r: r.id)


def is_mariadb(version: str) -> bool:
    v = version.lower()
    return "mariadb" in v or v.startswith(("10.", "11.", "12."))


def answer(session: ClientSession, sql: str) -> bool:
    """Answer ``sql`` if it is SHOW [FULL] PROCESSLIST (True); asynchronously when sessions of other
    users exist (the viewer's PROCESS privilege decides whether they are listed)."""
    m = SHOW_PROCESSLIST.fullmatch(sql)
    if m is None:
        return False
    full = m.group(1) is not None
    from rwproxy.workers import processlist_forward  # worker processes: ask the others too

    alone = not any(s.user != session.user for s in session.app.sessions.values())
    if alone and processlist_forward.current is None:
        _write(session, sql, full, see_all=False, rows=None)
        return True
    session.busy = True
    session.spawn(_answer_after_privileges(session, sql, full))
    return True


async def see_all_sessions(session: ClientSession) -> bool:
    """Whether ``session``'s user may see other users' sessions (PROCESS on the primary)."""
    if not any(s.user != session.user for s in session.app.sessions.values()):
        return False
    return await _may_see_all(session)


async def _may_see_all(session: ClientSession) -> bool:
    try:
        return bool(await global_privileges(session.app, session.user) & PROCESS_PRIVILEGES)
    except BackendError as exc:
        log.info("session %d: cannot read privileges (%s); showing own sessions only", session.id, exc)
        return False


async def _answer_after_privileges(session: ClientSession, sql: str, full: bool) -> None:
    rows = await visible_rows(session, sql.strip())  # worker processes: every worker's sessions
    see_all = await see_all_sessions(session) if rows is None else False
    if session.closed:
        return
    _write(session, sql, full, see_all=see_all, rows=rows)
    session.finish_command()


def _write(
    session: ClientSession, sql: str, full: bool, *, see_all: bool, rows: list[ProcessRow] | None
) -> None:
    if rows is None:
        rows = process_rows(session, see_all=see_all, statement=sql.strip())
    data = encode_processlist(
        rows,
        session.client_flags,
        session.status_flags(),
        full=full,
        progress=is_mariadb(session.app.server_version),
    )
    if session.transport is not None and not session.transport.is_closing():
        session.transport.write(data)
