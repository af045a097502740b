"""observability.metrics and admin.http over a hand-built ProxyApp-like object (no servers needed)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from rwproxy import native
from rwproxy.admin.http import readiness, start_admin_http, status
from rwproxy.admin.ports import AdminHost
from rwproxy.backend.pool import PoolStats
from rwproxy.config import Config, parse_config
from rwproxy.coordination.coordinator import Coordinator
from rwproxy.discovery.wiring import AwsParts
from rwproxy.failover.controller import FailoverController, SwitchoverError
from rwproxy.frontend.unreachable import ConnectFailures
from rwproxy.observability.digests import DigestTable
from rwproxy.observability.latency import LatencyHistogram
from rwproxy.observability.metrics import RwproxyCollector, build_registry
from rwproxy.observability.stats import ProxyStats
from rwproxy.reload import ReloadError, ReloadResult
from rwproxy.router.policy import RouteReason
from rwproxy.router.routing_state import RoutingState
from rwproxy.topology.model import Node, NodeState, Role, Topology
from tests.support.builders import config_text, node, primary, server

CONFIG = config_text(servers=[server("db1", "10.0.0.1", role="primary"), server("db2", "10.0.0.2")])


class FakePool:
    def __init__(self, idle: dict[str, int], open_: dict[str, int]) -> None:
        self.stats = PoolStats(opened=7, closed=3, reused=40, connect_errors=2, reset_failures=1)
        self._idle = idle
        self._open = open_

    def idle_count(self, node_name: str | None = None) -> int:
        return sum(self._idle.values()) if node_name is None else self._idle.get(node_name, 0)

    def open_count(self, node_name: str) -> int:
        return self._open.get(node_name, 0)

    def parked_count(self, node_name: str | None = None) -> int:
        return 0


@dataclass
class FakeClassifier:
    fast_path: int = 120
    cache_hits: int = 30
    cache_misses: int = 4
    parser_used: int = 2
    unparseable: int = 1
    internal_errors: int = 0


@dataclass
class FakeApp:
    """The parts of a ProxyApp the admin HTTP interface and the collectors read: an ``AdminHost``
    (mypy checks it: this file is in mypy's files, and every call below passes a FakeApp)."""

    config: Config
    stats: ProxyStats
    pool: FakePool
    topology: Topology
    server_version: str = "10.11.6-MariaDB"
    classifier: FakeClassifier = field(default_factory=FakeClassifier)
    sessions: dict[int, object] = field(default_factory=lambda: {1: object(), 2: object(), 3: object()})
    drained: frozenset[str] = frozenset()
    digests: DigestTable | None = None
    latency: LatencyHistogram | None = None
    connect_failures: ConnectFailures = field(default_factory=ConnectFailures)
    failover: FailoverController | None = None
    coordination: Coordinator | None = None
    drill_results: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def routing(self) -> RoutingState:
        return RoutingState.from_config(self.config.routing)

    @property
    def aws(self) -> AwsParts:
        return AwsParts(self.config, None)

    async def switchover(self, to: str | None = None) -> dict[str, Any]:
        raise SwitchoverError("no failover in this fake")

    async def reload_config(self) -> ReloadResult:
        raise ReloadError("no config file in this fake")


def make_app(nodes: tuple[Node, ...] | None = None) -> FakeApp:
    if nodes is None:
        nodes = (
            primary(),
            node("db2", weight=2, lag=1.5),
            node("db3", state=NodeState.SHUNNED, lag=None),
            node("db4", state=NodeState.OFFLINE, lag=math.nan),
        )
    stats = ProxyStats(
        refused_connections=4,
        idle_closed=5,
        protocol_errors=6,
        replica_fallbacks=8,
        replay_failures=9,
        auth_failures=10,
    )
    stats.routes[("db2", RouteReason.READ)] = 100
    stats.routes[("db3", RouteReason.READ)] = 50
    stats.routes[("db1", RouteReason.STATEMENT)] = 20
    stats.routes[("db1", RouteReason.IN_TRANSACTION)] = 3
    stats.routes[("-", RouteReason.NO_PRIMARY)] = 1
    stats.errors[1062] = 2
    stats.errors[1146] = 1
    stats.pins["TEMP_TABLE"] = 11
    return FakeApp(
        config=parse_config(CONFIG),
        stats=stats,
        pool=FakePool(idle={"db1": 2, "db2": 1}, open_={"db1": 5, "db2": 1}),
        topology=Topology(nodes=nodes, version=17),
    )


_CHECKED: type[AdminHost] = FakeApp  # the fake is a structural AdminHost (mypy)


def scrape(app: FakeApp) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """name + sorted labels -> value, from the text exposition of the app's private registry."""
    text = generate_latest(build_registry(app, process=False)).decode()
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def families(app: FakeApp) -> dict[str, Any]:
    text = generate_latest(build_registry(app, process=False)).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_client_and_error_counters() -> None:
    m = scrape(make_app())
    assert m[("rwproxy_client_connections", ())] == 3
    assert m[("rwproxy_client_connections_refused_total", (("reason", "too_many"),))] == 4
    assert m[("rwproxy_client_connections_refused_total", (("reason", "auth_failed"),))] == 10
    assert m[("rwproxy_client_idle_closed_total", ())] == 5
    assert m[("rwproxy_protocol_errors_total", ())] == 6
    assert m[("rwproxy_replica_fallbacks_total", ())] == 8
    assert m[("rwproxy_replay_failures_total", ())] == 9
    assert m[("rwproxy_errors_total", (("code", "1062"),))] == 2
    assert m[("rwproxy_errors_total", (("code", "1146"),))] == 1
    assert m[("rwproxy_routing_pins_total", (("reason", "temp_table"),))] == 11


def test_universal_position_counters() -> None:
    app = make_app()
    app.stats.universal_reads, app.stats.universal_position_queries = 40, 12
    app.stats.universal_position_failures = 1
    m = scrape(app)
    assert m[("rwproxy_universal_reads_total", ())] == 40
    assert m[("rwproxy_universal_position_queries_total", ())] == 12
    assert m[("rwproxy_universal_position_failures_total", ())] == 1


def test_queries_by_node_and_route_reason() -> None:
    m = scrape(make_app())
    queries = {labels: v for (name, labels), v in m.items() if name == "rwproxy_queries_total"}
    assert queries == {
        (("node", "db2"), ("route_reason", "read")): 100,
        (("node", "db3"), ("route_reason", "read")): 50,
        (("node", "db1"), ("route_reason", "statement")): 20,
        (("node", "db1"), ("route_reason", "in_transaction")): 3,
        (("node", "-"), ("route_reason", "no_primary")): 1,
    }


def test_backend_pool_metrics() -> None:
    m = scrape(make_app())
    conns = {labels: v for (name, labels), v in m.items() if name == "rwproxy_backend_connections"}
    assert conns[(("node", "db1"), ("state", "idle"))] == 2
    assert conns[(("node", "db1"), ("state", "in_use"))] == 3
    assert conns[(("node", "db2"), ("state", "idle"))] == 1
    assert conns[(("node", "db2"), ("state", "in_use"))] == 0
    assert conns[(("node", "db4"), ("state", "in_use"))] == 0
    assert m[("rwproxy_backend_connections_opened_total", ())] == 7
    assert m[("rwproxy_backend_connections_closed_total", ())] == 3
    assert m[("rwproxy_backend_connections_reused_total", ())] == 40
    assert m[("rwproxy_backend_connect_errors_total", ())] == 2
    assert m[("rwproxy_backend_reset_failures_total", ())] == 1


def test_server_up_and_lag_only_when_known() -> None:
    m = scrape(make_app())
    up = {labels: v for (name, labels), v in m.items() if name == "rwproxy_server_up"}
    assert up == {
        (("node", "db1"), ("role", "primary")): 1,
        (("node", "db2"), ("role", "replica")): 1,
        (("node", "db3"), ("role", "replica")): 0,
        (("node", "db4"), ("role", "replica")): 0,
    }
    lag = {labels: v for (name, labels), v in m.items() if name == "rwproxy_server_replication_lag_seconds"}
    # db1: primary (no lag); db3: unknown (None); db4: NaN. Neither is exported, least of all as 0.
    assert lag == {(("node", "db2"),): 1.5}
    assert m[("rwproxy_topology_version", ())] == 17


def test_classifier_paths() -> None:
    m = scrape(make_app())
    paths = {dict(labels)["path"]: v for (name, labels), v in m.items() if name == "rwproxy_classifier_total"}
    assert paths == {"fast": 120, "cache_hit": 30, "cache_miss": 4, "parser": 2, "unparseable": 1}
    assert m[("rwproxy_classifier_internal_errors_total", ())] == 0


def test_family_types_and_names_follow_conventions() -> None:
    fams = families(make_app())
    for name, family in fams.items():
        assert name.startswith("rwproxy_"), name
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), name
    assert fams["rwproxy_queries"].type == "counter"
    assert fams["rwproxy_client_connections"].type == "gauge"
    assert fams["rwproxy_backend_connections"].type == "gauge"
    assert fams["rwproxy_server_replication_lag_seconds"].type == "gauge"
    labels = fams["rwproxy_build_info"].samples[0].labels
    assert labels["version"] and labels["hot_path"] == native.status().label


def test_counters_are_read_at_scrape_time() -> None:
    app = make_app()
    registry = build_registry(app, process=False)
    before = registry.get_sample_value("rwproxy_queries_total", {"node": "db2", "route_reason": "read"})
    app.stats.routes[("db2", RouteReason.READ)] += 5
    app.classifier.fast_path += 5
    after = registry.get_sample_value("rwproxy_queries_total", {"node": "db2", "route_reason": "read"})
    assert (before, after) == (100, 105)
    assert registry.get_sample_value("rwproxy_classifier_total", {"path": "fast"}) == 125


def test_registry_is_private() -> None:
    app = make_app()
    registry = build_registry(app)
    assert registry is not REGISTRY
    assert REGISTRY.get_sample_value("rwproxy_client_connections") is None
    assert registry.get_sample_value("process_open_fds") is not None  # process collector included
    # describe() names every family: registering a second collector with the same names fails.
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(RwproxyCollector(app))


def test_scrape_cost_with_1000_routes_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    nodes = tuple(node(f"db{i}", Role.REPLICA if i else Role.PRIMARY, host=f"10.0.0.{i}") for i in range(80))
    app = make_app(nodes)
    app.stats = ProxyStats()
    reasons = list(RouteReason)
    for i in range(1000):
        app.stats.routes[(f"db{i % 80}", reasons[(i // 80) % len(reasons)])] = i
        app.stats.errors[1000 + i] = i
    assert (len(app.stats.routes), len(app.stats.errors)) == (1000, 1000)  # (i % 80, i // 80) is unique
    registry = build_registry(app, process=False)
    generate_latest(registry)
    runs = 20
    start = time.perf_counter()
    for _ in range(runs):
        text = generate_latest(registry)
    per_scrape = (time.perf_counter() - start) / runs
    samples = sum(len(f.samples) for f in text_string_to_metric_families(text.decode()))
    with capsys.disabled():
        print(
            f"\nscrape: {len(app.stats.routes)} route keys, {len(app.stats.errors)} error codes, "
            f"{samples} samples, {len(text)} bytes: {per_scrape * 1e3:.2f} ms"
        )
    assert per_scrape < 0.25  # generous: a scrape blocks the proxy's loop for this long


# --------------------------------------------------------------------------------------------------
# Admin documents and the HTTP server


def test_readiness() -> None:
    primary = Node("db1", "h1", 3306, Role.PRIMARY)
    replica = Node("db2", "h2", 3306, Role.REPLICA)
    off = NodeState.OFFLINE
    assert readiness(Topology((primary, replica)))[0]
    assert readiness(Topology((primary, Node("db2", "h2", 3306, Role.REPLICA, state=off))))[0]
    ready, body = readiness(Topology((Node("db1", "h1", 3306, Role.PRIMARY, state=off), replica)))
    assert ready and body["primary"] is None and body["online_replicas"] == ["db2"]
    ready, body = readiness(
        Topology(
            (
                Node("db1", "h1", 3306, Role.PRIMARY, state=off),
                Node("db2", "h2", 3306, Role.REPLICA, state=off),
            )
        )
    )
    assert not ready and body["reason"] == "primary db1 is offline and no replica is ONLINE"
    ready, body = readiness(Topology((Node("db2", "h2", 3306, Role.REPLICA, state=NodeState.SHUNNED),)))
    assert not ready and "no primary is known" in body["reason"]


def test_status_document() -> None:
    doc = status(make_app(), started=time.monotonic() - 2)
    assert doc["sessions"] == 3 and doc["topology_version"] == 17 and doc["ready"] is True
    assert doc["version"] and doc["server_version"] == "10.11.6-MariaDB"
    assert 2 <= doc["uptime_seconds"] < 60
    by_name = {n["name"]: n for n in doc["nodes"]}
    assert by_name["db1"] == {
        "name": "db1",
        "host": "10.0.0.1",
        "port": 3306,
        "role": "primary",
        "state": "online",
        "reason": None,
        "lag_seconds": None,
        "weight": 1,
        "pool": {"idle": 2, "in_use": 3, "lendable": 0},
        "drained": False,
        "queries": 23,  # its rwproxy_queries_total, summed over route reasons
        "connections": 5,
        "client_sessions": 0,
    }
    assert by_name["db2"]["queries"] == 100 and by_name["db4"]["queries"] == 0
    assert by_name["db2"]["lag_seconds"] == 1.5 and by_name["db2"]["weight"] == 2
    assert by_name["db3"]["state"] == "shunned" and by_name["db3"]["lag_seconds"] is None
    assert by_name["db4"]["lag_seconds"] is None  # NaN is unknown, not 0


async def test_admin_http_endpoints() -> None:
    app = make_app()
    handle = await start_admin_http(app, listen="127.0.0.1:0")
    assert handle is not None and handle.host == "127.0.0.1" and handle.port > 0
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{handle.url}/metrics") as r:
                assert r.status == 200
                assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                text = await r.text()
            names = {f.name for f in text_string_to_metric_families(text)}
            assert {"rwproxy_queries", "rwproxy_server_up", "process_cpu_seconds"} <= names
            om = "application/openmetrics-text; version=1.0.0"
            async with http.get(f"{handle.url}/metrics", headers={"Accept": om}) as r:
                assert r.headers["Content-Type"].startswith("application/openmetrics-text")
                assert (await r.text()).endswith("# EOF\n")
            async with http.get(f"{handle.url}/healthz") as r:
                assert (r.status, await r.text()) == (200, "ok\n")
            async with http.get(f"{handle.url}/readyz") as r:
                assert r.status == 200 and (await r.json())["ready"] is True
            async with http.get(f"{handle.url}/status") as r:
                assert r.status == 200 and len((await r.json())["nodes"]) == 4
            app.topology = Topology(
                (Node("db1", "h1", 3306, Role.PRIMARY, state=NodeState.OFFLINE),), version=18
            )
            async with http.get(f"{handle.url}/readyz") as r:
                body = await r.json()
                assert r.status == 503 and body["ready"] is False and "db1 is offline" in body["reason"]
            async with http.get(f"{handle.url}/nope") as r:
                assert r.status == 404
            async with http.post(f"{handle.url}/metrics") as r:
                assert r.status == 405
    finally:
        await handle.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as http, http.get(f"{handle.url}/healthz"):
            pass


async def test_admin_http_disabled_and_config_default() -> None:
    app = make_app()
    assert await start_admin_http(app, listen="") is None
    assert app.config.admin.http_listen == "127.0.0.1:9306"
    app.config = parse_config(CONFIG + '[admin]\nhttp_listen = ""\n')
    assert await start_admin_http(app) is None
    app.config = parse_config(CONFIG + '[admin]\nhttp_listen = "127.0.0.1:0"\n')
    handle = await start_admin_http(app)
    assert handle is not None and handle.port > 0
    await handle.stop()
