"""Prometheus families for failover, switchover and write buffering, read at scrape time from
``FailoverController.stats`` and its ``WriteBuffer`` (nothing runs per query)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from rwproxy.failover.controller import FailoverController

__all__ = ["FailoverCollector", "FailoverMetricsSource", "drill_summary", "failover_status"]

_DRILL_SCENARIOS = ("failover", "switchover", "replica-loss", "lag")


class FailoverMetricsSource(Protocol):
    """What the collector reads (``rwproxy.app.ProxyApp``; ``failover`` None without failover)."""

    @property
    def failover(self) -> FailoverController | None: ...

    @property
    def drill_results(self) -> dict[str, dict[str, Any]]: ...


class FailoverCollector(Collector):
    def __init__(self, app: FailoverMetricsSource) -> None:
        self.app = app

    def collect(self) -> list[Metric]:
        fc = self.app.failover
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
        changes = CounterMetricFamily(
            "rwproxy_semi_sync_changes",
            "Semi-sync settings changed by rwproxy at a role change, by server, side (primary: "
            "master/source side, replica) and action (enabled/disabled)",
            labels=["server", "side", "action"],
        )
        for (server, side, action), n in sorted(fc.semi.changes.items()) if fc else ():
            changes.add_metric([server, side, action], n)
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
        return [
            failovers,
            switchovers,
            duration,
            buffered,
            waiting,
            in_progress,
            fenced,
            semi,
            changes,
            *self._drills(),
        ]

    def _drills(self) -> list[Metric]:
        """The last ``rwproxy drill`` of each scenario that reported back (``POST /drills``)."""
        results = self.app.drill_results
        specs = (
            ("rwproxy_drill_lost_acknowledged_writes", "Acknowledged writes missing after the last drill"),
            ("rwproxy_drill_duplicate_writes", "Writes applied twice in the last drill"),
            (
                "rwproxy_drill_write_outage_seconds",
                "Longest time without an acknowledged write in the last drill",
            ),
            ("rwproxy_drill_read_availability_ratio", "Reads answered / attempted in the last drill"),
            (
                "rwproxy_drill_last_run_timestamp_seconds",
                "When the last drill of the scenario finished (Unix time)",
            ),
        )
        fams = {name: GaugeMetricFamily(name, text, labels=["scenario"]) for name, text in specs}
        for scenario, r in sorted(results.items()):
            for name, key in (
                ("rwproxy_drill_lost_acknowledged_writes", "lost_acknowledged"),
                ("rwproxy_drill_duplicate_writes", "duplicates"),
                ("rwproxy_drill_write_outage_seconds", "write_outage_seconds"),
                ("rwproxy_drill_read_availability_ratio", "read_availability"),
                ("rwproxy_drill_last_run_timestamp_seconds", "finished_at"),
            ):
                value = r.get(key)
                fams[name].add_metric([scenario], float("nan") if value is None else float(value))
        return list(fams.values())


def drill_summary(body: Any) -> dict[str, Any]:
    """Validate what a drill posts: a scenario name from a fixed set (bounded label) and numbers."""
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    scenario = body["scenario"]
    if scenario not in _DRILL_SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}")
    out: dict[str, Any] = {"scenario": scenario}
    for key in (
        "lost_acknowledged",
        "duplicates",
        "write_outage_seconds",
        "read_availability",
        "finished_at",
    ):
        value = body.get(key)
        if value is not None and not isinstance(value, int | float):
            raise ValueError(f"{key} must be a number")
        out[key] = value
    return out


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
