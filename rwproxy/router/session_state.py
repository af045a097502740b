"""Per-client session state that routing depends on. Pure: updated from classifications and from the
status flags the backend sent back, never from guesses about I/O.

Two jobs:
1. Pins and transaction state: what forces the session's statements onto the primary.
2. The replay log: session commands (USE, SET, SET NAMES, SET @x) that every backend connection
   serving this session must have applied, in order, before it runs the session's next statement.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from rwproxy.router.digest import lex
from rwproxy.router.set_replay import SetPlanKind, Value, captured_statement, order_readback, plan_set
from rwproxy.router.statement import Effect, StatementInfo

__all__ = ["Consistency", "PinReason", "ReplayEntry", "SessionState"]

_IN_TRANS = 0x0001
_AUTOCOMMIT = 0x0002


class PinReason(enum.Enum):
    """Why a session's statements all stay on the primary for now."""

    TEMP_TABLE = "session has temporary tables"
    NAMED_LOCK = "session holds named locks (GET_LOCK)"
    LOCK_TABLES = "session holds LOCK TABLES"
    SQL_PREPARE = "session has SQL-level prepared statements"
    USER_VARS = "session assigned user variables inside a query"
    UNREPLAYABLE_SET = "session set variables from expressions rwproxy cannot replay elsewhere"


class Consistency(enum.Enum):
    """What a session's reads may see (``routing.consistency``, per user, ``SET @rwproxy_consistency``).

    EVENTUAL: any usable replica. READ_YOUR_WRITES: after the session committed a write, only a
    replica that has applied it (known from the monitor, or waited for), else the primary.
    PRIMARY: every statement on the primary. UNIVERSAL: every read sees everything the primary had
    committed when it arrived (its position, read once per batch of reads: ``rwproxy.frontend.universal``).
    """

    EVENTUAL = "eventual"
    READ_YOUR_WRITES = "read_your_writes"
    PRIMARY = "primary"
    UNIVERSAL = "universal"


@dataclass(frozen=True, slots=True)
class ReplayEntry:
    """One session command to replay. ``seq`` orders entries; a connection that has applied
    everything up to ``seq`` does not need it again."""

    seq: int
    key: str
    command: int  # COM_QUERY (3) or COM_INIT_DB (2)
    payload: bytes  # argument of the command (SQL text or database name), without the command byte


@dataclass(slots=True)
class SessionState:
    database: str | None = None
    in_transaction: bool = False
    autocommit: bool = True
    temp_tables: set[str] = field(default_factory=set)
    named_locks: dict[str, int] = field(default_factory=dict)  # lower-cased name → times acquired
    tables_locked: bool = False
    sql_prepared: set[str] = field(default_factory=set)
    user_vars_in_query: bool = False
    unreplayable_set: bool = False
    _replay: dict[str, ReplayEntry] = field(default_factory=dict)
    replay_seq: int = 0  # sequence number of the latest replay entry (0: none)
    # Causal reads. ``causal_gtid``: GTID of the session's latest commit, learned from its OK packet;
    # ``write_unconfirmed``: a write succeeded whose GTID is not known (yet): reads of a
    # READ_YOUR_WRITES session go to the primary until a GTID is learned.
    consistency: Consistency = Consistency.EVENTUAL
    causal_gtid: str | None = None
    write_unconfirmed: bool = False
    # ``SET @rwproxy_wait_gtid``: a GTID (from another connection) every read must see, in any
    # consistency mode, until replaced, cleared or the session's own commit (rwproxy.router.causal_token).
    wait_gtid: str | None = None
    # A SET whose resulting values must be read back from the primary before the session's next
    # statement (rwproxy.router.set_replay, CAPTURE): the session variables to read, else None.
    capture: tuple[str, ...] | None = None
    # signature() cache: the replay log as a tuple, valid while replay_seq == _sig_seq.
    _sig: tuple[tuple[str, int, bytes], ...] = ()
    _sig_seq: int = 0
    sticky_replica: str | None = None  # routing.sticky_replica: the replica plain reads stay on

    # -- pins --------------------------------------------------------------------------------

    def pin(self) -> PinReason | None:
        """The first reason the session is pinned to the primary, or None. (User variables that
        only the primary has are not a pin: just the reads that mention them go there.)"""
        if self.temp_tables:
            return PinReason.TEMP_TABLE
        if self.named_locks:
            return PinReason.NAMED_LOCK
        if self.tables_locked:
            return PinReason.LOCK_TABLES
        if self.sql_prepared:
            return PinReason.SQL_PREPARE
        if self.unreplayable_set:
            return PinReason.UNREPLAYABLE_SET
        return None

    # -- updates -----------------------------------------------------------------------------

    def observe_status(self, status_flags: int) -> None:
        """Take transaction state from the server's status flags (the backend is the truth)."""
        self.in_transaction = bool(status_flags & _IN_TRANS)
        self.autocommit = bool(status_flags & _AUTOCOMMIT)

    def apply(self, info: StatementInfo, sql: bytes, succeeded: bool) -> None:
        """Record the session effects of a statement that ran (``succeeded`` False after ERR).

        ``sql`` is the statement text as the client sent it, used for the replay log.
        """
        if not succeeded:
            return
        if info.effects is Effect.NONE:
            return
        if info.multi_statement:
            # Several statements in one packet (Django: "SET ...; SET SESSION TRANSACTION ..."): each
            # is tracked and replayed on its own when the text splits into as many statements.
            for part, text in zip(info.parts, _statement_texts(sql, len(info.parts)), strict=True):
                self._apply_one(part, text)
            return
        self._apply_one(info, sql)

    def _apply_one(self, info: StatementInfo, sql: bytes | None) -> None:
        effects = info.effects
        if effects is Effect.NONE:
            return
        names = info.names
        if effects & Effect.CHANGES_DB and names:
            self.set_database(names[0])
        if effects & Effect.CREATES_TEMP_TABLE:
            self.temp_tables.update(self._qualified(n) for n in names)
        if effects & Effect.DROPS_TEMP_TABLE:
            self.temp_tables.difference_update(self._qualified(n) for n in names)
        if effects & Effect.ACQUIRES_NAMED_LOCK:
            # Locks nest: GET_LOCK twice needs RELEASE_LOCK twice. A failed GET_LOCK (returns 0)
            # is counted too: the session then stays pinned until RELEASE_ALL_LOCKS or its end.
            for name in names or ("*",):
                key = name.lower()
                self.named_locks[key] = self.named_locks.get(key, 0) + 1
        if effects & Effect.RELEASES_NAMED_LOCK:
            if "*" in names or not names:
                self.named_locks.clear()
            else:
                for name in names:
                    key = name.lower()
                    left = self.named_locks.get(key, 0) - 1
                    if left > 0:
                        self.named_locks[key] = left
                    else:
                        self.named_locks.pop(key, None)
        if effects & Effect.LOCKS_TABLES:
            self.tables_locked = True
        if effects & Effect.UNLOCKS_TABLES:
            self.tables_locked = False
        if effects & Effect.PREPARES_SQL:
            self.sql_prepared.update(n.lower() for n in names)
        if effects & Effect.DEALLOCATES_SQL:
            self.sql_prepared.difference_update(n.lower() for n in names)
        if effects & Effect.ASSIGNS_USER_VAR_IN_QUERY:
            self.user_vars_in_query = True
        # Replay what changes session variables; never SET GLOBAL (runs once, on the primary) and
        # never a bare SET autocommit (autocommit=0 keeps the session on the primary anyway).
        if effects & (Effect.SETS_SESSION_VAR | Effect.SETS_USER_VAR):
            if effects & Effect.SETS_GLOBAL and not effects & (
                Effect.SETS_SESSION_VAR | Effect.SETS_USER_VAR
            ):
                return
            self._apply_set(info, sql)

    def _apply_set(self, info: StatementInfo, sql: bytes | None) -> None:
        plan = plan_set(info, sql) if sql is not None else None
        if plan is not None and plan.kind is SetPlanKind.ONCE:
            return
        if plan is not None and plan.kind is SetPlanKind.TEXT:
            self._record_set(info, sql)  # type: ignore[arg-type]  # plan is None when sql is
            return
        if plan is None or plan.kind is SetPlanKind.PIN:
            if info.effects & Effect.SETS_SESSION_VAR:
                self.unreplayable_set = True
            else:
                self.user_vars_in_query = True
            return
        if plan.user_sql is not None:
            self._add("sql:" + plan.user_sql.decode("utf-8", "surrogateescape"), 3, plan.user_sql)
        if plan.user_vars_unknown:
            self.user_vars_in_query = True
        if plan.readback:
            self.capture = (
                plan.readback if self.capture is None else order_readback(self.capture + plan.readback)
            )

    def record_capture(self, names: Sequence[str], values: Sequence[Value] | None) -> None:
        """The values a CAPTURE SET left on the primary (``(column type, text)`` per name, None when
        they could not be read): recorded as a constant SET, or the session is pinned."""
        statement = captured_statement(names, values) if values is not None else None
        if statement is None:
            if any(n[0] != "@" for n in names):
                self.unreplayable_set = True
            else:  # only user variables: just the reads that mention them go to the primary
                self.user_vars_in_query = True
            return
        self._add("set:" + ",".join(sorted(names)), 3, statement)

    def _qualified(self, table: str) -> str:
        table = table.lower()
        if "." in table:
            return table
        return f"{(self.database or '').lower()}.{table}"

    def set_database(self, name: str) -> None:
        self.database = name
        self._add("db", 2, name.encode("utf-8", "surrogateescape"))  # the client's bytes, as received

    def set_option(self, option: bytes) -> None:
        """COM_SET_OPTION (multi-statements on/off): replayed on every connection of the session."""
        self._add("option", 27, option)

    def reset(self) -> None:
        """COM_RESET_CONNECTION / COM_CHANGE_USER: back to a fresh session (database kept by caller)."""
        self.in_transaction = False
        self.autocommit = True
        self.temp_tables.clear()
        self.named_locks.clear()
        self.tables_locked = False
        self.sql_prepared.clear()
        self.user_vars_in_query = False
        self.unreplayable_set = False
        self.capture = None
        self.wait_gtid = None
        self._replay.clear()
        self._sig_seq = -1
        if self.database is not None:
            self.set_database(self.database)

    # -- replay log --------------------------------------------------------------------------

    def replay_after(self, applied_seq: int) -> list[ReplayEntry]:
        """Entries a connection that applied everything up to ``applied_seq`` still needs, in order."""
        if applied_seq >= self.replay_seq:
            return []
        return sorted((e for e in self._replay.values() if e.seq > applied_seq), key=lambda e: e.seq)

    def signature(self) -> tuple[tuple[str, int, bytes], ...]:
        """The replay log as ``(key, command, payload)`` in order: what a connection must have applied
        to serve this session. Two sessions with equal signatures can share a connection as it is;
        a connection holding a prefix of it needs only the rest (``rwproxy.frontend.multiplex``)."""
        if self._sig_seq != self.replay_seq:
            entries = sorted(self._replay.values(), key=lambda e: e.seq)
            self._sig = tuple((e.key, e.command, e.payload) for e in entries)
            self._sig_seq = self.replay_seq
        return self._sig

    def set_last_insert_id(self, value: int) -> None:
        """The session's LAST_INSERT_ID() as read from its connection: replayed as
        ``DO LAST_INSERT_ID(value)`` on connections that serve it afterwards."""
        self._add("last_insert_id", 3, b"DO LAST_INSERT_ID(%d)" % value)

    def _record_set(self, info: StatementInfo, sql: bytes) -> None:
        # A SET naming exactly the same variables as an earlier one supersedes it. SET with user
        # variables or unknown names is keyed by its text (kept, in order).
        if info.names and not (info.effects & Effect.SETS_USER_VAR):
            key = "set:" + ",".join(sorted(info.names))
        else:
            key = "sql:" + sql.decode("utf-8", "surrogateescape")
        self._add(key, 3, sql)

    def _add(self, key: str, command: int, payload: bytes) -> None:
        self.replay_seq += 1
        self._replay.pop(key, None)
        self._replay[key] = ReplayEntry(self.replay_seq, key, command, payload)


def _statement_texts(sql: bytes, count: int) -> list[bytes | None]:
    """The texts of the ``count`` statements of a multi-statement query, or Nones (not replayed) when
    they do not split into that many or hold executable comments (``/*!`` runs on some versions only)."""
    text = sql.decode("utf-8", "surrogateescape")
    statements = lex(text).statements if "/*!" not in text and "/*M!" not in text else ()
    if len(statements) != count:
        return [None] * count
    return [s.encode("utf-8", "surrogateescape") for s in statements]
