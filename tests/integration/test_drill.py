"""``rwproxy drill`` against a real proxy (ProxyThread) in front of a real cluster: the report's numbers
checked against what the test sees itself in the cluster. Drills are kept to a few seconds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rwproxy.cli import main
from rwproxy.dev.cluster import Cluster, attach, write_state
from rwproxy.dev.cluster.local import _pid_alive
from rwproxy.dev.demo import demo_config_text
from rwproxy.drill.events import IN_DOUBT, OK
from rwproxy.drill.report import render_text
from rwproxy.drill.scenarios import DrillOptions, DrillResult, run_drill
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster


def _proxy_for(cluster: Cluster) -> ProxyThread:
    # port 0: a free proxy port and a free admin port
    return ProxyThread(demo_config_text(cluster, 0, check_interval=0.2, failover_mode="promote"))


@pytest.fixture
def drill_proxy(fresh_cluster: Cluster) -> Iterator[ProxyThread]:
    with _proxy_for(fresh_cluster) as p:
        yield p


def _options(p: ProxyThread, c: Cluster, scenario: str, **kw: Any) -> DrillOptions:
    assert p.app is not None and p.app.admin_http is not None
    defaults: dict[str, Any] = {
        "proxy": f"{p.host}:{p.port}",
        "user": c.app_user,
        "password": c.app_password,
        "admin": f"{p.app.admin_http.host}:{p.app.admin_http.port}",
        "duration": 3.0,
        "fault_after": 1.0,
        "writers": 2,
        "readers": 2,
        "quiet": True,
    }
    return DrillOptions(scenario, **{**defaults, **kw})


def _table_rows(c: Cluster, result: DrillResult) -> dict[int, int]:
    """seq → copies, read by the test itself straight from the current primary."""
    rows = c.sql(
        c.primary,
        f"SELECT seq, COUNT(*) FROM {result.table.events} WHERE run_id = %s GROUP BY seq",
        (result.table.run_id,),
    )
    return {int(s): int(n) for s, n in rows}


def _check_counts_against_table(result: DrillResult, rows: dict[int, int]) -> None:
    acked = {e.seq for e in result.writes if e.outcome == OK}
    report = result.report
    assert report["writes"]["acknowledged"] == len(acked)
    assert acked <= set(rows), "an acknowledged write is missing from the primary"
    v = report["verification"]
    assert v["verified"] is True
    assert v["rows"] == sum(rows.values())
    # every row is an acknowledged write, an in-doubt write that landed, or an error that landed
    assert sum(rows.values()) == len(acked) + v["in_doubt_landed"] + v["errored_but_landed"] + v["duplicates"]
    in_doubt = {e.seq for e in result.writes if e.outcome == IN_DOUBT}
    assert v["in_doubt_landed"] == len(in_doubt & set(rows))


def test_replica_loss_reads_keep_succeeding(
    fresh_cluster: Cluster, drill_proxy: ProxyThread, tmp_path: Path
) -> None:
    c = fresh_cluster
    state = tmp_path / "cluster.json"
    write_state(c, str(state))  # the drill re-attaches through the state file, as with rwproxy demo
    attached = attach(str(state))
    result = run_drill(_options(drill_proxy, c, "replica-loss", node="node2"), cluster=attached)
    report = result.report
    assert "error" not in report["fault"], report["fault"]
    assert report["fault"]["target"] == "node2"
    assert report["fault"]["at"] == pytest.approx(1.0, abs=0.3)
    assert report["fault"]["restored"] == "restarted node2"
    # the proxy saw the replica go
    assert report["detection"]["detection_seconds"] is not None
    assert any(ch.startswith("node2: replica/online -> ") for ch in report["detection"]["change"])
    # reads kept answering, writes never stopped, nothing lost
    assert report["reads"]["attempted"] > 20
    assert report["reads"]["availability_percent"] >= 95.0, report["reads"]
    assert report["writes"]["resumed"] is True
    assert report["writes"]["acknowledged"] > 20
    assert report["verification"]["lost_acknowledged"] == 0
    assert report["verification"]["duplicates"] == 0
    assert report["primary_before"]["node"] == report["primary_after"]["node"] == "node1"
    _check_counts_against_table(result, _table_rows(c, result))

    # the replica the drill restarted is a server the cluster's owner still stops
    node2 = c.node("node2")
    pid = attached.pid(node2)
    assert pid is not None and c.is_running(node2)
    drill_proxy.stop()
    c.stop()
    assert not _pid_alive(pid)


def test_lag_counts_stale_reads(healthy_cluster: Cluster) -> None:
    c = healthy_cluster
    replica = c.replicas[0]
    with _proxy_for(c) as p:
        result = run_drill(
            _options(p, c, "lag", node=replica.name, lag_delay=2, lag_hold=1.5, readers=3), cluster=c
        )
    report = result.report
    assert "error" not in report["fault"], report["fault"]
    assert report["fault"]["end"] == pytest.approx(2.5, abs=0.5)
    # reads through the proxy are eventually consistent: a replica 2 s behind answers without the
    # rows this session (or another one) just wrote, and the drill counts it
    assert report["reads"]["stale"] > 0
    assert report["reads"]["stale_read_your_writes"] > 0
    stale_by_events = sum(1 for e in result.reads if e.outcome == "stale")
    assert report["reads"]["stale"] == stale_by_events
    assert report["verification"]["lost_acknowledged"] == 0
    assert c.dialect.delay_of(c.replica_status(replica) or {}) == 0, "the delay was not undone"
    _check_counts_against_table(result, _table_rows(c, result))


def test_failover_drill(fresh_cluster: Cluster) -> None:
    """SIGKILL the primary under the drill's workload: rwproxy promotes a replica, writes resume,
    no acknowledged write is lost or duplicated, and the report agrees with the table itself."""
    c = fresh_cluster
    old_primary = c.primary
    c.set_semi_sync(True, timeout_ms=30000)
    with _proxy_for(c) as p:
        result = run_drill(_options(p, c, "failover", duration=6.0, fault_after=1.5), cluster=c)
    report = result.report
    # The proxy read semi-sync on the primary: the report says RPO 0 is expected.
    assert report["semi_sync"]["enabled"] is True and report["semi_sync"]["clients"] >= 1, report["semi_sync"]
    # ... and again after the failover, on the new primary: RPO 0 again.
    after = report["semi_sync_after"]
    assert after["primary"] != old_primary.name and after["enabled"] is True, after
    assert after["clients"] >= 1, after
    assert "RPO 0" in render_text(report).split("semi-sync", 1)[1].splitlines()[1]
    assert "error" not in report["fault"], report["fault"]
    assert report["fault"]["target"] == old_primary.name
    assert not c.is_running(old_primary)
    w = report["writes"]
    assert w["acknowledged"] > 0
    assert w["resumed"] is True, w
    assert w["recovered_seconds_after_fault"] is not None and w["recovered_seconds_after_fault"] < 5, w
    replicas = {r.name for r in c.replicas}
    assert report["detection"]["new_primary"] in replicas, report["detection"]
    assert report["primary_after"]["node"] in replicas, report["primary_after"]
    assert report["verification"]["verified"], report["verification"]
    assert report["verification"]["lost_acknowledged"] == 0
    assert report["verification"]["duplicates"] == 0
    # The test's own count, straight from the new primary.
    c.primary = c.node(report["primary_after"]["node"])
    _check_counts_against_table(result, _table_rows(c, result))


def test_switchover_drill(fresh_cluster: Cluster) -> None:
    """A planned switchover under the drill's workload: no client-visible error, a short write
    pause, and the primary moved."""
    c = fresh_cluster
    c.set_semi_sync(True, timeout_ms=5000)
    token = "drill-token"
    text = demo_config_text(c, 0, check_interval=0.2, failover_mode="promote", admin_token=token)
    with ProxyThread(text) as p:
        old_primary = c.primary
        result = run_drill(
            _options(p, c, "switchover", duration=4.0, fault_after=1.5, admin_token=token), cluster=c
        )
        report = result.report
        assert "error" not in report["fault"], report["fault"]
        assert report["client_errors_by_code"] == {}, report["client_errors_by_code"]
        assert report["writes"]["errors"] == 0 and report["writes"]["in_doubt"] == 0
        assert report["primary_after"]["node"] != old_primary.name
        assert report["verification"]["lost_acknowledged"] == 0
        # Semi-sync moved with the role: the new primary has both replicas acknowledging at the end.
        after = report["semi_sync_after"]
        assert after["primary"] == report["primary_after"]["node"], after
        assert after["enabled"] is True and after["clients"] == 2, after
        c.primary = c.node(report["primary_after"]["node"])
        _check_counts_against_table(result, _table_rows(c, result))
        # The drill told the proxy how it went: its rwproxy_drill_* metrics.
        stored = p.app.drill_results["switchover"]
        assert stored["lost_acknowledged"] == 0 and stored["read_availability"] == 1.0, stored
        samples = scrape_text(f"{p.app.admin_http.host}:{p.app.admin_http.port}")
        assert 'rwproxy_drill_lost_acknowledged_writes{scenario="switchover"} 0.0' in samples
        new, old = report["primary_after"]["node"], old_primary.name
        changes = "rwproxy_semi_sync_changes_total{action=%s,server=%s,side=%s} 1.0"
        assert changes % ('"enabled"', f'"{new}"', '"primary"') in samples
        assert changes % ('"disabled"', f'"{old}"', '"primary"') in samples
        assert changes % ('"enabled"', f'"{old}"', '"replica"') in samples


def scrape_text(admin: str) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as r:
        return r.read().decode()


def test_switchover_needs_the_admin_token(proxy: ProxyThread, cluster: Cluster) -> None:
    """The shared proxy has no bearer token: POST /switchover is refused (403), the drill fails
    its fault and says so, and nothing moved."""
    primary = proxy.app.topology.primary
    assert primary is not None
    options = _options(proxy, cluster, "switchover", duration=1.5, fault_after=0.5)
    result = run_drill(options)
    assert "403" in result.report["fault"]["error"]
    after = proxy.app.topology.primary
    assert after is not None and after.name == primary.name


def test_trigger_command_through_the_cli(
    proxy: ProxyThread, healthy_cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--trigger runs the operator's command at fault time; --json - prints the report on stdout."""
    c = healthy_cluster
    options = _options(proxy, c, "failover")
    marker = tmp_path / "fired"
    argv = ["drill", "failover", "--proxy", options.proxy, "--user", c.app_user, "--password", c.app_password]
    argv += ["--trigger", f"date > {marker}", "--duration", "1.5", "--fault-after", "0.5", "--json", "-"]
    argv += ["--writers", "1", "--readers", "1", "--quiet"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert marker.exists()
    assert report["fault"]["description"] == f"trigger command 'date > {marker}'"
    assert report["fault"]["at"] == pytest.approx(0.5, abs=0.3)
    assert report["detection"] is None  # no --admin
    assert report["verification"]["lost_acknowledged"] == 0
    assert report["writes"]["resumed"] is True

    argv[argv.index("--trigger") + 1] = "echo boom >&2; exit 7"
    assert main(argv) == 1  # the fault failed: the drill tested nothing
    report = json.loads(capsys.readouterr().out)
    assert "exited with 7: boom" in report["fault"]["error"]


def test_cluster_state_file_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "state.json"
    bad.write_text(json.dumps({"version": 1, "kind": "docker", "nodes": []}))
    assert main(["drill", "failover", "--cluster-state", str(bad)]) == 2
    assert "only 'local' clusters can be attached" in capsys.readouterr().err
    missing = os.path.join(str(tmp_path), "nope.json")
    assert main(["drill", "failover", "--cluster-state", missing]) == 2
    assert "cannot read the cluster state file" in capsys.readouterr().err
