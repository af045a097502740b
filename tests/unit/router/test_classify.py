"""Table-driven tests of rwproxy.router.classify."""

from __future__ import annotations

import ast
import graphlib
import importlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rwproxy import native
from rwproxy.router import classify as classify_module
from rwproxy.router.classify import (
    PLAIN_SELECT,
    TEXT_CACHE_MAX_CHARS,
    TEXT_CACHE_SIZE,
    Classifier,
    classify,
    parse_hint,
    parse_hints,
)
from rwproxy.router.statement import Effect, Hint, Kind, PrimaryReason, StatementInfo

E = Effect
R = PrimaryReason
K = Kind
N = Effect.NONE

# (sql, kind, primary_reason, effects, extra attribute checks)
Case = tuple[str, Kind, PrimaryReason | None, Effect, dict[str, Any]]

PLAIN_READS: list[Case] = [
    ("SELECT c FROM sbtest1 WHERE id=4242", K.SELECT, None, N, {"used_parser": False}),
    ("select c from t", K.SELECT, None, N, {}),
    ("  \n\tSELECT 1", K.SELECT, None, N, {}),
    ("SeLeCt * FrOm `t` WhErE `id` = 1", K.SELECT, None, N, {}),
    ("SELECT found_rows_total, last_insert_id_col, row_count_x FROM t", K.SELECT, None, N, {}),
    ("SELECT nextval_count, lockstep, intox FROM t", K.SELECT, None, N, {}),
    ("SELECT 'FOR UPDATE' FROM t", K.SELECT, None, N, {}),
    ("SELECT * FROM t WHERE a='x;y'", K.SELECT, None, N, {"multi_statement": False}),
    ("SELECT * FROM t WHERE a = 'it''s; -- not a comment'", K.SELECT, None, N, {"multi_statement": False}),
    ("SELECT * FROM t WHERE a = 'x\\'; SELECT 1'", K.SELECT, None, N, {"multi_statement": False}),
    ("SELECT \"GET_LOCK('x', 1)\" FROM t", K.SELECT, None, N, {}),
    ("SELECT `into`, `for update`, `@x` FROM t", K.SELECT, None, N, {}),
    ("SELECT 1 AS `a;b`", K.SELECT, None, N, {"multi_statement": False}),
    ("SELECT 1;", K.SELECT, None, N, {"multi_statement": False}),
    ("SELECT 1 ;  ; ", K.SELECT, None, N, {"multi_statement": False}),
    ("SELECT 1; -- trailing comment", K.SELECT, None, N, {"multi_statement": False}),
    ("SELECT 1 # comment", K.SELECT, None, N, {}),
    ("SELECT 1 -- comment\n FROM dual", K.SELECT, None, N, {}),
    ("/* leading */ SELECT 1", K.SELECT, None, N, {"hint": None}),
    ("-- c\nSELECT 1", K.SELECT, None, N, {}),
    ("# c\nSELECT 1", K.SELECT, None, N, {}),
    ("SELECT 5--3", K.SELECT, None, N, {}),
    ("SELECT /*+ MAX_EXECUTION_TIME(1000) */ * FROM t", K.SELECT, None, N, {}),
    ("SELECT c FROM t /* FOR UPDATE */", K.SELECT, None, N, {}),
    ("SELECT c FROM t -- FOR UPDATE", K.SELECT, None, N, {}),
    ("SELECT @x", K.SELECT, None, N, {"reads_user_vars": True}),
    ("SELECT * FROM t WHERE a = @`my var` OR b = @'x'", K.SELECT, None, N, {"reads_user_vars": True}),
    ("SELECT @@version, @@session.sql_mode, @@GLOBAL.max_connections", K.SELECT, None, N, {}),
    ("SELECT * FROM t WHERE id IN (SELECT id FROM u)", K.SELECT, None, N, {}),
    ("(SELECT 1) UNION (SELECT 2)", K.SELECT, None, N, {}),
    ("((SELECT a FROM t)) ORDER BY a", K.SELECT, None, N, {}),
    ("VALUES ROW(1, 2), ROW(3, 4)", K.SELECT, None, N, {}),
    ("TABLE t", K.SELECT, None, N, {}),
    ("SELECT * FROM t FOR SYSTEM_TIME AS OF TIMESTAMP '2020-01-01'", K.SELECT, None, N, {}),
    ("SELECT SLEEP(1), NOW(), RAND(), UUID()", K.SELECT, None, N, {}),
    ("SELECT a FROM t WHERE b LIKE '%@%' AND c = 'x:=y'", K.SELECT, None, N, {}),
    ("SELECT 'unterminated", K.SELECT, None, N, {}),
    ("SELECT 1 INTO_X FROM t", K.SELECT, None, N, {}),
]

LOCKING: list[Case] = [
    ("SELECT c FROM t WHERE id=1 FOR UPDATE", K.SELECT, R.LOCKING_READ, N, {}),
    ("select c from t where id=1 for share", K.SELECT, R.LOCKING_READ, N, {}),
    ("SELECT c FROM t WHERE id=1 LOCK IN SHARE MODE", K.SELECT, R.LOCKING_READ, N, {}),
    ("SELECT c FROM t FOR UPDATE SKIP LOCKED", K.SELECT, R.LOCKING_READ, N, {}),
    ("SELECT c FROM t WHERE id=1 FOR\n  UPDATE NOWAIT", K.SELECT, R.LOCKING_READ, N, {}),
    ("SELECT c FROM t FOR/* x */UPDATE", K.SELECT, R.LOCKING_READ, N, {}),
    ("SELECT c FROM t /*!FOR UPDATE */", K.SELECT, R.LOCKING_READ, N, {}),
    ("SELECT c FROM t /*!50700 LOCK IN SHARE MODE */", K.SELECT, R.LOCKING_READ, N, {}),
    ("SELECT c FROM t /*M!100100 FOR UPDATE */", K.SELECT, R.LOCKING_READ, N, {}),
    ("(SELECT 1) UNION (SELECT 2 FOR UPDATE)", K.SELECT, R.LOCKING_READ, N, {}),
    ("SELECT 'x' FROM t WHERE a = 'FOR UPDATE' FOR UPDATE", K.SELECT, R.LOCKING_READ, N, {}),
    ("/*! SELECT */ c FROM t FOR UPDATE", K.SELECT, R.LOCKING_READ, N, {}),
]

SELECT_INTO: list[Case] = [
    ("SELECT c INTO @x FROM t WHERE id=1", K.SELECT, R.SELECT_INTO, E.ASSIGNS_USER_VAR_IN_QUERY, {}),
    ("SELECT c FROM t WHERE id=1 INTO @x, @y", K.SELECT, R.SELECT_INTO, E.ASSIGNS_USER_VAR_IN_QUERY, {}),
    ("SELECT * FROM t INTO OUTFILE '/tmp/x'", K.SELECT, R.SELECT_INTO, N, {}),
    ("SELECT * INTO DUMPFILE '/tmp/x' FROM t", K.SELECT, R.SELECT_INTO, N, {}),
]

NAMED_LOCKS: list[Case] = [
    ("SELECT GET_LOCK('job-7', 10)", K.SELECT, R.NAMED_LOCK, E.ACQUIRES_NAMED_LOCK, {"names": ("job-7",)}),
    ('SELECT get_lock ( "a" , 0)', K.SELECT, R.NAMED_LOCK, E.ACQUIRES_NAMED_LOCK, {"names": ("a",)}),
    (
        "SELECT GET_LOCK(CONCAT('a', id), 1) FROM t",
        K.SELECT,
        R.NAMED_LOCK,
        E.ACQUIRES_NAMED_LOCK,
        {"names": ("*",)},
    ),
    ("SELECT GET_LOCK('it''s', 1)", K.SELECT, R.NAMED_LOCK, E.ACQUIRES_NAMED_LOCK, {"names": ("it's",)}),
    ("SELECT RELEASE_LOCK('job-7')", K.SELECT, R.NAMED_LOCK, E.RELEASES_NAMED_LOCK, {"names": ("job-7",)}),
    ("SELECT RELEASE_ALL_LOCKS()", K.SELECT, R.NAMED_LOCK, E.RELEASES_NAMED_LOCK, {"names": ("*",)}),
    ("SELECT IS_FREE_LOCK('a')", K.SELECT, R.NAMED_LOCK, N, {"names": ()}),
    ("SELECT IS_USED_LOCK('a')", K.SELECT, R.NAMED_LOCK, N, {"names": ()}),
    ("DO GET_LOCK('a', 1)", K.DO, R.NAMED_LOCK, E.ACQUIRES_NAMED_LOCK, {"names": ("a",)}),
    ("DO RELEASE_LOCK('a')", K.DO, R.NAMED_LOCK, E.RELEASES_NAMED_LOCK, {"names": ("a",)}),
    ("DO 1+1", K.DO, R.OTHER, N, {}),
]

SESSION_FUNCTIONS: list[Case] = [
    ("SELECT LAST_INSERT_ID()", K.SELECT, R.SESSION_FUNCTION, N, {}),
    ("select last_insert_id ()", K.SELECT, R.SESSION_FUNCTION, N, {}),
    ("SELECT FOUND_ROWS()", K.SELECT, R.SESSION_FUNCTION, N, {}),
    ("SELECT ROW_COUNT()", K.SELECT, R.SESSION_FUNCTION, N, {}),
    ("SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 10", K.SELECT, R.SESSION_FUNCTION, N, {}),
    ("SELECT CONNECTION_ID()", K.SELECT, R.SESSION_FUNCTION, N, {}),
    ("SELECT @@identity", K.SELECT, R.SESSION_FUNCTION, N, {}),
    ("SELECT @@session.last_insert_id", K.SELECT, R.SESSION_FUNCTION, N, {}),
    ("SELECT @@warning_count, @@error_count", K.SELECT, R.SESSION_FUNCTION, N, {}),
    ("SELECT @@read_only", K.SELECT, R.OTHER, N, {}),
    ("SELECT @@global.innodb_read_only", K.SELECT, R.OTHER, N, {}),
]

SEQUENCES: list[Case] = [
    ("SELECT NEXTVAL(s)", K.SELECT, R.SEQUENCE, N, {}),
    ("SELECT NEXT VALUE FOR s", K.SELECT, R.SEQUENCE, N, {}),
    ("SELECT SETVAL(s, 10)", K.SELECT, R.SEQUENCE, N, {}),
    ("SELECT s.nextval", K.SELECT, R.SEQUENCE, N, {}),
    ("SELECT LASTVAL(s)", K.SELECT, R.SESSION_FUNCTION, N, {}),
    ("SELECT PREVIOUS VALUE FOR s", K.SELECT, R.SESSION_FUNCTION, N, {}),
]

USER_VARS: list[Case] = [
    ("SELECT @x := 5", K.SELECT, R.USER_VAR_ASSIGN, E.ASSIGNS_USER_VAR_IN_QUERY, {}),
    (
        "SELECT @rownum := @rownum + 1 AS n FROM t",
        K.SELECT,
        R.USER_VAR_ASSIGN,
        E.ASSIGNS_USER_VAR_IN_QUERY,
        {"reads_user_vars": True},
    ),
    ("SELECT 1 FROM DUAL WHERE (@a := 1)", K.SELECT, R.USER_VAR_ASSIGN, E.ASSIGNS_USER_VAR_IN_QUERY, {}),
    ("SELECT * FROM t WHERE a = @x", K.SELECT, None, N, {"reads_user_vars": True}),
]

WRITES: list[Case] = [
    ("INSERT INTO t VALUES (1)", K.INSERT, R.WRITE, N, {"used_parser": False}),
    ("insert into t select * from u for update", K.INSERT, R.WRITE, N, {}),
    ("UPDATE t SET a=1", K.UPDATE, R.WRITE, N, {}),
    ("DELETE FROM t", K.DELETE, R.WRITE, N, {}),
    ("REPLACE INTO t VALUES (1)", K.REPLACE, R.WRITE, N, {}),
    ("LOAD DATA INFILE '/tmp/x' INTO TABLE t", K.LOAD, R.WRITE, N, {}),
    ("LOAD XML LOCAL INFILE 'x' INTO TABLE t", K.LOAD, R.WRITE, N, {}),
    ("LOAD INDEX INTO CACHE t", K.OTHER, R.OTHER, N, {}),
    (
        "INSERT INTO t VALUES ('a;b', '-- x', '/* y */', '#z')",
        K.INSERT,
        R.WRITE,
        N,
        {"multi_statement": False},
    ),
    ("  /* c */ update t set a = 1 -- c", K.UPDATE, R.WRITE, N, {}),
    (
        "WITH a AS (SELECT 1) UPDATE t SET x=1 WHERE id IN (SELECT * FROM a)",
        K.UPDATE,
        R.WRITE,
        N,
        {"used_parser": True},
    ),
    ("WITH a AS (SELECT 1) DELETE FROM t WHERE id IN (SELECT * FROM a)", K.DELETE, R.WRITE, N, {}),
    ("WITH a AS (SELECT 1) SELECT * FROM a", K.SELECT, None, N, {"used_parser": True}),
    ("WITH a AS (SELECT 1) SELECT * FROM a FOR UPDATE", K.SELECT, R.LOCKING_READ, N, {"used_parser": True}),
    (
        "WITH RECURSIVE a(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM a WHERE n<5) SELECT * FROM a",
        K.SELECT,
        None,
        N,
        {},
    ),
]

DDL: list[Case] = [
    ("CREATE TABLE t (a int)", K.DDL, R.DDL, E.ENDS_TXN, {}),
    ("CREATE TEMPORARY TABLE tmp1 (a int)", K.DDL, R.DDL, E.CREATES_TEMP_TABLE, {"names": ("tmp1",)}),
    (
        "create or replace temporary table if not exists `db`.`tmp 2` as select 1",
        K.DDL,
        R.DDL,
        E.CREATES_TEMP_TABLE,
        {"names": ("db.tmp 2",)},
    ),
    (
        "DROP TEMPORARY TABLE IF EXISTS tmp1, `tmp2`",
        K.DDL,
        R.DDL,
        E.DROPS_TEMP_TABLE,
        {"names": ("tmp1", "tmp2")},
    ),
    ("DROP TABLE t1, d.t2", K.DDL, R.DDL, E.ENDS_TXN | E.DROPS_TEMP_TABLE, {"names": ("t1", "d.t2")}),
    ("DROP DATABASE d", K.DDL, R.DDL, E.ENDS_TXN, {}),
    ("ALTER TABLE t ADD COLUMN b int", K.DDL, R.DDL, E.ENDS_TXN, {}),
    ("TRUNCATE TABLE t", K.DDL, R.DDL, E.ENDS_TXN, {}),
    ("RENAME TABLE a TO b", K.DDL, R.DDL, E.ENDS_TXN, {}),
    ("GRANT SELECT ON *.* TO 'u'@'%'", K.DDL, R.DDL, E.ENDS_TXN, {}),
    ("REVOKE ALL ON *.* FROM u", K.DDL, R.DDL, E.ENDS_TXN, {}),
    ("ANALYZE TABLE t", K.DDL, R.DDL, E.ENDS_TXN, {}),
    ("OPTIMIZE TABLE t", K.DDL, R.DDL, E.ENDS_TXN, {}),
    ("REPAIR TABLE t", K.DDL, R.DDL, E.ENDS_TXN, {}),
    ("FLUSH PRIVILEGES", K.DDL, R.DDL, E.ENDS_TXN, {}),
    ("FLUSH TABLES WITH READ LOCK", K.DDL, R.LOCK_TABLES, E.LOCKS_TABLES | E.ENDS_TXN, {}),
    ("FLUSH TABLES t1 FOR EXPORT", K.DDL, R.LOCK_TABLES, E.LOCKS_TABLES | E.ENDS_TXN, {}),
    (
        "CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END",
        K.DDL,
        R.DDL,
        E.ENDS_TXN,
        {"multi_statement": False},
    ),
    (
        "CREATE DEFINER=`root`@`%` TRIGGER trg BEFORE INSERT ON t FOR EACH ROW BEGIN SET NEW.a = 1; END",
        K.DDL,
        R.DDL,
        E.ENDS_TXN,
        {"multi_statement": False},
    ),
    (
        "CREATE FUNCTION f() RETURNS INT RETURN 1; SELECT 1",
        K.DDL,
        R.MULTI_STATEMENT,
        E.ENDS_TXN,
        {"multi_statement": True},
    ),
]

TRANSACTIONS: list[Case] = [
    ("BEGIN", K.BEGIN, R.TRANSACTION, E.STARTS_TXN, {"read_only_txn": False}),
    ("begin work", K.BEGIN, R.TRANSACTION, E.STARTS_TXN, {}),
    ("START TRANSACTION", K.BEGIN, R.TRANSACTION, E.STARTS_TXN, {}),
    ("START TRANSACTION READ ONLY", K.BEGIN, R.TRANSACTION, E.STARTS_TXN, {"read_only_txn": True}),
    (
        "start transaction with consistent snapshot, read write",
        K.BEGIN,
        R.TRANSACTION,
        E.STARTS_TXN,
        {"read_only_txn": False},
    ),
    ("COMMIT", K.COMMIT, R.TRANSACTION, E.ENDS_TXN, {}),
    ("COMMIT WORK AND CHAIN", K.COMMIT, R.TRANSACTION, E.ENDS_TXN | E.STARTS_TXN, {}),
    ("COMMIT AND NO CHAIN", K.COMMIT, R.TRANSACTION, E.ENDS_TXN, {}),
    ("ROLLBACK", K.ROLLBACK, R.TRANSACTION, E.ENDS_TXN, {}),
    ("ROLLBACK TO SAVEPOINT sp1", K.ROLLBACK, R.TRANSACTION, N, {}),
    ("ROLLBACK WORK TO sp1", K.ROLLBACK, R.TRANSACTION, N, {}),
    ("SAVEPOINT sp1", K.SAVEPOINT, R.TRANSACTION, N, {}),
    ("RELEASE SAVEPOINT sp1", K.SAVEPOINT, R.TRANSACTION, N, {}),
    ("XA START 'x1'", K.BEGIN, R.TRANSACTION, E.STARTS_TXN, {}),
    ("XA END 'x1'", K.COMMIT, R.TRANSACTION, N, {}),
    ("XA PREPARE 'x1'", K.COMMIT, R.TRANSACTION, N, {}),
    ("XA COMMIT 'x1'", K.COMMIT, R.TRANSACTION, E.ENDS_TXN, {}),
    ("XA ROLLBACK 'x1'", K.ROLLBACK, R.TRANSACTION, E.ENDS_TXN, {}),
    ("XA RECOVER", K.SHOW, R.TRANSACTION, N, {}),
    ("BEGIN NOT ATOMIC SELECT 1; SELECT 2; END", K.OTHER, R.OTHER, N, {"multi_statement": False}),
    ("START SLAVE", K.OTHER, R.OTHER, N, {}),
]

SC = R.SESSION_COMMAND
SV = E.SETS_SESSION_VAR
SETS: list[Case] = [
    ("SET autocommit=0", K.SET, SC, E.SETS_AUTOCOMMIT, {"autocommit": False, "names": ()}),
    ("SET autocommit = ON", K.SET, SC, E.SETS_AUTOCOMMIT, {"autocommit": True}),
    ("set @@autocommit=1", K.SET, SC, E.SETS_AUTOCOMMIT, {"autocommit": True}),
    ("SET SESSION autocommit = OFF", K.SET, SC, E.SETS_AUTOCOMMIT, {"autocommit": False}),
    ("SET @@session.autocommit = @x", K.SET, SC, E.SETS_AUTOCOMMIT, {"autocommit": None}),
    (
        "SET autocommit=1, sql_mode=''",
        K.SET,
        SC,
        E.SETS_AUTOCOMMIT | SV,
        {"autocommit": True, "names": ("sql_mode",)},
    ),
    ("SET sql_mode = 'STRICT_ALL_TABLES'", K.SET, SC, SV, {"names": ("sql_mode",)}),
    (
        "SET SESSION sql_mode='', LOCAL time_zone='+00:00'",
        K.SET,
        SC,
        SV,
        {"names": ("sql_mode", "time_zone")},
    ),
    ("SET @@session.SQL_MODE = ''", K.SET, SC, SV, {"names": ("sql_mode",)}),
    ("SET @@local.wait_timeout=10", K.SET, SC, SV, {"names": ("wait_timeout",)}),
    ("SET `wait_timeout` = 10", K.SET, SC, SV, {"names": ("wait_timeout",)}),
    ("SET NAMES utf8mb4", K.SET, SC, SV, {"names": ("names",)}),
    ("SET NAMES 'utf8mb4' COLLATE 'utf8mb4_general_ci'", K.SET, SC, SV, {"names": ("names",)}),
    ("SET CHARACTER SET utf8", K.SET, SC, SV, {"names": ("names",)}),
    ("SET CHARSET utf8", K.SET, SC, SV, {"names": ("names",)}),
    ("SET GLOBAL max_connections = 100", K.SET, SC, E.SETS_GLOBAL, {"names": ()}),
    ("SET PERSIST max_connections = 100", K.SET, SC, E.SETS_GLOBAL, {}),
    ("SET PERSIST_ONLY x = 1", K.SET, SC, E.SETS_GLOBAL, {}),
    ("SET @@global.max_connections = 100", K.SET, SC, E.SETS_GLOBAL, {}),
    ("SET GLOBAL a=1, b=2", K.SET, SC, E.SETS_GLOBAL, {"names": ()}),
    ("SET GLOBAL a=1, SESSION b=2", K.SET, SC, E.SETS_GLOBAL | SV, {"names": ("b",)}),
    ("SET GLOBAL a=1, @@b=2", K.SET, SC, E.SETS_GLOBAL | SV, {"names": ("b",)}),
    ("SET @x = 1", K.SET, SC, E.SETS_USER_VAR, {"names": ()}),
    ("SET @x := 1, @`y` = 'a,b', @'z'=2", K.SET, SC, E.SETS_USER_VAR, {}),
    ("SET @x = 1, sql_mode = ''", K.SET, SC, E.SETS_USER_VAR | SV, {"names": ("sql_mode",)}),
    ("SET @x = (SELECT MAX(id) FROM t), @y = CONCAT('a', 'b')", K.SET, SC, E.SETS_USER_VAR, {}),
    ("SET TRANSACTION ISOLATION LEVEL READ COMMITTED", K.SET, SC, SV, {"names": ("transaction",)}),
    (
        "SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        K.SET,
        SC,
        SV,
        {"names": ("transaction_isolation",)},
    ),
    ("SET SESSION TRANSACTION READ ONLY", K.SET, SC, SV, {"names": ("transaction_read_only",)}),
    ("SET GLOBAL TRANSACTION ISOLATION LEVEL READ COMMITTED", K.SET, SC, E.SETS_GLOBAL, {}),
    (
        "SET @@session.transaction_isolation = 'READ-COMMITTED'",
        K.SET,
        SC,
        SV,
        {"names": ("transaction_isolation",)},
    ),
    ("SET PASSWORD = 'x'", K.SET, R.DDL, E.ENDS_TXN, {}),
    ("SET ROLE ALL", K.SET, SC, SV, {"names": ("role",)}),
    ("SET STATEMENT max_statement_time=1 FOR SELECT * FROM t", K.SELECT, None, N, {}),
    ("SET STATEMENT max_statement_time=1 FOR UPDATE t SET a=1", K.UPDATE, R.WRITE, N, {}),
    (
        "SET @x = GET_LOCK('a', 0)",
        K.SET,
        R.NAMED_LOCK,
        E.SETS_USER_VAR | E.ACQUIRES_NAMED_LOCK,
        {"names": ("a",)},
    ),
    ("/* c */ SET /* c */ autocommit /* c */ = 0", K.SET, SC, E.SETS_AUTOCOMMIT, {"autocommit": False}),
]

SESSION_AND_SHOW: list[Case] = [
    ("USE db1", K.USE, SC, E.CHANGES_DB, {"names": ("db1",)}),
    ("use `my db`", K.USE, SC, E.CHANGES_DB, {"names": ("my db",)}),
    ("USE `a``b`", K.USE, SC, E.CHANGES_DB, {"names": ("a`b",)}),
    ("SHOW TABLES", K.SHOW, None, N, {}),
    ("show create table t", K.SHOW, None, N, {}),
    ("SHOW GLOBAL STATUS", K.SHOW, None, N, {}),
    ("SHOW VARIABLES LIKE 'x'", K.SHOW, None, N, {}),
    ("SHOW WARNINGS", K.SHOW, R.SESSION_FUNCTION, N, {}),
    ("SHOW ERRORS LIMIT 5", K.SHOW, R.SESSION_FUNCTION, N, {}),
    ("SHOW COUNT(*) WARNINGS", K.SHOW, R.SESSION_FUNCTION, N, {}),
    ("SHOW SESSION STATUS LIKE 'x'", K.SHOW, R.SESSION_FUNCTION, N, {}),
    ("SHOW STATUS", K.SHOW, R.SESSION_FUNCTION, N, {}),
    ("SHOW PROFILES", K.SHOW, R.SESSION_FUNCTION, N, {}),
    ("SHOW PROFILE FOR QUERY 1", K.SHOW, R.SESSION_FUNCTION, N, {}),
    ("SHOW MASTER STATUS", K.SHOW, R.OTHER, N, {}),
    ("DESCRIBE t", K.SHOW, None, N, {}),
    ("DESC t", K.SHOW, None, N, {}),
    ("EXPLAIN SELECT * FROM t", K.SHOW, None, N, {}),
    ("EXPLAIN FORMAT=JSON SELECT 1", K.SHOW, None, N, {}),
    ("EXPLAIN UPDATE t SET a=1", K.SHOW, None, N, {}),
    ("EXPLAIN ANALYZE SELECT * FROM t", K.SHOW, None, N, {}),
    ("EXPLAIN ANALYZE UPDATE t SET a=1", K.SHOW, R.WRITE, N, {}),
    ("EXPLAIN ANALYZE SELECT * FROM t FOR UPDATE", K.SHOW, R.LOCKING_READ, N, {}),
    ("ANALYZE SELECT * FROM t", K.SHOW, None, N, {}),
    ("ANALYZE FORMAT=JSON DELETE FROM t", K.SHOW, R.WRITE, N, {}),
    ("EXPLAIN FOR CONNECTION 5", K.SHOW, R.OTHER, N, {}),
    ("EXPLAIN FORMAT=JSON INTO @x SELECT 1", K.SHOW, R.SELECT_INTO, E.ASSIGNS_USER_VAR_IN_QUERY, {}),
    ("HELP 'contents'", K.SHOW, None, N, {}),
]

OTHER_VERBS: list[Case] = [
    ("CALL p(1)", K.CALL, R.CALL, N, {}),
    ("HANDLER t OPEN", K.HANDLER, R.HANDLER, N, {}),
    ("LOCK TABLES t READ, u WRITE", K.LOCK_TABLES, R.LOCK_TABLES, E.LOCKS_TABLES | E.ENDS_TXN, {}),
    ("UNLOCK TABLES", K.UNLOCK_TABLES, R.LOCK_TABLES, E.UNLOCKS_TABLES, {}),
    ("LOCK INSTANCE FOR BACKUP", K.LOCK_TABLES, R.LOCK_TABLES, E.LOCKS_TABLES, {}),
    ("PREPARE stmt1 FROM 'SELECT 1'", K.PREPARE, R.SQL_PREPARE, E.PREPARES_SQL, {"names": ("stmt1",)}),
    ("PREPARE `My_Stmt` FROM @sql", K.PREPARE, R.SQL_PREPARE, E.PREPARES_SQL, {"names": ("my_stmt",)}),
    ("EXECUTE stmt1", K.EXECUTE, R.SQL_PREPARE, N, {"names": ("stmt1",), "reads_user_vars": False}),
    ("EXECUTE stmt1 USING @a, @b", K.EXECUTE, R.SQL_PREPARE, N, {"reads_user_vars": True}),
    ("EXECUTE IMMEDIATE 'SELECT 1'", K.EXECUTE, R.SQL_PREPARE, N, {"names": ()}),
    ("DEALLOCATE PREPARE stmt1", K.DEALLOCATE, R.SQL_PREPARE, E.DEALLOCATES_SQL, {"names": ("stmt1",)}),
    ("DROP PREPARE stmt1", K.DEALLOCATE, R.SQL_PREPARE, E.DEALLOCATES_SQL, {"names": ("stmt1",)}),
    ("KILL 42", K.KILL, R.KILL, N, {"names": ("42",), "kill_query": False}),
    ("KILL CONNECTION 42", K.KILL, R.KILL, N, {"names": ("42",), "kill_query": False}),
    ("kill query 42", K.KILL, R.KILL, N, {"names": ("42",), "kill_query": True}),
    ("KILL HARD QUERY 7", K.KILL, R.KILL, N, {"names": ("7",), "kill_query": True}),
    ("KILL QUERY ID 99", K.KILL, R.KILL, N, {"names": (), "kill_query": True}),
    ("KILL USER 'bob'", K.KILL, R.KILL, N, {"names": ()}),
    ("GET DIAGNOSTICS @n = NUMBER", K.OTHER, R.SESSION_FUNCTION, N, {}),
    ("CHECKSUM TABLE t", K.OTHER, R.OTHER, N, {}),
    ("INSTALL PLUGIN x SONAME 'x.so'", K.OTHER, R.OTHER, N, {}),
]

MULTI: list[Case] = [
    ("SELECT 1; SELECT 2", K.SELECT, R.MULTI_STATEMENT, N, {"multi_statement": True}),
    ("SELECT 'a;b'; SELECT \"c;d\"", K.SELECT, R.MULTI_STATEMENT, N, {"multi_statement": True}),
    (
        "SET autocommit=0; BEGIN",
        K.SET,
        R.MULTI_STATEMENT,
        E.SETS_AUTOCOMMIT | E.STARTS_TXN,
        {"autocommit": False, "multi_statement": True},
    ),
    (
        "INSERT INTO t VALUES (1); SELECT LAST_INSERT_ID()",
        K.INSERT,
        R.MULTI_STATEMENT,
        N,
        {"multi_statement": True},
    ),
    (
        "USE db2; SELECT GET_LOCK('x', 1)",
        K.USE,
        R.MULTI_STATEMENT,
        E.CHANGES_DB | E.ACQUIRES_NAMED_LOCK,
        {"names": ("db2", "x")},
    ),
    ("SELECT 1;/* c */SELECT 2;", K.SELECT, R.MULTI_STATEMENT, N, {"multi_statement": True}),
]

HINTS: list[Case] = [
    ("/* rwproxy:primary */ SELECT 1", K.SELECT, None, N, {"hint": Hint.PRIMARY}),
    ("SELECT /*+ rwproxy:replica */ c FROM t", K.SELECT, None, N, {"hint": Hint.REPLICA}),
    (
        "/* app=x rwproxy:replica */ SELECT c FROM t FOR UPDATE",
        K.SELECT,
        R.LOCKING_READ,
        N,
        {"hint": Hint.REPLICA},
    ),
    ("SELECT 1 -- rwproxy:primary", K.SELECT, None, N, {"hint": Hint.PRIMARY}),
    ("SELECT 1 # rwproxy:primary", K.SELECT, None, N, {"hint": Hint.PRIMARY}),
    ("SELECT '/* rwproxy:primary */'", K.SELECT, None, N, {"hint": None}),
    ("/* rwproxy:replica */ /* rwproxy:primary */ SELECT 1", K.SELECT, None, N, {"hint": Hint.PRIMARY}),
    ("/* RWPROXY:Primary */ SELECT 1", K.SELECT, None, N, {"hint": Hint.PRIMARY}),
    ("/* rwproxy:primary */ SHOW TABLES", K.SHOW, None, N, {"hint": Hint.PRIMARY}),
    ("INSERT /* rwproxy:replica */ INTO t VALUES (1)", K.INSERT, R.WRITE, N, {"hint": Hint.REPLICA}),
    (
        "/* rwproxy:replica */ SELECT 1; SELECT 2",
        K.SELECT,
        R.MULTI_STATEMENT,
        N,
        {"hint": Hint.REPLICA, "multi_statement": True},
    ),
    ("/* rwproxy:max_lag=5 */ SELECT 1", K.SELECT, None, N, {"hint": None}),
]

UNPARSEABLE: list[Case] = [
    ("frobnicate the widget", K.OTHER, R.UNPARSEABLE, N, {"unparseable": True}),
    ("WITH broken AS SELECT", K.OTHER, R.UNPARSEABLE, N, {"unparseable": True, "used_parser": True}),
    ("BEGIN foo", K.OTHER, R.UNPARSEABLE, N, {"unparseable": True}),
    ("(((", K.OTHER, R.UNPARSEABLE, N, {"unparseable": True}),
    ("", K.OTHER, R.OTHER, N, {"unparseable": False}),
    ("   ", K.OTHER, R.OTHER, N, {}),
    ("/* only a comment */", K.OTHER, R.OTHER, N, {}),
    (";", K.OTHER, R.OTHER, N, {}),
]

ALL_CASES = (
    PLAIN_READS
    + LOCKING
    + SELECT_INTO
    + NAMED_LOCKS
    + SESSION_FUNCTIONS
    + SEQUENCES
    + USER_VARS
    + WRITES
    + DDL
    + TRANSACTIONS
    + SETS
    + SESSION_AND_SHOW
    + OTHER_VERBS
    + MULTI
    + HINTS
    + UNPARSEABLE
)


def _check(
    info: StatementInfo, kind: Kind, reason: PrimaryReason | None, effects: Effect, extra: dict[str, Any]
) -> None:
    assert info.kind is kind
    assert info.primary_reason is reason
    assert info.effects == effects
    for attr, expected in extra.items():
        assert getattr(info, attr) == expected, attr


@pytest.mark.parametrize(
    ("sql", "kind", "reason", "effects", "extra"), ALL_CASES, ids=[c[0][:60] for c in ALL_CASES]
)
def test_classify(
    sql: str, kind: Kind, reason: PrimaryReason | None, effects: Effect, extra: dict[str, Any]
) -> None:
    classifier = Classifier()
    first = classifier.classify(sql)
    _check(first, kind, reason, effects, extra)
    assert classifier.internal_errors == 0
    # A second classification (from the digest cache when the slow path was taken) is identical.
    assert classifier.classify(sql) == first
    assert first.replica_eligible is (reason is None)


def test_case_count() -> None:
    assert len(ALL_CASES) >= 100


def test_multi_statement_parts() -> None:
    info = classify("SET autocommit=0; USE db2; SELECT 1")
    assert [p.kind for p in info.parts] == [Kind.SET, Kind.USE, Kind.SELECT]
    assert info.parts[1].names == ("db2",)
    assert info.parts[2] is PLAIN_SELECT


def test_plain_select_fast_path_returns_shared_constant() -> None:
    c = Classifier()
    assert c.classify("SELECT c FROM sbtest1 WHERE id=4242") is PLAIN_SELECT
    assert c.fast_path == 1
    assert c.cache_hits == c.cache_misses == c.parser_used == 0


def test_hint_never_mutates_shared_instances() -> None:
    c = Classifier()
    hinted = c.classify("/* rwproxy:primary */ SELECT 1")
    assert hinted.hint is Hint.PRIMARY
    assert PLAIN_SELECT.hint is None
    assert c.classify("SELECT 1") is PLAIN_SELECT
    # Same digest, with and without hint: the cached entry carries no hint.
    assert c.classify("/* rwproxy:replica */ SELECT c FROM t WHERE id=1 FOR UPDATE").hint is Hint.REPLICA
    assert c.classify("SELECT c FROM t WHERE id=2 FOR UPDATE").hint is None
    assert c.classify("/* rwproxy:primary */ SELECT c FROM t WHERE id=3 FOR UPDATE").hint is Hint.PRIMARY


def test_cache_counters() -> None:
    c = Classifier()
    c.classify("SELECT c FROM t WHERE id=1 FOR UPDATE")
    assert (c.cache_misses, c.cache_hits, c.parser_used) == (1, 0, 0)
    c.classify("SELECT c FROM t WHERE id=2 FOR UPDATE")  # same digest
    assert (c.cache_misses, c.cache_hits) == (1, 1)
    c.classify("WITH a AS (SELECT 1) SELECT * FROM a")
    assert (c.cache_misses, c.parser_used) == (2, 1)
    c.classify("WITH a AS (SELECT 2) SELECT * FROM a")
    assert (c.cache_hits, c.parser_used) == (2, 1)
    c.classify("UPDATE t SET a = 1")
    assert c.fast_path == 1
    c.classify("frobnicate 1")
    c.classify("frobnicate 2")
    assert c.unparseable == 2
    assert c.parser_used == 2
    assert c.cache_len == 3


def test_lock_names_not_stale_on_cache_hit() -> None:
    c = Classifier()
    assert c.classify("SELECT GET_LOCK('a', 1)").names == ("a",)
    info = c.classify("SELECT GET_LOCK('b', 1)")
    assert c.cache_hits == 1
    assert info.names == ("b",)


def test_lru_is_bounded() -> None:
    size = 50
    c = Classifier(cache_size=size)
    for i in range(size + 10):
        c.classify(f"SELECT c FROM t{i} WHERE id=1 FOR UPDATE")
        assert c.cache_len <= size
    assert c.cache_len == size
    assert c.cache_misses == size + 10


def test_lru_keeps_recently_used() -> None:
    c = Classifier(cache_size=3)
    c.classify("SELECT a FROM t0 FOR UPDATE")
    for i in range(1, 6):
        c.classify("SELECT a FROM t0 FOR UPDATE")  # keep t0 fresh
        c.classify(f"SELECT a FROM t{i} FOR UPDATE")
    hits = c.cache_hits
    c.classify("SELECT a FROM t0 FOR UPDATE")
    assert c.cache_hits == hits + 1
    c.classify("SELECT a FROM t1 FOR UPDATE")  # evicted long ago
    assert c.cache_hits == hits + 1


def test_cache_disabled() -> None:
    c = Classifier(cache_size=0)
    c.classify("SELECT c FROM t WHERE id=1 FOR UPDATE")
    c.classify("SELECT c FROM t WHERE id=1 FOR UPDATE")
    assert (c.cache_hits, c.cache_misses, c.cache_len) == (0, 2, 0)
    with pytest.raises(ValueError):
        Classifier(cache_size=-1)


def test_internal_error_answers_unparseable(monkeypatch: pytest.MonkeyPatch) -> None:
    c = Classifier()

    def boom(sql: str) -> object:
        raise RuntimeError("bug")

    # A module global the classifier calls (patchable also when compiled: see rwproxy.native).
    monkeypatch.setattr(classify_module, "_lead_match", boom)
    info = c.classify("SELECT 1")
    assert info.unparseable and info.primary_reason is R.UNPARSEABLE
    assert (c.internal_errors, c.unparseable) == (1, 1)


def test_huge_statement_is_not_parsed() -> None:
    c = Classifier()
    sql = "WITH a AS (SELECT 1) SELECT " + " + ".join(["1"] * 60000) + " FROM a"
    info = c.classify(sql)
    assert info.unparseable and c.parser_used == 0


def test_big_insert_stays_on_fast_path() -> None:
    c = Classifier()
    rows = ", ".join(f"({i}, 'v;{i} -- #')" for i in range(5000))
    info = c.classify(f"INSERT INTO t (a, b) VALUES {rows}")
    assert info.kind is Kind.INSERT and not info.multi_statement
    assert c.cache_misses == 0 and c.parser_used == 0


def test_parse_hint() -> None:
    assert parse_hint("/* rwproxy:primary */ SELECT 1") is Hint.PRIMARY
    assert parse_hint("SELECT /*+ rwproxy:replica */ 1") is Hint.REPLICA
    assert parse_hint("SELECT 1") is None
    assert parse_hint("SELECT 'rwproxy:primary'") is None
    assert parse_hint("/* rwproxy: replica */ SELECT 1") is Hint.REPLICA
    hints = parse_hints("/* rwproxy:replica rwproxy:max_lag=5 */ SELECT 1")
    assert hints is not None
    assert hints.route is Hint.REPLICA
    assert hints.params == (("max_lag", "5"),)
    assert hints.get("max_lag") == "5"
    assert hints.get("other") is None


def test_module_level_classify_uses_default_classifier() -> None:
    before = classify_module._default.fast_path
    assert classify("SELECT 1") is PLAIN_SELECT
    assert classify_module._default.fast_path == before + 1


_SQLISH = st.lists(
    st.sampled_from(
        [
            "SELECT",
            "select",
            "INSERT",
            "SET",
            "USE",
            "KILL",
            "WITH",
            "EXPLAIN",
            "ANALYZE",
            "FOR",
            "UPDATE",
            "INTO",
            "@",
            "@@",
            ":=",
            "'",
            '"',
            "`",
            "(",
            ")",
            ",",
            ";",
            "/*",
            "*/",
            "/*!",
            "/*!50700",
            "--",
            "-- ",
            "#",
            "\n",
            " ",
            "GET_LOCK(",
            "'a'",
            "1",
            "0x1F",
            "x",
            "rwproxy:primary",
            "\\",
            "TRANSACTION",
            "GLOBAL",
            "SESSION",
            "NAMES",
            "DROP",
            "TEMPORARY",
            "TABLE",
            "CREATE",
            "PROCEDURE",
            "BEGIN",
            "END",
        ]
    ),
    max_size=30,
).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), _SQLISH))
def test_classify_never_raises(sql: str) -> None:
    c = Classifier(cache_size=16)
    info = c._classify(sql)  # the unguarded path: an exception here is a bug
    assert isinstance(info, StatementInfo)
    assert (info.primary_reason is None) == info.replica_eligible
    assert c._classify(sql) == info


# ---------------------------------------------------------------------------------------------------
# The exact-text cache in front of the digest cache.

LOCKING = "SELECT c FROM t WHERE id=1 FOR UPDATE"


def test_text_cache_hits_counted() -> None:
    c = Classifier()
    first = c.classify(LOCKING)
    assert (c.text_cache_misses, c.text_cache_hits, c.cache_misses, c.cache_hits) == (1, 0, 1, 0)
    assert c.classify(LOCKING) is first
    assert (c.text_cache_misses, c.text_cache_hits, c.cache_misses, c.cache_hits) == (1, 1, 1, 1)
    c.classify("SELECT c FROM t WHERE id=2 FOR UPDATE")  # new text, same digest
    assert (c.text_cache_misses, c.text_cache_hits, c.cache_misses, c.cache_hits) == (2, 1, 1, 2)
    assert c.text_cache_len == 2 and c.cache_len == 1


def test_fast_path_bypasses_text_cache() -> None:
    c = Classifier()
    for sql in ("SELECT 1", "UPDATE t SET a=1", "SET autocommit=0", "SELECT 1"):
        c.classify(sql)
    assert c.fast_path == 4
    assert c.text_cache_len == c.text_cache_hits == c.text_cache_misses == 0


def test_text_cache_is_bounded() -> None:
    c = Classifier(cache_size=100, text_cache_size=8)
    for i in range(20):
        c.classify(f"SELECT c FROM t WHERE id={i} FOR UPDATE")
        assert c.text_cache_len <= 8
    assert c.text_cache_len == 8
    assert (c.text_cache_misses, c.text_cache_hits, c.cache_len) == (20, 0, 1)


def test_text_cache_default_size() -> None:
    assert Classifier()._text_cache_size == TEXT_CACHE_SIZE
    assert Classifier(cache_size=10)._text_cache_size == 10  # never larger than the digest cache
    assert Classifier(cache_size=0, text_cache_size=5)._text_cache_size == 0  # cache_size=0: no caching


def test_text_cache_keeps_recently_used() -> None:
    c = Classifier(text_cache_size=2)
    a, b, d = (f"SELECT a FROM t{i} FOR UPDATE" for i in range(3))
    c.classify(a)
    c.classify(b)
    c.classify(a)  # hit: a is now the most recent
    c.classify(d)  # evicts b
    assert c.text_cache_hits == 1
    c.classify(a)
    assert c.text_cache_hits == 2
    c.classify(b)
    assert c.text_cache_hits == 2


def test_text_cache_skips_long_texts() -> None:
    sql = "SELECT c FROM t WHERE id=1 FOR UPDATE -- " + "x" * TEXT_CACHE_MAX_CHARS
    c = Classifier()
    first = c.classify(sql)
    assert c.classify(sql) == first
    assert first.primary_reason is R.LOCKING_READ
    assert c.text_cache_len == 0 and c.text_cache_hits == c.text_cache_misses == 0
    assert (c.cache_misses, c.cache_hits) == (1, 1)  # the digest cache still answers


def test_text_cache_disabled() -> None:
    c = Classifier(text_cache_size=0)
    c.classify(LOCKING)
    c.classify(LOCKING)
    assert (c.text_cache_hits, c.text_cache_misses, c.text_cache_len) == (0, 0, 0)
    assert (c.cache_misses, c.cache_hits) == (1, 1)
    with pytest.raises(ValueError):
        Classifier(text_cache_size=-1)


def test_clear_cache_clears_both_caches() -> None:
    c = Classifier()
    c.classify(LOCKING)
    c.clear_cache()
    assert c.cache_len == c.text_cache_len == 0
    c.classify(LOCKING)
    assert c.cache_misses == 2 and c.text_cache_hits == 0


def test_hints_still_applied_after_text_cache_hit() -> None:
    c = Classifier()
    hinted = "/* rwproxy:replica */ SELECT c FROM t WHERE id=1 FOR UPDATE"
    for _ in range(2):
        info = c.classify(hinted)
        assert info.hint is Hint.REPLICA and info.primary_reason is R.LOCKING_READ
    assert c.text_cache_hits == 1
    assert c.classify("SELECT c FROM t WHERE id=1 FOR UPDATE").hint is None  # same digest, no hint
    for _ in range(2):
        assert c.classify("/* rwproxy:primary */ SELECT 1").hint is Hint.PRIMARY
        assert c.classify("SELECT /*+ rwproxy:replica */ 1; SELECT 2").hint is Hint.REPLICA
    assert c.text_cache_hits == 3
    assert PLAIN_SELECT.hint is None


def test_lock_names_after_text_cache_hit() -> None:
    c = Classifier()
    for _ in range(2):
        assert c.classify("SELECT GET_LOCK('a', 1)").names == ("a",)
        assert c.classify("SELECT GET_LOCK('b', 1)").names == ("b",)
    assert c.text_cache_hits == 2 and c.cache_misses == 1


def test_unparseable_counted_on_text_cache_hit() -> None:
    c = Classifier()
    c.classify("frobnicate 1")
    c.classify("frobnicate 1")
    assert c.text_cache_hits == 1 and c.unparseable == 2 and c.parser_used == 1


# A statement classifies the same with or without the caches: templates with literal slots, literals
# that look like code, comments and hints around them.
_TEMPLATES = [
    "SELECT c FROM t WHERE id={}",
    "SELECT c FROM t WHERE id={} FOR UPDATE",
    "select c from t where id = {} lock in share mode",
    "SELECT `t`.`c` FROM `t` WHERE `t`.`id` IN ({}, {}) FOR SHARE",
    "SELECT `t 1`.c FROM `t 1` WHERE a = {} FOR UPDATE",
    "(SELECT {}) UNION (SELECT {} FOR UPDATE)",
    "SELECT GET_LOCK({}, {})",
    "SELECT RELEASE_LOCK({}), IS_FREE_LOCK({})",
    "DO GET_LOCK({}, 0)",
    "SELECT LAST_INSERT_ID() + {}",
    "SELECT @a := {}",
    "SELECT {} INTO @v",
    "SELECT * FROM t WHERE a = @x AND b = {}",
    "SELECT @@read_only, {}",
    "SELECT NEXT VALUE FOR s, {}",
    "VALUES ROW({}, {})",
    "WITH x AS (SELECT {}) SELECT * FROM x",
    "WITH x AS (SELECT {} FROM t) SELECT * FROM x FOR UPDATE",
    "WITH x AS (SELECT {}) UPDATE t SET a = 1",
    "INSERT INTO t VALUES ({}, {})",
    "UPDATE t SET a={} WHERE id={}",
    "SET @x = {}",
    "SET @x = GET_LOCK({}, 0), sql_mode = {}",
    "SET autocommit={}",
    "SET STATEMENT max_statement_time={} FOR SELECT * FROM t FOR UPDATE",
    "EXPLAIN ANALYZE SELECT {} FOR UPDATE",
    "KILL QUERY {}",
    "USE db{}",
    "SELECT {}; SELECT {} FOR UPDATE",
    "SELECT {} /* FOR UPDATE */",
    "SELECT c FROM t WHERE a = {} -- FOR UPDATE\n",
    "SELECT /*! SQL_CALC_FOUND_ROWS */ {}",
    "frobnicate {}",
]
_LITERALS = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(["1.5", ".5", "1e5", "0x1F", "X'0F'", "b'01'", "_utf8mb4'x'", "N'x'", "NULL", "''"]),
    st.sampled_from(["';'", "'--'", "'#'", "'/* rwproxy:primary */'", "'FOR UPDATE'", "'@x := 1'"]),
    st.text(max_size=12).map(lambda t: "'" + t.replace("\\", "\\\\").replace("'", "''") + "'"),
    st.text(max_size=12).map(lambda t: '"' + t.replace("\\", "\\\\").replace('"', '""') + '"'),
)
_AROUND = st.sampled_from(
    ["", " ", "\n", "/* c */ ", "/* rwproxy:primary */ ", "/*+ rwproxy:replica */ ", "-- rwproxy:primary\n",
     "# note\n", "/*!50700 */ "]
)  # fmt: skip
_AFTER = st.sampled_from(["", ";", " ; ", " -- tail", " # rwproxy:replica", " /* rwproxy:primary */"])


@st.composite
def _statement_pair(draw: st.DrawFn) -> tuple[str, str]:
    """Two texts of one statement shape with different literals."""
    template = draw(st.sampled_from(_TEMPLATES))
    slots = template.count("{}")
    before, after = draw(_AROUND), draw(_AFTER)
    first = template.format(*draw(st.lists(_LITERALS, min_size=slots, max_size=slots)))
    second = template.format(*draw(st.lists(_LITERALS, min_size=slots, max_size=slots)))
    return before + first + after, before + second + after


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_statement_pair())
def test_caches_are_transparent(pair: tuple[str, str]) -> None:
    sibling, sql = pair
    uncached = Classifier(cache_size=0)
    expected = uncached.classify(sql)
    warm = Classifier(cache_size=64)
    warm.classify(sibling)  # fills the digest cache (and the text cache with another text)
    assert warm.classify(sql) == expected  # a digest-cache hit when the literals left the digest alike
    hits, fast = warm.text_cache_hits, warm.fast_path
    assert warm.classify(sql) == expected
    assert warm.text_cache_hits == hits + 1 or warm.fast_path > fast  # the text cache, or the scan alone
    assert warm.internal_errors == uncached.internal_errors == 0


_CLASSIFIER_MODULES = (
    "statement",
    "digest",
    "classifications",
    "sql_scan",
    "token_analysis",
    "set_statements",
    "verb_scanners",
    "classify",
)


def test_classifier_modules_declare_all_and_do_not_import_in_a_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for name in _CLASSIFIER_MODULES:
        module = importlib.import_module(f"rwproxy.router.{name}")
        assert module.__all__ and all(hasattr(module, item) for item in module.__all__), name
        deps: set[str] = set()
        source = native.source_path(module.__name__)  # module.__file__ is the .so when compiled
        for node in ast.parse(source.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom) and node.module == "rwproxy.router":
                deps.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rwproxy.router."):
                deps.add(str(node.module).rsplit(".", 1)[1])
        graph[name] = deps
    order = list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError on a cycle
    assert order.index("classify") > order.index("verb_scanners") > order.index("set_statements")


def test_public_api_of_classify_module() -> None:
    from rwproxy.router import digest

    assert classify_module.digest_text is digest.digest_text
    assert classify_module.digest_hash is digest.digest_hash
    assert classify_module.parse_hint is digest.parse_hint
    assert classify_module.parse_hints is digest.parse_hints
    assert classify_module.HintDirectives is digest.HintDirectives
    public = {"Classifier", "classify", "PLAIN_SELECT", "digest_text", "digest_hash", "parse_hint"}
    assert public <= set(classify_module.__all__)
