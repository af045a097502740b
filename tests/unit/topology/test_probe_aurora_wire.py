"""The Aurora check over a real socket: ``probe.open_connection`` + ``probe.probe`` (aiomysql,
unpatched) against a scripted server on loopback that answers the probe's queries the way Aurora
MySQL documents them. No real Aurora is available to the tests; this shows that the probe detects
Aurora, sends only the Aurora queries from then on, and reads typed columns (DATETIME(6) ->
``datetime``, DOUBLE -> ``float``) into a verdict.

Answers, and where their shapes come from:
* ``VERSION()`` = "8.0.28" and ``aurora_version`` = "3.04.0": Aurora User Guide, "Checking Aurora
  MySQL version numbers" (``SELECT @@aurora_version`` -> "3.04.0"; the MySQL compatibility version
  is what ``VERSION()`` reports);
* ``SHOW VARIABLES LIKE 'aurora_version'`` has a row on Aurora only: how the AWS JDBC wrapper's
  AuroraMysqlDialect detects Aurora;
* replica_host_status columns and types: Aurora User Guide, "Aurora MySQL-specific
  information_schema tables".
"""

from __future__ import annotations

import asyncio
import datetime as dt
import struct
from collections.abc import Sequence
from typing import Any

from rwproxy.protocol.connection import make_handshake_v10
from rwproxy.protocol.constants import Capability, ColumnType
from rwproxy.protocol.framing import frame
from rwproxy.protocol.packets import (
    make_column_count,
    make_column_definition41,
    make_eof,
    make_ok,
    make_text_row,
)
from rwproxy.topology import probe_aurora
from rwproxy.topology.probe import Flavor, close_quietly, flavor_for_version, open_connection, probe

CAPS = int(
    Capability.LONG_PASSWORD
    | Capability.PROTOCOL_41
    | Capability.SECURE_CONNECTION
    | Capability.PLUGIN_AUTH
    | Capability.TRANSACTIONS
)
S, D, N, T = ColumnType.VAR_STRING, ColumnType.DOUBLE, ColumnType.LONGLONG, ColumnType.DATETIME
NOW = dt.datetime(2024, 5, 2, 10, 15, 30, 250000)


def _ts(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


class ScriptedAurora:
    """Answers the probe's queries as one Aurora instance would; records every query."""

    def __init__(self, server_id: str, writer: bool, lag_ms: float | None = 12.5, age: float = 0.3) -> None:
        self.server_id = server_id
        self.writer = writer
        self.lag_ms = lag_ms
        self.age = age
        self.queries: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    def answer(self, sql: str) -> tuple[list[tuple[str, int]], list[list[str | None]]]:
        ro = "0" if self.writer else "1"
        if sql == "SELECT @@global.read_only, VERSION()":
            return [("@@global.read_only", N), ("VERSION()", S)], [["0", "8.0.28"]]
        if sql == probe_aurora.DETECT_SQL:
            return [("Variable_name", S), ("Value", S)], [["aurora_version", "3.04.0"]]
        if sql == probe_aurora.VARIABLES_SQL:
            cols = [
                ("@@innodb_read_only", N),
                ("VERSION()", S),
                ("@@aurora_server_id", S),
                ("@@aurora_version", S),
            ]
            return cols, [[ro, "8.0.28", self.server_id, "3.04.0"]]
        if sql == probe_aurora.STATUS_SQL:
            cols = [
                ("SERVER_ID", S),
                ("SESSION_ID", S),
                ("REPLICA_LAG_IN_MILLISECONDS", D),
                ("LAST_UPDATE_TIMESTAMP", T),
                ("SERVER_NOW", T),
            ]
            writer_id = self.server_id if self.writer else "orders-aurora-1"
            rows: list[list[str | None]] = [[writer_id, "MASTER_SESSION_ID", "0", _ts(NOW), _ts(NOW)]]
            if not self.writer:
                lag = None if self.lag_ms is None else repr(self.lag_ms)
                updated = NOW - dt.timedelta(seconds=self.age)
                rows.append(
                    [self.server_id, "5c1a3c2e-8d0b-4c57-9a1e-2f3b4c5d6e7f", lag, _ts(updated), _ts(NOW)]
                )
            return cols, rows
        raise AssertionError(f"an Aurora instance was asked something the probe should not ask: {sql!r}")

    async def __aenter__(self) -> ScriptedAurora:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def read() -> tuple[int, bytes]:
            header = await reader.readexactly(4)
            return header[3], await reader.readexactly(int.from_bytes(header[:3], "little"))

        try:
            greeting = make_handshake_v10(
                server_version="8.0.28",
                connection_id=9,
                auth_plugin_data=bytes(range(1, 21)),
                capabilities=CAPS,
            )
            writer.write(frame(greeting, 0))
            seq, _ = await read()
            writer.write(frame(make_ok(CAPS), seq + 1))
            while True:
                _, payload = await read()
                if payload[:1] == b"\x01":  # COM_QUIT
                    break
                assert payload[:1] == b"\x03", payload
                sql = payload[1:].decode()
                self.queries.append(sql)
                try:
                    cols, rows = self.answer(sql)
                except AssertionError as exc:
                    err = b"\xff" + struct.pack("<H", 1064) + b"#42000" + str(exc).encode()
                    writer.write(frame(err, 1))
                    continue
                writer.write(_resultset(cols, rows))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _resultset(cols: Sequence[tuple[str, int]], rows: list[list[str | None]]) -> bytes:
    packets = [make_column_count(len(cols))]
    packets += [make_column_definition41(name, column_type=kind, column_length=64) for name, kind in cols]
    packets.append(make_eof())
    packets += [make_text_row([None if v is None else v.encode() for v in row]) for row in rows]
    packets.append(make_eof())
    return b"".join(frame(p, i + 1) for i, p in enumerate(packets))


async def _two_checks(server: ScriptedAurora) -> tuple[Any, Any]:
    conn = await open_connection("127.0.0.1", server.port, "monitor", "secret", timeout=5)
    try:
        first = await probe(conn, None, timeout=5)
        assert first.ok, first.error
        assert first.version is not None
        second = await probe(conn, flavor_for_version(first.version), timeout=5)
        return first, second
    finally:
        close_quietly(conn)


def test_reader_detected_and_checked_without_replica_status() -> None:
    async def run() -> None:
        async with ScriptedAurora("orders-aurora-2", writer=False, lag_ms=12.5) as server:
            first, second = await _two_checks(server)
        for result in (first, second):
            assert result.ok and result.read_only is True
            assert (result.io_running, result.sql_running) == (True, True)
            assert result.lag_seconds == 0.0125
            assert result.gtid_position is None and result.gtid_waits is False
            assert result.version == "8.0.28 (Aurora MySQL 3.04.0)"
        assert flavor_for_version(first.version) is Flavor.AURORA
        # Detection once, then only the Aurora queries: never SHOW REPLICA STATUS or gtid_executed.
        assert server.queries == [
            "SELECT @@global.read_only, VERSION()",
            probe_aurora.DETECT_SQL,
            probe_aurora.VARIABLES_SQL,
            probe_aurora.STATUS_SQL,
            probe_aurora.VARIABLES_SQL,
            probe_aurora.STATUS_SQL,
        ]

    asyncio.run(run())


def test_writer_and_unusable_readers() -> None:
    async def run() -> None:
        async with ScriptedAurora("orders-aurora-1", writer=True) as server:
            result, _ = await _two_checks(server)
        assert result.read_only is False and not result.replicating_configured
        async with ScriptedAurora("orders-aurora-3", writer=False, lag_ms=None) as server:
            result, _ = await _two_checks(server)
        assert (result.io_running, result.lag_seconds) == (True, None)  # NULL lag: unknown, not 0
        async with ScriptedAurora(
            "orders-aurora-3", writer=False, age=probe_aurora.FRESH_SECONDS + 5
        ) as server:
            result, _ = await _two_checks(server)
        assert (result.io_running, result.sql_running, result.lag_seconds) == (False, False, None)

    asyncio.run(run())
