"""Health-check I/O: open a monitor connection, run one check on it.

``probe(conn, flavor)`` runs on an aiomysql connection that belongs to the monitor (never a client's):

* ``SELECT @@global.read_only, VERSION(), <GTID position>`` — one round trip once the flavour is known
  (MariaDB: ``@@gtid_slave_pos`` on a replica, ``@@gtid_current_pos`` otherwise; MySQL:
  ``@@gtid_executed``). With ``flavor=None`` the first query is ``SELECT @@global.read_only, VERSION()``
  and the flavour is detected from ``VERSION()``; pass ``flavor_for_version(result.version)`` next time.
* ``SHOW SLAVE STATUS`` (MariaDB, MySQL before 8.0.22) or ``SHOW REPLICA STATUS`` (MySQL 8.0.22+):
  ``Seconds_Behind_Master``/``Seconds_Behind_Source`` (NULL stays None), IO/SQL thread running
  (only "Yes" counts). Several rows (multi-source channels): every thread must run, lag is the largest
  and unknown if any is unknown.
* Aurora MySQL (``Flavor.AURORA``, detected with ``SHOW GLOBAL VARIABLES LIKE 'aurora_version'`` on a
  server that looks like MySQL): ``innodb_read_only`` and ``information_schema.replica_host_status``
  instead, no GTID position (``rwproxy.topology.probe_aurora``).

Every check is bounded by ``timeout``; any error becomes ``ProbeResult(ok=False, error=...)``. After a
failed check the connection's state is unknown: close it and open another.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import re
import ssl as _ssl
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiomysql

from rwproxy.backend.clear_password import GuardedConnection
from rwproxy.topology import probe_aurora
from rwproxy.topology.health import ProbeResult

__all__ = ["Flavor", "close_quietly", "describe_error", "flavor_for_version", "open_connection", "probe"]

Clock = Callable[[], float]


class Flavor(enum.Enum):
    MARIADB = "mariadb"
    MYSQL = "mysql"  # 8.0.22+: SHOW REPLICA STATUS, Seconds_Behind_Source
    MYSQL_LEGACY = "mysql-legacy"  # 5.7 / 8.0 before 8.0.22: SHOW SLAVE STATUS
    AURORA = "aurora"  # Aurora MySQL: innodb_read_only, replica_host_status (probe_aurora)

    @property
    def status_sql(self) -> str:
        if self is Flavor.AURORA:
            return probe_aurora.STATUS_SQL
        return "SHOW REPLICA STATUS" if self is Flavor.MYSQL else "SHOW SLAVE STATUS"

    @property
    def variables_sql(self) -> str:
        if self is Flavor.AURORA:
            return probe_aurora.VARIABLES_SQL
        if self is Flavor.MARIADB:
            return "SELECT @@global.read_only, VERSION(), @@global.gtid_current_pos, @@global.gtid_slave_pos"
        return "SELECT @@global.read_only, VERSION(), @@global.gtid_executed"


_VERSION_NUMBER = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def flavor_for_version(version: str) -> Flavor:
    """``SELECT VERSION()`` → flavour ("10.11.6-MariaDB-log", "8.0.36", "5.7.44-log"). Aurora is
    recognised only in the version the probe reports (``probe_aurora.version_label``): its own
    ``VERSION()`` looks like MySQL's."""
    if "mariadb" in version.lower():
        return Flavor.MARIADB
    if probe_aurora.is_aurora_version(version):
        return Flavor.AURORA
    m = _VERSION_NUMBER.match(version)
    if m and tuple(int(x) for x in m.groups()) < (8, 0, 22):
        return Flavor.MYSQL_LEGACY
    return Flavor.MYSQL


async def open_connection(
    host: str,
    port: int,
    user: str,
    password: str,
    *,
    timeout: float,
    ssl: _ssl.SSLContext | None = None,
    require_tls: bool = False,
) -> aiomysql.Connection:
    """An autocommit monitor connection; TCP, handshake and authentication within ``timeout``.
    A clear-text password goes out only over TLS (``rwproxy.backend.clear_password``)."""
    conn = GuardedConnection(
        host=host,
        port=port,
        user=user,
        password=password,
        require_tls=require_tls,
        autocommit=True,
        connect_timeout=timeout,
        ssl=ssl,
        program_name="rwproxy-monitor",
    )
    try:
        async with asyncio.timeout(timeout):
            # aiomysql.connect() does the same, but a cancelled connect there leaves the socket open.
            await conn._connect()
    except BaseException:
        close_quietly(conn)
        raise
    return conn


def close_quietly(conn: aiomysql.Connection | None) -> None:
    if conn is None:
        return
    with contextlib.suppress(Exception):  # a half-open connection may fail to close
        conn.close()


def describe_error(exc: BaseException) -> str:
    """One line for logs and stats: "(2003) Can't connect to MySQL server on ...", "timed out"..."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    if len(args) == 2 and isinstance(args[0], int):
        return f"({args[0]}) {args[1]}"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


async def probe(
    conn: aiomysql.Connection, flavor: Flavor | None, *, timeout: float = 2.0, clock: Clock = time.monotonic
) -> ProbeResult:
    """One health check; never raises (except CancelledError). ``at`` is taken when it ends."""
    try:
        async with asyncio.timeout(timeout):
            return await _check(conn, flavor, clock)
    except TimeoutError:
        return ProbeResult.failed(f"check timed out after {timeout:g} s", clock())
    except Exception as exc:
        return ProbeResult.failed(describe_error(exc), clock())


async def _check(conn: aiomysql.Connection, flavor: Flavor | None, clock: Clock) -> ProbeResult:
    async with conn.cursor() as cur:
        if flavor is None:
            await cur.execute("SELECT @@global.read_only, VERSION()")
            row = await cur.fetchone()
            flavor = flavor_for_version(str(row[1]))
            if flavor is not Flavor.MARIADB and await probe_aurora.detect(cur):
                flavor = Flavor.AURORA
        if flavor is not Flavor.AURORA:
            await cur.execute(flavor.variables_sql)
            row = await cur.fetchone()
    if flavor is Flavor.AURORA:
        return await probe_aurora.aurora_check(conn, clock)
    async with conn.cursor(aiomysql.DictCursor) as dcur:
        await dcur.execute(flavor.status_sql)
        status_rows: Sequence[Mapping[str, Any]] = await dcur.fetchall()
    io, sql, lag = _replication(status_rows)
    # MariaDB: a replica's applied position is gtid_slave_pos; a primary's, gtid_current_pos.
    gtid = row[3] if flavor is Flavor.MARIADB and status_rows else row[2]
    return ProbeResult(
        ok=True,
        read_only=bool(int(row[0])),
        lag_seconds=lag,
        io_running=io,
        sql_running=sql,
        gtid_position=str(gtid or "").replace("\n", ""),
        at=clock(),
        version=str(row[1]),
    )


def _field(row: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in row:
            return row[name]
    return None


def _replication(rows: Sequence[Mapping[str, Any]]) -> tuple[bool | None, bool | None, float | None]:
    """(io_running, sql_running, lag) over all status rows; (None, None, None) when not a replica."""
    if not rows:
        return None, None, None
    io = sql = True
    lags: list[float | None] = []
    for row in rows:
        io = io and _field(row, "Slave_IO_Running", "Replica_IO_Running") == "Yes"
        sql = sql and _field(row, "Slave_SQL_Running", "Replica_SQL_Running") == "Yes"
        value = _field(row, "Seconds_Behind_Master", "Seconds_Behind_Source")
        lags.append(None if value is None else float(value))
    known = [x for x in lags if x is not None]
    lag = max(known) if len(known) == len(lags) else None
    return io, sql, lag
