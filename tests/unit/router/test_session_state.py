"""Tests of rwproxy.router.session_state: pins, status flags and the replay log."""

from __future__ import annotations

import pytest

from rwproxy.router.classify import classify
from rwproxy.router.session_state import PinReason, ReplayEntry, SessionState

COM_INIT_DB = 2
COM_QUERY = 3
COM_SET_OPTION = 27

IN_TRANS = 0x0001
AC = 0x0002


def run(state: SessionState, *sqls: str, succeeded: bool = True) -> SessionState:
    for sql in sqls:
        state.apply(classify(sql), sql.encode(), succeeded)
    return state


def session(*sqls: str) -> SessionState:
    return run(SessionState(), *sqls)


def payloads(state: SessionState, after: int = 0) -> list[bytes]:
    return [e.payload for e in state.replay_after(after)]


# -- replay log: order, superseding, replay_after -------------------------------------------------


def test_entries_in_order_with_increasing_seq() -> None:
    sqls = ["SET sql_mode = 'ANSI'", "SET NAMES utf8mb4", "SET @x = 5", "SET time_zone = '+00:00'"]
    state = session(*sqls)
    entries = state.replay_after(0)
    assert [e.payload for e in entries] == [s.encode() for s in sqls]
    assert [e.command for e in entries] == [COM_QUERY] * 4
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert state.replay_seq == 4


def test_payload_is_the_text_as_sent() -> None:
    sql = "/* app */ SET  SESSION sql_mode='ANSI'"
    state = session(sql)
    assert payloads(state) == [sql.encode()]


def test_payload_keeps_non_utf8_bytes() -> None:
    state = SessionState()
    raw = b"SET @x = '\xff\xfe'"
    state.apply(classify("SET @x = 'xx'"), raw, True)
    assert payloads(state) == [raw]


@pytest.mark.parametrize(
    "sqls",
    [
        pytest.param(("SET sql_mode = 'A'", "SET sql_mode = 'B'"), id="same-form"),
        pytest.param(("SET sql_mode = 'A'", "SET SESSION sql_mode = 'B'"), id="session-keyword"),
        pytest.param(("SET @@session.sql_mode = 'A'", "SET LOCAL sql_mode = 'B'"), id="at-at-session-local"),
        pytest.param(("SET @@sql_mode = 'A'", "set SQL_MODE = 'B'"), id="case"),
    ],
)
def test_later_set_of_same_variable_supersedes(sqls: tuple[str, str]) -> None:
    state = session(sqls[0], "SET NAMES utf8mb4", sqls[1])
    entries = state.replay_after(0)
    assert [e.payload for e in entries] == [b"SET NAMES utf8mb4", sqls[1].encode()]
    assert sum(b"'A'" in e.payload for e in entries) == 0
    assert len({e.key for e in entries}) == len(entries)
    assert state.replay_seq == 3


def test_same_variable_set_superseded_with_several_names_in_any_order() -> None:
    state = session("SET sql_mode = 'A', time_zone = '+00:00'", "SET time_zone = '+01:00', sql_mode = 'B'")
    assert payloads(state) == [b"SET time_zone = '+01:00', sql_mode = 'B'"]


def test_partial_overlap_is_not_superseded() -> None:
    """SET a, b then SET a: both stay (the first still sets b), in order."""
    first = "SET sql_mode = 'A', time_zone = '+00:00'"
    state = session(first, "SET sql_mode = 'B'")
    assert payloads(state) == [first.encode(), b"SET sql_mode = 'B'"]


def test_superseded_entry_moves_to_the_end() -> None:
    """A, B, A': replaying B then A' gives the same final state as A, B, A'."""
    state = session(
        "SET character_set_client = latin1", "SET NAMES utf8mb4", "SET character_set_client = ascii"
    )
    assert payloads(state) == [b"SET NAMES utf8mb4", b"SET character_set_client = ascii"]


def test_user_variable_sets_keyed_by_text_and_kept_in_order() -> None:
    state = session("SET @x = 1", "SET @x = 2")
    assert payloads(state) == [b"SET @x = 1", b"SET @x = 2"]
    # The identical text again replaces its earlier copy and moves last: replaying still ends at 1.
    run(state, "SET @x = 1")
    assert payloads(state) == [b"SET @x = 2", b"SET @x = 1"]
    assert state.replay_seq == 3


def test_replay_after_returns_only_newer_entries() -> None:
    state = session("SET sql_mode = 'A'", "SET NAMES utf8mb4", "SET @x = 5")
    assert payloads(state, 1) == [b"SET NAMES utf8mb4", b"SET @x = 5"]
    assert payloads(state, 2) == [b"SET @x = 5"]
    assert state.replay_after(3) == []
    assert state.replay_after(state.replay_seq) == []
    assert state.replay_after(99) == []


def test_replay_after_skips_superseded_sequence_numbers() -> None:
    state = session("SET sql_mode = 'A'", "SET NAMES utf8mb4")
    applied = state.replay_seq  # a connection that has both
    run(state, "SET sql_mode = 'B'")
    assert state.replay_after(applied) == [ReplayEntry(3, "set:sql_mode", COM_QUERY, b"SET sql_mode = 'B'")]
    # A connection that applied only the first entry still needs NAMES and the new sql_mode.
    assert payloads(state, 1) == [b"SET NAMES utf8mb4", b"SET sql_mode = 'B'"]


def test_empty_log() -> None:
    state = SessionState()
    assert state.replay_seq == 0
    assert state.replay_after(0) == []


# -- database and options --------------------------------------------------------------------------


def test_use_recorded_as_init_db() -> None:
    state = session("USE db2")
    assert state.database == "db2"
    assert state.replay_after(0) == [ReplayEntry(1, "db", COM_INIT_DB, b"db2")]


def test_set_database_recorded_as_init_db_and_superseded() -> None:
    state = SessionState()
    state.set_database("db1")
    run(state, "SET NAMES utf8mb4", "USE db2")
    entries = state.replay_after(0)
    assert [(e.command, e.payload) for e in entries] == [
        (COM_QUERY, b"SET NAMES utf8mb4"),
        (COM_INIT_DB, b"db2"),
    ]
    assert state.database == "db2"


def test_set_database_keeps_the_clients_bytes_even_when_not_utf8() -> None:
    state = SessionState()
    state.set_database(b"rw\xf3db".decode("utf-8", "surrogateescape"))  # as the parsers decode it
    assert state.replay_after(0) == [ReplayEntry(1, "db", COM_INIT_DB, b"rw\xf3db")]


def test_set_option_recorded_with_command_27_and_superseded() -> None:
    state = SessionState()
    state.set_option(b"\x00\x00")
    run(state, "SET NAMES utf8mb4")
    state.set_option(b"\x01\x00")
    entries = state.replay_after(0)
    assert [(e.command, e.payload) for e in entries] == [
        (COM_QUERY, b"SET NAMES utf8mb4"),
        (COM_SET_OPTION, b"\x01\x00"),
    ]


# -- what is not recorded -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SET GLOBAL max_connections = 10",
        "SET @@global.max_connections = 10",
        "SET PERSIST max_connections = 10",
        "SET GLOBAL max_connections = 10, sql_mode = 'ANSI'",  # GLOBAL carries over to sql_mode
    ],
)
def test_set_global_not_recorded(sql: str) -> None:
    state = session(sql)
    assert state.replay_after(0) == []
    assert state.replay_seq == 0


@pytest.mark.parametrize(
    "sql",
    ["SET autocommit = 0", "SET autocommit = 1", "SET SESSION autocommit = OFF", "SET @@autocommit = 0"],
)
def test_bare_set_autocommit_not_recorded_and_state_from_status_only(sql: str) -> None:
    state = session(sql)
    assert state.replay_after(0) == []
    assert state.autocommit is True  # the server's status flags are the truth, not the statement
    assert state.pin() is None


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT c FROM t",
        "INSERT INTO t VALUES (1)",
        "BEGIN",
        "COMMIT",
        "SELECT LAST_INSERT_ID()",
        "CREATE TABLE x (a int)",
    ],
)
def test_statements_without_session_effects_change_nothing(sql: str) -> None:
    assert session(sql) == SessionState()


@pytest.mark.parametrize(
    "sql",
    [
        "USE db2",
        "SET sql_mode = 'ANSI'",
        "SET @x = 5",
        "SET @x = NOW()",
        "SET sql_mode = CONCAT(@@sql_mode, ',X')",
        "CREATE TEMPORARY TABLE tmp (a int)",
        "SELECT GET_LOCK('a', 1)",
        "LOCK TABLES t READ",
        "PREPARE s FROM 'SELECT 1'",
        "SELECT c INTO @x FROM t",
        "SET sql_mode = 'ANSI'; SET @z = 1",
    ],
)
def test_failed_statements_change_nothing(sql: str) -> None:
    state = run(SessionState(), sql, succeeded=False)
    assert state == SessionState()


def test_failed_release_keeps_pins() -> None:
    state = session("CREATE TEMPORARY TABLE tmp (a int)", "SELECT GET_LOCK('a', 1)", "LOCK TABLES t READ")
    run(
        state,
        "DROP TEMPORARY TABLE tmp",
        "SELECT RELEASE_LOCK('a')",
        "UNLOCK TABLES",
        succeeded=False,
    )
    assert state.temp_tables == {".tmp"}  # qualified by the (unset) database
    assert state.named_locks == {"a": 1}
    assert state.tables_locked


# -- unreplayable SETs ------------------------------------------------------------------------------


def test_unreplayable_session_set_pins_and_is_not_recorded() -> None:
    state = session("SET sql_mode = app_mode(@@sql_mode)")  # a stored function: may have side effects
    assert state.replay_after(0) == []
    assert state.unreplayable_set
    assert state.pin() is PinReason.UNREPLAYABLE_SET


@pytest.mark.parametrize("sql", ["SET @x = app_func()", "SET @x = RAND()", "SET @x = (SELECT c FROM t)"])
def test_unreplayable_user_var_set_marks_user_vars_without_pin(sql: str) -> None:
    state = session(sql)
    assert state.replay_after(0) == []
    assert state.user_vars_in_query
    assert not state.unreplayable_set
    assert state.pin() is None


def test_set_user_var_from_get_lock_tracks_lock() -> None:
    state = session("SET @got = GET_LOCK('a', 1)")
    assert state.replay_after(0) == []
    assert state.named_locks == {"a": 1}
    assert state.user_vars_in_query
    assert state.pin() is PinReason.NAMED_LOCK


def test_literal_parenthesis_in_string_is_still_replayable() -> None:
    state = session("SET @x = 'a(b'")
    assert payloads(state) == [b"SET @x = 'a(b'"]
    assert not state.user_vars_in_query


def test_set_in_query_assignment_marks_user_vars() -> None:
    assert session("SELECT @x := 1").user_vars_in_query
    assert session("SELECT c INTO @x FROM t").user_vars_in_query


# -- multi-statements --------------------------------------------------------------------------------


def test_multi_statement_sets_are_replayed_per_part() -> None:
    # Django: "SET SQL_AUTO_IS_NULL = 0; SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"
    sql = "SET sql_mode = 'ANSI'; SET @z = 1; /* c */ SET sql_mode = CONCAT(@@sql_mode, ',X')"
    state = session(sql)
    assert payloads(state) == [b"SET sql_mode = 'ANSI'", b"SET @z = 1"]
    assert state.capture == ("sql_mode",)  # read back after the whole packet ran
    assert state.pin() is None and not state.user_vars_in_query


def test_multi_statement_with_executable_comments_is_not_replayed() -> None:
    state = session("SET sql_mode = 'ANSI'; /*!80000 SET @z = 1 */")
    assert state.replay_after(0) == []
    assert state.pin() is PinReason.UNREPLAYABLE_SET


def test_multi_statement_pins_per_part() -> None:
    state = session("CREATE TEMPORARY TABLE tmp (a int); SELECT GET_LOCK('a', 1); SELECT 1")
    assert state.temp_tables == {".tmp"}  # qualified by the (unset) database
    assert state.named_locks == {"a": 1}
    assert state.replay_after(0) == []


def test_multi_statement_use_records_the_database_not_the_text() -> None:
    state = session("SELECT 1; USE db2")
    assert state.database == "db2"
    assert state.replay_after(0) == [ReplayEntry(1, "db", COM_INIT_DB, b"db2")]


def test_multi_statement_without_effects_changes_nothing() -> None:
    assert session("SELECT 1; SELECT 2") == SessionState()


# -- pins -----------------------------------------------------------------------------------------------


def test_pin_lifecycle() -> None:
    state = session("CREATE TEMPORARY TABLE Tmp (a int)")
    assert state.temp_tables == {".tmp"}  # qualified by the (unset) database
    assert state.pin() is PinReason.TEMP_TABLE
    run(state, "DROP TEMPORARY TABLE TMP")
    assert state.pin() is None

    run(state, "SELECT GET_LOCK('a', 1)", "SELECT GET_LOCK('b', 1)", "SELECT RELEASE_LOCK('a')")
    assert state.named_locks == {"b": 1}
    run(state, "SELECT RELEASE_ALL_LOCKS()")
    assert state.named_locks == {}

    run(state, "SELECT GET_LOCK(CONCAT('x', 1), 1)")
    assert state.named_locks == {"*": 1}
    run(state, "SELECT RELEASE_LOCK(@n)")
    assert state.pin() is None

    run(state, "LOCK TABLES t READ")
    assert state.pin() is PinReason.LOCK_TABLES
    run(state, "UNLOCK TABLES")
    assert state.pin() is None

    run(state, "PREPARE S1 FROM 'SELECT 1'", "PREPARE s2 FROM 'SELECT 2'")
    assert state.sql_prepared == {"s1", "s2"}
    run(state, "DEALLOCATE PREPARE s1", "DROP PREPARE S2")
    assert state.pin() is None
    assert state.replay_after(0) == []


def test_pin_priority() -> None:
    state = SessionState(unreplayable_set=True)
    assert state.pin() is PinReason.UNREPLAYABLE_SET
    state.sql_prepared.add("s")
    assert state.pin() is PinReason.SQL_PREPARE
    state.tables_locked = True
    assert state.pin() is PinReason.LOCK_TABLES
    state.named_locks["a"] = 1
    assert state.pin() is PinReason.NAMED_LOCK
    state.temp_tables.add("t")
    assert state.pin() is PinReason.TEMP_TABLE


def test_user_vars_are_not_a_pin() -> None:
    assert SessionState(user_vars_in_query=True).pin() is None


# -- reset -----------------------------------------------------------------------------------------


def _busy_session() -> SessionState:
    state = session(
        "USE app",
        "SET sql_mode = 'ANSI'",
        "SET @x = 5",
        "SET @y = NOW()",
        "SET time_zone = CONCAT('+0', '1:00')",
        "CREATE TEMPORARY TABLE tmp (a int)",
        "SELECT GET_LOCK('a', 1)",
        "LOCK TABLES t READ",
        "PREPARE s FROM 'SELECT 1'",
    )
    state.set_option(b"\x01\x00")
    state.observe_status(IN_TRANS)
    return state


def test_reset_clears_everything_but_keeps_the_database_entry() -> None:
    state = _busy_session()
    seq_before = state.replay_seq
    state.reset()
    assert state.database == "app"
    assert not state.in_transaction
    assert state.autocommit
    assert state.temp_tables == set()
    assert state.named_locks == {}
    assert not state.tables_locked
    assert state.sql_prepared == set()
    assert not state.user_vars_in_query
    assert not state.unreplayable_set
    assert state.pin() is None
    entries = state.replay_after(0)
    assert [(e.command, e.payload) for e in entries] == [(COM_INIT_DB, b"app")]
    # The sequence keeps growing: connections that applied older entries see the database again.
    assert entries[0].seq == seq_before + 1 == state.replay_seq
    assert state.replay_after(seq_before) == entries


def test_reset_without_database_leaves_empty_log() -> None:
    state = session("SET sql_mode = 'ANSI'", "CREATE TEMPORARY TABLE tmp (a int)")
    state.reset()
    assert state.database is None
    assert state.replay_after(0) == []
    assert state.pin() is None


# -- status flags -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "in_transaction", "autocommit"),
    [
        (0x0000, False, False),
        (IN_TRANS, True, False),
        (AC, False, True),
        (IN_TRANS | AC, True, True),
        (0x4000 | AC, False, True),  # other bits (SESSION_STATE_CHANGED, ...) are ignored
        (0x0008 | 0x0020 | IN_TRANS, True, False),
    ],
)
def test_observe_status(flags: int, in_transaction: bool, autocommit: bool) -> None:
    state = SessionState()
    state.observe_status(flags)
    assert (state.in_transaction, state.autocommit) == (in_transaction, autocommit)


def test_observe_status_overrides_previous_state() -> None:
    state = SessionState()
    state.observe_status(IN_TRANS)
    state.observe_status(AC)
    assert (state.in_transaction, state.autocommit) == (False, True)


def test_status_is_not_session_pin_or_replay() -> None:
    state = SessionState()
    state.observe_status(IN_TRANS)
    assert state.pin() is None
    assert state.replay_after(0) == []


# -- regressions (found by these tables, fixed) ----------------------------------------


# Was: SET autocommit=0 combined with another session variable is recorded verbatim, so replica
# connections replay autocommit=0 and keep it after the client's bare SET autocommit=1 (not recorded):
# their reads then run in a long-lived transaction with a stale snapshot
def test_autocommit_in_combined_set_is_never_replayed() -> None:
    state = session("SET autocommit = 0, sql_mode = 'ANSI'")
    state.observe_status(0)
    run(state, "SET autocommit = 1")
    state.observe_status(AC)
    replayed = payloads(state)
    assert all(b"autocommit" not in p.lower() for p in replayed), replayed


# Was: SET SESSION sql_mode=..., GLOBAL x=... is neither replayed nor pinned: the session's sql_mode
# change exists on the primary only while its reads go to replicas with the old sql_mode
def test_session_part_of_mixed_global_set_reaches_replicas_or_pins() -> None:
    state = session("SET SESSION sql_mode = 'ANSI', GLOBAL max_connections = 10")
    assert state.capture == ("sql_mode",)  # the session part is read back from the primary ...
    state.record_capture(("sql_mode",), [(253, b"ANSI")])  # ... (rwproxy.frontend.session_sets)
    replayed = payloads(state)
    replayed_without_global = any(b"sql_mode" in p.lower() and b"global" not in p.lower() for p in replayed)
    assert replayed_without_global or state.pin() is PinReason.UNREPLAYABLE_SET, replayed


# -- signature (multiplexing: which connections already hold a session's state) -----------------


def test_signature_equal_for_sessions_with_the_same_log() -> None:
    a = session("USE shop", "SET NAMES utf8mb4", "SET @v = 1")
    b = session("USE shop", "SET NAMES utf8mb4", "SET @v = 1")
    assert a.signature() == b.signature()
    assert a.signature() != session("USE shop", "SET NAMES utf8mb4", "SET @v = 2").signature()


def test_signature_follows_the_log_and_its_order() -> None:
    s = session("USE shop")
    first = s.signature()
    assert first == (("db", COM_INIT_DB, b"shop"),)
    run(s, "SET @v = 1")
    assert s.signature()[: len(first)] == first and len(s.signature()) == 2  # a prefix: replay the rest
    run(s, "SET NAMES latin1", "SET NAMES utf8mb4")  # superseded: the entry moves to the end
    assert [e[0] for e in s.signature()][-1] == "set:names"
    assert session("SET @a = 1", "SET @b = 2").signature() != session("SET @b = 2", "SET @a = 1").signature()


def test_signature_after_reset_is_only_the_database() -> None:
    s = session("SET @v = 1")
    assert s.signature()
    s.reset()
    assert s.signature() == ()
    s2 = session("USE shop", "SET @v = 1")
    s2.reset()
    assert s2.signature() == (("db", COM_INIT_DB, b"shop"),)


def test_last_insert_id_replayed_as_do_and_superseded() -> None:
    s = SessionState()
    s.set_last_insert_id(5)
    s.set_last_insert_id(7)
    assert payloads(s) == [b"DO LAST_INSERT_ID(7)"]
