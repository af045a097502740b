"""What the classifier knows about one SQL statement: the vocabulary shared by classify and policy.

Pure data, no I/O. ``classify.classify(sql) -> StatementInfo`` produces it; ``policy.route`` and
``session_state.SessionState`` consume it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Effect", "Hint", "Kind", "PrimaryReason", "StatementInfo"]


class Kind(enum.Enum):
    """The statement's verb, coarse enough for routing and counting."""

    __hash__ = object.__hash__  # members are singletons; C-level hash (Enum's is Python code)

    SELECT = "select"  # SELECT, WITH ... SELECT, VALUES, TABLE, (SELECT ...) UNION ...
    SHOW = "show"  # SHOW, DESCRIBE/DESC, EXPLAIN (of a read), HELP
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"
    REPLACE = "replace"
    LOAD = "load"  # LOAD DATA / LOAD XML
    DDL = "ddl"  # CREATE/ALTER/DROP/RENAME/TRUNCATE, GRANT/REVOKE, ANALYZE/OPTIMIZE/REPAIR, FLUSH
    CALL = "call"
    DO = "do"
    HANDLER = "handler"
    SET = "set"  # SET ... (any form, including SET NAMES, SET TRANSACTION, SET autocommit)
    USE = "use"
    BEGIN = "begin"  # BEGIN, START TRANSACTION, XA START/BEGIN
    COMMIT = "commit"  # COMMIT, XA COMMIT/END/PREPARE
    ROLLBACK = "rollback"  # ROLLBACK, ROLLBACK TO SAVEPOINT, XA ROLLBACK
    SAVEPOINT = "savepoint"  # SAVEPOINT, RELEASE SAVEPOINT
    LOCK_TABLES = "lock_tables"
    UNLOCK_TABLES = "unlock_tables"
    PREPARE = "prepare"  # SQL-level PREPARE name FROM ...
    EXECUTE = "execute"  # SQL-level EXECUTE name [USING ...]
    DEALLOCATE = "deallocate"  # DEALLOCATE/DROP PREPARE name
    KILL = "kill"
    OTHER = "other"  # anything else (e.g. unparseable, CHECKSUM, INSTALL PLUGIN, ...)


class PrimaryReason(enum.Enum):
    """Why a statement must run on the primary. ``None`` in StatementInfo means a replica may serve it.

    The value is the human explanation used by ``rwproxy explain``, logs and metric labels.
    """

    WRITE = "writes data"
    DDL = "changes the schema or privileges"
    LOCKING_READ = "takes row locks (FOR UPDATE / FOR SHARE / LOCK IN SHARE MODE)"
    SELECT_INTO = "writes a file or variables (SELECT ... INTO)"
    SESSION_FUNCTION = "reads session-bound state (LAST_INSERT_ID, FOUND_ROWS, ROW_COUNT, ...)"
    NAMED_LOCK = "uses named locks (GET_LOCK / RELEASE_LOCK / IS_FREE_LOCK / IS_USED_LOCK)"
    SEQUENCE = "advances a sequence (NEXTVAL / NEXT VALUE FOR / SETVAL)"
    USER_VAR_ASSIGN = "assigns a user variable (@x := ...)"
    CALL = "calls a stored procedure"
    MULTI_STATEMENT = "contains several statements"
    TRANSACTION = "controls a transaction"
    SESSION_COMMAND = "changes session state"
    LOCK_TABLES = "locks or unlocks tables"
    SQL_PREPARE = "uses SQL-level prepared statements"
    HANDLER = "uses HANDLER (cursor state lives on one server)"
    KILL = "kills a session or query"
    UNPARSEABLE = "could not be classified safely"
    OTHER = "is not a plain read"
    PROCESSLIST = "reads the process list (information_schema.PROCESSLIST: rwproxy answers it)"


class Effect(enum.Flag):
    """What the statement changes in the session, beyond its result. Several can be set."""

    NONE = 0
    SETS_SESSION_VAR = enum.auto()  # SET [SESSION] x=..., SET NAMES, SET CHARACTER SET, SET sql_mode ...
    SETS_AUTOCOMMIT = enum.auto()  # SET autocommit=...
    SETS_USER_VAR = enum.auto()  # SET @x = ... (plain SET of user variables: replayable)
    ASSIGNS_USER_VAR_IN_QUERY = enum.auto()  # SELECT @x := ..., SELECT ... INTO @x
    CHANGES_DB = enum.auto()  # USE db
    CREATES_TEMP_TABLE = enum.auto()  # CREATE TEMPORARY TABLE
    DROPS_TEMP_TABLE = enum.auto()  # DROP TEMPORARY TABLE
    ACQUIRES_NAMED_LOCK = enum.auto()  # GET_LOCK(...)
    RELEASES_NAMED_LOCK = enum.auto()  # RELEASE_LOCK(...), RELEASE_ALL_LOCKS()
    LOCKS_TABLES = enum.auto()  # LOCK TABLES / FLUSH TABLES ... WITH READ LOCK
    UNLOCKS_TABLES = enum.auto()  # UNLOCK TABLES
    PREPARES_SQL = enum.auto()  # PREPARE name FROM ...
    DEALLOCATES_SQL = enum.auto()  # DEALLOCATE PREPARE name
    STARTS_TXN = enum.auto()  # BEGIN / START TRANSACTION / XA START
    ENDS_TXN = enum.auto()  # COMMIT / ROLLBACK (not ROLLBACK TO SAVEPOINT); also implicit-commit DDL
    SETS_GLOBAL = enum.auto()  # SET GLOBAL / SET PERSIST: not replayed, runs on primary only


class Hint(enum.Enum):
    """Routing hints written in a comment: ``/* rwproxy:primary */`` or ``/* rwproxy:replica */``."""

    PRIMARY = "primary"
    REPLICA = "replica"


@dataclass(frozen=True, slots=True)
class StatementInfo:
    """The classification of one statement. Immutable: cached and shared between sessions.

    ``primary_reason`` is None exactly when a replica may serve the statement (outside any pin or
    transaction). ``effects`` lists session-state changes. ``names`` carries the identifiers the
    effects refer to: the database for CHANGES_DB, temp table names for CREATES/DROPS_TEMP_TABLE,
    lock names for named locks (``"*"`` = all / unknown), prepared names for PREPARES/DEALLOCATES_SQL,
    lower-cased session variable names for SETS_SESSION_VAR.
    """

    kind: Kind
    primary_reason: PrimaryReason | None = None
    effects: Effect = Effect.NONE
    hint: Hint | None = None
    names: tuple[str, ...] = ()
    reads_user_vars: bool = False  # mentions @name (not @@name) without assigning it
    read_only_txn: bool = False  # START TRANSACTION READ ONLY
    multi_statement: bool = False
    used_parser: bool = False  # sqlglot had to decide (slow path)
    unparseable: bool = False  # neither the scan nor sqlglot could decide: routed to primary
    # Added with classify.py:
    kill_query: bool = False  # KILL QUERY n (True) vs KILL [CONNECTION] n; the id is names[0]
    autocommit: bool | None = None  # value set by SET autocommit=... when a literal (else None)
    parts: tuple[StatementInfo, ...] = ()  # multi_statement: one classification per statement
    max_lag: float | None = None  # /* rwproxy:max_lag=N */: only replicas at most N s behind

    @property
    def replica_eligible(self) -> bool:
        return self.primary_reason is None
