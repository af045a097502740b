"""The pure parts of the Aurora MySQL check (``rwproxy.topology.probe_aurora``), what the monitor makes
of its results, and the read_your_writes route with Aurora readers.

No real Aurora is available to these tests. The rows below are shaped like Aurora's
``information_schema.replica_host_status`` as documented by AWS:
* the columns and types: "Aurora MySQL-specific information_schema tables" (Aurora User Guide,
  AuroraMySQL.Reference.ISTables): SERVER_ID varchar(100), SESSION_ID varchar(100),
  REPLICA_LAG_IN_MILLISECONDS double, LAST_UPDATE_TIMESTAMP datetime(6) (-> ``datetime`` in Python);
* the values: the AWS knowledge-center article "Why did my Amazon Aurora read replica fall behind and
  restart?" (instance identifiers as SERVER_ID, 'MASTER_SESSION_ID' for the writer with lag 0, a
  reader at 5.150000095367432 ms), and the AWS JDBC wrapper's AuroraMysqlDialect (readers' SESSION_ID
  is a UUID; ``@@aurora_server_id`` is the instance's own SERVER_ID).
SERVER_NOW is the ``NOW(6)`` our query adds to every row.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from rwproxy.router.classify import classify
from rwproxy.router.policy import RouteReason, Target, route
from rwproxy.router.session_state import Consistency, SessionState
from rwproxy.topology.election import ServerView, build_nodes
from rwproxy.topology.health import ProbeResult, ServerHealth, ShunReason
from rwproxy.topology.model import Node, NodeState, Role, Topology
from rwproxy.topology.probe import Flavor, flavor_for_version
from rwproxy.topology.probe_aurora import FRESH_SECONDS, aurora_replication, version_label
from tests.support.builders import primary, replica

NOW = dt.datetime(2024, 5, 2, 10, 15, 30, 250000)


def row(server_id: str, session_id: str, lag_ms: float | None, age: float = 0.4) -> dict[str, Any]:
    return {
        "SERVER_ID": server_id,
        "SESSION_ID": session_id,
        "REPLICA_LAG_IN_MILLISECONDS": lag_ms,
        "LAST_UPDATE_TIMESTAMP": NOW - dt.timedelta(seconds=age),
        "SERVER_NOW": NOW,
    }


ROWS = [
    row("myamscluster-aza-1", "MASTER_SESSION_ID", 0.0),
    row("myamscluster-azb-1", "b7a7f5a2-4e3c-4b9a-9d55-3f0c1a2e8d71", 5.150000095367432),
    row("myamscluster-aza-2", "0c3e2d1f-9a8b-4c7d-8e6f-5a4b3c2d1e0f", 5.033999919891357),
]


def test_reader_with_a_fresh_row_replicates_with_its_lag_in_seconds() -> None:
    io, sql, lag = aurora_replication(ROWS, "myamscluster-azb-1", read_only=True)
    assert (io, sql) == (True, True)
    assert lag is not None and abs(lag - 0.005150000095367432) < 1e-12


def test_writer_has_no_replication() -> None:
    assert aurora_replication(ROWS, "myamscluster-aza-1", read_only=False) == (None, None, None)
    # innodb_read_only = 1 cannot happen on the writer, but its row decides if it did.
    assert aurora_replication(ROWS, "myamscluster-aza-1", read_only=True) == (None, None, None)


def test_reader_without_a_row_or_with_a_stale_one_is_not_replicating() -> None:
    assert aurora_replication(ROWS, "myamscluster-azc-9", read_only=True) == (False, False, None)
    stale = [row("r1", "a-uuid", 3.0, age=FRESH_SECONDS + 1)]
    assert aurora_replication(stale, "r1", read_only=True) == (False, False, None)
    assert aurora_replication(stale, "r1", read_only=True, fresh_seconds=120) == (True, True, 0.003)
    no_time = [{**row("r1", "a-uuid", 3.0), "LAST_UPDATE_TIMESTAMP": None}]
    assert aurora_replication(no_time, "r1", read_only=True) == (False, False, None)


def test_unknown_lag_is_never_zero() -> None:
    for value in (None, -1.0):
        assert aurora_replication([row("r1", "a-uuid", value)], "r1", read_only=True) == (True, True, None)


def test_aurora_is_recognised_in_the_reported_version_only() -> None:
    label = version_label("8.0.28", "3.04.0")
    assert label == "8.0.28 (Aurora MySQL 3.04.0)"
    assert flavor_for_version(label) is Flavor.AURORA
    assert flavor_for_version(version_label("5.7.12", "2.11.2")) is Flavor.AURORA
    # Aurora's own VERSION() is MySQL's: detection needs the aurora_version variable (the probe asks).
    assert flavor_for_version("8.0.28") is Flavor.MYSQL
    assert flavor_for_version("5.7.12") is Flavor.MYSQL_LEGACY


def _aurora(read_only: bool, io: bool | None = None, lag: float | None = None) -> ProbeResult:
    running = io if read_only else None
    return ProbeResult(
        ok=True,
        read_only=read_only,
        lag_seconds=lag,
        io_running=running,
        sql_running=running,
        gtid_position=None,
        version=version_label("8.0.28", "3.04.0"),
        gtid_waits=False,
    )


def _view(name: str, *checks: ProbeResult) -> ServerView:
    h = ServerHealth(name)
    for c in checks:
        h.observe(c)
    return ServerView(name, f"{name}.local", 3306, 1, h)


def test_monitor_view_of_an_aurora_cluster() -> None:
    """Readers serve reads with their lag (not shunned as not_replicating); a reader without a fresh
    row is shunned; nobody has a GTID position or can wait for one."""
    writer = _view("w", _aurora(False))
    good = _view("r1", _aurora(True, io=True, lag=0.005))
    unknown = _view("r2", _aurora(True, io=True, lag=None))
    stale = _view("r3", _aurora(True, io=False))
    nodes = {n.name: n for n in build_nodes([writer, good, unknown, stale], None, 10.0)}
    assert nodes["w"].role is Role.PRIMARY and nodes["w"].online
    assert nodes["r1"].role is Role.REPLICA and nodes["r1"].online and nodes["r1"].lag_seconds == 0.005
    assert (nodes["r2"].state, nodes["r2"].reason) == (NodeState.SHUNNED, ShunReason.LAG_UNKNOWN.value)
    assert (nodes["r3"].state, nodes["r3"].reason) == (
        NodeState.SHUNNED,
        ShunReason.REPLICATION_STOPPED.value,
    )
    assert all(n.gtid is None and n.gtid_waits is False for n in nodes.values())


PRIMARY = primary("w", lag=0.0)


def _reader(name: str, waits: bool, gtid: str | None = None) -> Node:
    return replica(name, 0.01, gtid, gtid_waits=waits)


def _causal_read(topology: Topology) -> Any:
    state = SessionState()
    state.consistency = Consistency.READ_YOUR_WRITES
    state.causal_gtid = "0-1-100"  # a write whose GTID the session learned
    return route(classify("SELECT * FROM t WHERE id = 1"), state, topology)


def test_read_your_writes_never_waits_on_an_aurora_reader() -> None:
    r = _causal_read(Topology((PRIMARY, _reader("r1", False), _reader("r2", False))))
    assert (r.target, r.node, r.reason) == (Target.PRIMARY, PRIMARY, RouteReason.CAUSAL_NO_WAIT)
    # A replica that can wait is still used when there is one (mixed topologies).
    r = _causal_read(Topology((PRIMARY, _reader("r1", False), _reader("r2", True))))
    assert (r.target, r.node and r.node.name, r.reason) == (Target.REPLICA, "r2", RouteReason.CAUSAL_WAIT)
    r = _causal_read(Topology((PRIMARY, _reader("r1", True, "0-1-100"))))
    assert r.reason is RouteReason.CAUSAL_APPLIED
    # Eventual reads still go to the Aurora readers.
    r = route(classify("SELECT 1"), SessionState(), Topology((PRIMARY, _reader("r1", False))))
    assert (r.target, r.reason) == (Target.REPLICA, RouteReason.READ)
