"""The cross-connection causal token: parsing ``SET @rwproxy_wait_gtid`` / ``SELECT
@rwproxy_last_gtid``, merging GTIDs, and the route of a session holding a token (a table)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from rwproxy.router.causal_token import (
    TokenError,
    WaitGtid,
    is_last_gtid_query,
    merge_gtids,
    parse_wait_gtid,
    read_gtid,
    valid_gtid,
)
from rwproxy.router.classify import classify
from rwproxy.router.policy import RouteReason, Target, route
from rwproxy.router.session_state import Consistency, SessionState
from rwproxy.topology.gtid import parse_position
from rwproxy.topology.model import Topology
from tests.support.builders import primary
from tests.support.builders import replica as _replica

RR = RouteReason
C = Consistency
UUID = "3e11fa47-71ca-11e1-9e33-c80aa9429562"


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SET @rwproxy_wait_gtid = '0-1-42'", WaitGtid("0-1-42")),
        ("set @RWPROXY_WAIT_GTID:='0-1-42,1-2-7';", WaitGtid("0-1-42,1-2-7")),
        ('SET @rwproxy_wait_gtid = "0-1-42, 1-2-7"', WaitGtid("0-1-42,1-2-7")),
        (f"SET @rwproxy_wait_gtid = '{UUID}:1-5:7'", WaitGtid(f"{UUID}:1-5:7")),
        (f"SET @rwproxy_wait_gtid = '{UUID}:9'", WaitGtid(f"{UUID}:9")),
        ("SET @rwproxy_wait_gtid = NULL", WaitGtid(None)),
        ("SET @rwproxy_wait_gtid = null ;", WaitGtid(None)),
        ("SET @rwproxy_wait_gtid = ''", WaitGtid(None)),
    ],
)
def test_parse_wait_gtid(sql: str, expected: WaitGtid) -> None:
    assert parse_wait_gtid(sql) == expected


@pytest.mark.parametrize(
    ("sql", "errno"),
    [
        ("SET @rwproxy_wait_gtid = 'garbage'", 1231),
        ("SET @rwproxy_wait_gtid = '0-1'", 1231),
        ("SET @rwproxy_wait_gtid = '0-1-5 OR 1'", 1231),
        ("SET @rwproxy_wait_gtid = 42", 1064),
        ("SET @rwproxy_wait_gtid = '0-1-5', @x = 1", 1064),
        ("SET @rwproxy_wait_gtid = '0-1-5\\' OR 1'", 1064),
        ("SET @rwproxy_wait_gtid = @other", 1064),
    ],
)
def test_bad_wait_gtid_is_refused(sql: str, errno: int) -> None:
    result = parse_wait_gtid(sql)
    assert isinstance(result, TokenError)
    assert result.errno == errno


def test_valid_gtid_bounds_length() -> None:
    assert valid_gtid("0-1-5")
    assert not valid_gtid(",".join(f"{d}-1-5" for d in range(2000)))


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT @rwproxy_last_gtid", True),
        ("  select   @RWPROXY_LAST_GTID ; ", True),
        ("SELECT @rwproxy_last_gtid, 1", False),
        ("SELECT @rwproxy_last_gtid AS g", False),
        ("SELECT @rwproxy_last_gtidx", False),
    ],
)
def test_is_last_gtid_query(sql: str, expected: bool) -> None:
    assert is_last_gtid_query(sql) is expected


@pytest.mark.parametrize(
    ("a", "b", "merged"),
    [
        ("0-1-5", "0-1-9", "0-1-9"),
        ("0-1-9", "0-2-5", "0-1-9"),
        ("0-1-5,1-2-3", "1-2-8", "0-1-5,1-2-8"),
        (f"{UUID}:5", f"{UUID}:9", f"{UUID}:5,{UUID}:9"),
    ],
)
def test_merge_gtids(a: str, b: str, merged: str) -> None:
    assert merge_gtids(a, b) == merged
    position = parse_position(merged)
    assert position is not None and position.covers(a) and position.covers(b)


def test_read_gtid_per_mode() -> None:
    s = SessionState(causal_gtid="0-1-50")
    assert read_gtid(s) is None  # eventual: the session's own write does not count
    s.wait_gtid = "0-1-40"
    assert read_gtid(s) == "0-1-40"
    s.consistency = C.READ_YOUR_WRITES
    assert read_gtid(s) == "0-1-50"  # merged: the later of the two in domain 0
    s.wait_gtid = "1-3-7"
    assert read_gtid(s) == "0-1-50,1-3-7"
    s.consistency = C.PRIMARY
    assert read_gtid(s) == "1-3-7"


def test_reset_clears_the_token() -> None:
    s = SessionState(wait_gtid="0-1-5")
    s.reset()
    assert s.wait_gtid is None


PRIMARY = primary(lag=0.0, gtid="0-1-100")
TOPO = Topology((PRIMARY, _replica("r1", 0.0, "0-1-90"), _replica("r2", 2.0, "0-1-80")))
AURORA = Topology((PRIMARY, _replica("a1", 0.0, None, gtid_waits=False)))
READ = "SELECT * FROM t WHERE id = 1"


@dataclass(frozen=True)
class Case:
    id: str
    token: str | None
    target: Target
    node: str | None
    reason: RouteReason
    consistency: Consistency = C.EVENTUAL
    own: str | None = None
    sql: str = READ
    topo: Topology = TOPO
    rand: float = 0.99  # weighted: r2 owns the top of the range


CASES = [
    Case("no-token-eventual", None, Target.REPLICA, "r2", RR.READ),
    Case("token-applied-by-both", "0-1-70", Target.REPLICA, "r2", RR.CAUSAL_APPLIED),
    Case("token-applied-by-r1-only", "0-1-85", Target.REPLICA, "r1", RR.CAUSAL_APPLIED),
    Case("token-not-seen-waits-least-lagged", "0-1-95", Target.REPLICA, "r1", RR.CAUSAL_WAIT),
    Case("token-other-domain-waits", "1-2-3", Target.REPLICA, "r1", RR.CAUSAL_WAIT),
    Case(
        "token-write-still-primary", "0-1-70", Target.PRIMARY, "db1", RR.STATEMENT, sql="UPDATE t SET a = 1"
    ),
    Case("token-in-primary-mode", "0-1-70", Target.PRIMARY, "db1", RR.CONSISTENCY_PRIMARY, C.PRIMARY),
    Case(
        "token-and-own-write-merged",
        "0-1-70",
        Target.REPLICA,
        "r1",
        RR.CAUSAL_APPLIED,
        C.READ_YOUR_WRITES,
        own="0-1-85",
    ),
    Case("own-write-ignored-in-eventual", "0-1-70", Target.REPLICA, "r2", RR.CAUSAL_APPLIED, own="0-1-95"),
    Case("token-aurora-primary", "0-1-70", Target.PRIMARY, "db1", RR.CAUSAL_NO_WAIT, topo=AURORA),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_route_with_token(case: Case) -> None:
    state = SessionState(consistency=case.consistency, causal_gtid=case.own, wait_gtid=case.token)
    r = route(classify(case.sql), state, case.topo, rand=case.rand)
    assert (r.target, r.node.name if r.node else None, r.reason) == (case.target, case.node, case.reason)
