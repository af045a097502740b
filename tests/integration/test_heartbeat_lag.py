"""Heartbeat lag on the real cluster: rwproxy writes a pt-heartbeat row on the primary, the monitor
reads its age on each replica (sub-second, measured on the replica's own clock)."""

from __future__ import annotations

import logging
import statistics
import time

import pytest

from rwproxy.dev.cluster import Cluster
from tests.support.builders import cluster_config
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster


def _config(c: Cluster, *extra: str) -> str:
    return cluster_config(
        c,
        "[monitor]",
        "interval_seconds = 0.2",
        "check_timeout_seconds = 0.5",
        "max_replication_lag_seconds = 5",
        *extra,
        roles=True,
    )


def test_heartbeat_lag_tracks_a_one_second_delay(healthy_cluster: Cluster) -> None:
    c = healthy_cluster
    delayed, good = c.replicas
    c.sql(c.primary, "DROP TABLE IF EXISTS rwtest.hb_lag")  # no row left from an earlier run
    c.wait_replicas_caught_up()
    config = _config(c, 'heartbeat_table = "rwtest.hb_lag"', "heartbeat_interval_seconds = 0.1")
    try:
        c.set_delay(delayed, 1)
        with ProxyThread(config) as p:
            assert p.app is not None and p.app.monitor is not None
            monitor = p.app.monitor
            stats = monitor.stats
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if all(stats[r.name].lag_source == "heartbeat" for r in (delayed, good)):
                    break
                time.sleep(0.1)
            assert stats[delayed.name].lag_source == "heartbeat", stats[delayed.name]
            assert stats[good.name].lag_source == "heartbeat", stats[good.name]
            time.sleep(1.5)  # the delayed replica has applied rows written after it started
            samples: dict[str, list[float]] = {delayed.name: [], good.name: []}
            for _ in range(40):  # 4 s, two full cycles of the 1 s delay
                for name, out in samples.items():
                    lag = stats[name].last_lag_seconds
                    assert lag is not None, stats[name]
                    out.append(lag)
                time.sleep(0.1)
            slow, fast = samples[delayed.name], samples[good.name]
            # Bounds with room for a loaded CI machine (checks and writes get delayed there too);
            # what matters: ~1 s for the delayed one, well under it for the healthy one.
            assert 0.4 <= statistics.median(slow) <= 1.9, slow
            assert max(slow) < 3.0, slow
            assert statistics.median(fast) < 0.5, fast
            assert max(fast) < 1.2, fast
            assert statistics.median(slow) - statistics.median(fast) > 0.4, (slow, fast)
            # The heartbeat lag is what the topology carries (and what weighting / max_lag use).
            node = p.app.topology.by_name[delayed.name]
            assert node.lag_seconds is not None and 0 < node.lag_seconds < 2.0, node
            writer = monitor.heartbeat.writer if monitor.heartbeat is not None else None
            assert writer is not None and writer.beats > 10 and not writer.failing
            # The rows are pt-heartbeat's: ts ISO with microseconds, server_id the primary's.
            primary_id = int(c.sql(c.primary, "SELECT @@server_id")[0][0])
            rows = c.sql(c.primary, "SELECT ts, server_id, file, position FROM rwtest.hb_lag")
            assert len(rows) == 1 and int(rows[0][1]) == primary_id, rows
            assert len(rows[0][0]) == 26 and rows[0][0][10] == "T", rows
            assert rows[0][2] and int(rows[0][3]) > 0, rows  # SHOW MASTER STATUS file/position
    finally:
        c.set_delay(delayed, 0)
        c.sql(c.primary, "DROP TABLE IF EXISTS rwtest.hb_lag")


def test_without_the_table_the_monitor_falls_back_and_says_so_once(
    healthy_cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    c = healthy_cluster
    caplog.set_level(logging.INFO, logger="rwproxy")
    config = _config(c, 'heartbeat_table = "rwtest.no_such_heartbeat"', "heartbeat_write = false")
    with ProxyThread(config) as p:
        assert p.app is not None and p.app.monitor is not None and p._thread is not None
        thread = p._thread.ident  # this test's proxy only (a shared one may run in the session)
        stats = p.app.monitor.stats
        before = {r.name: stats[r.name].checks for r in c.replicas}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(stats[n].checks < before[n] + 6 for n in before):
            time.sleep(0.1)
        topology = p.app.topology
        for r in c.replicas:
            assert stats[r.name].checks >= before[r.name] + 6
            assert stats[r.name].lag_source == "seconds_behind_master"
            assert topology.by_name[r.name].online, topology.by_name[r.name]
            assert topology.by_name[r.name].lag_seconds == 0.0
        assert p.app.monitor.heartbeat is not None and p.app.monitor.heartbeat.writer is None
    for r in c.replicas:
        lines = [
            rec.getMessage()
            for rec in caplog.records
            if rec.thread == thread
            and rec.levelno == logging.WARNING
            and "heartbeat not usable" in rec.getMessage()
            and f"{r.name}:" in rec.getMessage()
        ]
        assert len(lines) == 1, lines
        assert "1146" in lines[0] and "Seconds_Behind_Master" in lines[0], lines
