"""The admin HTTP interface of a real proxy in front of the real cluster, scraped over HTTP and by a
real Prometheus (``/usr/bin/prometheus``; CI installs the Debian package)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from prometheus_client.parser import text_string_to_metric_families

from rwproxy.admin.http import AdminHttp, start_admin_http
from rwproxy.dev.cluster import Cluster
from tests.support.net import free_port
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def admin(proxy: ProxyThread) -> Iterator[AdminHttp]:
    """The admin interface of the session proxy, on a free loopback port, in the proxy's loop."""
    assert proxy.app is not None
    handle = proxy.run(start_admin_http(proxy.app, listen="127.0.0.1:0"))
    assert handle is not None
    yield handle
    proxy.run(handle.stop())


def get(admin: AdminHttp, path: str) -> tuple[int, str, str]:
    """(status, content type, body) of ``GET path``; HTTP errors are answers too."""
    try:
        with urllib.request.urlopen(admin.url + path, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def scrape(admin: AdminHttp) -> Samples:
    status, ctype, text = get(admin, "/metrics")
    assert status == 200 and ctype.startswith("text/plain"), (status, ctype)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of ``name`` over every sample whose labels include ``labels``."""
    return sum(
        v
        for (n, ls), v in samples.items()
        if n == name and all(dict(ls).get(k) == want for k, want in labels.items())
    )


def queries(samples: Samples, reason: str, nodes: list[str]) -> float:
    return sum(total(samples, "rwproxy_queries_total", node=n, route_reason=reason) for n in nodes)


@pytest.fixture
def table(connect: Callable[..., pymysql.Connection]) -> Iterator[str]:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS metrics_t")
        cur.execute("CREATE TABLE metrics_t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
    yield "metrics_t"
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS metrics_t")


def test_query_counters_follow_the_statements(
    admin: AdminHttp, connect: Callable[..., pymysql.Connection], cluster: Cluster, table: str
) -> None:
    replicas = [r.name for r in cluster.replicas]
    primary = cluster.primary.name
    reads, writes = 37, 11
    conn = connect()  # connected (and its start-up statements run) before the first scrape
    before = scrape(admin)
    with conn.cursor() as cur:
        for i in range(reads):
            cur.execute(f"SELECT {i}")
            assert cur.fetchone() == (i,)
        for i in range(writes):
            cur.execute(f"INSERT INTO {table} (v) VALUES ({i})")
        # While the session is open it holds backend connections: at least one is in use.
        during = scrape(admin)
        assert total(during, "rwproxy_backend_connections", state="in_use") >= 1
        assert total(during, "rwproxy_client_connections") >= 1
    after = scrape(admin)

    assert queries(after, "read", replicas) - queries(before, "read", replicas) == reads
    assert queries(after, "read", [primary]) == queries(before, "read", [primary])  # never a read there
    grown = queries(after, "statement", [primary]) - queries(before, "statement", [primary])
    assert grown >= writes
    # ... and by statement kind.
    selects = total(after, "rwproxy_statements_total", kind="select") - total(
        before, "rwproxy_statements_total", kind="select"
    )
    inserts = total(after, "rwproxy_statements_total", kind="insert") - total(
        before, "rwproxy_statements_total", kind="insert"
    )
    assert (selects, inserts) == (reads, writes)

    # Every statement is decided by the keyword scan or through the digest cache (hit or miss).
    def decided(samples: Samples) -> float:
        return sum(
            total(samples, "rwproxy_classifier_total", path=p) for p in ("fast", "cache_hit", "cache_miss")
        )

    assert decided(after) - decided(before) >= reads + writes
    for node in cluster.nodes:
        role = "primary" if node.name == primary else "replica"
        assert after[("rwproxy_server_up", (("node", node.name), ("role", role)))] == 1
    assert total(after, "rwproxy_backend_connections_opened_total") >= 1

    # An error returned to the client is counted by its code (1146: no such table).
    with conn.cursor() as cur, pytest.raises(pymysql.err.ProgrammingError):
        cur.execute("SELECT * FROM rwproxy_no_such_table")
    errors = scrape(admin)
    assert (
        total(errors, "rwproxy_errors_total", code="1146") - total(after, "rwproxy_errors_total", code="1146")
        == 1
    )


def test_health_readiness_and_status(
    admin: AdminHttp, proxy: ProxyThread, connect: Callable[..., pymysql.Connection], cluster: Cluster
) -> None:
    assert get(admin, "/healthz")[::2] == (200, "ok\n")

    status, ctype, body = get(admin, "/readyz")
    assert (status, ctype.split(";")[0]) == (200, "application/json")
    ready = json.loads(body)
    assert ready["ready"] is True and ready["primary"] == cluster.primary.name
    assert sorted(ready["online_replicas"]) == sorted(r.name for r in cluster.replicas)

    conn = connect()
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
    status, ctype, body = get(admin, "/status")
    assert status == 200 and ctype.startswith("application/json")
    doc = json.loads(body)
    assert doc["version"] and doc["server_version"] and doc["uptime_seconds"] >= 0
    assert doc["ready"] is True and doc["sessions"] >= 1
    nodes = {n["name"]: n for n in doc["nodes"]}
    assert set(nodes) == {n.name for n in cluster.nodes}
    for node in cluster.nodes:
        got = nodes[node.name]
        assert (got["host"], got["port"], got["state"], got["weight"]) == (node.host, node.port, "online", 1)
        assert got["role"] == ("primary" if node is cluster.primary else "replica")
        assert set(got["pool"]) == {"idle", "in_use", "lendable"}
    # The session's statement ran on one of the replicas: that node has a connection checked out.
    assert sum(nodes[r.name]["pool"]["in_use"] for r in cluster.replicas) >= 1
    conn.close()


def test_readyz_is_503_without_online_servers(admin: AdminHttp, proxy: ProxyThread) -> None:
    from dataclasses import replace

    from rwproxy.topology.model import NodeState, Topology

    app = proxy.app
    assert app is not None
    healthy = app.topology
    down = Topology(tuple(replace(n, state=NodeState.OFFLINE) for n in healthy.nodes), healthy.version + 1)
    proxy.call(setattr, app, "topology", down)
    try:
        status, _, body = get(admin, "/readyz")
        assert status == 503
        assert "no replica is ONLINE" in json.loads(body)["reason"]
        samples = scrape(admin)
        assert total(samples, "rwproxy_server_up") == 0
        assert get(admin, "/healthz")[0] == 200  # alive, just not ready
    finally:
        proxy.call(setattr, app, "topology", healthy)
    assert get(admin, "/readyz")[0] == 200


# --------------------------------------------------------------------------------------------------
# A real Prometheus scraping the admin port


PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def _prometheus_query(port: int, query: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as r:
        answer = json.loads(r.read())
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def test_real_prometheus_scrapes_the_admin_port(
    admin: AdminHttp, connect: Callable[..., pymysql.Connection], tmp_path: Path
) -> None:
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.fail(
            f"the prometheus binary is missing ({PROMETHEUS}): install it with "
            "`apt-get install -y prometheus` (.ci/run does)"
        )
    with connect().cursor() as cur:  # make sure some rwproxy_queries_total series exists
        cur.execute("SELECT 1")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: rwproxy\n"
        "    scrape_interval: 1s\n"
        "    scrape_timeout: 1s\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{admin.port}']\n"
    )
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=info",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        result: list[dict[str, Any]] = []
        last_error: Exception | None = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                result = _prometheus_query(port, "rwproxy_queries_total")
                if result:
                    break
            except (OSError, ValueError) as exc:  # not listening yet
                last_error = exc
            time.sleep(0.25)
        log_tail = log_path.read_text(errors="replace")[-3000:]
        assert result, f"no rwproxy_queries_total in Prometheus (last error: {last_error!r}):\n{log_tail}"
        labels = {(r["metric"]["node"], r["metric"]["route_reason"]) for r in result}
        assert any(reason == "read" for _, reason in labels), labels
        assert all(r["metric"]["job"] == "rwproxy" and float(r["value"][1]) >= 1 for r in result), result
        up = _prometheus_query(port, 'up{job="rwproxy"}')
        assert [float(r["value"][1]) for r in up] == [1.0], up
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
