"""The latency histogram (rwproxy.observability.latency) and the metrics added with it, read through the real
collector of a ProxyApp that is not serving."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from rwproxy.app import ProxyApp
from rwproxy.config import parse_config
from rwproxy.observability.latency import BOUNDS, LatencyHistogram, RouteLatency
from rwproxy.observability.metrics import build_registry
from rwproxy.topology.model import NodeState
from tests.support.builders import config_text, node, primary, server, topology

CONFIG = config_text(
    servers=[server("db1", "10.0.0.1", role="primary"), server("db2", "10.0.0.2", role="replica")]
)


def test_buckets_are_le_and_cumulative() -> None:
    h = RouteLatency()
    for seconds in (0.0001, 0.00010001, 0.003, 99.0):
        h.observe(seconds)
    buckets, total = h.snapshot()
    le = dict(buckets)
    assert le[0.0001] == 1  # a value equal to a bound is in that bucket (le = less or equal)
    assert le[0.00025] == 2 and le[0.0025] == 2 and le[0.005] == 3
    assert le[10.0] == 3 and le[float("inf")] == 4
    assert [b for b, _ in buckets] == [*BOUNDS, float("inf")]
    assert abs(total - 99.00320001) < 1e-9


def _samples(app: ProxyApp) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(build_registry(app, process=False)).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_histogram_and_new_families_are_exported() -> None:
    app = ProxyApp(parse_config(CONFIG))
    assert isinstance(app.latency, LatencyHistogram)
    app.latency.observe(0.002, primary=True)
    app.latency.observe(0.0004, primary=False)
    app.latency.observe(0.0004, primary=False)
    app.stats.causal_waits["applied"] += 3
    app.stats.config_reloads["error"] += 1
    app.stats.last_reload_ok = False
    app.next_session_id()
    app.topology = topology(primary(), node("db2", state=NodeState.SHUNNED, reason="lag_over_max"), version=3)
    s = _samples(app)
    assert s[("rwproxy_query_duration_seconds_bucket", (("le", "0.0025"), ("route", "primary")))] == 1
    assert s[("rwproxy_query_duration_seconds_bucket", (("le", "0.001"), ("route", "primary")))] == 0
    assert s[("rwproxy_query_duration_seconds_count", (("route", "replica"),))] == 2
    assert s[("rwproxy_query_duration_seconds_bucket", (("le", "+Inf"), ("route", "replica")))] == 2
    assert s[("rwproxy_causal_waits_total", (("outcome", "applied"),))] == 3
    assert s[("rwproxy_causal_waits_total", (("outcome", "timeout"),))] == 0
    assert s[("rwproxy_config_reloads_total", (("result", "error"),))] == 1
    assert s[("rwproxy_config_last_reload_successful", ())] == 0
    assert s[("rwproxy_client_connections_accepted_total", ())] == 1
    states = {k[1]: v for k, v in s.items() if k[0] == "rwproxy_server_state"}
    assert states[(("node", "db2"), ("state", "shunned"))] == 1
    assert states[(("node", "db2"), ("state", "online"))] == 0
    assert sum(v for (node, _), v in states.items() if node == ("node", "db1")) == 1  # one-hot
    reasons = {k[1]: v for k, v in s.items() if k[0] == "rwproxy_server_state_reason"}
    assert reasons == {
        (("node", "db1"), ("reason", "none")): 1,
        (("node", "db2"), ("reason", "lag_over_max")): 1,
    }


def test_latency_histogram_off() -> None:
    app = ProxyApp(parse_config(CONFIG + "[admin]\nlatency_histogram = false\n"))
    assert app.latency is None
    assert not any(name.startswith("rwproxy_query_duration") for name, _ in _samples(app))
