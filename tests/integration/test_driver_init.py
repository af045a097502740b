"""Connect-time SETs of real drivers keep read splitting on, and leave every backend connection of
the session with the session variables a direct session to the primary has (tests/fixtures/driver_init.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pymysql
import pytest
from pymysql.constants import CLIENT

from rwproxy.dev.cluster import Cluster
from rwproxy.frontend import session_sets
from rwproxy.router.token_analysis import SERVER_SYSVARS
from tests.fixtures.driver_init import DRIVERS, DriverInit

pytestmark = pytest.mark.cluster

READS = 6  # reads per session: with two replicas, all of them landing on the primary is no accident


def _accepted(conn: pymysql.Connection, statements: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Run ``statements`` on ``conn``: (the ones the server accepted, the ones it refused)."""
    ok: list[str] = []
    refused: list[str] = []
    with conn.cursor() as cur:
        for sql in statements:
            try:
                cur.execute(sql)
                ok.append(sql)
            except pymysql.err.MySQLError:
                refused.append(sql)
    return ok, refused


def _values(conn: pymysql.Connection, names: tuple[str, ...]) -> tuple[int, tuple[object, ...]]:
    """(@@server_id, the session values of ``names``) in one read."""
    columns = "".join(f", @@SESSION.{n}" for n in names)
    with conn.cursor() as cur:
        cur.execute(f"SELECT @@server_id{columns}")
        row = cur.fetchone()
    assert row is not None
    return int(row[0]), tuple(row[1:])


@pytest.fixture
def direct_primary(cluster: Cluster) -> Iterator[Callable[..., pymysql.Connection]]:
    opened: list[pymysql.Connection] = []

    def make(**kw: Any) -> pymysql.Connection:
        conn = pymysql.connect(**cluster.dsn(cluster.primary), autocommit=True, connect_timeout=10, **kw)
        opened.append(conn)
        return conn

    yield make
    for c in opened:
        with contextlib.suppress(Exception):
            c.close()


def _check_driver(driver: DriverInit, connect, direct_primary, server_ids) -> list[str]:
    """Run the driver's init through rwproxy and directly; compare; the statements MariaDB refused."""
    flags = {"client_flag": CLIENT.MULTI_STATEMENTS} if driver.multi_statements else {}
    direct = direct_primary(**flags)
    accepted, refused = _accepted(direct, driver.statements)
    assert set(refused) <= set(driver.mysql_only), f"{driver.name}: MariaDB refused {refused}"
    _, want = _values(direct, driver.checks)

    want_by_name = dict(zip(driver.checks, want, strict=True))

    proxied = connect(**flags)
    _, failed = _accepted(proxied, tuple(accepted))
    assert failed == [], f"{driver.name}: refused through rwproxy: {failed}"
    # @@tx_read_only & co. are writer probes: rwproxy sends them to the primary on purpose.
    on_replica = tuple(n for n in driver.checks if n not in SERVER_SYSVARS)
    probes = tuple(n for n in driver.checks if n in SERVER_SYSVARS)
    for _ in range(READS):
        server_id, got = _values(proxied, on_replica)
        assert server_id != server_ids["primary"], f"{driver.name}: the read went to the primary"
        assert dict(zip(on_replica, got, strict=True)) == {n: want_by_name[n] for n in on_replica}, (
            driver.name
        )
    if probes:
        _, got = _values(proxied, probes)
        assert dict(zip(probes, got, strict=True)) == {n: want_by_name[n] for n in probes}, driver.name
    return refused


@pytest.mark.parametrize("driver", DRIVERS, ids=[d.name for d in DRIVERS])
def test_driver_init_keeps_reads_on_replicas_with_the_primarys_session(
    driver: DriverInit, connect, direct_primary, server_ids
) -> None:
    refused = _check_driver(driver, connect, direct_primary, server_ids)
    assert refused == list(driver.mysql_only)


def test_replica_with_other_global_defaults_gets_the_primarys_values(
    cluster: Cluster, connect, direct_primary, server_ids
) -> None:
    """The reason values are evaluated on the primary: ``@@sql_mode`` and DEFAULT on a fresh replica
    connection are the replica's globals; running the SET again there would give other values."""
    rails = next(d for d in DRIVERS if d.name == "rails-mysql2-5.2")
    saved = {
        r.name: cluster.admin_sql(r, "SELECT @@GLOBAL.sql_mode, @@GLOBAL.sql_select_limit")[0]
        for r in cluster.replicas
    }
    try:
        for r in cluster.replicas:
            cluster.admin_sql(r, "SET GLOBAL sql_mode = 'ANSI_QUOTES', GLOBAL sql_select_limit = 77")
        _check_driver(rails, connect, direct_primary, server_ids)
        limit = DriverInit(
            "select-limit-default", "", ("SET SQL_SELECT_LIMIT=DEFAULT",), ("sql_select_limit",)
        )
        _check_driver(limit, connect, direct_primary, server_ids)
    finally:
        for r in cluster.replicas:
            mode, sel = saved[r.name]
            cluster.admin_sql(r, "SET GLOBAL sql_mode = %s, GLOBAL sql_select_limit = %s", (mode, sel))


def test_read_back_keeps_the_sets_warnings(connect, direct_primary) -> None:
    sql = "SET @@SESSION.wait_timeout = 99999999999, sql_mode = CONCAT(@@sql_mode, '')"
    want = []
    direct = direct_primary()
    with direct.cursor() as cur:
        cur.execute(sql)
        cur.execute("SHOW WARNINGS")
        want = list(cur.fetchall())
    assert want, "the server should warn about the truncated wait_timeout"
    with connect().cursor() as cur:
        cur.execute(sql)
        cur.execute("SHOW WARNINGS")
        assert list(cur.fetchall()) == want


@pytest.mark.parametrize(
    "sql",
    [
        "SET sql_mode = (SELECT 'ANSI' FROM information_schema.tables LIMIT 1)",  # reads a table
        "SET sql_mode = IF(RAND() < 2, 'ANSI', '')",  # RAND() advances the session's seed
    ],
)
def test_unreplayable_set_still_pins(sql: str, connect, server_ids) -> None:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute(sql)
        for _ in range(3):
            cur.execute("SELECT @@server_id, @@sql_mode")
            server_id, mode = cur.fetchone()
            assert server_id == server_ids["primary"]
            assert mode == "ANSI" or "ANSI" in mode.split(",")


def test_user_variables_from_expressions_are_captured(connect, direct_primary, server_ids) -> None:
    """mysqldump's header and friends: the values are the primary's, with their types and collation,
    and NOW() is evaluated once (a replica re-running it would give another microsecond)."""
    sql = (
        "SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO', @t = NOW(6), @i = 40 + 2, "
        "@d = 1.5e0 + 0, @s = CONCAT(_latin1'caf', _latin1 X'E9')"
    )
    read = "SELECT @OLD_SQL_MODE, @i, @d, @s, COLLATION(@s), @@sql_mode"
    with direct_primary().cursor() as cur:
        cur.execute(sql)
        cur.execute(read)
        want = cur.fetchone()
    assert want[1:5] == (42, 1.5, "café", "latin1_swedish_ci")
    with connect().cursor() as cur:
        cur.execute(sql)
        stamps = set()
        for _ in range(READS):
            cur.execute(f"{read}, @t, @@server_id")
            row = cur.fetchone()
            assert row[-1] != server_ids["primary"]
            assert row[:6] == want
            stamps.add(row[6])
        assert len(stamps) == 1


def test_user_variable_with_side_effects_reads_on_the_primary(connect, server_ids) -> None:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("SET @r = RAND(), sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')")
        cur.execute("SELECT @r IS NOT NULL, @@server_id")
        assert cur.fetchone() == (1, server_ids["primary"])
        cur.execute("SELECT @@server_id, FIND_IN_SET('ANSI_QUOTES', @@sql_mode) > 0")
        server_id, quoted = cur.fetchone()
        assert server_id != server_ids["primary"] and quoted == 1


@pytest.mark.parametrize("warm", [False, True], ids=["first-statement", "primary-connection-held"])
def test_read_back_rides_in_the_sets_round_trip(warm: bool, connect, server_ids) -> None:
    """A COM_QUERY SET gets its read-back pipelined behind it, also as a session's first statement
    (sent once the primary connection is acquired)."""
    rails = next(d for d in DRIVERS if d.name == "rails-mysql2-5.2")
    conn = connect()
    if warm:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FOR UPDATE")  # the session now holds a primary connection
    before = dict(session_sets.READBACKS)
    _, failed = _accepted(conn, rails.statements)
    assert failed == []
    assert session_sets.READBACKS["pipelined"] == before["pipelined"] + 1
    assert session_sets.READBACKS["separate"] == before["separate"]
    server_id, _ = _values(conn, ("sql_mode",))
    assert server_id != server_ids["primary"]


# -- the real drivers installed here, configured through their own options ---------------------------

REAL_CHECKS = ("sql_mode", "time_zone", "character_set_client", "collation_connection", "tx_isolation")


def _mysql_connector(host: str, port: int, cluster: Cluster, **kw: Any) -> Any:
    import mysql.connector

    conn = mysql.connector.connect(
        host=host,
        port=port,
        user=cluster.app_user,
        password=cluster.app_password,
        database="rwtest",
        autocommit=True,
        use_pure=True,
        ssl_disabled=True,
        time_zone="+02:00",
        sql_mode="TRADITIONAL",
        charset="utf8mb4",
        collation="utf8mb4_unicode_ci",
        init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        **kw,
    )
    return conn


def _session(conn: Any) -> tuple[int, tuple[object, ...]]:
    cur = conn.cursor()
    cur.execute("SELECT @@server_id, " + ", ".join(f"@@SESSION.{n}" for n in REAL_CHECKS))
    row = cur.fetchone()
    cur.close()
    return int(row[0]), tuple(row[1:])


def test_mysql_connector_python_options(proxy, cluster: Cluster, server_ids) -> None:
    direct = _mysql_connector(cluster.primary.host, cluster.primary.port, cluster)
    proxied = _mysql_connector(proxy.host, proxy.port, cluster)
    try:
        _, want = _session(direct)
        for _ in range(READS):
            server_id, got = _session(proxied)
            assert server_id != server_ids["primary"]
            assert got == want
    finally:
        direct.close()
        proxied.close()


def test_prepared_set_with_a_parameter_is_captured(proxy, cluster: Cluster, server_ids) -> None:
    """``SET time_zone = ?`` through the binary protocol: the parameter exists only on the primary,
    so replaying the text would fail elsewhere; the value is read back and replayed instead."""
    proxied = _mysql_connector(proxy.host, proxy.port, cluster)
    try:
        cur = proxied.cursor(prepared=True)
        cur.execute("SET @@SESSION.time_zone = ?", ("+05:45",))
        cur.close()
        for _ in range(READS):
            plain = proxied.cursor()
            plain.execute("SELECT @@server_id, @@time_zone")
            server_id, zone = plain.fetchone()
            plain.close()
            assert server_id != server_ids["primary"] and zone == "+05:45"
    finally:
        proxied.close()


def test_pymysql_options(connect, direct_primary, server_ids) -> None:
    options: dict[str, Any] = {
        "sql_mode": "TRADITIONAL",
        "init_command": "SET time_zone = CONCAT('+0', '3:00')",  # an expression: evaluated on the primary
        "charset": "utf8mb4",
    }
    _, want = _values(direct_primary(**options), ("sql_mode", "time_zone", "character_set_client"))
    conn = connect(**options)
    for _ in range(READS):
        server_id, got = _values(conn, ("sql_mode", "time_zone", "character_set_client"))
        assert server_id != server_ids["primary"] and got == want


def test_a_failed_evaluated_set_leaves_the_session_usable(connect, server_ids) -> None:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FOR UPDATE")  # the SET goes out at once: its read-back is pipelined
        with pytest.raises(pymysql.err.OperationalError) as exc:
            cur.execute("SET autocommit=1, sql_mode = CONCAT(@@sql_mode, ',NOT_A_MODE')")
        assert exc.value.args[0] == 1231  # ER_WRONG_VALUE_FOR_VAR, as the server sent it
        cur.execute("SHOW WARNINGS")  # the error is still the last diagnostic
        assert [row[1] for row in cur.fetchall()] == [1231]
        cur.execute("SELECT 2")
        assert cur.fetchone() == (2,)
        cur.execute("SELECT @@server_id")
        assert cur.fetchone()[0] != server_ids["primary"]  # nothing was pinned
    assert session_sets._pipelined == {}
