"""Prometheus families for the etcd coordination, read at scrape time from the ``Coordinator``.

``rwproxy_coordination_is_leader`` and ``rwproxy_coordination_etcd_up`` are what the dashboards
and alerts use (deploy/); without ``[coordination]`` nothing is exported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from rwproxy.coordination.coordinator import Coordinator

__all__ = ["CoordinationCollector", "CoordinationMetricsSource"]


class CoordinationMetricsSource(Protocol):
    """``rwproxy.app.ProxyApp``: its ``coordination`` is None without ``[coordination]``."""

    @property
    def coordination(self) -> Coordinator | None: ...


class CoordinationCollector(Collector):
    def __init__(self, app: CoordinationMetricsSource) -> None:
        self.app = app

    def collect(self) -> list[Metric]:
        coordination = self.app.coordination
        if coordination is None:
            return []
        e = coordination.elector
        leader = GaugeMetricFamily(
            "rwproxy_coordination_is_leader",
            "1 on the instance that leads (may promote, fence, switch over); 0 on the others",
        )
        leader.add_metric([], 1.0 if e.is_leader else 0.0)
        up = GaugeMetricFamily(
            "rwproxy_coordination_etcd_up",
            "1 while etcd answers; 0: this instance observes only (promotes nothing)",
        )
        up.add_metric([], 1.0 if e.etcd_up else 0.0)
        epoch = GaugeMetricFamily(
            "rwproxy_coordination_epoch",
            "Epoch of the primary published in etcd (bumped on every promotion); -1: none read",
        )
        epoch.add_metric([], float(e.published.epoch) if e.published else -1.0)
        won = CounterMetricFamily(
            "rwproxy_coordination_elections_won", "Times this instance became the leader"
        )
        won.add_metric([], e.elections_won)
        lost = CounterMetricFamily(
            "rwproxy_coordination_leadership_lost",
            "Times this instance lost the leadership (lease expired, key taken, etcd unreachable)",
        )
        lost.add_metric([], e.leadership_lost)
        return [leader, up, epoch, won, lost]
