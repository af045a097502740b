"""Routing by consistency mode (causal reads), replica strategies and the max_lag hint: a table.

Each case: a topology (replicas with lag and applied GTID positions), the session's consistency and
causal state, one SQL statement (through the real classifier), policy options -> expected target,
node and reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from rwproxy.router.classify import classify
from rwproxy.router.policy import PolicyOptions, RouteReason, Strategy, Target, route
from rwproxy.router.session_state import Consistency, SessionState
from rwproxy.topology.model import NodeState, Topology
from tests.support.builders import primary
from tests.support.builders import replica as _replica

RR = RouteReason
C = Consistency


PRIMARY = primary(lag=0.0, gtid="0-1-100")
TOPO = Topology(
    (
        PRIMARY,
        _replica("r1", 0.0, "0-1-90"),
        _replica("r2", 2.0, "0-1-80"),
        _replica("r3", 0.5, "0-1-100,1-7-5"),
    )
)
MYSQL_TOPO = Topology(
    (
        PRIMARY,
        _replica("m1", 0.1, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-50"),
        _replica("m2", 0.2, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-40:42-60"),
    )
)
DOWN = Topology((PRIMARY, _replica("r1", None, state=NodeState.SHUNNED), _replica("r2", 0.0, weight=0)))


@dataclass(frozen=True)
class Case:
    id: str
    sql: str
    target: Target
    node: str | None
    reason: RouteReason
    consistency: Consistency = C.EVENTUAL
    gtid: str | None = None
    unconfirmed: bool = False
    topo: Topology = TOPO
    options: PolicyOptions = field(default_factory=PolicyOptions)
    rand: float = 0.0


READ = "SELECT * FROM t WHERE id = 1"
P, R = Target.PRIMARY, Target.REPLICA
CASES = [
    # eventual: the usual weighted choice (r1 owns rand 0.0), GTIDs ignored
    Case("eventual-read", READ, R, "r1", RR.READ, gtid="0-1-100"),
    Case("eventual-write", "UPDATE t SET a = 1", P, "db1", RR.STATEMENT),
    # primary consistency: reads too
    Case("primary-mode-read", READ, P, "db1", RR.CONSISTENCY_PRIMARY, C.PRIMARY),
    # read_your_writes, never wrote: like eventual
    Case("ryw-no-write", READ, R, "r1", RR.READ, C.READ_YOUR_WRITES),
    # wrote, GTID not yet known: the primary
    Case("ryw-unconfirmed", READ, P, "db1", RR.CAUSAL_PRIMARY, C.READ_YOUR_WRITES, unconfirmed=True),
    # wrote 0-1-95: only r3 has applied it -> r3, no wait
    Case("ryw-applied-r3", READ, R, "r3", RR.CAUSAL_APPLIED, C.READ_YOUR_WRITES, gtid="0-1-95"),
    # wrote 0-1-85: r1 and r3 have it; weighted among them (rand 0.99 -> the last: r3)
    Case(
        "ryw-applied-weighted", READ, R, "r3", RR.CAUSAL_APPLIED, C.READ_YOUR_WRITES, gtid="0-1-85", rand=0.99
    ),
    Case("ryw-applied-weighted-first", READ, R, "r1", RR.CAUSAL_APPLIED, C.READ_YOUR_WRITES, gtid="0-1-85"),
    # wrote 0-1-101: nobody has it: wait on the least-lagged replica (r1)
    Case("ryw-wait-least-lag", READ, R, "r1", RR.CAUSAL_WAIT, C.READ_YOUR_WRITES, gtid="0-1-101"),
    # another domain: r3 has 1-7-5
    Case("ryw-domain", READ, R, "r3", RR.CAUSAL_APPLIED, C.READ_YOUR_WRITES, gtid="1-9-5"),
    Case("ryw-domain-missing", READ, R, "r1", RR.CAUSAL_WAIT, C.READ_YOUR_WRITES, gtid="2-1-1"),
    # MySQL GTID sets: m1 has 1-50; m2 lacks 41
    Case(
        "ryw-mysql-both",
        READ,
        R,
        "m1",
        RR.CAUSAL_APPLIED,
        C.READ_YOUR_WRITES,
        gtid="3E11FA47-71CA-11E1-9E33-C80AA9429562:45",
        topo=MYSQL_TOPO,
    ),
    Case(
        "ryw-mysql-gap",
        READ,
        R,
        "m1",
        RR.CAUSAL_APPLIED,
        C.READ_YOUR_WRITES,
        gtid="3e11fa47-71ca-11e1-9e33-c80aa9429562:41",
        topo=MYSQL_TOPO,
        rand=0.99,
    ),
    Case(
        "ryw-mysql-none",
        READ,
        R,
        "m1",
        RR.CAUSAL_WAIT,
        C.READ_YOUR_WRITES,
        gtid="3e11fa47-71ca-11e1-9e33-c80aa9429562:61",
        topo=MYSQL_TOPO,
    ),
    # a GTID of the other flavour never counts as applied
    Case(
        "ryw-flavour-mismatch",
        READ,
        R,
        "m1",
        RR.CAUSAL_WAIT,
        C.READ_YOUR_WRITES,
        gtid="0-1-1",
        topo=MYSQL_TOPO,
    ),
    # no usable replica: on_no_replica
    Case("ryw-no-replica", READ, P, "db1", RR.NO_REPLICA, C.READ_YOUR_WRITES, gtid="0-1-1", topo=DOWN),
    Case(
        "ryw-no-replica-error",
        READ,
        R,
        None,
        RR.NO_REPLICA_ERROR,
        C.READ_YOUR_WRITES,
        gtid="0-1-1",
        topo=DOWN,
        options=PolicyOptions(on_no_replica_primary=False),
    ),
    # session-wide reasons still come first
    Case("ryw-write", "INSERT INTO t VALUES (1)", P, "db1", RR.STATEMENT, C.READ_YOUR_WRITES, gtid="0-1-1"),
    Case("ryw-hint-replica", "/* rwproxy:replica */ " + READ, R, "r1", RR.HINT_REPLICA, C.PRIMARY),
    # max_lag hint: only replicas with known lag <= N
    Case("max-lag-1", "/* rwproxy:max_lag=1 */ " + READ, R, "r1", RR.READ),
    Case("max-lag-1-rand", "/* rwproxy:max_lag=1 */ " + READ, R, "r3", RR.READ, rand=0.99),
    Case("max-lag-0.1", "/* rwproxy:max_lag=0.1 */ " + READ, R, "r1", RR.READ, rand=0.99),
    Case("max-lag-none", "/* rwproxy:max_lag=0 */ " + READ, R, "r1", RR.READ, rand=0.99),
    Case(
        "max-lag-unmet",
        "/* rwproxy:max_lag=0.05 */ " + READ,
        P,
        "db1",
        RR.NO_REPLICA_WITHIN_LAG,
        topo=MYSQL_TOPO,
    ),
    Case("max-lag-bad-value-ignored", "/* rwproxy:max_lag=soon */ " + READ, R, "r2", RR.READ, rand=0.5),
    Case(
        "max-lag-with-causal",
        "/* rwproxy:max_lag=0.2 */ " + READ,
        R,
        "r1",
        RR.CAUSAL_WAIT,
        C.READ_YOUR_WRITES,
        gtid="0-1-95",
    ),
    # strategies
    Case("least-lag", READ, R, "r1", RR.READ, rand=0.99, options=PolicyOptions(strategy=Strategy.LEAST_LAG)),
    Case(
        "least-outstanding",
        READ,
        R,
        "r2",
        RR.READ,
        options=PolicyOptions(strategy=Strategy.LEAST_OUTSTANDING, outstanding={"r1": 3, "r3": 1}),
    ),
    Case(
        "least-outstanding-empty",
        READ,
        R,
        "r1",
        RR.READ,
        options=PolicyOptions(strategy=Strategy.LEAST_OUTSTANDING, outstanding={}),
    ),
    Case(
        "least-lag-no-replica",
        READ,
        P,
        "db1",
        RR.NO_REPLICA,
        topo=DOWN,
        options=PolicyOptions(strategy=Strategy.LEAST_LAG),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_route(case: Case) -> None:
    session = SessionState()
    session.consistency = case.consistency
    session.causal_gtid = case.gtid
    session.write_unconfirmed = case.unconfirmed
    r = route(classify(case.sql), session, case.topo, case.options, None, case.rand)
    assert (r.target, r.node.name if r.node else None, r.reason) == (case.target, case.node, case.reason)


def test_least_outstanding_weights_count() -> None:
    topo = Topology((PRIMARY, _replica("a", 0.0, weight=1), _replica("b", 0.0, weight=4)))
    opts = PolicyOptions(strategy=Strategy.LEAST_OUTSTANDING, outstanding={"a": 1, "b": 4})
    # (1 + 1) / 1 = 2 for a, (4 + 1) / 4 = 1.25 for b
    assert route(classify(READ), SessionState(), topo, opts).node.name == "b"  # type: ignore[union-attr]
