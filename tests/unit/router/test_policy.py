"""Table-driven tests of rwproxy.router.policy: the pure routing decision.

Every case runs its SQL through the real ``classify()``; the session is built declaratively from
statements that "ran" (``SessionState.apply`` + ``observe_status``) and/or direct field settings.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rwproxy.router.classify import classify
from rwproxy.router.policy import PolicyOptions, Route, RouteReason, Target, choose_replica, route
from rwproxy.router.session_state import PinReason, SessionState
from rwproxy.router.statement import PrimaryReason
from rwproxy.topology.model import Node, NodeState, Role, Topology
from tests.support.builders import node as _node

T = Target
RR = RouteReason
PR = PrimaryReason
PIN = PinReason

# Server status flags (SERVER_STATUS_IN_TRANS, SERVER_STATUS_AUTOCOMMIT).
IN_TRANS = 0x0001
AC = 0x0002

# -- topologies --------------------------------------------------------------------------------


DB1 = _node("db1", Role.PRIMARY)


def _topo(*replicas: Node, primary: Node | None = DB1) -> Topology:
    return Topology(((primary,) if primary is not None else ()) + replicas)


TOPOLOGIES: dict[str, Topology] = {
    # r1 takes rand in [0, 0.25), r2 takes [0.25, 1)
    "std": _topo(_node("r1", weight=1), _node("r2", weight=3)),
    "r1_weight0": _topo(_node("r1", weight=0), _node("r2", weight=1)),
    "r1_offline": _topo(_node("r1", state=NodeState.OFFLINE), _node("r2")),
    "r1_shunned": _topo(_node("r1", state=NodeState.SHUNNED), _node("r2")),
    "replicas_down": _topo(_node("r1", state=NodeState.OFFLINE), _node("r2", state=NodeState.SHUNNED)),
    "replicas_weight0": _topo(_node("r1", weight=0), _node("r2", weight=0)),
    "no_replicas": _topo(),
    "no_primary": _topo(_node("r1"), _node("r2"), primary=None),
    "primary_offline": _topo(
        _node("r1"), _node("r2"), primary=_node("db1", Role.PRIMARY, state=NodeState.OFFLINE)
    ),
    "primary_shunned_replicas_down": _topo(
        _node("r1", state=NodeState.OFFLINE), primary=_node("db1", Role.PRIMARY, state=NodeState.SHUNNED)
    ),
}

# -- session setup -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One statement that already ran in the session: classified, applied, then its status observed
    (a failed statement has no status flags: the ERR packet carries none)."""

    sql: str
    succeeded: bool = True
    status: int | None = AC


def ran(sql: str, status: int = AC) -> Step:
    return Step(sql, True, status)


def failed(sql: str) -> Step:
    return Step(sql, False, None)


def build_session(steps: tuple[Step, ...], fields: dict[str, Any]) -> SessionState:
    state = SessionState()
    for name, value in fields.items():
        setattr(state, name, value)
    for step in steps:
        state.apply(classify(step.sql), step.sql.encode(), step.succeeded)
        if step.status is not None:
            state.observe_status(step.status)
    return state


# -- the table ---------------------------------------------------------------------------------

DEFAULT = PolicyOptions()
NO_FALLBACK = PolicyOptions(on_no_replica_primary=False)
READS_TO_PRIMARY = PolicyOptions(reads_to_primary=True)


@dataclass(frozen=True)
class Case:
    id: str
    sql: str
    target: Target
    reason: RouteReason
    node: str | None
    statement_reason: PrimaryReason | None = None
    pin: PinReason | None = None
    setup: tuple[Step, ...] = ()
    fields: dict[str, Any] = field(default_factory=dict)
    topo: str = "std"
    options: PolicyOptions = DEFAULT
    rule: Target | None = None
    rand: float = 0.0


def _stmt(id: str, sql: str, reason: PrimaryReason, **kw: Any) -> Case:
    """A statement that needs the primary on its own."""
    return Case(id, sql, T.PRIMARY, RR.STATEMENT, "db1", statement_reason=reason, **kw)


def _read(id: str, sql: str, node: str = "r1", **kw: Any) -> Case:
    return Case(id, sql, T.REPLICA, RR.READ, node, **kw)


def _pinned(id: str, sql: str, pin: PinReason, setup: tuple[Step, ...], **kw: Any) -> Case:
    return Case(id, sql, T.PRIMARY, RR.PINNED, "db1", pin=pin, setup=setup, **kw)


READ = "SELECT c FROM t WHERE id=1"
WRITE = "INSERT INTO t VALUES (1)"
REPLICA_HINT = "/* rwproxy:replica */ "
PRIMARY_HINT = "/* rwproxy:primary */ "

PLAIN_READS: list[Case] = [
    _read("read-rand0-r1", READ, "r1", rand=0.0),
    _read("read-rand0.24-r1", READ, "r1", rand=0.24),
    _read("read-rand0.25-r2", READ, "r2", rand=0.25),
    _read("read-rand0.6-r2", READ, "r2", rand=0.6),
    _read("read-rand0.999-r2", READ, "r2", rand=0.999),
    _read("show-tables", "SHOW TABLES", "r2", rand=0.5),
    _read("describe", "DESCRIBE t", "r1"),
    _read("with-cte", "WITH a AS (SELECT 1) SELECT * FROM a", "r1"),
    _read("explain-select", "EXPLAIN SELECT 1", "r1"),
    _read("union", "(SELECT 1) UNION (SELECT 2)", "r1"),
    _read("weight0-skipped", READ, "r2", topo="r1_weight0", rand=0.0),
    _read("weight0-skipped-high-rand", READ, "r2", topo="r1_weight0", rand=0.99),
    _read("offline-skipped", READ, "r2", topo="r1_offline", rand=0.0),
    _read("shunned-skipped", READ, "r2", topo="r1_shunned", rand=0.0),
    _read("read-no-primary-still-replica", READ, "r1", topo="no_primary"),
    _read("read-primary-offline-still-replica", READ, "r2", topo="primary_offline", rand=0.7),
    Case("all-replicas-down", READ, T.PRIMARY, RR.NO_REPLICA, "db1", topo="replicas_down"),
    Case("all-replicas-weight0", READ, T.PRIMARY, RR.NO_REPLICA, "db1", topo="replicas_weight0"),
    Case("no-replicas", READ, T.PRIMARY, RR.NO_REPLICA, "db1", topo="no_replicas"),
    Case(
        "all-replicas-down-error",
        READ,
        T.REPLICA,
        RR.NO_REPLICA_ERROR,
        None,
        topo="replicas_down",
        options=NO_FALLBACK,
    ),
    Case(
        "no-replicas-error",
        READ,
        T.REPLICA,
        RR.NO_REPLICA_ERROR,
        None,
        topo="no_replicas",
        options=NO_FALLBACK,
    ),
    Case(
        "no-replica-fallback-primary-unusable",
        READ,
        T.PRIMARY,
        RR.NO_PRIMARY,
        None,
        topo="primary_shunned_replicas_down",
    ),
]

STATEMENTS: list[Case] = [
    _stmt("insert", WRITE, PR.WRITE),
    _stmt("update", "UPDATE t SET a=1 WHERE id=2", PR.WRITE),
    _stmt("delete", "DELETE FROM t WHERE id=2", PR.WRITE),
    _stmt("replace", "REPLACE INTO t VALUES (1)", PR.WRITE),
    _stmt("load-data", "LOAD DATA INFILE 'x' INTO TABLE t", PR.WRITE),
    _stmt("create-table", "CREATE TABLE x (a int)", PR.DDL),
    _stmt("alter-table", "ALTER TABLE t ADD c int", PR.DDL),
    _stmt("truncate", "TRUNCATE TABLE t", PR.DDL),
    _stmt("for-update", "SELECT c FROM t WHERE id=1 FOR UPDATE", PR.LOCKING_READ),
    _stmt("for-share", "SELECT c FROM t FOR SHARE", PR.LOCKING_READ),
    _stmt("lock-in-share-mode", "SELECT c FROM t LOCK IN SHARE MODE", PR.LOCKING_READ),
    _stmt("select-into-var", "SELECT c INTO @x FROM t", PR.SELECT_INTO),
    _stmt("select-into-outfile", "SELECT 1 INTO OUTFILE '/tmp/x'", PR.SELECT_INTO),
    _stmt("last-insert-id", "SELECT LAST_INSERT_ID()", PR.SESSION_FUNCTION),
    _stmt("found-rows", "SELECT FOUND_ROWS()", PR.SESSION_FUNCTION),
    _stmt("row-count", "SELECT ROW_COUNT()", PR.SESSION_FUNCTION),
    _stmt("show-status", "SHOW STATUS", PR.SESSION_FUNCTION),
    _stmt("get-lock", "SELECT GET_LOCK('a', 1)", PR.NAMED_LOCK),
    _stmt("is-free-lock", "SELECT IS_FREE_LOCK('a')", PR.NAMED_LOCK),
    _stmt("release-lock-unheld", "SELECT RELEASE_LOCK('a')", PR.NAMED_LOCK),
    _stmt("nextval", "SELECT NEXTVAL(s)", PR.SEQUENCE),
    _stmt("next-value-for", "SELECT NEXT VALUE FOR s", PR.SEQUENCE),
    _stmt("setval", "SELECT SETVAL(s, 10)", PR.SEQUENCE),
    _stmt("user-var-assign", "SELECT @x := 1", PR.USER_VAR_ASSIGN),
    _stmt("call", "CALL p()", PR.CALL),
    _stmt("multi-reads", "SELECT 1; SELECT 2", PR.MULTI_STATEMENT),
    _stmt("multi-read-write", "SELECT 1; INSERT INTO t VALUES (1)", PR.MULTI_STATEMENT),
    _stmt("unparseable", "FROBNICATE the widgets", PR.UNPARSEABLE),
    _stmt("begin", "BEGIN", PR.TRANSACTION),
    _stmt("commit", "COMMIT", PR.TRANSACTION),
    _stmt("xa-recover", "XA RECOVER", PR.TRANSACTION),
    _stmt("set-user-var", "SET @x = 5", PR.SESSION_COMMAND),
    _stmt("set-names", "SET NAMES utf8mb4", PR.SESSION_COMMAND),
    _stmt("use", "USE db2", PR.SESSION_COMMAND),
    _stmt("handler", "HANDLER t OPEN", PR.HANDLER),
    _stmt("kill", "KILL 5", PR.KILL),
    _stmt("prepare", "PREPARE s FROM 'SELECT 1'", PR.SQL_PREPARE),
    _stmt("execute", "EXECUTE s", PR.SQL_PREPARE),
    _stmt("lock-tables", "LOCK TABLES t READ", PR.LOCK_TABLES),
    _stmt("do", "DO SLEEP(1)", PR.OTHER),
    _stmt("show-master-status", "SHOW MASTER STATUS", PR.OTHER),
]

BEGUN = (ran("BEGIN", IN_TRANS | AC),)
AUTOCOMMIT_OFF = (ran("SET autocommit = 0", 0),)

TRANSACTIONS: list[Case] = [
    Case("in-trans-read", READ, T.PRIMARY, RR.IN_TRANSACTION, "db1", setup=BEGUN),
    Case("in-trans-read-rand-high", READ, T.PRIMARY, RR.IN_TRANSACTION, "db1", setup=BEGUN, rand=0.9),
    Case("in-trans-show", "SHOW TABLES", T.PRIMARY, RR.IN_TRANSACTION, "db1", setup=BEGUN),
    Case("in-trans-write", WRITE, T.PRIMARY, RR.IN_TRANSACTION, "db1", setup=BEGUN),
    Case("in-trans-replica-hint", REPLICA_HINT + READ, T.PRIMARY, RR.IN_TRANSACTION, "db1", setup=BEGUN),
    Case("in-trans-replica-rule", READ, T.PRIMARY, RR.IN_TRANSACTION, "db1", setup=BEGUN, rule=T.REPLICA),
    Case(
        "in-trans-reads-to-primary",
        READ,
        T.PRIMARY,
        RR.IN_TRANSACTION,
        "db1",
        setup=BEGUN,
        options=READS_TO_PRIMARY,
    ),
    Case(
        "in-trans-read-only-txn",
        READ,
        T.PRIMARY,
        RR.IN_TRANSACTION,
        "db1",
        setup=(ran("START TRANSACTION READ ONLY", IN_TRANS | AC),),
    ),
    Case("in-trans-field", READ, T.PRIMARY, RR.IN_TRANSACTION, "db1", fields={"in_transaction": True}),
    _read("after-commit", READ, setup=(*BEGUN, ran(WRITE, IN_TRANS | AC), ran("COMMIT", AC))),
    _read("after-rollback", READ, setup=(*BEGUN, ran("ROLLBACK", AC))),
    Case("autocommit-off-read", READ, T.PRIMARY, RR.AUTOCOMMIT_OFF, "db1", setup=AUTOCOMMIT_OFF),
    Case(
        "autocommit-off-replica-hint",
        REPLICA_HINT + READ,
        T.PRIMARY,
        RR.AUTOCOMMIT_OFF,
        "db1",
        setup=AUTOCOMMIT_OFF,
    ),
    Case("autocommit-off-field", READ, T.PRIMARY, RR.AUTOCOMMIT_OFF, "db1", fields={"autocommit": False}),
    Case(
        "autocommit-off-then-write-in-trans",
        READ,
        T.PRIMARY,
        RR.IN_TRANSACTION,
        "db1",
        setup=(*AUTOCOMMIT_OFF, ran(WRITE, IN_TRANS)),
    ),
    _read("autocommit-back-on", READ, setup=(*AUTOCOMMIT_OFF, ran("SET autocommit = 1", AC))),
    Case(
        "in-trans-beats-pin",
        READ,
        T.PRIMARY,
        RR.IN_TRANSACTION,
        "db1",
        setup=(ran("CREATE TEMPORARY TABLE tmp (a int)"), *BEGUN),
    ),
    Case("in-trans-no-primary", READ, T.PRIMARY, RR.NO_PRIMARY, None, setup=BEGUN, topo="no_primary"),
]

TEMP = ran("CREATE TEMPORARY TABLE tmp (a int)")
LOCK_A = ran("SELECT GET_LOCK('a', 1)")
PREP = ran("PREPARE s FROM 'SELECT 1'")

PINS: list[Case] = [
    _pinned("temp-table", "SELECT * FROM tmp", PIN.TEMP_TABLE, (TEMP,)),
    _pinned("temp-table-other-read", READ, PIN.TEMP_TABLE, (TEMP,)),
    _pinned("temp-table-write", WRITE, PIN.TEMP_TABLE, (TEMP,)),
    _pinned("temp-table-beats-replica-hint", REPLICA_HINT + READ, PIN.TEMP_TABLE, (TEMP,)),
    _pinned("temp-table-beats-primary-hint", PRIMARY_HINT + READ, PIN.TEMP_TABLE, (TEMP,)),
    _pinned("temp-table-beats-replica-rule", READ, PIN.TEMP_TABLE, (TEMP,), rule=T.REPLICA),
    _pinned(
        "temp-table-case-insensitive",
        READ,
        PIN.TEMP_TABLE,
        (ran("CREATE TEMPORARY TABLE Tmp (a int)"), ran("DROP TEMPORARY TABLE other")),
    ),
    _read("temp-table-dropped", READ, setup=(TEMP, ran("DROP TEMPORARY TABLE tmp"))),
    _read("temp-table-dropped-plain-drop", READ, setup=(TEMP, ran("DROP TABLE tmp"))),
    _read("temp-table-dropped-other-case", READ, setup=(TEMP, ran("DROP TEMPORARY TABLE TMP"))),
    _pinned(
        "temp-table-one-of-two-dropped",
        READ,
        PIN.TEMP_TABLE,
        (TEMP, ran("CREATE TEMPORARY TABLE tmp2 (a int)"), ran("DROP TEMPORARY TABLE tmp")),
    ),
    _read(
        "temp-tables-both-dropped",
        READ,
        setup=(
            TEMP,
            ran("CREATE TEMPORARY TABLE tmp2 (a int)"),
            ran("DROP TEMPORARY TABLE IF EXISTS tmp, tmp2"),
        ),
    ),
    _read("temp-table-create-failed", READ, setup=(failed("CREATE TEMPORARY TABLE tmp (a int)"),)),
    _pinned(
        "temp-table-drop-failed",
        READ,
        PIN.TEMP_TABLE,
        (TEMP, failed("DROP TEMPORARY TABLE tmp")),
    ),
    _pinned(
        "temp-table-in-multi", READ, PIN.TEMP_TABLE, (ran("CREATE TEMPORARY TABLE tmp (a int); SELECT 1"),)
    ),
    _pinned("temp-table-field", READ, PIN.TEMP_TABLE, (), fields={"temp_tables": {"tmp"}}),
    _pinned("named-lock", READ, PIN.NAMED_LOCK, (LOCK_A,)),
    _pinned("named-lock-via-do", READ, PIN.NAMED_LOCK, (ran("DO GET_LOCK('a', 1)"),)),
    _pinned("named-lock-via-set", READ, PIN.NAMED_LOCK, (ran("SET @got = GET_LOCK('a', 1)"),)),
    _pinned("named-lock-computed-name", READ, PIN.NAMED_LOCK, (ran("SELECT GET_LOCK(CONCAT('a', 1), 1)"),)),
    _read("named-lock-released", READ, setup=(LOCK_A, ran("SELECT RELEASE_LOCK('a')"))),
    _pinned(
        "named-lock-other-released",
        READ,
        PIN.NAMED_LOCK,
        (LOCK_A, ran("SELECT GET_LOCK('b', 1)"), ran("SELECT RELEASE_LOCK('b')")),
    ),
    _read(
        "named-locks-release-all",
        READ,
        setup=(LOCK_A, ran("SELECT GET_LOCK('b', 1)"), ran("SELECT RELEASE_ALL_LOCKS()")),
    ),
    _read(
        "named-lock-computed-released-all",
        READ,
        setup=(ran("SELECT GET_LOCK(CONCAT('a', 1), 1)"), ran("SELECT RELEASE_ALL_LOCKS()")),
    ),
    _pinned("named-lock-release-failed", READ, PIN.NAMED_LOCK, (LOCK_A, failed("SELECT RELEASE_LOCK('a')"))),
    _pinned("lock-tables-pin", READ, PIN.LOCK_TABLES, (ran("LOCK TABLES t READ"),)),
    _read("lock-tables-unlocked", READ, setup=(ran("LOCK TABLES t READ"), ran("UNLOCK TABLES"))),
    _pinned("flush-with-read-lock", READ, PIN.LOCK_TABLES, (ran("FLUSH TABLES WITH READ LOCK"),)),
    _pinned("sql-prepare", READ, PIN.SQL_PREPARE, (PREP,)),
    _read("sql-prepare-deallocated", READ, setup=(PREP, ran("DEALLOCATE PREPARE s"))),
    _read("sql-prepare-dropped", READ, setup=(PREP, ran("DROP PREPARE S"))),
    _pinned(
        "sql-prepare-other-deallocated",
        READ,
        PIN.SQL_PREPARE,
        (PREP, ran("PREPARE s2 FROM 'SELECT 2'"), ran("DEALLOCATE PREPARE s2")),
    ),
    _pinned(
        "unreplayable-set-sql-mode",
        READ,
        PIN.UNREPLAYABLE_SET,
        (ran("SET sql_mode = app_mode(@@sql_mode)"),),  # a stored function: may have side effects
    ),
    # Evaluated once on the primary and captured (rwproxy.router.set_replay): reads stay on replicas.
    _read(
        "evaluated-set-sql-mode",
        READ,
        setup=(ran("SET sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES')"),),
    ),
    _read("replayable-set-sql-mode", READ, setup=(ran("SET sql_mode = 'ANSI'"),)),
    _read("set-global-no-pin", READ, setup=(ran("SET GLOBAL max_connections = 10"),)),
    _pinned(
        "pin-order-temp-before-lock",
        READ,
        PIN.TEMP_TABLE,
        (LOCK_A, ran("LOCK TABLES t READ"), PREP, TEMP),
    ),
    _pinned(
        "pin-order-lock-before-lock-tables", READ, PIN.NAMED_LOCK, (ran("LOCK TABLES t READ"), PREP, LOCK_A)
    ),
    Case(
        "pinned-no-primary",
        READ,
        T.PRIMARY,
        RR.NO_PRIMARY,
        None,
        pin=PIN.SQL_PREPARE,
        setup=(PREP,),
        topo="primary_offline",
    ),
]

# A user variable from a function with side effects (a stored function): only the primary has it.
# (SET @x = NOW() is captured on the primary and replayed: tests/unit/router/test_set_replay.py.)
SET_X_NOW = (ran("SET @x = app_func()"),)

USER_VARS: list[Case] = [
    _pinned("unreplayable-user-var-read", "SELECT @x", PIN.USER_VARS, SET_X_NOW),
    _pinned("unreplayable-user-var-where", "SELECT * FROM t WHERE a = @x", PIN.USER_VARS, SET_X_NOW),
    _read("unreplayable-user-var-other-read", READ, setup=SET_X_NOW),
    _read("unreplayable-user-var-sysvar-read", "SELECT @@version", setup=SET_X_NOW),
    _pinned("select-into-var-then-read", "SELECT @x + 1", PIN.USER_VARS, (ran("SELECT c INTO @x FROM t"),)),
    _pinned("assign-in-query-then-read", "SELECT @x", PIN.USER_VARS, (ran("SELECT @x := MAX(id) FROM t"),)),
    _read("replayable-user-var-read", "SELECT @x", setup=(ran("SET @x = 5"),)),
    _read("user-var-failed-set", "SELECT @x", setup=(failed("SET @x = NOW()"),)),
    _pinned("user-var-field", "SELECT @x", PIN.USER_VARS, (), fields={"user_vars_in_query": True}),
    Case("user-var-unpinned-session-pin-is-none", READ, T.REPLICA, RR.READ, "r2", setup=SET_X_NOW, rand=0.5),
    Case(
        "user-var-read-reads-to-primary",
        "SELECT @x",
        T.PRIMARY,
        RR.PINNED,
        "db1",
        pin=PIN.USER_VARS,
        setup=SET_X_NOW,
        options=READS_TO_PRIMARY,
    ),
]

HINTS: list[Case] = [
    Case("primary-hint-read", PRIMARY_HINT + READ, T.PRIMARY, RR.HINT_PRIMARY, "db1"),
    Case("primary-hint-write", PRIMARY_HINT + WRITE, T.PRIMARY, RR.HINT_PRIMARY, "db1"),
    Case(
        "primary-hint-beats-replica-rule",
        PRIMARY_HINT + READ,
        T.PRIMARY,
        RR.HINT_PRIMARY,
        "db1",
        rule=T.REPLICA,
    ),
    Case("replica-hint-plain-read", REPLICA_HINT + READ, T.REPLICA, RR.HINT_REPLICA, "r2", rand=0.5),
    Case(
        "replica-hint-last-insert-id",
        REPLICA_HINT + "SELECT LAST_INSERT_ID()",
        T.REPLICA,
        RR.HINT_REPLICA,
        "r1",
    ),
    Case("replica-hint-found-rows", REPLICA_HINT + "SELECT FOUND_ROWS()", T.REPLICA, RR.HINT_REPLICA, "r1"),
    Case("replica-hint-show-status", REPLICA_HINT + "SHOW STATUS", T.REPLICA, RR.HINT_REPLICA, "r1"),
    Case(
        "replica-hint-show-master-status",
        REPLICA_HINT + "SHOW MASTER STATUS",
        T.REPLICA,
        RR.HINT_REPLICA,
        "r1",
    ),
    Case(
        "replica-hint-beats-reads-to-primary",
        REPLICA_HINT + READ,
        T.REPLICA,
        RR.HINT_REPLICA,
        "r1",
        options=READS_TO_PRIMARY,
    ),
    Case(
        "replica-hint-no-replica",
        REPLICA_HINT + "SELECT LAST_INSERT_ID()",
        T.PRIMARY,
        RR.NO_REPLICA,
        "db1",
        topo="replicas_down",
    ),
    Case(
        "replica-hint-no-replica-error",
        REPLICA_HINT + READ,
        T.REPLICA,
        RR.NO_REPLICA_ERROR,
        None,
        topo="no_replicas",
        options=NO_FALLBACK,
    ),
    Case(
        "replica-hint-skips-offline",
        REPLICA_HINT + READ,
        T.REPLICA,
        RR.HINT_REPLICA,
        "r2",
        topo="r1_offline",
    ),
    _stmt("replica-hint-write-ignored", REPLICA_HINT + WRITE, PR.WRITE),
    _stmt("replica-hint-update-ignored", REPLICA_HINT + "UPDATE t SET a=1", PR.WRITE),
    _stmt("replica-hint-ddl-ignored", REPLICA_HINT + "CREATE TABLE x (a int)", PR.DDL),
    _stmt("replica-hint-for-update-ignored", REPLICA_HINT + "SELECT c FROM t FOR UPDATE", PR.LOCKING_READ),
    _stmt(
        "replica-hint-share-mode-ignored",
        REPLICA_HINT + "SELECT c FROM t LOCK IN SHARE MODE",
        PR.LOCKING_READ,
    ),
    _stmt("replica-hint-select-into-ignored", REPLICA_HINT + "SELECT c INTO @x FROM t", PR.SELECT_INTO),
    _stmt("replica-hint-get-lock-ignored", REPLICA_HINT + "SELECT GET_LOCK('a', 1)", PR.NAMED_LOCK),
    _stmt("replica-hint-nextval-ignored", REPLICA_HINT + "SELECT NEXTVAL(s)", PR.SEQUENCE),
    _stmt("replica-hint-var-assign-ignored", REPLICA_HINT + "SELECT @x := 1", PR.USER_VAR_ASSIGN),
    _stmt("replica-hint-call-ignored", REPLICA_HINT + "CALL p()", PR.CALL),
    _stmt("replica-hint-multi-ignored", REPLICA_HINT + "SELECT 1; SELECT 2", PR.MULTI_STATEMENT),
    _stmt("replica-hint-unparseable-ignored", REPLICA_HINT + "FROBNICATE the widgets", PR.UNPARSEABLE),
    _stmt("replica-hint-do-ignored", REPLICA_HINT + "DO 1", PR.OTHER),
    _stmt("replica-hint-set-ignored", REPLICA_HINT + "SET @x = 1", PR.SESSION_COMMAND),
]

RULES: list[Case] = [
    Case("primary-rule-plain-read", READ, T.PRIMARY, RR.RULE_PRIMARY, "db1", rule=T.PRIMARY),
    Case("primary-rule-write", WRITE, T.PRIMARY, RR.RULE_PRIMARY, "db1", rule=T.PRIMARY),
    Case(
        "primary-rule-beats-replica-hint",
        REPLICA_HINT + READ,
        T.PRIMARY,
        RR.RULE_PRIMARY,
        "db1",
        rule=T.PRIMARY,
    ),
    Case("replica-rule-plain-read", READ, T.REPLICA, RR.RULE_REPLICA, "r2", rule=T.REPLICA, rand=0.5),
    Case(
        "replica-rule-session-function",
        "SELECT FOUND_ROWS()",
        T.REPLICA,
        RR.RULE_REPLICA,
        "r1",
        rule=T.REPLICA,
    ),
    Case(
        "replica-hint-beats-replica-rule",
        REPLICA_HINT + READ,
        T.REPLICA,
        RR.HINT_REPLICA,
        "r1",
        rule=T.REPLICA,
    ),
    Case(
        "replica-rule-beats-reads-to-primary",
        READ,
        T.REPLICA,
        RR.RULE_REPLICA,
        "r1",
        rule=T.REPLICA,
        options=READS_TO_PRIMARY,
    ),
    Case(
        "replica-rule-no-replica", READ, T.PRIMARY, RR.NO_REPLICA, "db1", rule=T.REPLICA, topo="replicas_down"
    ),
    _stmt("replica-rule-write-ignored", WRITE, PR.WRITE, rule=T.REPLICA),
    _stmt("replica-rule-delete-ignored", "DELETE FROM t", PR.WRITE, rule=T.REPLICA),
    _stmt("replica-rule-for-update-ignored", "SELECT c FROM t FOR UPDATE", PR.LOCKING_READ, rule=T.REPLICA),
    _stmt("replica-rule-get-lock-ignored", "SELECT GET_LOCK('a', 1)", PR.NAMED_LOCK, rule=T.REPLICA),
    _stmt("replica-rule-multi-ignored", "SELECT 1; SELECT 2", PR.MULTI_STATEMENT, rule=T.REPLICA),
    _stmt("replica-rule-unparseable-ignored", "FROBNICATE the widgets", PR.UNPARSEABLE, rule=T.REPLICA),
]

OPTIONS_AND_PRIMARY: list[Case] = [
    Case("reads-to-primary", READ, T.PRIMARY, RR.READS_TO_PRIMARY, "db1", options=READS_TO_PRIMARY),
    Case(
        "reads-to-primary-show",
        "SHOW TABLES",
        T.PRIMARY,
        RR.READS_TO_PRIMARY,
        "db1",
        options=READS_TO_PRIMARY,
    ),
    _stmt("reads-to-primary-write", WRITE, PR.WRITE, options=READS_TO_PRIMARY),
    Case(
        "reads-to-primary-no-primary",
        READ,
        T.PRIMARY,
        RR.NO_PRIMARY,
        None,
        options=READS_TO_PRIMARY,
        topo="no_primary",
    ),
    Case(
        "write-no-primary",
        WRITE,
        T.PRIMARY,
        RR.NO_PRIMARY,
        None,
        statement_reason=PR.WRITE,
        topo="no_primary",
    ),
    Case(
        "write-primary-offline",
        WRITE,
        T.PRIMARY,
        RR.NO_PRIMARY,
        None,
        statement_reason=PR.WRITE,
        topo="primary_offline",
    ),
    Case(
        "locking-read-no-primary",
        "SELECT c FROM t FOR UPDATE",
        T.PRIMARY,
        RR.NO_PRIMARY,
        None,
        statement_reason=PR.LOCKING_READ,
        topo="no_primary",
    ),
    Case("primary-hint-no-primary", PRIMARY_HINT + READ, T.PRIMARY, RR.NO_PRIMARY, None, topo="no_primary"),
    Case("primary-rule-no-primary", READ, T.PRIMARY, RR.NO_PRIMARY, None, rule=T.PRIMARY, topo="no_primary"),
    Case(
        "no-replica-and-no-primary",
        READ,
        T.PRIMARY,
        RR.NO_PRIMARY,
        None,
        topo="primary_shunned_replicas_down",
    ),
]

# Cases that show what looks like a real bug: they assert the correct behaviour and are expected to
# fail until the proxy code is fixed (strict: an unexpected pass is reported).
SUSPECTED_BUGS: list[tuple[Case, str]] = [
    (
        _pinned(
            "bug-temp-table-same-name-other-db",
            "SELECT * FROM db1.a",
            PIN.TEMP_TABLE,
            (
                ran("USE db1"),
                ran("CREATE TEMPORARY TABLE a (x int)"),
                ran("USE db2"),
                ran("CREATE TEMPORARY TABLE a (x int)"),
                ran("DROP TEMPORARY TABLE a"),
            ),
        ),
        "BUG: temp tables are tracked by unqualified name; dropping db2.a also forgets db1.a, so reads "
        "of the still-existing temporary db1.a go to a replica (real table or no table there)",
    ),
    # bug-user-var-set-from-current-timestamp: SET @t = CURRENT_TIMESTAMP is now captured on the
    # primary and replayed as its value (test_set_replay.py::test_clock_in_a_user_variable_is_captured).
    (
        _pinned(
            "bug-recursive-named-lock-released-once",
            READ,
            PIN.NAMED_LOCK,
            (LOCK_A, LOCK_A, ran("SELECT RELEASE_LOCK('a')")),
        ),
        "BUG: GET_LOCK is recursive (MySQL 5.7+/MariaDB 10.0.2+: released as many times as taken); "
        "after two GET_LOCK('a') and one RELEASE_LOCK('a') the session still holds 'a' but is unpinned",
    ),
]

ALL_CASES: list[Case] = [*PLAIN_READS, *STATEMENTS, *TRANSACTIONS, *PINS, *USER_VARS, *HINTS, *RULES]
ALL_CASES += OPTIONS_AND_PRIMARY


def _params() -> list[Any]:
    # SUSPECTED_BUGS were found by this table and fixed; they stay as regression cases.
    return [pytest.param(c, id=c.id) for c in [*ALL_CASES, *(c for c, _ in SUSPECTED_BUGS)]]


def test_case_ids_unique_and_enough() -> None:
    ids = [c.id for c in ALL_CASES] + [c.id for c, _ in SUSPECTED_BUGS]
    assert len(ids) == len(set(ids))
    assert len(ALL_CASES) >= 60


@pytest.mark.parametrize("case", _params())
def test_route(case: Case) -> None:
    session = build_session(case.setup, case.fields)
    info = classify(case.sql)
    r = route(info, session, TOPOLOGIES[case.topo], case.options, case.rule, case.rand)
    got = (r.target, r.reason, r.node.name if r.node else None, r.statement_reason, r.pin)
    assert got == (case.target, case.reason, case.node, case.statement_reason, case.pin), r.explain()


def test_route_is_pure() -> None:
    """Routing never changes the session it looks at, and the same inputs give the same route."""
    session = build_session((TEMP, LOCK_A, ran("SET @x = NOW()")), {})
    before = repr(session)
    info = classify(READ)
    first = route(info, session, TOPOLOGIES["std"], DEFAULT, None, 0.3)
    assert route(info, session, TOPOLOGIES["std"], DEFAULT, None, 0.3) == first
    assert repr(session) == before


def test_default_arguments() -> None:
    r = route(classify(READ), SessionState(), TOPOLOGIES["std"])
    assert (r.target, r.node, r.reason) == (T.REPLICA, TOPOLOGIES["std"].by_name["r1"], RR.READ)


# -- explain -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "setup", "topo", "options", "expected_parts"),
    [
        pytest.param(READ, (), "std", DEFAULT, ["replica (r1)", RR.READ.value], id="read"),
        pytest.param(
            "SELECT c FROM t FOR UPDATE",
            (),
            "std",
            DEFAULT,
            ["primary (db1)", RR.STATEMENT.value, "it " + PR.LOCKING_READ.value],
            id="statement",
        ),
        pytest.param(
            READ, (TEMP,), "std", DEFAULT, ["primary (db1)", RR.PINNED.value, PIN.TEMP_TABLE.value], id="pin"
        ),
        pytest.param(READ, BEGUN, "std", DEFAULT, ["primary (db1)", RR.IN_TRANSACTION.value], id="in-trans"),
        pytest.param(
            READ, (), "replicas_down", DEFAULT, ["primary (db1)", RR.NO_REPLICA.value], id="no-replica"
        ),
        pytest.param(
            READ,
            (),
            "replicas_down",
            NO_FALLBACK,
            ["replica (none available)", RR.NO_REPLICA_ERROR.value],
            id="no-replica-error",
        ),
        pytest.param(
            WRITE,
            (),
            "no_primary",
            DEFAULT,
            ["primary (none available)", RR.NO_PRIMARY.value, PR.WRITE.value],
            id="no-primary",
        ),
    ],
)
def test_explain(
    sql: str, setup: tuple[Step, ...], topo: str, options: PolicyOptions, expected_parts: list[str]
) -> None:
    text = route(classify(sql), build_session(setup, {}), TOPOLOGIES[topo], options).explain()
    for part in expected_parts:
        assert part in text, (part, text)
    assert "\n" not in text


def test_explain_exact_format() -> None:
    r = Route(T.PRIMARY, DB1, RR.STATEMENT, statement_reason=PR.WRITE)
    assert r.explain() == "primary (db1): the statement needs the primary: it writes data"
    r = Route(T.PRIMARY, DB1, RR.PINNED, pin=PIN.NAMED_LOCK)
    assert (
        r.explain()
        == "primary (db1): the session is pinned to the primary: session holds named locks (GET_LOCK)"
    )
    r = Route(T.REPLICA, _node("r2"), RR.HINT_REPLICA)
    assert r.explain() == "replica (r2): a /* rwproxy:replica */ hint"


# -- safety property: a statement that needs the primary never reaches a replica ----------------

NEVER_ON_REPLICA = [
    WRITE,
    "UPDATE t SET a=1",
    "DELETE FROM t",
    "REPLACE INTO t VALUES (1)",
    "CREATE TABLE x (a int)",
    "DROP TABLE t",
    "SELECT c FROM t FOR UPDATE",
    "SELECT c FROM t LOCK IN SHARE MODE",
    "SELECT c INTO @x FROM t",
    "SELECT GET_LOCK('a', 1)",
    "SELECT NEXTVAL(s)",
    "SELECT @x := 1",
    "CALL p()",
    "SELECT 1; DELETE FROM t",
    "BEGIN",
    "SET @x = 1",
    "LOCK TABLES t WRITE",
    "PREPARE s FROM 'DELETE FROM t'",
    "HANDLER t OPEN",
    "FROBNICATE the widgets",
]


@settings(max_examples=300, deadline=None)
@given(
    sql=st.sampled_from(NEVER_ON_REPLICA),
    hint=st.sampled_from(["", REPLICA_HINT, PRIMARY_HINT]),
    rule=st.sampled_from([None, T.REPLICA, T.PRIMARY]),
    options=st.sampled_from([DEFAULT, NO_FALLBACK, READS_TO_PRIMARY]),
    topo=st.sampled_from(sorted(TOPOLOGIES)),
    rand=st.floats(0.0, 1.0, exclude_max=True),
)
def test_primary_statements_never_reach_a_replica(
    sql: str, hint: str, rule: Target | None, options: PolicyOptions, topo: str, rand: float
) -> None:
    r = route(classify(hint + sql), SessionState(), TOPOLOGIES[topo], options, rule, rand)
    assert r.target is T.PRIMARY
    assert r.node is None or r.node.role is Role.PRIMARY


# -- choose_replica --------------------------------------------------------------------------------

_replica_specs = st.lists(
    st.tuples(st.integers(0, 8), st.sampled_from(list(NodeState))),
    min_size=0,
    max_size=6,
)


def _replicas(specs: list[tuple[int, NodeState]]) -> tuple[Node, ...]:
    return tuple(
        _node(f"r{i}", host="10.0.1.1", port=3306 + i, weight=weight, state=state)
        for i, (weight, state) in enumerate(specs)
    )


@settings(max_examples=300, deadline=None)
@given(specs=_replica_specs, rand=st.floats(0.0, 1.0, exclude_max=True))
def test_choose_replica_returns_eligible_or_none(specs: list[tuple[int, NodeState]], rand: float) -> None:
    replicas = _replicas(specs)
    eligible = [n for n in replicas if n.online and n.weight > 0]
    node = choose_replica(replicas, rand)
    if not eligible:
        assert node is None
    else:
        assert node in eligible


@settings(max_examples=200, deadline=None)
@given(specs=_replica_specs, per_unit=st.integers(1, 4))
def test_choose_replica_distribution_matches_weights(
    specs: list[tuple[int, NodeState]], per_unit: int
) -> None:
    """Over a uniform grid of rand values (cell midpoints), each eligible replica gets exactly
    weight/total of the grid points, and ineligible ones none."""
    replicas = _replicas(specs)
    total = sum(n.weight for n in replicas if n.online and n.weight > 0)
    points = total * per_unit
    counts = Counter(
        node.name if (node := choose_replica(replicas, (k + 0.5) / points)) else None for k in range(points)
    )
    expected = {n.name: n.weight * per_unit for n in replicas if n.online and n.weight > 0}
    assert dict(counts) == expected


def test_choose_replica_is_ordered_by_position() -> None:
    replicas = _replicas(
        [(2, NodeState.ONLINE), (0, NodeState.ONLINE), (1, NodeState.SHUNNED), (2, NodeState.ONLINE)]
    )
    picks = [n.name if (n := choose_replica(replicas, r)) else None for r in (0.0, 0.49, 0.5, 0.999999)]
    assert picks == ["r0", "r0", "r3", "r3"]


def test_choose_replica_rand_just_below_one() -> None:
    replicas = _replicas([(1, NodeState.ONLINE), (3, NodeState.ONLINE), (5, NodeState.OFFLINE)])
    node = choose_replica(replicas, 0.9999999999999999)
    assert node is not None and node.name == "r1"
