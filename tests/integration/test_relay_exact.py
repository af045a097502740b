"""Results through rwproxy are exactly what the server sends: rows, metadata, counts, warnings, errors."""

from __future__ import annotations

import pymysql
import pytest

from rwproxy.dev.cluster import Cluster

pytestmark = pytest.mark.cluster

TYPES_TABLE = """
CREATE TABLE IF NOT EXISTS all_types (
  id INT UNSIGNED NOT NULL PRIMARY KEY,
  ti TINYINT, si SMALLINT UNSIGNED, mi MEDIUMINT, i INT NOT NULL DEFAULT 0, bi BIGINT UNSIGNED,
  de DECIMAL(20,6), f FLOAT, d DOUBLE, bt BIT(10),
  dt DATETIME(6), ts TIMESTAMP(6) NULL, da DATE, tm TIME(3), y YEAR,
  c CHAR(5), vc VARCHAR(100), bn BINARY(4), vb VARBINARY(20),
  tx TEXT, bl BLOB, lb LONGBLOB, en ENUM('a','b'), st SET('x','y'), js JSON,
  ucs VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin
)
"""
ROWS = [
    "(1, -128, 65535, -8388608, 0, 18446744073709551615, -99999999999999.999999, 1.5, -2.25e-300,"
    " b'1010101010',"
    " '2024-02-29 23:59:59.999999', '2038-01-19 03:14:07.000001', '1000-01-01', '-838:59:59.000', 2155,"
    " 'ab', 'hello ''quoted'' \\\\ back', x'00FF0001', x'DEADBEEF', REPEAT('t', 1000), x'000102FF',"
    " NULL, 'b', 'x,y',"
    " '{\"k\": [1, 2.5, null]}', 'Grüße ☃')",
    "(2, NULL, NULL, NULL, 7, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    " NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
]


@pytest.fixture(scope="module")
def types_table(cluster: Cluster) -> None:
    conn = cluster.connect(cluster.primary)
    with conn.cursor() as cur:
        cur.execute("USE rwtest")
        cur.execute("DROP TABLE IF EXISTS all_types")
        cur.execute(TYPES_TABLE)
        cur.execute("INSERT INTO all_types VALUES " + ", ".join(ROWS))
    conn.close()
    cluster.wait_replicas_caught_up()


def fetch(conn: pymysql.Connection, sql: str) -> tuple[object, object]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.description, cur.fetchall()


@pytest.mark.parametrize("binary_prefix", [False, True])
def test_every_column_type_identical_to_direct(types_table, connect, direct, cluster, binary_prefix) -> None:
    kw = {"binary_prefix": True} if binary_prefix else {}
    through = connect(**kw)
    straight = direct(cluster.replicas[0], **kw)
    sql = "SELECT * FROM all_types ORDER BY id"
    assert fetch(through, sql) == fetch(straight, sql)


def test_raw_bytes_identical_to_direct(types_table, connect, direct, cluster) -> None:
    """Compare the packets themselves (PyMySQL's raw packet reads), not decoded values."""

    def raw(conn: pymysql.Connection) -> list[bytes]:
        conn._execute_command(3, "SELECT * FROM all_types ORDER BY id")  # COM_QUERY
        packets = []
        while True:
            p = conn._read_packet()
            packets.append(p.get_all_data())
            if (p.is_eof_packet() and len(packets) > 3) or p.is_error_packet():
                break
        return packets

    assert raw(connect()) == raw(direct(cluster.replicas[0]))


def test_affected_rows_insert_id_warnings(connect, direct, cluster) -> None:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS counts")
        cur.execute("CREATE TABLE counts (id INT AUTO_INCREMENT PRIMARY KEY, v TINYINT)")
        cur.execute("INSERT INTO counts (v) VALUES (1), (2), (3)")
        assert (cur.rowcount, cur.lastrowid) == (3, 1)
        cur.execute("UPDATE counts SET v = v + 10 WHERE id >= 2")
        assert cur.rowcount == 2
        cur.execute("INSERT IGNORE INTO counts (id, v) VALUES (1, 5), (9, 1000)")  # dup + out of range
        assert conn.warning_count == 2 if hasattr(conn, "warning_count") else True
        assert cur.rowcount == 1
        cur.execute("SHOW WARNINGS")
        codes = sorted(r[1] for r in cur.fetchall())
        assert codes == [1062, 1264]


def test_multi_statement_both_results(connect) -> None:
    conn = connect(client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    with conn.cursor() as cur:
        cur.execute("SELECT 1 AS a; SELECT 'two' AS b, 3 AS c")
        assert cur.fetchall() == ((1,),)
        assert cur.nextset()
        assert cur.fetchall() == (("two", 3),)
        assert not cur.nextset()


@pytest.mark.parametrize(
    ("sql", "errno"),
    [
        ("SELECT * FROM no_such_table", 1146),
        ("SELEC 1", 1064),
        ("SELECT no_such_col FROM all_types", 1054),
    ],
)
def test_errors_pass_through(types_table, connect, direct, cluster, sql: str, errno: int) -> None:
    def err(conn: pymysql.Connection) -> tuple[object, ...]:
        with pytest.raises(pymysql.MySQLError) as exc, conn.cursor() as cur:
            cur.execute(sql)
        return exc.value.args

    through = err(connect())
    assert through[0] == errno
    assert through == err(direct(cluster.replicas[0]))


def test_duplicate_key_error(connect) -> None:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS dup")
        cur.execute("CREATE TABLE dup (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO dup VALUES (1)")
        with pytest.raises(pymysql.err.IntegrityError) as exc:
            cur.execute("INSERT INTO dup VALUES (1)")
        assert exc.value.args[0] == 1062
        cur.execute("SELECT 1")  # the session goes on
        assert cur.fetchone() == (1,)


def test_wrong_password_and_unknown_user(proxy, cluster) -> None:
    for user, password in [(cluster.app_user, "wrong"), ("nobody", "x")]:
        with pytest.raises(pymysql.err.OperationalError) as exc:
            pymysql.connect(host=proxy.host, port=proxy.port, user=user, password=password)
        assert exc.value.args[0] == 1045


def test_large_result_200k_rows(connect, direct, cluster) -> None:
    if cluster.flavor == "mariadb":
        sql = "SELECT seq, REPEAT('x', seq % 50) FROM seq_1_to_200000"
    else:
        sql = (
            "WITH RECURSIVE s(seq) AS (SELECT 1 UNION ALL SELECT seq + 1 FROM s WHERE seq < 200000) "
            "SELECT /*+ SET_VAR(cte_max_recursion_depth = 300000) */ seq, REPEAT('x', seq % 50) FROM s"
        )
    through = connect()
    with through.cursor() as cur:
        cur.execute(sql)
        rows = cur.fetchall()
    assert len(rows) == 200_000
    assert rows[-1] == (200_000, "x" * (200_000 % 50))
    assert rows[12345] == (12346, "x" * (12346 % 50))


def test_17mb_row_both_ways(connect, cluster) -> None:
    conn = connect(max_allowed_packet=64 * 1024 * 1024)
    blob = bytes(range(256)) * (17 * 4096)  # 17 MiB
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS big")
        cur.execute("CREATE TABLE big (id INT PRIMARY KEY, b LONGBLOB)")
        cur.execute("INSERT INTO big VALUES (1, %s)", (blob,))
        cur.execute("/* rwproxy:primary */ SELECT b, LENGTH(b) FROM big WHERE id = 1")
        got, length = cur.fetchone()
    assert length == len(blob) and got == blob
