"""rwproxy.topology.heartbeat: table names, readings, which lag wins, logging once per change."""

from __future__ import annotations

import pytest

from rwproxy.config import ConfigError, parse_config
from rwproxy.topology.health import ProbeResult, ServerHealth, ShunReason
from rwproxy.topology.heartbeat import (
    Availability,
    HeartbeatReading,
    LagSource,
    apply_heartbeat,
    effective_lag,
    parse_table,
)
from rwproxy.topology.model import NodeState, Role
from tests.support.builders import config_text, section, server, user

HB = LagSource.HEARTBEAT
SBM = LagSource.SECONDS_BEHIND_MASTER


def test_parse_table() -> None:
    t = parse_table("rwproxy.heartbeat")
    assert (t.schema, t.table, t.name, t.quoted) == (
        "rwproxy",
        "heartbeat",
        "rwproxy.heartbeat",
        "`rwproxy`.`heartbeat`",
    )
    assert "`rwproxy`.`heartbeat`" in t.read_sql and "UTC_TIMESTAMP(6)" in t.read_sql
    assert "ORDER BY ts DESC LIMIT 1" in t.read_sql
    assert t.write_sql.startswith("REPLACE INTO `rwproxy`.`heartbeat` (ts, server_id, file, position,")
    for bad in ("heartbeat", "a.b.c", "a b.c", "db.`t`", "", "db.", ".t", "x" * 65 + ".t"):
        with pytest.raises(ValueError, match="qualified table name"):
            parse_table(bad)


def test_create_sql_only_what_is_missing() -> None:
    t = parse_table("rw.hb")
    assert t.create_sql(schema_exists=True, table_exists=True) == ()
    assert t.create_sql(schema_exists=True, table_exists=False) == (t.create_table_sql,)
    both = t.create_sql(schema_exists=False, table_exists=False)
    assert both[0] == "CREATE DATABASE IF NOT EXISTS `rw`" and both[1] == t.create_table_sql
    # pt-heartbeat's columns, in its order.
    cols = ["ts varchar(26)", "server_id int unsigned NOT NULL PRIMARY KEY", "file varchar(255)"]
    cols += ["position bigint unsigned", "relay_master_log_file varchar(255)", "exec_master_log_pos bigint"]
    positions = [t.create_table_sql.index(c) for c in cols]
    assert positions == sorted(positions)


@pytest.mark.parametrize(
    ("row", "lag", "problem"),
    [
        ((250000, "2026-01-01T00:00:00.000000"), 0.25, None),
        ((1_500_000, "2026-01-01T00:00:00.000000"), 1.5, None),
        ((-2000, "2026-01-01T00:00:00.000000"), -0.002, None),  # clamped later, by effective_lag
        (("1000", "x"), 0.001, None),  # some drivers return DECIMAL/str
        (None, None, "the table has no row yet"),
        ((None, "garbage"), None, "ts 'garbage' is not a timestamp"),
        (("abc", "ts"), None, "unexpected lag value 'abc'"),
    ],
)
def test_reading_from_row(row: tuple[object, ...] | None, lag: float | None, problem: str | None) -> None:
    r = HeartbeatReading.from_row(row)
    assert r.lag_seconds == lag and r.problem == problem


GOOD = HeartbeatReading(lag_seconds=0.75)
NONE = HeartbeatReading.unusable("(1146) Table 'rw.hb' doesn't exist")


@pytest.mark.parametrize(
    ("sbm", "io", "sql", "reading", "expected"),
    [
        (1.0, True, True, GOOD, (0.75, HB)),  # the heartbeat replaces Seconds_Behind_Master
        (0.0, True, True, HeartbeatReading(lag_seconds=42.0), (42.0, HB)),  # an old row is lag
        (0.0, True, True, HeartbeatReading(lag_seconds=-0.01), (0.0, HB)),  # clock skew: never < 0
        (3.0, True, True, None, (3.0, SBM)),  # heartbeat off
        (3.0, True, True, NONE, (3.0, SBM)),  # no table / no row: fall back
        (None, True, True, GOOD, (None, SBM)),  # NULL lag with running threads stays unusable
        (None, True, False, GOOD, (None, SBM)),  # SQL thread stopped: never made usable
        (5.0, False, True, GOOD, (5.0, SBM)),  # IO thread stopped
        (None, None, None, GOOD, (None, SBM)),  # not a replica
    ],
)
def test_effective_lag(
    sbm: float | None,
    io: bool | None,
    sql: bool | None,
    reading: HeartbeatReading | None,
    expected: tuple[float | None, LagSource],
) -> None:
    assert effective_lag(sbm, io, sql, reading) == expected


def _replica(lag: float | None, *, sql: bool = True) -> ProbeResult:
    return ProbeResult(ok=True, read_only=True, lag_seconds=lag, io_running=True, sql_running=sql, at=1.0)


def test_apply_heartbeat_feeds_the_state_machine() -> None:
    health = ServerHealth("db2", configured_role=Role.REPLICA)
    result, source = apply_heartbeat(_replica(0.0), HeartbeatReading(lag_seconds=30.0))
    assert source is HB and result.lag_seconds == 30.0
    health.observe(result)  # Seconds_Behind_Master said 0, the heartbeat row is 30 s old
    assert (health.state, health.reason) == (NodeState.SHUNNED, ShunReason.LAG_OVER_MAX)

    result, source = apply_heartbeat(_replica(None), GOOD)
    assert source is SBM and result.lag_seconds is None
    health.observe(result)
    assert health.reason is ShunReason.LAG_UNKNOWN

    result, source = apply_heartbeat(_replica(None, sql=False), GOOD)
    health.observe(result)
    assert health.reason is ShunReason.REPLICATION_STOPPED

    failed = ProbeResult.failed("timed out", 2.0)
    assert apply_heartbeat(failed, GOOD) == (failed, SBM)
    primary = ProbeResult(ok=True, read_only=False, at=1.0)
    assert apply_heartbeat(primary, GOOD) == (primary, SBM)
    same = _replica(0.75)
    assert apply_heartbeat(same, GOOD) == (same, HB)


def test_availability_logs_once_per_change() -> None:
    a = Availability()
    assert a.note(GOOD) is None  # first usable reading: nothing to say
    assert a.note(GOOD) is None
    change = a.note(NONE)
    assert (
        change is not None
        and change[0] is False
        and "1146" in change[1]
        and "Seconds_Behind_Master" in change[1]
    )
    assert a.note(NONE) is None
    assert a.note(HeartbeatReading.unusable("the table has no row yet")) is None  # still unusable
    assert a.note(GOOD) == (True, "heartbeat lag in use")
    b = Availability()
    first = b.note(NONE)
    assert first is not None and first[0] is False  # unusable from the start: said once
    assert b.note(NONE) is None


BASE = config_text(section("monitor"), users=[user("a", "b")], servers=[server("d", "h")])


def test_config_keys() -> None:
    m = parse_config(BASE).monitor
    assert (m.heartbeat_table, m.heartbeat_write, m.heartbeat_interval_seconds) == (None, True, 0.25)
    m = parse_config(
        BASE + 'heartbeat_table = "rw.hb"\nheartbeat_write = false\nheartbeat_interval_seconds = 1\n'
    ).monitor
    assert (m.heartbeat_table, m.heartbeat_write, m.heartbeat_interval_seconds) == ("rw.hb", False, 1.0)
    with pytest.raises(ConfigError, match=r"monitor\.heartbeat_table: must be a qualified table name"):
        parse_config(BASE + 'heartbeat_table = "hb"\n')
    with pytest.raises(ConfigError, match=r"monitor\.heartbeat_interval_seconds: must be greater than 0"):
        parse_config(BASE + "heartbeat_interval_seconds = 0\n")


def test_own_writer_is_trusted_only_while_it_writes() -> None:
    from rwproxy.topology.heartbeat_io import Heartbeat, HeartbeatWriter

    async def connect(node: object) -> object:
        raise AssertionError("not called")

    table = parse_table("rw.hb")
    outside = Heartbeat(table, None)
    assert outside.reading  # pt-heartbeat or another writer: always read
    writer = HeartbeatWriter(table, 0.25, primary=lambda: None, connect=connect, timeout=1.0)  # type: ignore[arg-type]
    own = Heartbeat(table, writer)
    assert not own.reading  # not written yet: a row from an earlier run is no lag measure
    writer.beats = 1
    assert own.reading
    writer.failing = True  # e.g. the primary is down: its age is not lag, fall back
    assert not own.reading


async def test_reload_replaces_the_heartbeat() -> None:
    import asyncio

    from rwproxy.config import MonitorConfig, ServerConfig
    from rwproxy.topology.monitor import Monitor

    m = Monitor(
        [ServerConfig(name="a", host="a")], MonitorConfig(), user="u", password="p", on_topology=print
    )
    assert m.heartbeat is None
    m.set_settings(MonitorConfig(heartbeat_table="rw.hb", heartbeat_write=False), user="u", password="p")
    assert m.heartbeat is not None and m.heartbeat.table.name == "rw.hb" and m.heartbeat.writer is None
    first = m.heartbeat
    m.set_settings(MonitorConfig(heartbeat_table="rw.hb", heartbeat_write=False), user="u", password="p")
    assert m.heartbeat is first  # unchanged settings: the same heartbeat
    m.set_settings(MonitorConfig(heartbeat_table="rw.hb2"), user="u", password="p")
    assert m.heartbeat is not None and m.heartbeat.writer is not None and m.heartbeat.table.name == "rw.hb2"
    m.set_settings(MonitorConfig(), user="u", password="p")
    assert m.heartbeat is None
    await asyncio.sleep(0)  # the old writer's stop() ran
