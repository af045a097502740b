"""Instance-wide metrics with worker processes: the supervisor's /metrics keeps every rwproxy_* name
meaning the whole instance.

Counters and gauges of the serving side (queries, connections, errors, pools, latency histogram,
classifier ...) are the sum of the workers' (``merge_families``, pure). What the supervisor alone
knows (server state and lag, topology version, reloads, build info) is its own. Per worker, with a
``worker`` label: ``rwproxy_worker_up``, ``rwproxy_worker_client_connections``,
``rwproxy_worker_cpu_seconds_total`` and ``rwproxy_worker_restarts_total``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from rwproxy.workers.messages import Family

__all__ = [
    "SUPERVISOR_FAMILIES",
    "InstanceCollector",
    "build_instance_registry",
    "instance_families",
    "merge_families",
    "retire",
]

#: Families taken from the supervisor, not summed over the workers.
SUPERVISOR_FAMILIES = frozenset(
    {
        "rwproxy_build_info",
        "rwproxy_server_up",
        "rwproxy_server_replication_lag_seconds",
        "rwproxy_server_state",
        "rwproxy_server_state_reason",
        "rwproxy_topology_version",
        "rwproxy_config_reloads",
        "rwproxy_config_last_reload_successful",
    }
)


def merge_families(per_worker: Iterable[Sequence[Family]]) -> dict[str, Family]:
    """Sum samples with the same name and labels over the workers (first-seen order kept)."""
    merged: dict[str, tuple[str, str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]] = {}
    for families in per_worker:
        for name, kind, doc, samples in families:
            entry = merged.get(name)
            if entry is None:
                entry = merged[name] = (kind, doc, {})
            values = entry[2]
            for sample_name, labels, value in samples:
                key = (sample_name, tuple(labels.items()))
                values[key] = values.get(key, 0.0) + value
    return {
        name: (name, kind, doc, [(s, dict(labels), v) for (s, labels), v in values.items()])
        for name, (kind, doc, values) in merged.items()
    }


def retire(retired: Sequence[Family], last: Sequence[Family]) -> list[Family]:
    """A worker process ended: keep its counters and histograms (not its gauges) in ``retired``, so
    that the instance's totals stay monotonic across its restart (Prometheus counter semantics)."""
    kept = [f for f in last if f[1] in ("counter", "histogram")]
    return list(merge_families([retired, kept]).values())


def instance_families(slots: Iterable[Any]) -> Iterator[Sequence[Family]]:
    """Per worker slot: its retired counters and its live process's families."""
    for w in slots:
        if w.retired:
            yield w.retired
        if w.families:
            yield w.families


def _metric(family: Family) -> Metric:
    name, kind, doc, samples = family
    metric = Metric(name, doc, kind)
    for sample_name, labels, value in samples:
        metric.add_sample(sample_name, labels, value)
    return metric


class InstanceCollector(Collector):
    def __init__(self, app: Any, pool: Any) -> None:  # pool: supervisor.WorkerPool (no import cycle)
        from rwproxy.observability.metrics import RwproxyCollector

        self.own = RwproxyCollector(app)
        self.pool = pool

    def collect(self) -> Iterator[Metric]:
        merged = merge_families(instance_families(self.pool.slots))
        for metric in self.own.collect():
            family = merged.get(metric.name)
            if metric.name in SUPERVISOR_FAMILIES or family is None:
                yield metric
            else:
                yield _metric(family)
        up = GaugeMetricFamily("rwproxy_worker_up", "1 while the worker process serves", labels=["worker"])
        sessions = GaugeMetricFamily(
            "rwproxy_worker_client_connections", "Client sessions open in the worker", labels=["worker"]
        )
        cpu = CounterMetricFamily(
            "rwproxy_worker_cpu_seconds", "User + system CPU time of the worker process", labels=["worker"]
        )
        restarts = CounterMetricFamily(
            "rwproxy_worker_restarts", "Times the supervisor restarted the worker", labels=["worker"]
        )
        for w in self.pool.slots:
            label = [str(w.index)]
            up.add_metric(label, 1 if w.ready else 0)
            sessions.add_metric(label, w.sessions)
            cpu.add_metric(label, w.cpu_seconds)
            restarts.add_metric(label, w.restarts)
        count = GaugeMetricFamily("rwproxy_workers", "Worker processes configured ([proxy] workers)")
        count.add_metric([], len(self.pool.slots))
        yield from (up, sessions, cpu, restarts, count)


def build_instance_registry(app: Any, pool: Any) -> CollectorRegistry:
    """The supervisor's /metrics registry: as ``rwproxy.admin.http`` builds it, instance-wide."""
    from prometheus_client import PlatformCollector, ProcessCollector

    from rwproxy.admin.http import AdminCollector
    from rwproxy.coordination.metrics import CoordinationCollector
    from rwproxy.failover.metrics import FailoverCollector

    registry = CollectorRegistry()
    registry.register(InstanceCollector(app, pool))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    registry.register(AdminCollector(app))
    registry.register(FailoverCollector(app))
    registry.register(CoordinationCollector(app))
    return registry
