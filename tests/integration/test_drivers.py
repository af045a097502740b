"""The same scenarios through several real clients: the ``mariadb`` CLI, SQLAlchemy (PyMySQL and
mysql-connector), mysql-connector-python, aiomysql and PyMySQL's protocol commands (ping, init db,
KILL). Where a statement ran is observed through ``@@server_id``."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiomysql
import pymysql
import pytest
import sqlalchemy as sa
from mysql.connector import errors as mc_errors
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from rwproxy.dev.cluster import Cluster
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster


@pytest.fixture
def replica_ids(server_ids: dict[str, int]) -> set[int]:
    return {v for k, v in server_ids.items() if k != "primary"}


def _count_direct(direct: Callable[..., pymysql.Connection], node: Any, sql: str) -> int:
    with direct(node).cursor() as cur:
        cur.execute(sql)
        return int(cur.fetchone()[0])


# -- the mariadb command-line client ---------------------------------------------------------------

MARIADB = shutil.which("mariadb") or shutil.which("mysql")


def _cli(proxy: ProxyThread, cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    assert MARIADB is not None, "the mariadb client (apt-get install mariadb-client) is needed"
    cmd = [
        MARIADB,
        "--no-defaults",
        "--skip-ssl",
        f"-h{proxy.host}",
        f"-P{proxy.port}",
        f"-u{cluster.app_user}",
        f"-p{cluster.app_password}",
        "rwtest",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def _cli_sql(proxy: ProxyThread, cluster: Cluster, sql: str) -> subprocess.CompletedProcess[str]:
    return _cli(proxy, cluster, "-N", "-B", "-e", sql)


def test_cli_plain_select_lands_on_a_replica(proxy, cluster, replica_ids) -> None:
    res = _cli_sql(proxy, cluster, "SELECT @@server_id; " * 6)
    assert res.returncode == 0, res.stderr
    ids = [int(line) for line in res.stdout.split()]
    assert len(ids) == 6
    assert set(ids) <= replica_ids, ids


def test_cli_transaction_runs_on_the_primary(proxy, cluster, server_ids, replica_ids) -> None:
    res = _cli_sql(proxy, cluster, "BEGIN; SELECT @@server_id; COMMIT; SELECT @@server_id")
    assert res.returncode == 0, res.stderr
    inside, after = (int(line) for line in res.stdout.split())
    assert inside == server_ids["primary"]
    assert after in replica_ids


def test_cli_error_shows_code_and_fails(proxy, cluster) -> None:
    res = _cli_sql(proxy, cluster, "SELECT * FROM rwproxy_no_such_table")
    assert res.returncode != 0
    assert "ERROR 1146 (42S02)" in res.stderr, res.stderr
    assert "rwproxy_no_such_table" in res.stderr
    assert res.stdout.strip() == ""


def test_cli_show_databases(proxy, cluster) -> None:
    res = _cli_sql(proxy, cluster, "SHOW DATABASES")
    assert res.returncode == 0, res.stderr
    names = set(res.stdout.split())
    assert {"rwtest", "information_schema", "mysql"} <= names, names


def test_cli_status(proxy, cluster) -> None:
    res = _cli(proxy, cluster, "-e", "status")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "Current database:\trwtest" in out, out
    assert f"Current user:\t\t{cluster.app_user}@" in out, out
    assert f"TCP port:\t\t{proxy.port}" in out, out
    assert "Server version:" in out
    # The "Uptime:" / "Threads:" lines come from COM_STATISTICS, relayed from a server.
    assert "Uptime:" in out
    assert "Threads:" in out and "Questions:" in out, out


# -- SQLAlchemy ORM --------------------------------------------------------------------------------


def _models(table: str) -> tuple[type[DeclarativeBase], Any]:
    class Base(DeclarativeBase):
        pass

    class Item(Base):
        __tablename__ = table
        id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
        name: Mapped[str] = mapped_column(sa.String(50))
        qty: Mapped[int]

    return Base, Item


SA_DRIVERS = {
    "pymysql": ("mysql+pymysql", {}),
    "mysqlconnector": ("mysql+mysqlconnector", {"use_pure": True}),
}


@pytest.fixture(params=sorted(SA_DRIVERS))
def sa_engine(request, proxy: ProxyThread, cluster: Cluster) -> Iterator[sa.Engine]:
    scheme, connect_args = SA_DRIVERS[request.param]
    url = sa.URL.create(
        scheme,
        username=cluster.app_user,
        password=cluster.app_password,
        host=proxy.host,
        port=proxy.port,
        database="rwtest",
    )
    engine = sa.create_engine(url, connect_args=connect_args)
    try:
        yield engine
    finally:
        engine.dispose()


def test_sqlalchemy_orm_crud(sa_engine: sa.Engine, cluster, direct, server_ids, replica_ids) -> None:
    driver = sa_engine.dialect.driver
    Base, Item = _models(f"drv_sa_items_{driver}")
    reader = sa_engine.execution_options(isolation_level="AUTOCOMMIT")
    Base.metadata.drop_all(sa_engine)
    Base.metadata.create_all(sa_engine)
    try:
        with Session(sa_engine) as s:
            # The ORM session runs in a transaction: it stays on the primary.
            assert s.execute(sa.text("SELECT @@server_id")).scalar() == server_ids["primary"]
            s.add_all([Item(name="apple", qty=1), Item(name="pear", qty=2), Item(name="plum", qty=3)])
            s.commit()
            ids = s.scalars(sa.select(Item.id).order_by(Item.id)).all()
        assert len(ids) == 3

        cluster.wait_replicas_caught_up()
        with Session(reader) as s:
            assert s.execute(sa.text("SELECT @@server_id")).scalar() in replica_ids
            rows = s.scalars(sa.select(Item).order_by(Item.id)).all()
            assert [(r.name, r.qty) for r in rows] == [("apple", 1), ("pear", 2), ("plum", 3)]

        with Session(sa_engine) as s:
            pear = s.get(Item, ids[1])
            assert pear is not None
            pear.qty = 20
            s.delete(s.get(Item, ids[0]))
            s.commit()

        cluster.wait_replicas_caught_up()
        with Session(reader) as s:
            rows = s.scalars(sa.select(Item).order_by(Item.id)).all()
            assert [(r.name, r.qty) for r in rows] == [("pear", 20), ("plum", 3)]

        # A rolled-back transaction leaves nothing, anywhere.
        with Session(sa_engine) as s:
            s.add(Item(name="ghost", qty=99))
            s.flush()
            assert s.scalar(sa.select(sa.func.count()).select_from(Item)) == 3
            s.rollback()
            assert s.scalar(sa.select(sa.func.count()).select_from(Item)) == 2

        cluster.wait_replicas_caught_up()
        with Session(reader) as s:
            assert s.scalars(sa.select(Item.name).order_by(Item.id)).all() == ["pear", "plum"]
        table = Item.__tablename__
        assert _count_direct(direct, cluster.primary, f"SELECT COUNT(*) FROM {table}") == 2
        for r in cluster.replicas:
            assert _count_direct(direct, r, f"SELECT COUNT(*) FROM {table} WHERE name = 'ghost'") == 0
    finally:
        Base.metadata.drop_all(sa_engine)


# -- mysql-connector-python ------------------------------------------------------------------------


def test_connector_plain_crud(mc_connect, cluster, server_ids, replica_ids) -> None:
    conn = mc_connect()
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS drv_mc_plain")
    cur.execute("CREATE TABLE drv_mc_plain (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(20))")
    try:
        cur.execute("INSERT INTO drv_mc_plain (v) VALUES (%s), (%s)", ("a", "b"))
        assert cur.rowcount == 2
        first = cur.lastrowid
        assert first and first > 0
        cur.execute("UPDATE drv_mc_plain SET v = %s WHERE id = %s", ("A", first))
        assert cur.rowcount == 1
        cluster.wait_replicas_caught_up()
        cur.execute("SELECT v, @@server_id FROM drv_mc_plain ORDER BY id")
        rows = cur.fetchall()
        assert [r[0] for r in rows] == ["A", "b"]
        assert rows[0][1] in replica_ids
        cur.execute("DELETE FROM drv_mc_plain WHERE id = %s", (first,))
        assert cur.rowcount == 1
        conn.start_transaction()
        cur.execute("SELECT COUNT(*), @@server_id FROM drv_mc_plain")
        assert cur.fetchone() == (1, server_ids["primary"])
        conn.commit()
    finally:
        cur.execute("DROP TABLE IF EXISTS drv_mc_plain")


def test_connector_prepared_crud(mc_connect, cluster, server_ids, replica_ids) -> None:
    conn = mc_connect()
    plain = conn.cursor()
    plain.execute("DROP TABLE IF EXISTS drv_mc_prep")
    plain.execute("CREATE TABLE drv_mc_prep (id INT PRIMARY KEY, v VARCHAR(20), n DECIMAL(6,2))")
    try:
        cur = conn.cursor(prepared=True)
        for i, v in enumerate(["x", "y", "z"], start=1):
            cur.execute("INSERT INTO drv_mc_prep (id, v, n) VALUES (?, ?, ?)", (i, v, i * 1.5))
            assert cur.rowcount == 1
        cur.execute("UPDATE drv_mc_prep SET v = ? WHERE id = ?", ("Y", 2))
        assert cur.rowcount == 1
        cur.execute("DELETE FROM drv_mc_prep WHERE id = ?", (3,))
        assert cur.rowcount == 1
        cluster.wait_replicas_caught_up()
        cur.execute("SELECT id, v, @@server_id FROM drv_mc_prep WHERE id >= ? ORDER BY id", (1,))
        rows = cur.fetchall()
        assert [(r[0], r[1]) for r in rows] == [(1, "x"), (2, "Y")]
        assert {r[2] for r in rows} <= replica_ids
        # The same prepared statement executed again with other parameters.
        cur.execute("SELECT id, v, @@server_id FROM drv_mc_prep WHERE id >= ? ORDER BY id", (2,))
        assert [(r[0], r[1]) for r in cur.fetchall()] == [(2, "Y")]
        conn.start_transaction()
        cur.execute("SELECT COUNT(*), @@server_id FROM drv_mc_prep WHERE id > ?", (0,))
        assert tuple(cur.fetchone()) == (2, server_ids["primary"])
        conn.rollback()
        cur.close()
    finally:
        plain.execute("DROP TABLE IF EXISTS drv_mc_prep")


def test_connector_protocol_commands(mc_connect, cluster, direct) -> None:
    conn = mc_connect()
    cur = conn.cursor()

    conn.cmd_ping()
    assert conn.is_connected()

    stats = conn.cmd_statistics()
    assert isinstance(stats, dict)
    assert int(stats["Uptime"]) > 0, stats
    assert "Threads" in stats and "Questions" in stats, stats

    conn.cmd_init_db("mysql")
    cur.execute("SELECT DATABASE()")
    assert cur.fetchone() == ("mysql",)
    with pytest.raises(mc_errors.ProgrammingError) as exc:
        conn.cmd_init_db("rwproxy_no_such_db")
    assert exc.value.errno == 1049
    cur.execute("SELECT DATABASE()")
    assert cur.fetchone() == ("mysql",)
    conn.cmd_init_db("rwtest")

    with direct().cursor() as dc:
        dc.execute("SELECT @@global.auto_increment_increment")
        default_increment = int(dc.fetchone()[0])
    cur.execute("SET @drv_x = 42, SESSION auto_increment_increment = 7")
    cur.execute("SELECT @drv_x, @@session.auto_increment_increment")
    assert cur.fetchone() == (42, 7)
    conn.cmd_reset_connection()
    cur = conn.cursor()
    cur.execute("SELECT @drv_x, @@session.auto_increment_increment, DATABASE()")
    # COM_RESET_CONNECTION clears user variables and session variables but keeps the database.
    assert cur.fetchone() == (None, default_increment, "rwtest")


# -- aiomysql --------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Unknown table")
async def test_aiomysql_queries_and_transaction(proxy, cluster, server_ids, replica_ids) -> None:
    conn = await aiomysql.connect(
        host=proxy.host,
        port=proxy.port,
        user=cluster.app_user,
        password=cluster.app_password,
        db="rwtest",
        autocommit=True,
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT @@server_id, %s", ("hello",))
            sid, text = await cur.fetchone()
            assert sid in replica_ids and text == "hello"
            await cur.execute("DROP TABLE IF EXISTS drv_aio")
            await cur.execute("CREATE TABLE drv_aio (id INT PRIMARY KEY, v VARCHAR(10))")

            await conn.begin()
            await cur.execute("SELECT @@server_id")
            assert (await cur.fetchone())[0] == server_ids["primary"]
            await cur.execute("INSERT INTO drv_aio VALUES (1, 'kept'), (2, 'kept')")
            await conn.commit()

            await conn.begin()
            await cur.execute("INSERT INTO drv_aio VALUES (3, 'dropped')")
            await cur.execute("SELECT COUNT(*) FROM drv_aio")
            assert (await cur.fetchone())[0] == 3
            await conn.rollback()

            cluster.wait_replicas_caught_up()
            await cur.execute("SELECT id, v, @@server_id FROM drv_aio ORDER BY id")
            rows = await cur.fetchall()
            assert [(r[0], r[1]) for r in rows] == [(1, "kept"), (2, "kept")]
            assert {r[2] for r in rows} <= replica_ids
            await cur.execute("DROP TABLE drv_aio")
    finally:
        conn.close()


# -- PyMySQL protocol commands and KILL ------------------------------------------------------------


def test_pymysql_ping_and_select_db(connect, server_ids) -> None:
    conn = connect()
    conn.ping(reconnect=False)
    conn.select_db("mysql")
    with conn.cursor() as cur:
        cur.execute("SELECT DATABASE()")
        assert cur.fetchone() == ("mysql",)
        cur.execute("BEGIN")
        cur.execute("SELECT DATABASE(), @@server_id")
        assert cur.fetchone() == ("mysql", server_ids["primary"])
        cur.execute("COMMIT")
    with pytest.raises(pymysql.err.OperationalError) as exc:
        conn.select_db("rwproxy_no_such_db")
    assert exc.value.args[0] == 1049
    conn.ping(reconnect=False)
    with conn.cursor() as cur:
        cur.execute("SELECT DATABASE()")
        assert cur.fetchone() == ("mysql",)


def test_pymysql_kill_connection_of_own_session(connect) -> None:
    killer, victim = connect(), connect()
    assert killer.thread_id() != victim.thread_id()
    with victim.cursor() as cur:
        cur.execute("SELECT 1")
    killer.kill(victim.thread_id())
    with pytest.raises((pymysql.err.OperationalError, pymysql.err.InterfaceError)), victim.cursor() as cur:
        cur.execute("SELECT 1")
    with killer.cursor() as cur:
        cur.execute("SELECT 2")
        assert cur.fetchone() == (2,)


def test_kill_unknown_thread_fails(connect) -> None:
    conn = connect()
    with pytest.raises(pymysql.err.OperationalError) as exc, conn.cursor() as cur:
        cur.execute("KILL 987654321")
    assert exc.value.args[0] == 1094  # ER_NO_SUCH_THREAD
    with conn.cursor() as cur:
        cur.execute("SELECT 3")
        assert cur.fetchone() == (3,)


def test_kill_query_interrupts_a_running_statement(connect) -> None:
    killer, victim = connect(), connect()
    outcome: dict[str, Any] = {}

    def run() -> None:
        start = time.monotonic()
        try:
            with victim.cursor() as cur:
                cur.execute("SELECT SLEEP(10)")
                outcome["rows"] = cur.fetchall()
        except pymysql.err.MySQLError as exc:
            outcome["error"] = exc
        outcome["elapsed"] = time.monotonic() - start

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.5)
    with killer.cursor() as cur:
        cur.execute(f"KILL QUERY {victim.thread_id()}")
    t.join(15)
    assert not t.is_alive()
    assert outcome["elapsed"] < 3.0, outcome
    if "error" in outcome:
        assert outcome["error"].args[0] == 1317, outcome  # ER_QUERY_INTERRUPTED
    else:
        assert outcome["rows"] in (((1,),), ((None,),)), outcome
    with victim.cursor() as cur:
        cur.execute("SELECT 'still here'")
        assert cur.fetchone() == ("still here",)
