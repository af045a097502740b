"""Splitting never changes what a statement means: session state follows the session to every server."""

from __future__ import annotations

import pymysql
import pytest

pytestmark = pytest.mark.cluster


def one(cur: pymysql.cursors.Cursor, sql: str, args: object = None) -> object:
    cur.execute(sql, args)
    row = cur.fetchone()
    return row[0] if row else None


def test_user_variable_visible_on_replica_reads(connect, server_ids) -> None:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("SET @x = 42, @y = 'hello'")
        for _ in range(10):  # every read lands on some replica; the values must be there
            cur.execute("SELECT @x, @y, @@server_id")
            x, y, sid = cur.fetchone()
            assert (x, y) == (42, "hello")
            assert sid != server_ids["primary"]


def test_session_variables_follow(connect) -> None:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = 'ANSI_QUOTES'")
        cur.execute("SET time_zone = '+05:30'")
        for _ in range(6):
            assert one(cur, "SELECT @@sql_mode") == "ANSI_QUOTES"
            assert one(cur, "SELECT @@time_zone") == "+05:30"
        cur.execute("SET SESSION sql_mode = DEFAULT")
        assert one(cur, "SELECT @@sql_mode") != "ANSI_QUOTES"


def test_set_names_follows(connect) -> None:
    conn = connect(charset="latin1")
    with conn.cursor() as cur:
        assert one(cur, "SELECT @@character_set_client") == "latin1"
        cur.execute("SET NAMES utf8mb4")
        for _ in range(4):
            assert one(cur, "SELECT @@character_set_client") == "utf8mb4"


def test_use_database_follows(connect, cluster) -> None:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS rwother")
        cur.execute("CREATE TABLE IF NOT EXISTS rwother.marker (v INT)")
        cluster.wait_replicas_caught_up()
        cur.execute("USE rwother")
        for _ in range(6):
            assert one(cur, "SELECT DATABASE()") == "rwother"
        conn.select_db("rwtest")  # COM_INIT_DB
        for _ in range(6):
            assert one(cur, "SELECT DATABASE()") == "rwtest"


def test_temporary_table_pins_to_primary(connect, server_ids) -> None:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("CREATE TEMPORARY TABLE tmp_pin (v INT)")
        cur.execute("INSERT INTO tmp_pin VALUES (7)")
        for _ in range(5):
            assert one(cur, "SELECT v FROM tmp_pin") == 7
        assert one(cur, "SELECT @@server_id") == server_ids["primary"]
        cur.execute("DROP TEMPORARY TABLE tmp_pin")
        assert one(cur, "SELECT @@server_id") != server_ids["primary"]


def test_get_lock_pins_until_released(connect, server_ids) -> None:
    conn = connect()
    with conn.cursor() as cur:
        assert one(cur, "SELECT GET_LOCK('rwproxy-pin', 5)") == 1
        assert one(cur, "SELECT @@server_id") == server_ids["primary"]
        # IS_USED_LOCK names the backend thread (CONNECTION_ID() is rwproxy's session id)
        assert one(cur, "SELECT IS_USED_LOCK('rwproxy-pin') = @@pseudo_thread_id") == 1
        assert one(cur, "SELECT RELEASE_LOCK('rwproxy-pin')") == 1
        assert one(cur, "SELECT @@server_id") != server_ids["primary"]


def test_lock_tables_pins(connect, server_ids) -> None:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS locked (v INT)")
        cur.execute("LOCK TABLES locked READ")
        assert one(cur, "SELECT COUNT(*) FROM locked") is not None
        cur.execute("UNLOCK TABLES")
        assert one(cur, "SELECT @@server_id") != server_ids["primary"]


def test_sql_prepare_pins(connect, server_ids) -> None:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("PREPARE s1 FROM 'SELECT @@server_id'")
        cur.execute("EXECUTE s1")
        assert cur.fetchone()[0] == server_ids["primary"]
        cur.execute("DEALLOCATE PREPARE s1")
        assert one(cur, "SELECT @@server_id") != server_ids["primary"]


def test_last_insert_id_after_insert(connect) -> None:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS lid (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
        cur.execute("INSERT INTO lid (v) VALUES (1)")
        inserted = cur.lastrowid
        assert one(cur, "SELECT LAST_INSERT_ID()") == inserted


def test_reset_connection_clears_state(connect) -> None:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("SET @x = 1")
        conn._execute_command(31, b"")  # COM_RESET_CONNECTION
        conn._read_ok_packet()
        assert one(cur, "SELECT @x") is None


def test_default_database_from_config(cluster) -> None:
    from rwproxy.dev.demo import demo_config_text
    from tests.support.proxy import ProxyThread

    text = demo_config_text(cluster, 0).replace(
        f'password = "{cluster.app_password}"',
        f'password = "{cluster.app_password}"\ndefault_database = "rwtest"',
        1,
    )
    with ProxyThread(text) as p:
        conn = pymysql.connect(host=p.host, port=p.port, user=cluster.app_user, password=cluster.app_password)
        with conn.cursor() as cur:
            assert one(cur, "SELECT DATABASE()") == "rwtest"
        conn.close()


def test_idle_client_is_closed(cluster) -> None:
    from rwproxy.dev.demo import demo_config_text
    from tests.support.proxy import ProxyThread

    text = demo_config_text(cluster, 0).replace("[proxy]", "[proxy]\nclient_idle_timeout_seconds = 0.5", 1)
    with ProxyThread(text) as p:
        idle = pymysql.connect(host=p.host, port=p.port, user=cluster.app_user, password=cluster.app_password)
        busy = pymysql.connect(host=p.host, port=p.port, user=cluster.app_user, password=cluster.app_password)
        with busy.cursor() as cur:
            cur.execute("SELECT SLEEP(1.5)")  # a running statement is not idle
            assert cur.fetchone() == (0,)
        with pytest.raises(pymysql.err.OperationalError), idle.cursor() as cur:
            cur.execute("SELECT 1")
        assert p.app.stats.idle_closed >= 1


def test_set_option_multi_statements_off_and_on(connect) -> None:
    conn = connect(client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)

    def set_option(value: int) -> None:
        conn._execute_command(27, value.to_bytes(2, "little"))  # COM_SET_OPTION
        packet = conn._read_packet()
        assert packet.is_eof_packet() or packet.is_ok_packet()

    with conn.cursor() as cur:
        set_option(1)  # MYSQL_OPTION_MULTI_STATEMENTS_OFF
        for _ in range(3):  # stays off on the (primary) connection that runs multi-statements
            with pytest.raises(pymysql.err.ProgrammingError) as exc:
                cur.execute("SELECT 1; SELECT 2")
            assert exc.value.args[0] == 1064
        set_option(0)
        cur.execute("SELECT 1; SELECT 2")
        assert cur.fetchall() == ((1,),)
