"""Every metric the Grafana dashboard (deploy/grafana/dashboards/rwproxy.json) queries exists in a real
rwproxy's /metrics, and every label it groups by or matches on is on those metrics — so the dashboard
cannot silently go blank when a metric is renamed.

The proxy runs the shipped deploy/rwproxy/rwproxy.toml with only what must change to run here: the
listeners (loopback, free ports), the servers (the real local cluster, keeping the shipped names)
and the accounts (the cluster's app and monitor users).
"""

from __future__ import annotations

import json
import re
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
import yaml

from rwproxy.config import Config
from rwproxy.dev.cluster import Cluster
from tests.support.etcd import EtcdCluster, etcd_available
from tests.support.promql import dashboard_expressions, exposed_series, label_names, metric_names
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "rwproxy.json"
SHIPPED = ROOT / "deploy" / "rwproxy" / "rwproxy.toml"
# Added by Prometheus to every scraped series (job from the scrape config, instance from the target);
# "le" and "quantile" are the histogram / summary bucket labels.
TARGET_LABELS = {"job", "instance", "le", "quantile"}
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
# Exported by the etcd coordination (leader election) only: checked when this build exports them.
COORDINATION = {"rwproxy_coordination_is_leader", "rwproxy_coordination_etcd_up"}
# Made by Prometheus itself, not by rwproxy.
PROMETHEUS_SERIES = {"up"}


def alert_expressions() -> list[tuple[str, str]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [(f"alert {r['alert']}", r["expr"]) for g in doc["groups"] for r in g["rules"]]


def shipped_config_for(cluster: Cluster, etcd: EtcdCluster | None) -> Config:
    data: dict[str, Any] = tomllib.loads(SHIPPED.read_text())
    data["proxy"]["listen"] = ["127.0.0.1:0"]
    data["admin"]["http_listen"] = "127.0.0.1:0"
    (user,) = data["users"]
    user.update(name=cluster.app_user, password=cluster.app_password, default_database="rwtest")
    replicas = iter(cluster.replicas)
    for i, server in enumerate(data["servers"]):  # role = "auto": the first one starts as the primary
        primary = server["role"] == "primary" or (server["role"] == "auto" and i == 0)
        node = cluster.primary if primary else next(replicas)
        server.update(host=node.host, port=node.port)
    data["monitor"].update(user=cluster.monitor_user, password=cluster.monitor_password)
    # The shared session cluster: nothing is promoted here; coordination runs on the test etcd.
    data["failover"] = {"mode": "observe"}
    if "coordination" in data and etcd is not None:
        data["coordination"]["etcd"] = etcd.endpoints
    elif etcd is None:
        data.pop("coordination", None)  # no etcd installed here
    return Config.model_validate(data, context={"base_dir": SHIPPED.parent})


@pytest.fixture(scope="module")
def shipped_proxy(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[ProxyThread]:
    cluster.heal()
    etcd = request.getfixturevalue("etcd_cluster") if etcd_available() else None
    with ProxyThread(shipped_config_for(cluster, etcd)) as p:
        yield p


def scrape(proxy: ProxyThread) -> str:
    assert proxy.app is not None and proxy.app.admin_http is not None
    with urllib.request.urlopen(proxy.app.admin_http.url + "/metrics", timeout=10) as r:
        return str(r.read().decode())


def traffic(proxy: ProxyThread, cluster: Cluster) -> None:
    """Reads, writes, an error and a pinned session: every labelled family gets samples."""
    conn = pymysql.connect(
        host=proxy.host,
        port=proxy.port,
        user=cluster.app_user,
        password=cluster.app_password,
        database="rwtest",
        autocommit=True,
        ssl_disabled=True,
        connect_timeout=10,
    )
    try:
        with conn.cursor() as cur:
            for i in range(5):
                cur.execute(f"SELECT {i}")
            cur.execute("CREATE TABLE IF NOT EXISTS dashboard_t (id INT PRIMARY KEY)")
            cur.execute("REPLACE INTO dashboard_t VALUES (1)")
            with pytest.raises(pymysql.err.ProgrammingError):
                cur.execute("SELECT * FROM rwproxy_dashboard_no_such_table")
            cur.execute("CREATE TEMPORARY TABLE dashboard_tmp (i INT)")  # pins the session
            cur.execute("SELECT COUNT(*) FROM dashboard_tmp")
            cur.execute("DROP TABLE dashboard_t")
    finally:
        conn.close()


def test_every_dashboard_metric_and_label_is_exported(shipped_proxy: ProxyThread, cluster: Cluster) -> None:
    exprs = dashboard_expressions(json.loads(DASHBOARD.read_text())) + alert_expressions()
    assert len(exprs) >= 30
    wanted = set().union(*(metric_names(e) for _, e in exprs)) - PROMETHEUS_SERIES
    traffic(shipped_proxy, cluster)

    # The monitor fills in the replicas' lag after its first checks.
    deadline = time.monotonic() + 30
    while True:
        series = exposed_series(scrape(shipped_proxy))
        missing = sorted(wanted - series.keys() - COORDINATION)
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not missing, f"the dashboard or the alert rules query metrics rwproxy does not export: {missing}"
    absent = COORDINATION - series.keys()  # this build has no etcd coordination
    series.update({name: {"instance", "job"} for name in absent})

    for where, expr in exprs:
        labels = set().union(*(series[n] for n in metric_names(expr) - PROMETHEUS_SERIES))
        unknown = label_names(expr) - labels - TARGET_LABELS
        assert not unknown, f"{where}: labels {sorted(unknown)} are on none of its metrics ({expr})"

    # Legends name labels the series have ({{node}}), else Grafana shows the literal text.
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", ()):
            labels = set().union(*(series[n] for n in metric_names(target["expr"]) - PROMETHEUS_SERIES))
            used = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
            assert used <= labels | TARGET_LABELS, f"panel {panel['title']!r}: legend {used - labels}"


def test_the_check_can_fail(shipped_proxy: ProxyThread) -> None:
    """Against the same real exposition a near-miss name (a counter's family name without _total,
    a renamed label) is caught."""
    series = exposed_series(scrape(shipped_proxy))
    assert "rwproxy_queries_total" in series and "rwproxy_queries" not in series
    assert "route_reason" in series["rwproxy_queries_total"]
    assert "server" not in series["rwproxy_queries_total"]
