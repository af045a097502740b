"""`rwproxy explain` against a running proxy (admin HTTP /explain, admin SQL EXPLAIN ROUTE) on the
real cluster, with every server on role = "auto": the monitor's primary is shown as the primary,
and a max_lag hint goes to a replica whose measured lag is within it."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from rwproxy.dev.cluster import Cluster
from tests.support.builders import cluster_config
from tests.support.cluster import wait_until
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
ADMIN_USER, ADMIN_PASSWORD = "xadmin", "explain-secret"


@pytest.fixture
def auto_proxy(healthy_cluster: Cluster) -> Iterator[ProxyThread]:
    text = cluster_config(
        healthy_cluster,
        "[[admin.users]]",
        f'name = "{ADMIN_USER}"',
        f'password = "{ADMIN_PASSWORD}"',
        "[monitor]",
        "interval_seconds = 0.2",
        admin={"http_listen": "127.0.0.1:0", "sql_listen": "127.0.0.1:0"},
    )
    with ProxyThread(text) as p:
        assert p.app is not None
        app = p.app
        wait_until(
            lambda: (
                app.topology.primary is not None
                and all(n.online and n.lag_seconds is not None for n in app.topology.nodes)
            ),
            timeout=30,
            what="the monitor's first checks",
        )
        yield p


def test_explain_asks_the_running_proxy(auto_proxy: ProxyThread, healthy_cluster: Cluster) -> None:
    app = auto_proxy.app
    assert app is not None and app.admin_http is not None and app.admin_sql is not None
    primary = healthy_cluster.primary.name
    admin = f"{app.admin_http.host}:{app.admin_http.port}"

    url = f"http://{admin}/explain?" + urllib.parse.urlencode({"sql": "UPDATE t SET a = 1 WHERE id = 7"})
    with urllib.request.urlopen(url, timeout=10) as response:
        doc = json.load(response)
    assert (doc["target"], doc["server"]) == ("primary", primary)
    assert doc["topology"]["primary"] == primary and doc["topology"]["source"].startswith("live")
    assert doc["digest"] == "UPDATE t SET a = ? WHERE id = ?"

    # the CLI: the live primary (role = "auto" offline would have to guess), lag-aware max_lag
    out = subprocess.run(
        [sys.executable, "-m", "rwproxy", "explain", "--admin", admin, "/* rwproxy:max_lag=30 */ SELECT 1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "route:     replica (" in out.stdout, out.stdout
    assert "topology:  live, from the running proxy (topology v" in out.stdout, out.stdout
    assert f"primary {primary};" in out.stdout, out.stdout

    conn = pymysql.connect(
        host=app.admin_sql.host,
        port=app.admin_sql.port,
        user=ADMIN_USER,
        password=ADMIN_PASSWORD,
        connect_timeout=5,
    )
    try:
        with conn.cursor() as cur:
            cur.execute("EXPLAIN ROUTE 'SELECT * FROM t WHERE name = ''it''''s'' FOR UPDATE'")
            rows = dict(cur.fetchall())
    finally:
        conn.close()
    assert rows["target"] == "primary" and rows["server"] == primary, rows
    assert rows["digest"] == "SELECT * FROM t WHERE name = ? FOR UPDATE", rows
    assert "row locks" in rows["statement_reason"]
    assert app.routing.rules.hits == {}  # no rules configured; explaining never counts
