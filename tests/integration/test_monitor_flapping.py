"""A replica whose checks alternate fail/succeed (its network path flaps) does not change state on
every check: it is shunned for intermittent failures and stays out until it is steady again."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from rwproxy.config import MonitorConfig, ServerConfig
from rwproxy.dev.cluster import Cluster, ClusterNode
from rwproxy.topology.model import NodeState, Topology
from rwproxy.topology.monitor import Monitor
from tests.support.flaky_link import FlakyLink

pytestmark = pytest.mark.cluster

INTERVAL = 0.2


def _monitor(
    c: Cluster, target: ClusterNode, link: FlakyLink, events: list[tuple[float, Topology]]
) -> Monitor:
    servers = [
        ServerConfig(name=n.name, host=n.host, port=link.port if n is target else n.port, role="auto")
        for n in c.nodes
    ]
    settings = MonitorConfig(
        user=c.monitor_user,
        password=c.monitor_password,
        interval_seconds=INTERVAL,
        connect_timeout_seconds=0.5,
        check_timeout_seconds=0.5,
        failures_to_offline=3,
        successes_to_online=2,
    )
    return Monitor(
        servers,
        settings,
        user=c.monitor_user,
        password=c.monitor_password,
        on_topology=lambda t: events.append((time.monotonic(), t)),
    )


async def test_recovery_from_a_clean_outage(healthy_cluster: Cluster) -> None:
    """A replica cut for 2 s (well over 3 failed checks) comes back ONLINE after
    failures_to_offline + 1 = 4 good checks (it was successes_to_online = 2 before the flap window
    survived OFFLINE). Prints the time from link up to ONLINE (``pytest -s``)."""
    c = healthy_cluster
    target = c.replicas[0]
    events: list[tuple[float, Topology]] = []
    with FlakyLink((target.host, target.port)) as link:
        monitor = _monitor(c, target, link, events)
        await monitor.start()
        try:
            link.down()
            await asyncio.sleep(2.0)
            assert monitor.topology is not None
            assert monitor.topology.by_name[target.name].state is NodeState.OFFLINE
            stats = monitor.stats[target.name]
            checks, failures = stats.checks, stats.failures
            up = time.monotonic()
            link.up()
            while time.monotonic() < up + 10 and not monitor.topology.by_name[target.name].online:
                await asyncio.sleep(0.01)
            back = time.monotonic() - up
            assert monitor.topology.by_name[target.name].online
            good = (stats.checks - checks) - (stats.failures - failures)
            print(
                f"\nclean 2 s outage, checks every {INTERVAL} s: link up -> ONLINE in "
                f"{back * 1000:.0f} ms, {good} good checks"
            )
            assert good == 4, good  # failures_to_offline + 1
        finally:
            await monitor.stop()


async def test_flapping_checks_do_not_flap_the_state(healthy_cluster: Cluster) -> None:
    c = healthy_cluster
    target = c.replicas[0]
    events: list[tuple[float, Topology]] = []
    with FlakyLink((target.host, target.port)) as link:
        monitor = _monitor(c, target, link, events)
        await monitor.start()
        try:
            assert monitor.topology is not None and monitor.topology.by_name[target.name].online
            stats = monitor.stats[target.name]
            checks_before = stats.checks
            # About 30 checks with the link alternating between cut and working every check.
            deadline = time.monotonic() + 30 * INTERVAL
            while time.monotonic() < deadline:
                link.down()
                await asyncio.sleep(INTERVAL)
                link.up()
                await asyncio.sleep(INTERVAL)
            checks = stats.checks - checks_before
            failures = stats.failures
            states = [t.by_name[target.name].state for _, t in events]
            changes = sum(1 for a, b in itertools.pairwise(states) if a is not b)
            assert checks >= 15, checks
            assert failures >= 4, failures  # the link really failed checks ...
            assert changes <= 2, states  # ... yet the state changed at most twice (out, maybe back)
            assert states[-1] is not NodeState.ONLINE  # intermittent: still kept out at the end
            # Steady again: back ONLINE after successes_to_online good checks (plus the flap window).
            link.up()
            back = time.monotonic() + 10
            while time.monotonic() < back and not monitor.topology.by_name[target.name].online:
                await asyncio.sleep(0.05)
            assert monitor.topology.by_name[target.name].online
        finally:
            await monitor.stop()
