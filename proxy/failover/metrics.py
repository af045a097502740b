"""Prometheus families for failover, switchover and write buffering, read at scrape time from
``FailoverController.stats`` and its ``WriteBuffer`` (nothing runs per query)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from proxy.failover.controller import FailoverController

__all__ = ["FailoverCollector", "failover_status"]


class FailoverCollector(Collector):
    def __init__(self, app: Any) -> None:
        self.app = app  # proxy.app.ProxyApp: its ``failover`` may be None

    def collect(self) -> list[Metric]:
        fc: FailoverController | None = getattr(self.app, "failover", None)
        failovers = CounterMetricFamily(
            "rwproxy_failovers", "Automatic failovers run by rwproxy, by result", labels=["result"]
        )
        switchovers = CounterMetricFamily(
            "rwproxy_switchovers", "Planned switchovers, by result", labels=["result"]
        )
        duration = GaugeMetricFamily(
            "rwproxy_last_failover_duration_seconds",
            "Duration of the last failover or switchover (writes buffered meanwhile); NaN: none yet",
        )
        buffered = CounterMetricFamily(
            "rwproxy_buffered_statements",
            "Statements that waited for a primary (failover/switchover), by outcome",
            labels=["outcome"],
        )
        waiting = GaugeMetricFamily(
            "rwproxy_buffered_statements_waiting", "Statements waiting for a primary now"
        )
        in_progress = GaugeMetricFamily(
            "rwproxy_failover_in_progress", "1 while a failover or switchover runs"
        )
        fenced = GaugeMetricFamily(
            "rwproxy_server_fenced",
            "1 for a former primary kept read-only and out of routing",
            labels=["server"],
        )
        semi = GaugeMetricFamily(
            "rwproxy_primary_semi_sync_clients",
            "Replicas acknowledging the primary's semi-sync writes (-1: semi-sync off or unknown)",
        )
        for result in ("ok", "failed"):
            failovers.add_metric([result], fc.stats.failovers[result] if fc else 0)
            switchovers.add_metric([result], fc.stats.switchovers[result] if fc else 0)
        last = fc.stats.last_duration_seconds if fc else None
        duration.add_metric([], float("nan") if last is None else last)
        stats = fc.buffer.stats if fc else None
        buffered.add_metric(["released"], stats.released if stats else 0)
        buffered.add_metric(["timed_out"], stats.timed_out if stats else 0)
        waiting.add_metric([], stats.waiting if stats else 0)
        in_progress.add_metric([], 1 if fc is not None and fc.in_progress else 0)
        for name in fc.stats.fenced if fc else {}:
            fenced.add_metric([name], 1)
        semi_sync = fc.stats.semi_sync if fc else {}
        clients = semi_sync.get("clients") if semi_sync.get("enabled") else None
        semi.add_metric([], -1 if clients is None else clients)
        return [failovers, switchovers, duration, buffered, waiting, in_progress, fenced, semi]


def failover_status(fc: FailoverController | None) -> dict[str, Any] | None:
    """The ``failover`` block of /status (None without a controller)."""
    if fc is None:
        return None
    return {
        "mode": fc.mode,
        "in_progress": fc.in_progress,
        "buffering": fc.buffer.active,
        "buffered_waiting": fc.buffer.stats.waiting,
        "failovers": dict(fc.stats.failovers),
        "switchovers": dict(fc.stats.switchovers),
        "last": fc.stats.last,
        "fenced": dict(fc.stats.fenced),
        "semi_sync": fc.stats.semi_sync,
    }
