"""Heartbeat lag, the I/O part: the writer task on the primary and the read on each replica.

    hb = Heartbeat.from_settings(settings, primary=lambda: monitor.topology.primary, connect=...)
    hb.start()                                   # the writer task (when heartbeat_write is on)
    result, source = await hb.adjust(name, conn, result)   # after each successful check
    await hb.stop()

The writer has its own task and its own connection (monitor credentials). Every
``heartbeat_interval_seconds`` it REPLACEs the row of the current primary (the primary of the last
published topology; it follows a new one): ``ts`` is the primary's ``UTC_TIMESTAMP(6)``, ``server_id``
its ``@@server_id`` (both sent as literals, so statement-based replication copies the values, not
the functions), ``file``/``position`` from ``SHOW MASTER STATUS`` when the account may run it. It
creates the table (and its database) on its first connection. Failures are logged once per change
(WARNING when writes start failing, INFO when they work again), never per beat.

``adjust`` reads the newest row on a replica on the monitor's connection, right after the check.
While the writer is on but has not written yet (a row left from an earlier run would look like a
huge lag), or its last write failed (see ``Heartbeat.reading``), the heartbeat is not read and the
lag comes from Seconds_Behind_Master. A server error (no table, no privilege) falls back to
Seconds_Behind_Master and is logged once per server; a timeout or a lost connection fails the check
(the monitor then reconnects).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from rwproxy.topology.health import ProbeResult
from rwproxy.topology.heartbeat import (
    Availability,
    HeartbeatReading,
    HeartbeatTable,
    LagSource,
    apply_heartbeat,
    parse_table,
)
from rwproxy.topology.probe import close_quietly, describe_error

if TYPE_CHECKING:
    import aiomysql

    from rwproxy.config import MonitorConfig
    from rwproxy.topology.model import Node

__all__ = ["Heartbeat", "HeartbeatWriter", "read_heartbeat"]

log = logging.getLogger("rwproxy.topology.monitor")

Connect = Callable[["Node"], Awaitable["aiomysql.Connection"]]


def _server_error(exc: BaseException) -> bool:
    """The server answered with an ERR packet (the connection is still fine): codes below 2000."""
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    return bool(args) and isinstance(args[0], int) and 0 < args[0] < 2000


async def read_heartbeat(conn: aiomysql.Connection, table: HeartbeatTable) -> HeartbeatReading:
    """The newest row's age on this server. Raises for anything but a server error."""
    try:
        async with conn.cursor() as cur:
            await cur.execute(table.read_sql)
            row = await cur.fetchone()
    except Exception as exc:
        if _server_error(exc):
            return HeartbeatReading.unusable(describe_error(exc))
        raise
    return HeartbeatReading.from_row(row)


class HeartbeatWriter:
    """REPLACEs the primary's heartbeat row every ``interval`` seconds, on its own connection."""

    def __init__(
        self,
        table: HeartbeatTable,
        interval: float,
        *,
        primary: Callable[[], Node | None],
        connect: Connect,
        timeout: float,
    ) -> None:
        self.table = table
        self.interval = interval
        self._primary = primary
        self._connect = connect
        self._timeout = timeout
        self._task: asyncio.Task[None] | None = None
        self._conn: aiomysql.Connection | None = None
        self._node: str | None = None  # the server self._conn is on
        self._created = False  # CREATE ... IF NOT EXISTS ran on this connection
        self._positions = True  # SHOW MASTER STATUS allowed (cleared on the first refusal)
        self.beats = 0  # successful writes
        self.failures = 0
        self.last_error: str | None = None
        self.failing = False
        self.last_beat_at: float | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="rwproxy-heartbeat")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._close()

    def _close(self) -> None:
        close_quietly(self._conn)
        self._conn, self._node, self._created = None, None, False

    async def _run(self) -> None:
        try:
            while True:
                started = time.monotonic()
                await self.beat()
                await asyncio.sleep(max(0.0, started + self.interval - time.monotonic()))
        finally:
            self._close()

    async def beat(self) -> bool:
        """One write on the current primary; False (and logged on change) when it failed."""
        node = self._primary()
        if node is None:
            self._failed("no primary is known")
            return False
        try:
            async with asyncio.timeout(self._timeout):
                await self._write(node)
        except Exception as exc:
            if not _server_error(exc):
                self._close()  # state unknown after a timeout or a lost connection
            text = "timed out" if isinstance(exc, TimeoutError) else describe_error(exc)
            self._failed(f"{node.name}: {text}")
            return False
        self.beats += 1
        self.last_beat_at = time.monotonic()
        if self.failing:
            log.info("monitor: heartbeat writes to %s on %s work again", self.table.name, node.name)
            self.failing = False
        return True

    async def _write(self, node: Node) -> None:
        if self._conn is None or self._node != node.name:
            self._close()
            self._conn = await self._connect(node)
            self._node = node.name
        conn = self._conn
        async with conn.cursor() as cur:
            if not self._created:
                t = self.table
                await cur.execute(t.exists_sql, (t.schema, t.schema, t.table))
                schema_n, table_n = await cur.fetchone()
                for sql in t.create_sql(schema_exists=bool(schema_n), table_exists=bool(table_n)):
                    await cur.execute(sql)
                self._created = True
            await cur.execute(self.table.now_sql)
            ts, server_id = await cur.fetchone()
            file = position = None
            if self._positions:
                try:
                    await cur.execute("SHOW MASTER STATUS")
                    row = await cur.fetchone()
                    if row:
                        file, position = row[0], row[1]
                except Exception as exc:
                    if not _server_error(exc):
                        raise
                    self._positions = False  # not allowed for this account: leave them NULL
            await cur.execute(self.table.write_sql, (ts, server_id, file, position))

    def _failed(self, error: str) -> None:
        self.failures += 1
        self.last_error = error
        if not self.failing:
            log.warning("monitor: heartbeat writes to %s failing: %s", self.table.name, error)
            self.failing = True


class Heartbeat:
    """What the monitor holds when ``[monitor] heartbeat_table`` is set."""

    def __init__(self, table: HeartbeatTable, writer: HeartbeatWriter | None) -> None:
        self.table = table
        self.writer = writer
        self._availability: dict[str, Availability] = {}

    @classmethod
    def from_settings(
        cls, settings: MonitorConfig, *, primary: Callable[[], Node | None], connect: Connect
    ) -> Heartbeat | None:
        if not settings.heartbeat_table:
            return None
        table = parse_table(settings.heartbeat_table)
        writer = None
        if settings.heartbeat_write:
            writer = HeartbeatWriter(
                table,
                settings.heartbeat_interval_seconds,
                primary=primary,
                connect=connect,
                timeout=settings.connect_timeout_seconds + settings.check_timeout_seconds,
            )
        return cls(table, writer)

    @property
    def reading(self) -> bool:
        """Whether replicas' heartbeat rows are read: always with an outside writer (pt-heartbeat);
        with rwproxy's own writer only while it writes (it has written, and its last write worked).
        A failing writer (primary down, no privilege) would otherwise turn the age of the last row
        into lag on every replica — while the primary is down that is not lag (no one can write), and
        with writes refused only to the heartbeat it would hide the real lag."""
        w = self.writer
        return w is None or (w.beats > 0 and not w.failing)

    def start(self) -> None:
        if self.writer is not None:
            self.writer.start()

    async def stop(self) -> None:
        if self.writer is not None:
            await self.writer.stop()

    async def adjust(
        self, server: str, conn: aiomysql.Connection, result: ProbeResult, *, timeout: float
    ) -> tuple[ProbeResult, LagSource]:
        """``result`` with the heartbeat lag in place of Seconds_Behind_Master when usable. A
        timeout or a lost connection makes it a failed check."""
        if not (result.ok and result.replicating_configured and self.reading):
            return result, LagSource.SECONDS_BEHIND_MASTER
        try:
            async with asyncio.timeout(timeout):
                reading = await read_heartbeat(conn, self.table)
        except TimeoutError:
            return ProbeResult.failed(f"heartbeat read timed out after {timeout:g} s", result.at), (
                LagSource.SECONDS_BEHIND_MASTER
            )
        except Exception as exc:
            return ProbeResult.failed(f"heartbeat read: {describe_error(exc)}", result.at), (
                LagSource.SECONDS_BEHIND_MASTER
            )
        change = self._availability.setdefault(server, Availability()).note(reading)
        if change is not None:
            usable, text = change
            (log.info if usable else log.warning)("monitor: %s: %s: %s", server, self.table.name, text)
        return apply_heartbeat(result, reading)
