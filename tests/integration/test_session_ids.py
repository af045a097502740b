"""One id per client connection: handshake thread id = CONNECTION_ID() = SHOW PROCESSLIST Id = what
KILL takes (all the rwproxy session id, never a pooled backend thread id), and KILL acting on exactly
that session with MySQL's rules (own sessions; others' with SUPER / CONNECTION ADMIN on the primary)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import mysql.connector
import pymysql
import pytest

from rwproxy.dev.cluster import Cluster
from rwproxy.dev.demo import demo_config_text
from tests.support.builders import user as user_toml
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster

LOW, LOW_PW = "rwids_low", "low-secret"  # SELECT on rwtest only
OPS, OPS_PW = "rwids_ops", "ops-secret"  # CONNECTION ADMIN, no SUPER


@pytest.fixture(scope="module")
def ids_proxy(cluster: Cluster) -> Iterator[ProxyThread]:
    statements: list[Any] = []
    for host in cluster.user_hosts:
        for user, pw in ((LOW, LOW_PW), (OPS, OPS_PW)):
            statements.append(("DROP USER IF EXISTS %s@%s", (user, host)))
            statements.append(cluster.dialect.create_user(user, host, pw))
            statements.append(("GRANT SELECT ON rwtest.* TO %s@%s", (user, host)))
        statements.append(("GRANT CONNECTION ADMIN ON *.* TO %s@%s", (OPS, host)))
    cluster._admin_run(cluster.primary, statements)
    cluster.wait_replicas_caught_up()
    text = demo_config_text(cluster, 0)
    users = user_toml(LOW, LOW_PW) + user_toml(OPS, OPS_PW)
    at = text.index("[[servers]]")
    with ProxyThread(text[:at] + users + text[at:]) as p:
        yield p


@pytest.fixture
def login(ids_proxy: ProxyThread, cluster: Cluster) -> Iterator[Callable[..., pymysql.Connection]]:
    opened: list[pymysql.Connection] = []

    def make(user: str | None = None, password: str | None = None) -> pymysql.Connection:
        conn = pymysql.connect(
            host=ids_proxy.host,
            port=ids_proxy.port,
            user=user or cluster.app_user,
            password=password if user else cluster.app_password,
            database="rwtest",
            autocommit=True,
            connect_timeout=10,
            read_timeout=60,
        )
        opened.append(conn)
        return conn

    yield make
    for c in opened:
        with contextlib.suppress(Exception):
            c.close()


def one(conn: pymysql.Connection, sql: str) -> Any:
    with conn.cursor() as cur:
        cur.execute(sql)
        row = cur.fetchone()
        return row[0] if row else None


def errno_of(conn: pymysql.Connection, sql: str) -> int:
    with pytest.raises(pymysql.MySQLError) as exc, conn.cursor() as cur:
        cur.execute(sql)
        cur.fetchall()
    return int(exc.value.args[0])


def processlist_ids(conn: pymysql.Connection) -> dict[int, tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute("SHOW FULL PROCESSLIST")
        return {int(row[0]): row for row in cur.fetchall()}


def wait_until(check: Callable[[], bool], seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_connection_id_is_the_handshake_thread_id(login) -> None:  # type: ignore[no-untyped-def]
    a, b = login(), login()
    for conn in (a, b):
        with conn.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID()")
            assert cur.description[0][0] == "CONNECTION_ID()"
            assert cur.fetchone() == (conn.thread_id(),)
        assert one(conn, "/* rwproxy:primary */ SELECT connection_id()") == conn.thread_id()
        assert one(conn, "SELECT CONNECTION_ID() + 0 AS x") == conn.thread_id()
    assert a.thread_id() != b.thread_id()
    # In a transaction and in a WHERE clause too (both sessions may share pooled backend threads).
    with a.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("SELECT 1 FROM DUAL WHERE CONNECTION_ID() = %s", (a.thread_id(),))
        assert cur.fetchone() == (1,)
        cur.execute("COMMIT")


def test_connection_id_with_mysql_connector(ids_proxy: ProxyThread, cluster: Cluster) -> None:
    conns = [
        mysql.connector.connect(
            host=ids_proxy.host,
            port=ids_proxy.port,
            user=cluster.app_user,
            password=cluster.app_password,
            use_pure=True,
            ssl_disabled=True,
        )
        for _ in range(2)
    ]
    try:
        seen = []
        for conn in conns:
            cur = conn.cursor()
            cur.execute("SELECT CONNECTION_ID()")
            assert cur.column_names == ("CONNECTION_ID()",)
            assert cur.fetchone() == (conn.connection_id,)
            cur.close()
            cur = conn.cursor(prepared=True)
            cur.execute("SELECT CONNECTION_ID()")
            assert cur.fetchone() == (conn.connection_id,)
            cur.close()
            seen.append(conn.connection_id)
        assert seen[0] != seen[1]
    finally:
        for conn in conns:
            conn.close()


def test_processlist_lists_sessions_by_their_ids(login) -> None:  # type: ignore[no-untyped-def]
    a, b = login(), login()
    one(b, "SELECT 1")
    with a.cursor() as cur:
        cur.execute("SHOW PROCESSLIST")
        names = [d[0] for d in cur.description]
        rows = {int(r[0]): r for r in cur.fetchall()}
    assert names[:8] == ["Id", "User", "Host", "db", "Command", "Time", "State", "Info"]
    assert a.thread_id() in rows and b.thread_id() in rows
    assert rows[a.thread_id()][4] == "Query" and rows[a.thread_id()][7] == "SHOW PROCESSLIST"
    assert rows[b.thread_id()][4] == "Sleep" and rows[b.thread_id()][3] == "rwtest"


def test_kill_query_interrupts_the_statement_of_that_session(login) -> None:  # type: ignore[no-untyped-def]
    victim, killer, bystander = login(), login(), login()
    victim_id = one(victim, "SELECT CONNECTION_ID()")
    outcome: list[object] = []

    def sleep() -> None:
        started = time.monotonic()
        try:
            one(victim, "SELECT SLEEP(10)")
            outcome.append(("no error", time.monotonic() - started))
        except pymysql.MySQLError as exc:
            outcome.append((exc.args[0], time.monotonic() - started))

    worker = threading.Thread(target=sleep)
    worker.start()
    assert wait_until(lambda: processlist_ids(killer).get(victim_id, ("",) * 5)[4] == "Query")
    with killer.cursor() as cur:
        cur.execute(f"KILL QUERY {victim_id}")
    worker.join(20)
    assert outcome and outcome[0][0] == 1317, outcome
    assert outcome[0][1] < 8, outcome
    assert one(victim, "SELECT 41 + 1") == 42  # the session goes on
    assert one(victim, "SELECT CONNECTION_ID()") == victim_id
    assert one(bystander, "SELECT 2") == 2


def test_kill_connection_ends_exactly_that_session(login) -> None:  # type: ignore[no-untyped-def]
    victim, killer, bystander = login(), login(), login()
    victim_id, bystander_id = victim.thread_id(), bystander.thread_id()
    with killer.cursor() as cur:
        cur.execute(f"KILL {victim_id}")
    assert errno_of(victim, "SELECT 1") in (2006, 2013, 1927)
    assert victim_id not in processlist_ids(killer)
    assert bystander_id in processlist_ids(killer)
    assert one(bystander, "SELECT CONNECTION_ID()") == bystander_id


def test_kill_connection_stops_a_running_statement(login, cluster: Cluster) -> None:  # type: ignore[no-untyped-def]
    victim, killer = login(), login()
    victim_id = victim.thread_id()
    outcome: list[float] = []

    def sleep() -> None:
        started = time.monotonic()
        with contextlib.suppress(pymysql.MySQLError):
            one(victim, "SELECT SLEEP(10)")
        outcome.append(time.monotonic() - started)

    worker = threading.Thread(target=sleep)
    worker.start()
    assert wait_until(lambda: processlist_ids(killer).get(victim_id, ("",) * 5)[4] == "Query")
    with killer.cursor() as cur:
        cur.execute(f"KILL CONNECTION {victim_id}")
    worker.join(20)
    assert outcome and outcome[0] < 8
    # The backend thread's query was killed too: nothing of it still sleeps on the primary.
    sleeping = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(10)'"
    assert wait_until(lambda: all(cluster.sql(n, sleeping)[0][0] == 0 for n in cluster.nodes), 5)


def test_kill_own_connection(login) -> None:  # type: ignore[no-untyped-def]
    conn = login()
    assert one(conn, "KILL QUERY CONNECTION_ID()") is None
    assert errno_of(conn, "KILL CONNECTION_ID()") == 1927
    with pytest.raises(pymysql.MySQLError):
        one(conn, "SELECT 1")


def test_kill_unknown_id(login) -> None:  # type: ignore[no-untyped-def]
    conn = login()
    unknown = max(processlist_ids(conn)) + 1000
    assert errno_of(conn, f"KILL {unknown}") == 1094
    assert errno_of(conn, f"KILL QUERY {unknown}") == 1094


def test_kill_of_another_users_session_needs_privileges(login) -> None:  # type: ignore[no-untyped-def]
    app_session = login()
    low = login(LOW, LOW_PW)
    target = app_session.thread_id()
    assert errno_of(low, f"KILL {target}") == 1095
    assert errno_of(low, f"KILL QUERY {target}") == 1095
    assert one(app_session, "SELECT 3") == 3  # untouched
    # A user without PROCESS sees only their own sessions.
    assert set(processlist_ids(low)) == {low.thread_id()}
    # Their own sessions they may kill.
    other_low = login(LOW, LOW_PW)
    with low.cursor() as cur:
        cur.execute(f"KILL {other_low.thread_id()}")
    assert errno_of(other_low, "SELECT 1") in (2006, 2013, 1927)


@pytest.mark.parametrize("killer_user", ["app", "ops"])
def test_privileged_user_kills_another_users_session(login, killer_user: str) -> None:  # type: ignore[no-untyped-def]
    victim = login(LOW, LOW_PW)
    killer = login() if killer_user == "app" else login(OPS, OPS_PW)  # ALL PRIVILEGES / CONNECTION ADMIN
    with killer.cursor() as cur:
        cur.execute(f"KILL {victim.thread_id()}")
    assert errno_of(victim, "SELECT 1") in (2006, 2013, 1927)
    if killer_user == "app":  # PROCESS: sees every session
        assert killer.thread_id() in processlist_ids(killer)


def test_information_schema_processlist_is_the_session_table(login) -> None:  # type: ignore[no-untyped-def]
    a, b = login(), login()
    low = login(LOW, LOW_PW)
    with a.cursor() as cur:
        cur.execute("SELECT ID, USER, COMMAND FROM information_schema.PROCESSLIST ORDER BY ID")
        assert [d[0] for d in cur.description] == ["ID", "USER", "COMMAND"]
        rows = {int(r[0]): r for r in cur.fetchall()}
    assert {a.thread_id(), b.thread_id(), low.thread_id()} <= set(rows)
    assert rows[a.thread_id()][2] == "Query" and rows[b.thread_id()][2] == "Sleep"
    assert one(b, f"SELECT COUNT(*) FROM information_schema.processlist WHERE id = {a.thread_id()}") == 1
    # Without PROCESS a user sees their own sessions only.
    with low.cursor() as cur:
        cur.execute("SELECT id FROM information_schema.PROCESSLIST")
        assert [int(r[0]) for r in cur.fetchall()] == [low.thread_id()]
    assert (
        errno_of(a, "SELECT * FROM information_schema.PROCESSLIST p JOIN information_schema.TABLES t") == 1235
    )
    assert one(a, "SELECT 5") == 5


def test_com_process_kill(login) -> None:  # type: ignore[no-untyped-def]
    victim, killer = login(), login()
    killer.kill(victim.thread_id())  # COM_PROCESS_KILL
    assert errno_of(victim, "SELECT 1") in (2006, 2013, 1927)
    with pytest.raises(pymysql.MySQLError) as exc:
        killer.kill(victim.thread_id())
    assert exc.value.args[0] == 1094
