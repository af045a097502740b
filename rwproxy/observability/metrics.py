"""Prometheus metrics, read at scrape time from the counters rwproxy already keeps.

Nothing here runs per query: the hot path keeps incrementing plain ints and ``Counter`` entries
(``ProxyStats``, ``PoolStats``, the ``Classifier`` counters) and the per-bucket int lists of
``rwproxy.observability.latency`` (query latency by route); :class:`RwproxyCollector` reads them when
``/metrics`` is scraped and yields metric families. ``build_registry(app)`` gives a private
``CollectorRegistry`` (never the global one) holding that collector plus the process and platform
collectors of prometheus-client.

Label values are bounded: server names from the config, enum names, MySQL error codes. SQL text and
client addresses are never labels.

Call ``collect`` on the proxy's event-loop thread (``rwproxy.admin.http`` does): the counters are
mutated there without locks. From another thread each counter table is still copied in one step,
so a scrape sees a consistent table, only possibly a few statements old.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from rwproxy import native

if TYPE_CHECKING:
    from rwproxy.frontend.unreachable import ConnectFailures
    from rwproxy.observability.latency import LatencyHistogram
    from rwproxy.observability.stats import ProxyStats
    from rwproxy.router.policy import RouteReason
    from rwproxy.topology.model import Node, Topology

__all__ = [
    "MetricsSource",
    "RwproxyCollector",
    "build_registry",
    "node_lag",
    "pool_counts",
    "rwproxy_version",
]


class _PoolStatsLike(Protocol):
    opened: int
    closed: int
    reused: int
    connect_errors: int
    reset_failures: int
    waits: int
    wait_timeouts: int


class _PoolLike(Protocol):
    @property
    def stats(self) -> _PoolStatsLike: ...

    def idle_count(self, node_name: str | None = None) -> int: ...

    def open_count(self, node_name: str) -> int: ...

    def parked_count(self, node_name: str) -> int: ...


class _ClassifierLike(Protocol):
    fast_path: int
    cache_hits: int
    cache_misses: int
    parser_used: int
    unparseable: int
    internal_errors: int


class MetricsSource(Protocol):
    """What the collector reads: the parts of ``rwproxy.app.ProxyApp`` it needs."""

    @property
    def stats(self) -> ProxyStats: ...

    @property
    def pool(self) -> _PoolLike: ...

    @property
    def classifier(self) -> _ClassifierLike: ...

    @property
    def topology(self) -> Topology: ...

    @property
    def sessions(self) -> Mapping[int, Any]: ...

    @property
    def connect_failures(self) -> ConnectFailures: ...

    @property
    def latency(self) -> LatencyHistogram | None:
        """None: [admin] latency_histogram = false."""
        ...


def rwproxy_version() -> str:
    try:
        return metadata.version("rwproxy")
    except metadata.PackageNotFoundError:
        return "unknown"


def pool_counts(app: MetricsSource, node: Node) -> tuple[int, int]:
    """(idle, in_use) backend connections of ``node``. ``in_use`` counts connections checked out by
    sessions and connections being opened (the pool reserves a slot before connecting)."""
    idle = app.pool.idle_count(node.name)
    return idle, max(app.pool.open_count(node.name) - idle, 0)


def node_lag(node: Node) -> float | None:
    """Seconds behind the primary, or None while unknown (never NaN, never a made-up 0)."""
    lag = node.lag_seconds
    if lag is None or not math.isfinite(lag):
        return None
    return float(lag)


# (name without _total, type, help, label names)
_COUNTER = "counter"
_GAUGE = "gauge"
_FAMILIES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    (
        "rwproxy_build_info",
        _GAUGE,
        "rwproxy version and hot path (compiled: the mypyc build, python: pure Python); always 1.",
        ("version", "hot_path"),
    ),
    ("rwproxy_client_connections", _GAUGE, "Client connections open now (handshaking included).", ()),
    (
        "rwproxy_client_connections_refused",
        _COUNTER,
        "Client connections refused: too_many (proxy.max_connections), auth_failed.",
        ("reason",),
    ),
    (
        "rwproxy_client_connections_accepted",
        _COUNTER,
        "Client connections accepted (refused ones included).",
        (),
    ),
    ("rwproxy_client_idle_closed", _COUNTER, "Client connections closed for idleness.", ()),
    (
        "rwproxy_queries",
        _COUNTER,
        'Statements routed, by the server chosen (node="-" when none) and the reason.',
        ("node", "route_reason"),
    ),
    (
        "rwproxy_statements",
        _COUNTER,
        "Text-protocol statements (COM_QUERY) by kind: select, show, insert, update, set, begin ...",
        ("kind",),
    ),
    (
        "rwproxy_routing_pins",
        _COUNTER,
        "Statements kept on the primary because the session is pinned, by pin reason.",
        ("reason",),
    ),
    (
        "rwproxy_replica_fallbacks",
        _COUNTER,
        "Reads run on another replica or the primary because the chosen replica failed them.",
        (),
    ),
    (
        "rwproxy_replay_failures",
        _COUNTER,
        "Session-state replays (SET, USE, ...) that failed on a backend connection.",
        (),
    ),
    (
        "rwproxy_errors",
        _COUNTER,
        "Errors returned to clients (from servers or rwproxy), by MySQL error code.",
        ("code",),
    ),
    ("rwproxy_protocol_errors", _COUNTER, "Client sessions closed for a protocol error.", ()),
    (
        "rwproxy_replica_read_timeouts",
        _COUNTER,
        "Replica reads stopped by routing.replica_read_timeout_seconds.",
        (),
    ),
    (
        "rwproxy_backend_connect_failures",
        _COUNTER,
        "Connections sessions could not open to a server (connect errors; logged once per episode).",
        ("server",),
    ),
    (
        "rwproxy_backend_connections",
        _GAUGE,
        "Pooled backend connections by server; in_use includes connections being opened.",
        ("node", "state"),
    ),
    ("rwproxy_backend_connections_opened", _COUNTER, "Backend connections opened.", ()),
    ("rwproxy_backend_connections_closed", _COUNTER, "Backend connections closed.", ()),
    ("rwproxy_backend_connections_reused", _COUNTER, "Backend connections taken from the pool.", ()),
    ("rwproxy_backend_connect_errors", _COUNTER, "Failed attempts to open a backend connection.", ()),
    (
        "rwproxy_backend_reset_failures",
        _COUNTER,
        "Backend connections that failed COM_RESET_CONNECTION on release.",
        (),
    ),
    ("rwproxy_server_up", _GAUGE, "1 if the server is ONLINE in the topology, else 0.", ("node", "role")),
    (
        "rwproxy_server_state",
        _GAUGE,
        "Server state, one-hot: 1 for the state the server is in (online, shunned, offline), else 0.",
        ("node", "state"),
    ),
    (
        "rwproxy_server_state_reason",
        _GAUGE,
        "1 per server, labelled with why it is not ONLINE (lag_over_max, unreachable, ...; none when it is).",
        ("node", "reason"),
    ),
    (
        "rwproxy_server_replication_lag_seconds",
        _GAUGE,
        "Replication lag of a replica; absent while unknown.",
        ("node",),
    ),
    ("rwproxy_topology_version", _GAUGE, "Version of the current topology snapshot.", ()),
    (
        "rwproxy_causal_waits",
        _COUNTER,
        "read_your_writes waits on a replica for the session's last write, by outcome: applied, "
        "timeout, error (the last two then read on the primary).",
        ("outcome",),
    ),
    (
        "rwproxy_universal_reads",
        _COUNTER,
        "universal-consistency reads that waited for the primary's position.",
        (),
    ),
    (
        "rwproxy_universal_position_queries",
        _COUNTER,
        "Position queries sent to the primary for universal reads (one serves a batch of reads).",
        (),
    ),
    (
        "rwproxy_universal_position_failures",
        _COUNTER,
        "Position queries that failed or timed out (those reads then ran on the primary).",
        (),
    ),
    (
        "rwproxy_config_reloads",
        _COUNTER,
        "Config reloads (SIGHUP, RELOAD CONFIG, POST /reload) by result: ok, error (rejected).",
        ("result",),
    ),
    ("rwproxy_config_last_reload_successful", _GAUGE, "1 unless the last config reload failed.", ()),
    (
        "rwproxy_classifier",
        _COUNTER,
        "Classifier outcomes by path. Not a partition: parser is a subset of cache_miss, and "
        "unparseable overlaps the others.",
        ("path",),
    ),
    (
        "rwproxy_classifier_internal_errors",
        _COUNTER,
        "Classifier bugs caught (the statement went to the primary as unparseable).",
        (),
    ),
    # Multiplexing and backend connection state (rwproxy.frontend.multiplex, rwproxy.frontend.backend_link).
    (
        "rwproxy_multiplex_sessions",
        _GAUGE,
        "Client sessions whose backend connections may be lent to other sessions right now.",
        (),
    ),
    (
        "rwproxy_multiplex_handoffs",
        _COUNTER,
        "Backend connections an idle session lent to another session.",
        (),
    ),
    (
        "rwproxy_multiplex_replays",
        _COUNTER,
        "Session commands replayed on a lent connection to give it the session's state "
        "(per statement: divide by the rate of rwproxy_statements_total).",
        (),
    ),
    (
        "rwproxy_multiplex_resets",
        _COUNTER,
        "Lent connections reset (COM_RESET_CONNECTION) because they held other state.",
        (),
    ),
    (
        "rwproxy_multiplex_pins",
        _COUNTER,
        "Times a session stopped lending its connections, by reason (transaction, temp_table, "
        "named_lock, user_vars, cursor, disabled, ...).",
        ("reason",),
    ),
    (
        "rwproxy_backend_connections_lendable",
        _GAUGE,
        "Backend connections parked by idle multiplexing sessions (counted as in_use too).",
        ("node",),
    ),
    (
        "rwproxy_backend_connections_replaced",
        _COUNTER,
        "Lost backend connections replaced by new ones with the session's state replayed.",
        (),
    ),
    (
        "rwproxy_backend_pool_waits",
        _COUNTER,
        "Sessions that waited for a backend connection (all pool_max_per_server in use), by outcome.",
        ("outcome",),
    ),
)


_LATENCY = "rwproxy_query_duration_seconds"
_LATENCY_HELP = (
    "Statement latency seen by rwproxy (sent to the server -> last byte of the response relayed), "
    "by route target: primary, replica. Off with [admin] latency_histogram = false."
)
_STATES = ("online", "shunned", "offline")


def _family(
    name: str, kind: str, doc: str, labels: tuple[str, ...]
) -> CounterMetricFamily | GaugeMetricFamily:
    if kind == _COUNTER:
        return CounterMetricFamily(name, doc, labels=labels)
    return GaugeMetricFamily(name, doc, labels=labels)


class RwproxyCollector(Collector):
    """Reads a running proxy's counters at scrape time. Register it in a private registry."""

    def __init__(self, app: MetricsSource) -> None:
        self.app = app
        self.version = rwproxy_version()

    def describe(self) -> Iterable[Metric]:
        return [_family(*spec) for spec in _FAMILIES] + [
            HistogramMetricFamily(_LATENCY, _LATENCY_HELP, labels=["route"])
        ]

    def collect(self) -> Iterator[Metric]:
        app = self.app
        fams = {spec[0]: _family(*spec) for spec in _FAMILIES}

        def add(name: str, value: float, *labels: str) -> None:
            fams[name].add_metric(list(labels), value)

        stats = app.stats
        add("rwproxy_build_info", 1, self.version, native.status().label)
        add("rwproxy_client_connections", len(app.sessions))
        add("rwproxy_client_connections_refused", stats.refused_connections, "too_many")
        add("rwproxy_client_connections_refused", stats.auth_failures, "auth_failed")
        add("rwproxy_client_connections_accepted", stats.client_connections)
        add("rwproxy_client_idle_closed", stats.idle_closed)
        # dict(...) copies a table in one C-level step: no Python code runs, so no thread switch.
        for (node_name, reason), n in sorted(dict(stats.routes).items(), key=_route_key):
            add("rwproxy_queries", n, node_name, reason.name.lower())
        for kind, n in sorted((k.value, v) for k, v in dict(stats.kinds).items()):
            add("rwproxy_statements", n, kind)
        for pin, n in sorted(dict(stats.pins).items()):
            add("rwproxy_routing_pins", n, pin.lower())
        add("rwproxy_replica_fallbacks", stats.replica_fallbacks)
        add("rwproxy_replay_failures", stats.replay_failures)
        for code, n in sorted(dict(stats.errors).items()):
            add("rwproxy_errors", n, str(code))
        add("rwproxy_protocol_errors", stats.protocol_errors)
        add("rwproxy_replica_read_timeouts", stats.read_timeouts)
        for server, n in sorted(dict(app.connect_failures.counts).items()):
            add("rwproxy_backend_connect_failures", n, server)

        topology = app.topology
        for node in topology.nodes:
            idle, in_use = pool_counts(app, node)
            add("rwproxy_backend_connections", idle, node.name, "idle")
            add("rwproxy_backend_connections", in_use, node.name, "in_use")
        pstats = app.pool.stats
        add("rwproxy_backend_connections_opened", pstats.opened)
        add("rwproxy_backend_connections_closed", pstats.closed)
        add("rwproxy_backend_connections_reused", pstats.reused)
        add("rwproxy_backend_connect_errors", pstats.connect_errors)
        add("rwproxy_backend_reset_failures", pstats.reset_failures)

        for node in topology.nodes:
            add("rwproxy_server_up", 1 if node.online else 0, node.name, node.role.value)
            lag = node_lag(node)
            if lag is not None:
                add("rwproxy_server_replication_lag_seconds", lag, node.name)
            for state in _STATES:
                add("rwproxy_server_state", 1 if node.state.value == state else 0, node.name, state)
            why = "none" if node.online else node.reason or "unknown"
            add("rwproxy_server_state_reason", 1, node.name, why)
        add("rwproxy_topology_version", topology.version)
        for outcome in ("applied", "timeout", "error"):
            add("rwproxy_causal_waits", stats.causal_waits.get(outcome, 0), outcome)
        add("rwproxy_universal_reads", getattr(stats, "universal_reads", 0))
        add("rwproxy_universal_position_queries", getattr(stats, "universal_position_queries", 0))
        add("rwproxy_universal_position_failures", getattr(stats, "universal_position_failures", 0))
        reloads = dict(stats.config_reloads)
        for result in ("ok", "error"):
            add("rwproxy_config_reloads", reloads.get(result, 0), result)
        add("rwproxy_config_last_reload_successful", 1 if stats.last_reload_ok else 0)

        _add_multiplex(add, app)

        c = app.classifier
        add("rwproxy_classifier", c.fast_path, "fast")
        add("rwproxy_classifier", c.cache_hits, "cache_hit")
        add("rwproxy_classifier", c.cache_misses, "cache_miss")
        add("rwproxy_classifier", c.parser_used, "parser")
        add("rwproxy_classifier", c.unparseable, "unparseable")
        add("rwproxy_classifier_internal_errors", c.internal_errors)
        metrics: list[Metric] = list(fams.values())
        latency = app.latency
        if latency is not None:
            hist = HistogramMetricFamily(_LATENCY, _LATENCY_HELP, labels=["route"])
            for route, (buckets, total) in latency.snapshot().items():
                hist.add_metric([route], [(_le(b), n) for b, n in buckets], total)
            metrics.append(hist)
        return iter(metrics)


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)


def _add_multiplex(add: Callable[..., None], app: MetricsSource) -> None:
    stats = app.stats
    sessions = list(app.sessions.values())
    lending = sum(1 for s in sessions if getattr(getattr(s, "mux", None), "bound", "") is None)
    add("rwproxy_multiplex_sessions", lending)
    add("rwproxy_multiplex_handoffs", stats.mux_handoffs)
    add("rwproxy_multiplex_replays", stats.mux_replays)
    add("rwproxy_multiplex_resets", stats.mux_resets)
    for reason, n in sorted(dict(stats.mux_pins).items()):
        add("rwproxy_multiplex_pins", n, reason)
    for node in app.topology.nodes:
        add("rwproxy_backend_connections_lendable", app.pool.parked_count(node.name), node.name)
    add("rwproxy_backend_connections_replaced", stats.backend_replaced)
    pstats = app.pool.stats
    waits = pstats.waits
    timeouts = pstats.wait_timeouts
    add("rwproxy_backend_pool_waits", waits - timeouts, "served")
    add("rwproxy_backend_pool_waits", timeouts, "timeout")


def _route_key(item: tuple[tuple[str, RouteReason], int]) -> tuple[str, str]:
    (node_name, reason), _ = item
    return node_name, reason.name


def build_registry(app: MetricsSource, *, process: bool = True) -> CollectorRegistry:
    """A private registry with the rwproxy collector (plus process_* and python_info metrics)."""
    from prometheus_client import PlatformCollector, ProcessCollector

    registry = CollectorRegistry()
    registry.register(RwproxyCollector(app))
    if process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
    return registry
