"""Health checks of Aurora MySQL instances (``probe.Flavor.AURORA``).

Aurora readers do not replicate with binlogs: ``SHOW REPLICA STATUS`` is empty there, so the usual
check would shun every reader as ``not_replicating``. What Aurora offers instead (AWS's "Aurora
MySQL-specific information_schema tables" page, the AWS JDBC wrapper's ``AuroraMysqlDialect`` and
MaxScale's ``auroramon`` all read the same things):

* detection: ``SHOW GLOBAL VARIABLES LIKE 'aurora_version'`` has a row only on Aurora
  (``VERSION()`` alone does not tell: it is the MySQL compatibility version, e.g. "8.0.28"; the
  "8.0.mysql_aurora.3.04.0" form is the RDS API's engine version, not what the server says);
* writable or not: ``@@innodb_read_only`` (1 on readers, 0 on the writer; ``@@read_only`` is a
  parameter-group setting and says nothing about the role);
* who am I: ``@@aurora_server_id`` (the instance identifier);
* replication: ``information_schema.replica_host_status``, one row per instance: ``SERVER_ID``,
  ``SESSION_ID`` (``'MASTER_SESSION_ID'`` for the writer, a UUID for a reader),
  ``REPLICA_LAG_IN_MILLISECONDS`` (double), ``LAST_UPDATE_TIMESTAMP`` (datetime(6), "used to
  determine whether a record is stale"). The JDBC wrapper compares it with ``NOW()`` on the server;
  so do we (``NOW(6)`` in the same query: no clock skew between rwproxy and the server).

A reader's verdict, from its own row:

* row present and fresh (updated within ``FRESH_SECONDS``): "replicating" (io/sql True), lag =
  ``REPLICA_LAG_IN_MILLISECONDS`` / 1000; a NULL or negative lag stays None (unknown, never 0);
* row missing or stale: not replicating (io/sql False): SHUNNED (``replication_stopped``).

The writer (its own row has ``MASTER_SESSION_ID``, or ``innodb_read_only = 0``) has no replication
(io/sql/lag None), like a binlog primary. There is no GTID position (``gtid_position`` None) and no
GTID wait: ``ProbeResult.gtid_waits`` is False, so read_your_writes reads after a write go to the
primary (``RouteReason.CAUSAL_NO_WAIT``) instead of waiting on a reader for a GTID it never reports.

None of this was run against a real Aurora cluster (none is available to the tests): the shapes
come from the sources above, and the unit tests feed rows shaped like them.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiomysql

from rwproxy.topology.health import ProbeResult

__all__ = [
    "DETECT_SQL",
    "FRESH_SECONDS",
    "STATUS_SQL",
    "VARIABLES_SQL",
    "WRITER_SESSION_ID",
    "aurora_check",
    "aurora_replication",
    "is_aurora_version",
    "version_label",
]

DETECT_SQL = "SHOW GLOBAL VARIABLES LIKE 'aurora_version'"
VARIABLES_SQL = "SELECT @@innodb_read_only, VERSION(), @@aurora_server_id, @@aurora_version"
STATUS_SQL = (
    "SELECT SERVER_ID, SESSION_ID, REPLICA_LAG_IN_MILLISECONDS, LAST_UPDATE_TIMESTAMP, NOW(6) AS SERVER_NOW "
    "FROM information_schema.replica_host_status"
)
WRITER_SESSION_ID = "MASTER_SESSION_ID"
# A reader's own row older than this says nothing about now. Not measured on a real Aurora (the JDBC
# wrapper drops members whose row is 300 s old; a health check needs to be stricter than that).
FRESH_SECONDS = 60.0
_MARK = "Aurora MySQL"


def version_label(version: str, aurora_version: str) -> str:
    """What the monitor shows as the version: "8.0.28 (Aurora MySQL 3.04.0)". ``probe.flavor_for_version``
    recognises it, so the monitor keeps using the Aurora check on this connection."""
    return f"{version} ({_MARK} {aurora_version})"


def is_aurora_version(version: str) -> bool:
    return _MARK.lower() in version.lower()


def aurora_replication(
    rows: Sequence[Mapping[str, Any]],
    server_id: str,
    read_only: bool,
    *,
    fresh_seconds: float = FRESH_SECONDS,
) -> tuple[bool | None, bool | None, float | None]:
    """(io_running, sql_running, lag_seconds) of instance ``server_id`` from the rows of
    ``STATUS_SQL``. The writer: (None, None, None): no replication. A reader without a fresh row of
    its own: (False, False, None)."""
    own = [r for r in rows if str(r.get("SERVER_ID")) == server_id]
    if not read_only or any(r.get("SESSION_ID") == WRITER_SESSION_ID for r in own):
        return None, None, None
    if not own:
        return False, False, None
    row = own[0]
    age = _age_seconds(row.get("LAST_UPDATE_TIMESTAMP"), row.get("SERVER_NOW"))
    if age is None or age > fresh_seconds:
        return False, False, None
    lag_ms = row.get("REPLICA_LAG_IN_MILLISECONDS")
    lag = None if lag_ms is None or float(lag_ms) < 0 else float(lag_ms) / 1000.0
    return True, True, lag


def _age_seconds(updated: Any, now: Any) -> float | None:
    if not isinstance(updated, _dt.datetime) or not isinstance(now, _dt.datetime):
        return None
    return (now - updated).total_seconds()


async def detect(cur: aiomysql.Cursor) -> bool:
    """On a MySQL-looking server: is it Aurora? (an empty result elsewhere, never an error)."""
    await cur.execute(DETECT_SQL)
    return bool(await cur.fetchall())


async def aurora_check(conn: aiomysql.Connection, clock: Callable[[], float]) -> ProbeResult:
    async with conn.cursor() as cur:
        await cur.execute(VARIABLES_SQL)
        row = await cur.fetchone()
    read_only = bool(int(row[0]))
    server_id = str(row[2])
    async with conn.cursor(aiomysql.DictCursor) as dcur:
        await dcur.execute(STATUS_SQL)
        rows: Sequence[Mapping[str, Any]] = await dcur.fetchall()
    io, sql, lag = aurora_replication(rows, server_id, read_only)
    return ProbeResult(
        ok=True,
        read_only=read_only,
        lag_seconds=lag,
        io_running=io,
        sql_running=sql,
        gtid_position=None,
        at=clock(),
        version=version_label(str(row[1]), str(row[3])),
        gtid_waits=False,
    )
