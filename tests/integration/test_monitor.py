"""The backend monitor against the real replication cluster: detection of stopped replication, dead
and frozen servers, lag, read_only flips and a failover, with the detection times printed
(``pytest -s tests/integration/test_monitor.py``).

Short pacing throughout: checks every 0.2 s, 0.5 s connect/check timeouts, OFFLINE after 3 failed
checks, ONLINE after 2 good ones. Every test puts the cluster back (``heal``) however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from rwproxy.config import MonitorConfig, ServerConfig
from rwproxy.dev.cluster import Cluster
from rwproxy.topology.model import NodeState, Role, Topology
from rwproxy.topology.monitor import Monitor
from tests.support.cluster import unique_name

pytestmark = pytest.mark.cluster

INTERVAL = 0.2
TIMEOUT = 0.5  # connect and check
FAILURES, SUCCESSES = 3, 2

# Measured detection times (seconds), printed at the end of the module.
TIMES: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def _print_times() -> Any:
    yield
    if TIMES:
        width = max(len(k) for k in TIMES)
        print("\nmonitor detection times (interval 0.2 s, timeouts 0.5 s, 3 failures / 2 successes):")
        for what, seconds in TIMES.items():
            print(f"  {what.ljust(width)}  {seconds * 1000:7.0f} ms")


class Recorder:
    """on_topology callback: every published snapshot with the time it arrived."""

    def __init__(self) -> None:
        self.events: list[tuple[float, Topology]] = []

    def __call__(self, topology: Topology) -> None:
        self.events.append((time.monotonic(), topology))

    async def first(self, cond: Callable[[Topology], bool], since: float, timeout: float, what: str) -> float:
        """Seconds from ``since`` to the first snapshot published after it that meets ``cond``."""
        deadline = time.monotonic() + timeout
        while True:
            for at, topology in self.events:
                if at >= since and cond(topology):
                    return at - since
            if time.monotonic() > deadline:
                last = self.events[-1][1] if self.events else None
                raise AssertionError(f"{what}: not within {timeout} s; last snapshot: {_summary(last)}")
            await asyncio.sleep(0.01)

    def changes_of(self, name: str, since: float) -> list[tuple[NodeState, str | None]]:
        out: list[tuple[NodeState, str | None]] = []
        for at, t in self.events:
            n = t.by_name[name]
            if at >= since and (not out or out[-1] != (n.state, n.reason)):
                out.append((n.state, n.reason))
        return out


def _summary(t: Topology | None) -> str:
    if t is None:
        return "none"
    return ", ".join(
        f"{n.name}={n.role.value}/{n.state.value}/{n.reason}/lag={n.lag_seconds}" for n in t.nodes
    )


def is_(name: str, state: NodeState, *reasons: str) -> Callable[[Topology], bool]:
    def cond(t: Topology) -> bool:
        n = t.by_name[name]
        return n.state is state and (not reasons or n.reason in reasons)

    return cond


@contextlib.asynccontextmanager
async def running_monitor(cluster: Cluster, **settings: Any) -> AsyncIterator[tuple[Monitor, Recorder]]:
    servers = [ServerConfig(name=n.name, host=n.host, port=n.port, role="auto") for n in cluster.nodes]
    options: dict[str, Any] = {
        "interval_seconds": INTERVAL,
        "connect_timeout_seconds": TIMEOUT,
        "check_timeout_seconds": TIMEOUT,
        "failures_to_offline": FAILURES,
        "successes_to_online": SUCCESSES,
        **settings,
    }
    recorder = Recorder()
    monitor = Monitor(
        servers,
        MonitorConfig(user=cluster.monitor_user, password=cluster.monitor_password, **options),
        user=cluster.monitor_user,
        password=cluster.monitor_password,
        on_topology=recorder,
    )
    await monitor.start()
    try:
        yield monitor, recorder
    finally:
        await monitor.stop()


async def heal(cluster: Cluster) -> None:
    await asyncio.to_thread(cluster.heal)


# --------------------------------------------------------------------------------------------------


async def test_monitor_sees_the_healthy_cluster(healthy_cluster: Cluster) -> None:
    c = healthy_cluster
    async with running_monitor(c) as (monitor, rec):
        t = monitor.topology
        assert t is not None and t.version == 1 and rec.events[0][1] is t
        assert t.primary is not None and t.primary.name == c.primary.name and t.primary.online
        assert {n.name for n in t.online_replicas()} == {r.name for r in c.replicas}
        for r in t.replicas:
            assert r.role is Role.REPLICA and r.lag_seconds == 0.0 and r.reason is None
        await asyncio.sleep(INTERVAL * 4)
        assert monitor.topology is t  # nothing changed: nothing published
        for name, st in monitor.stats.items():
            assert st.checks >= 3 and st.failures == 0 and st.connects == 1, name
            assert st.version and (c.flavor == "mysql" or "mariadb" in st.version.lower()), name
            assert st.gtid_position, name  # e.g. "0-1-23"
        assert monitor.stats[c.primary.name].read_only is False


async def test_stopped_sql_thread_is_shunned_then_back_online(healthy_cluster: Cluster) -> None:
    c = healthy_cluster
    r = c.replicas[0]
    async with running_monitor(c) as (_, rec):
        try:
            await asyncio.to_thread(c.stop_sql_thread, r)
            t0 = time.monotonic()
            shunned = is_(r.name, NodeState.SHUNNED, "replication_stopped", "lag_unknown")
            TIMES["stop SQL thread -> SHUNNED"] = d = await rec.first(shunned, t0, 5, "shunned")
            assert d < 2 * INTERVAL + TIMEOUT + 0.3

            await asyncio.to_thread(c.start_replication, r)
            t1 = time.monotonic()
            TIMES["start replication -> ONLINE"] = d = await rec.first(
                is_(r.name, NodeState.ONLINE), t1, 5, "online"
            )
            assert d < (SUCCESSES + 1) * INTERVAL + TIMEOUT + 0.3
            assert rec.changes_of(c.primary.name, t0) in ([], [(NodeState.ONLINE, None)])
        finally:
            await heal(c)


async def test_killed_replica_goes_offline_then_back_online(healthy_cluster: Cluster) -> None:
    c = healthy_cluster
    r, other = c.replicas
    async with running_monitor(c) as (monitor, rec):
        try:
            await asyncio.to_thread(c.kill_node, r, signal.SIGKILL)
            t0 = time.monotonic()
            TIMES["SIGKILL replica -> OFFLINE"] = d = await rec.first(
                is_(r.name, NodeState.OFFLINE, "unreachable"), t0, 5, "offline"
            )
            assert d < FAILURES * (INTERVAL + TIMEOUT) + 0.3
            # Hysteresis: ONLINE through the first failed checks (nothing published), then OFFLINE.
            assert rec.changes_of(r.name, t0) == [(NodeState.OFFLINE, "unreachable")]
            assert "Can't connect" in str(monitor.stats[r.name].last_error)
            assert monitor.topology is not None and monitor.topology.by_name[other.name].online

            await asyncio.to_thread(c.start_node, r)
            t1 = time.monotonic()
            TIMES["start_node -> ONLINE"] = d = await rec.first(
                is_(r.name, NodeState.ONLINE), t1, 10, "online"
            )
            assert d < 5
        finally:
            await heal(c)


async def test_frozen_replica_goes_offline_by_timeouts(healthy_cluster: Cluster) -> None:
    c = healthy_cluster
    r = c.replicas[1]
    async with running_monitor(c) as (monitor, rec):
        try:
            await asyncio.to_thread(c.kill_node, r, signal.SIGSTOP)  # accepts TCP, never answers
            t0 = time.monotonic()
            TIMES["SIGSTOP replica -> OFFLINE"] = d = await rec.first(
                is_(r.name, NodeState.OFFLINE, "unreachable"), t0, 10, "offline"
            )
            assert d < FAILURES * (INTERVAL + TIMEOUT) + 0.5
            assert "timed out" in str(monitor.stats[r.name].last_error)
            await asyncio.to_thread(c.kill_node, r, signal.SIGCONT)
            t1 = time.monotonic()
            TIMES["SIGCONT -> ONLINE"] = await rec.first(is_(r.name, NodeState.ONLINE), t1, 10, "online")
        finally:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(c.kill_node, r, signal.SIGCONT)
            await heal(c)


async def test_delayed_replica_is_shunned_for_lag(healthy_cluster: Cluster) -> None:
    c = healthy_cluster
    lagging, other = c.replicas
    table = unique_name("hb")
    await asyncio.to_thread(c.sql, c.primary, f"CREATE TABLE {table} (id INT PRIMARY KEY, at DATETIME(6))")

    async def heartbeat() -> None:  # writes on the primary: a delayed replica only lags with writes
        while True:
            await asyncio.to_thread(c.sql, c.primary, f"REPLACE INTO {table} VALUES (1, NOW(6))")
            await asyncio.sleep(0.2)

    async with running_monitor(c, max_replication_lag_seconds=1.0) as (monitor, rec):
        beat = asyncio.create_task(heartbeat())
        try:
            await asyncio.to_thread(c.set_delay, lagging, 3)
            t0 = time.monotonic()
            TIMES["MASTER_DELAY=3 + writes -> SHUNNED (lag > 1 s)"] = await rec.first(
                is_(lagging.name, NodeState.SHUNNED, "lag_over_max"), t0, 10, "lag_over_max"
            )
            assert monitor.stats[lagging.name].last_lag_seconds is not None
            assert monitor.stats[lagging.name].last_lag_seconds > 1.0  # type: ignore[operator]
            assert monitor.topology is not None and monitor.topology.by_name[other.name].online

            await asyncio.to_thread(c.set_delay, lagging, 0)
            t1 = time.monotonic()
            TIMES["MASTER_DELAY=0 -> ONLINE"] = await rec.first(
                is_(lagging.name, NodeState.ONLINE), t1, 10, "online"
            )
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            await heal(c)
            await asyncio.to_thread(c.sql, c.primary, f"DROP TABLE {table}")


async def test_request_probe_sees_a_read_only_flip_at_once(healthy_cluster: Cluster) -> None:
    c = healthy_cluster
    r = c.replicas[0]
    async with running_monitor(c, interval_seconds=30) as (monitor, rec):  # no routine check for 30 s
        try:
            await asyncio.to_thread(c.set_read_only, r, False)
            t0 = time.monotonic()
            monitor.request_probe(r.name)  # what the data path will do on ERROR 1290
            TIMES["request_probe: read_only OFF on a replica -> SHUNNED"] = d = await rec.first(
                is_(r.name, NodeState.SHUNNED, "writable_not_primary"), t0, 2, "writable replica shunned"
            )
            assert d < 0.5
            t = monitor.topology
            assert t is not None and t.primary is not None and t.primary.name == c.primary.name
        finally:
            await asyncio.to_thread(c.set_read_only, r, True)


async def test_failover_is_followed(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    old, new, other = c.primary, *c.replicas
    async with running_monitor(c) as (monitor, rec):
        await asyncio.to_thread(c.kill_node, old, signal.SIGKILL)
        t0 = time.monotonic()
        TIMES["SIGKILL primary -> primary OFFLINE"] = await rec.first(
            is_(old.name, NodeState.OFFLINE), t0, 5, "primary offline"
        )
        # The replicas lose their source (IO thread "Connecting", lag NULL) but keep serving reads
        # while the primary is down: they have everything they could get, nobody can write meanwhile.
        t = monitor.topology
        assert t is not None and t.by_name[new.name].online and t.by_name[other.name].online, t

        await asyncio.to_thread(c.promote, new)
        t1 = time.monotonic()

        def followed(t: Topology) -> bool:
            p = t.primary
            return p is not None and p.name == new.name and p.online and t.by_name[other.name].online

        TIMES["promote -> new primary ONLINE, other replica ONLINE"] = await rec.first(
            followed, t1, 10, "failover"
        )
        TIMES["promote -> new primary ONLINE"] = await rec.first(
            lambda t: t.primary is not None and t.primary.name == new.name and t.primary.online,
            t1,
            1,
            "primary",
        )
        # The old primary restarts writable (its my.cnf has read_only=0): never taken back as primary,
        # never read from.
        await asyncio.to_thread(c.start_node, old)
        t2 = time.monotonic()
        await rec.first(
            is_(old.name, NodeState.SHUNNED, "writable_not_primary"), t2, 10, "old primary shunned"
        )
        t = monitor.topology
        assert t is not None and t.primary is not None and t.primary.name == new.name
        assert old.name not in {n.name for n in t.online_replicas()}
