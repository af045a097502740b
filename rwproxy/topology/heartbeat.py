"""Heartbeat lag, the pure part: table name, SQL texts, and how a heartbeat reading becomes the lag.

The table is pt-heartbeat's (``pt-heartbeat --create-table``), so pt-heartbeat and rwproxy can read
each other's rows::

    CREATE TABLE heartbeat (
      ts                    varchar(26) NOT NULL,          -- ISO timestamp with microseconds
      server_id             int unsigned NOT NULL PRIMARY KEY,
      file                  varchar(255) DEFAULT NULL,     -- SHOW MASTER STATUS
      position              bigint unsigned DEFAULT NULL,  -- SHOW MASTER STATUS
      relay_master_log_file varchar(255) DEFAULT NULL,     -- SHOW SLAVE STATUS
      exec_master_log_pos   bigint unsigned DEFAULT NULL   -- SHOW SLAVE STATUS
    )

The writer (``rwproxy.topology.heartbeat_io``) REPLACEs the primary's row (``server_id`` = the
primary's) with a UTC ``ts`` taken from the primary's own clock. A replica's lag is the age of the
newest row it has applied, measured on the replica's own clock in the same query, so the proxy's
clock never enters::

    lag = TIMESTAMPDIFF(MICROSECOND, ts, UTC_TIMESTAMP(6)) / 1e6

(pt-heartbeat writes UTC only with ``--utc``; without it its ``ts`` is local time.) The age includes
up to one write interval: a healthy replica reads 0 .. ``heartbeat_interval_seconds``.

``effective_lag`` decides which lag the health state machine sees: the heartbeat's when a row was
read, else ``Seconds_Behind_Master``; and a NULL ``Seconds_Behind_Master`` (or a stopped thread)
stays unusable whatever the heartbeat says.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace

from rwproxy.topology.health import ProbeResult

__all__ = [
    "Availability",
    "HeartbeatReading",
    "HeartbeatTable",
    "LagSource",
    "apply_heartbeat",
    "effective_lag",
    "parse_table",
]

_IDENT = r"[A-Za-z0-9_$]{1,64}"
_TABLE = re.compile(rf"({_IDENT})\.({_IDENT})")

# ts as pt-heartbeat writes it: 2026-11-28T03:38:13.123456 (26 characters).
TS_FORMAT_SQL = "%Y-%m-%dT%H:%i:%s.%f"


@dataclass(frozen=True, slots=True)
class HeartbeatTable:
    schema: str
    table: str

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def quoted(self) -> str:
        return f"`{self.schema}`.`{self.table}`"

    @property
    def exists_sql(self) -> str:
        """(database exists, table exists): the writer creates what is missing before its first beat."""
        return (
            "SELECT (SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s),"
            " (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s)"
        )

    def create_sql(self, *, schema_exists: bool, table_exists: bool) -> tuple[str, ...]:
        """What the writer runs on the primary before its first beat (IF NOT EXISTS: a race with
        another writer is harmless)."""
        out: list[str] = []
        if not schema_exists:
            out.append(f"CREATE DATABASE IF NOT EXISTS `{self.schema}`")
        if not table_exists:
            out.append(self.create_table_sql)
        return tuple(out)

    @property
    def create_table_sql(self) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {self.quoted} ("
            " ts varchar(26) NOT NULL,"
            " server_id int unsigned NOT NULL PRIMARY KEY,"
            " file varchar(255) DEFAULT NULL,"
            " position bigint unsigned DEFAULT NULL,"
            " relay_master_log_file varchar(255) DEFAULT NULL,"
            " exec_master_log_pos bigint unsigned DEFAULT NULL)"
        )

    @property
    def now_sql(self) -> str:
        """The primary's UTC time formatted as ``ts``, and its server_id (literals for the REPLACE)."""
        return f"SELECT DATE_FORMAT(UTC_TIMESTAMP(6), '{TS_FORMAT_SQL}'), @@server_id"

    @property
    def write_sql(self) -> str:
        """pymysql-style parameters: ts, server_id, file, position."""
        return (
            f"REPLACE INTO {self.quoted} (ts, server_id, file, position, relay_master_log_file,"
            " exec_master_log_pos) VALUES (%s, %s, %s, %s, NULL, NULL)"
        )

    @property
    def read_sql(self) -> str:
        """On a replica: (age of the newest row in microseconds, its ts). The age is NULL when ts
        does not parse as a timestamp."""
        return (
            f"SELECT TIMESTAMPDIFF(MICROSECOND, ts, UTC_TIMESTAMP(6)), ts FROM {self.quoted}"
            " ORDER BY ts DESC LIMIT 1"
        )


def parse_table(text: str) -> HeartbeatTable:
    """``"db.table"`` → HeartbeatTable; ValueError with the reason otherwise."""
    m = _TABLE.fullmatch(text.strip())
    if m is None:
        raise ValueError(
            'must be a qualified table name such as "rwproxy.heartbeat" '
            f"(letters, digits, _ and $), got {text!r}"
        )
    return HeartbeatTable(m.group(1), m.group(2))


@dataclass(frozen=True, slots=True)
class HeartbeatReading:
    """What reading the heartbeat table on one replica gave. ``lag_seconds`` None: not usable, and
    ``problem`` says why (the table is missing, empty, unreadable, or its ts does not parse)."""

    lag_seconds: float | None = None
    problem: str | None = None

    @classmethod
    def from_row(cls, row: tuple[object, ...] | None) -> HeartbeatReading:
        """From ``read_sql``'s row (None: the table is empty)."""
        if row is None:
            return cls(problem="the table has no row yet")
        micros, ts = row[0], row[1]
        if micros is None:
            return cls(problem=f"ts {ts!r} is not a timestamp")
        try:
            return cls(lag_seconds=int(str(micros)) / 1e6)
        except ValueError:
            return cls(problem=f"unexpected lag value {micros!r}")

    @classmethod
    def unusable(cls, problem: str) -> HeartbeatReading:
        return cls(problem=problem)


class LagSource(enum.Enum):
    HEARTBEAT = "heartbeat"
    SECONDS_BEHIND_MASTER = "seconds_behind_master"


def effective_lag(
    seconds_behind: float | None,
    io_running: bool | None,
    sql_running: bool | None,
    reading: HeartbeatReading | None,
) -> tuple[float | None, LagSource]:
    """The lag the health state machine sees, and where it came from.

    * no usable heartbeat reading (off, missing table, no row, bad ts): Seconds_Behind_Master;
    * a replication thread not running, or Seconds_Behind_Master NULL: Seconds_Behind_Master (None
      or whatever it is; the replica is shunned either way) — the heartbeat never makes an unusable
      replica usable;
    * otherwise the heartbeat's age (never below 0: the primary's and the replica's clocks may
      differ a little). A row older than ``max_replication_lag`` is that much lag.
    """
    sbm = LagSource.SECONDS_BEHIND_MASTER
    if reading is None or reading.lag_seconds is None:
        return seconds_behind, sbm
    if not (io_running and sql_running) or seconds_behind is None:
        return seconds_behind, sbm
    return max(0.0, reading.lag_seconds), LagSource.HEARTBEAT


def apply_heartbeat(result: ProbeResult, reading: HeartbeatReading | None) -> tuple[ProbeResult, LagSource]:
    """``result`` with its lag replaced by ``effective_lag`` (unchanged for failed checks and for
    servers that do not replicate)."""
    if not result.ok or not result.replicating_configured:
        return result, LagSource.SECONDS_BEHIND_MASTER
    lag, source = effective_lag(result.lag_seconds, result.io_running, result.sql_running, reading)
    if lag == result.lag_seconds:
        return result, source
    return replace(result, lag_seconds=lag), source


class Availability:
    """Per server: whether heartbeat lag is in use, so that a change is logged once (not per check).

    ``note(reading)`` returns None while nothing changed, else ``(usable, text)`` for one log line.
    """

    def __init__(self) -> None:
        self.usable: bool | None = None  # None: not known yet

    def note(self, reading: HeartbeatReading) -> tuple[bool, str] | None:
        usable = reading.lag_seconds is not None
        if usable == self.usable:
            return None
        first = self.usable is None
        self.usable = usable
        if usable:
            return (True, "heartbeat lag in use") if not first else None
        return False, f"heartbeat not usable ({reading.problem}); lag from Seconds_Behind_Master"
