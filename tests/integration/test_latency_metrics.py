"""The latency histogram and server-state metrics move as real traffic through rwproxy says."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

import pymysql
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster


def samples(proxy: ProxyThread) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    assert proxy.app is not None and proxy.app.admin_http is not None
    with urllib.request.urlopen(proxy.app.admin_http.url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def count(s: dict[tuple[str, frozenset[tuple[str, str]]], float], route: str, le: str | None = None) -> float:
    if le is None:
        return s[("rwproxy_query_duration_seconds_count", frozenset({("route", route)}))]
    return s[("rwproxy_query_duration_seconds_bucket", frozenset({("route", route), ("le", le)}))]


def test_latency_histogram_counts_every_statement_by_route(
    proxy: ProxyThread, connect: Callable[..., pymysql.Connection], healthy_cluster: object
) -> None:
    before = samples(proxy)
    conn = connect()
    with conn.cursor() as cur:
        for i in range(25):
            cur.execute(f"SELECT {i}")  # autocommit reads: replicas
        cur.execute("BEGIN")
        for i in range(7):
            cur.execute(f"SELECT {i}")  # inside a transaction: the primary
        cur.execute("COMMIT")
        cur.execute("SELECT SLEEP(0.3)")  # a replica read of at least 300 ms
    after = samples(proxy)
    assert count(after, "replica") - count(before, "replica") == 26
    # BEGIN, 7 reads, COMMIT, and what the driver sends at connect (SET AUTOCOMMIT = 1)
    assert count(after, "primary") - count(before, "primary") >= 9
    # Every statement routed to a server is in the histogram, once.
    routed = sum(
        v - before.get(k, 0.0)
        for k, v in after.items()
        if k[0] == "rwproxy_queries_total" and dict(k[1])["node"] != "-"
    )
    timed = sum(count(after, r) - count(before, r) for r in ("primary", "replica"))
    assert timed == routed
    # The slow one is above the 250 ms bound and at most 1 s (on this loopback cluster).
    slow = count(after, "replica", "+Inf") - count(after, "replica", "0.25")
    assert slow - (count(before, "replica", "+Inf") - count(before, "replica", "0.25")) == 1
    total = ("rwproxy_query_duration_seconds_sum", frozenset({("route", "replica")}))
    assert after[total] - before[total] >= 0.3
    accepted = ("rwproxy_client_connections_accepted_total", frozenset())
    assert after[accepted] - before[accepted] == 1


def test_server_state_is_one_hot(proxy: ProxyThread, healthy_cluster: object) -> None:
    s = samples(proxy)
    assert proxy.app is not None
    for node in proxy.app.topology.nodes:
        states = {
            dict(labels)["state"]: v
            for (name, labels), v in s.items()
            if name == "rwproxy_server_state" and dict(labels)["node"] == node.name
        }
        assert set(states) == {"online", "shunned", "offline"}
        assert sum(states.values()) == 1 and states[node.state.value] == 1
