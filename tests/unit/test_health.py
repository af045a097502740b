"""rwproxy.topology.health (state machine, primary election), the pure parts of probe, and the
monitor's publishing with a fake probe."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rwproxy.config import MonitorConfig, ServerConfig, parse_config
from rwproxy.topology import monitor as monitor_mod
from rwproxy.topology.election import ServerView, build_nodes
from rwproxy.topology.health import (
    HealthPolicy,
    ProbeResult,
    ServerHealth,
    ShunReason,
    assess,
    role_mismatch,
)
from rwproxy.topology.model import NodeState, Role, Topology
from rwproxy.topology.probe import Flavor, _replication, describe_error, flavor_for_version
from tests.support.builders import config_text, node, primary, topology, user

# --------------------------------------------------------------------------------------------------
# Probe results, by shorthand


def replica(lag: float | None = 0.0, io: bool | None = True, sql: bool | None = True) -> ProbeResult:
    return ProbeResult(ok=True, read_only=True, lag_seconds=lag, io_running=io, sql_running=sql)


G = replica()  # a good replica check
F = ProbeResult.failed("(2003) Can't connect", 0.0)
NULL = replica(lag=None)  # Seconds_Behind_Master NULL, threads running
SQL_STOPPED = replica(lag=None, sql=False)  # STOP SLAVE SQL_THREAD
IO_STOPPED = replica(lag=None, io=False)  # primary gone: IO thread "Connecting"
NO_REPL = ProbeResult(ok=True, read_only=True)  # read-only, no SHOW SLAVE STATUS row
WRITABLE = ProbeResult(ok=True, read_only=False)  # a primary


def lag(seconds: float) -> ProbeResult:
    return replica(lag=seconds)


def show(h: ServerHealth) -> str:
    short = {NodeState.ONLINE: "ON", NodeState.SHUNNED: "SH", NodeState.OFFLINE: "OFF"}[h.state]
    return short if h.reason is None or h.state is NodeState.OFFLINE else f"{short}:{h.reason.value}"


def run(
    seq: list[ProbeResult], policy: HealthPolicy | None = None, role: Role | None = None
) -> tuple[list[str], ServerHealth]:
    h = ServerHealth("db2", policy or HealthPolicy(), role)
    out = []
    for i, r in enumerate(seq):
        h.observe(dataclasses.replace(r, at=float(i)))
        out.append(show(h))
    return out, h


# --------------------------------------------------------------------------------------------------
# State machine: tables of checks -> states (default policy: 3 failures, 2 successes, lag 10 s / 8 s)

CASES: list[tuple[str, list[ProbeResult], list[str]]] = [
    ("first good check trusted", [G], ["ON"]),
    ("first failed check", [F], ["OFF"]),
    ("first check NULL lag", [NULL], ["SH:lag_unknown"]),
    ("offline only after 3 failures in a row", [G, F, F, F], ["ON", "ON", "ON", "OFF"]),
    ("failures not in a row: no OFFLINE", [G, F, F, G, G, G, G, G, F, F, G], ["ON"] * 11),
    ("online again after 2 good checks", [F, G, G], ["OFF", "OFF", "ON"]),
    ("a failure resets the success count", [F, G, F, G, G], ["OFF", "OFF", "OFF", "OFF", "ON"]),
    ("NULL lag shuns at once", [G, NULL], ["ON", "SH:lag_unknown"]),
    ("NULL lag is never 0", [NULL, NULL, NULL], ["SH:lag_unknown"] * 3),
    (
        "stopped SQL thread shuns, 2 good checks bring it back",
        [G, SQL_STOPPED, SQL_STOPPED, G, G],
        ["ON", "SH:replication_stopped", "SH:replication_stopped", "SH:replication_stopped", "ON"],
    ),
    ("stopped IO thread", [G, IO_STOPPED], ["ON", "SH:replication_stopped"]),
    ("read-only, no replication configured", [NO_REPL], ["SH:not_replicating"]),
    (
        "reason follows the condition while shunned",
        [SQL_STOPPED, NULL, lag(30)],
        ["SH:replication_stopped", "SH:lag_unknown", "SH:lag_over_max"],
    ),
    (
        "lag hysteresis: shun above 10, back at 8 or less",
        [lag(5), lag(10), lag(11), lag(9), lag(9), lag(8), lag(7)],
        ["ON", "ON", "SH:lag_over_max", "SH:lag_over_max", "SH:lag_over_max", "SH:lag_over_max", "ON"],
    ),
    (
        "lag between the thresholds keeps an ONLINE replica online",
        [lag(0), lag(9.5), lag(9.9), lag(8.5)],
        ["ON", "ON", "ON", "ON"],
    ),
    ("shunned then unreachable", [NULL, F, F, F], ["SH:lag_unknown"] * 3 + ["OFF"]),
    (
        "offline stays offline until reachable twice, then shows the condition",
        [F, NULL, NULL],
        ["OFF", "OFF", "SH:lag_unknown"],
    ),
    (
        "after an outage: back ONLINE only once fewer than 3 of the last 6 checks failed",
        [G, F, F, F, G, G, G, G],
        ["ON", "ON", "ON", "OFF", "OFF", "OFF", "OFF", "ON"],
    ),
    (
        "the window survives OFFLINE: no OFFLINE -> ONLINE -> SHUNNED on intermittent checks",
        [G, F, F, F, G, G, F, G, G, F],
        ["ON", "ON", "ON", "OFF", "OFF", "OFF", "OFF", "OFF", "ON", "ON"],
    ),
    (
        "leaving SHUNNED (check_failures) waits for the window too",
        [G, F, F, G, F, G, G, G],
        ["ON"] * 4 + ["SH:check_failures"] * 3 + ["ON"],
    ),
    (
        "intermittent failures shun (3 of the last 6 checks)",
        [G, F, G, F, G, F, G, G],
        ["ON", "ON", "ON", "ON", "ON", "SH:check_failures", "SH:check_failures", "ON"],
    ),
]


@pytest.mark.parametrize(("seq", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_state_table(seq: list[ProbeResult], expected: list[str]) -> None:
    assert run(seq)[0] == expected


def test_flapping_checks_do_not_change_state_on_every_check() -> None:
    for start in (G, F):
        seq = [G] + [start, F if start is G else G] * 20
        states, h = run(seq)
        changes = sum(1 for a, b in itertools.pairwise(states) if a != b)
        assert changes <= 1, states
        assert h.state is NodeState.SHUNNED and h.reason is ShunReason.CHECK_FAILURES
        assert "OFF" not in states  # never 3 in a row


def test_lag_oscillating_around_the_limit_does_not_flap() -> None:
    states, _ = run([lag(0)] + [lag(10.5), lag(9.5)] * 10)
    assert states == ["ON"] + ["SH:lag_over_max"] * 20


def test_policy_knobs() -> None:
    policy = HealthPolicy(failures_to_offline=1, successes_to_online=3, max_replication_lag=1)
    assert run([G, F, G, G, G], policy)[0] == ["ON", "OFF", "OFF", "OFF", "ON"]
    assert run([lag(0.5), lag(1.5), lag(0.9), lag(0.8), lag(0.7), lag(0.6)], policy)[0] == [
        "ON",
        "SH:lag_over_max",
        "SH:lag_over_max",
        "SH:lag_over_max",  # 0.8 <= 0.8: good 1
        "SH:lag_over_max",  # good 2
        "ON",  # good 3
    ]
    assert HealthPolicy(max_replication_lag=10).lag_recovery_threshold == 8.0
    with pytest.raises(ValueError):
        HealthPolicy(failures_to_offline=0)


def test_transitions_carry_detail_and_time() -> None:
    h = ServerHealth("db2")
    t = h.observe(dataclasses.replace(G, at=5.0))
    assert t is not None and (t.old_state, t.new_state, t.at) == (NodeState.OFFLINE, NodeState.ONLINE, 5.0)
    assert h.observe(dataclasses.replace(G, at=6.0)) is None  # no change, no transition
    t = h.observe(dataclasses.replace(SQL_STOPPED, at=7.0))
    assert t is not None and t.new_reason is ShunReason.REPLICATION_STOPPED
    assert t.describe() == "ONLINE -> SHUNNED (replication_stopped): SQL thread not running"
    assert h.since == 7.0
    for at in (8.0, 9.0):
        h.observe(ProbeResult.failed("timed out", at))
    t = h.observe(ProbeResult.failed("timed out", 10.0))
    assert t is not None and t.new_state is NodeState.OFFLINE
    assert t.detail == "3 failed checks in a row: timed out"
    assert (h.checks, h.failures, h.last_error) == (6, 3, "timed out")


def test_failed_checks_keep_last_known_values() -> None:
    _, h = run([replica(lag=3), F])
    assert h.lag_seconds == 3 and h.read_only is True


# --------------------------------------------------------------------------------------------------
# Roles


def test_primary_is_not_checked_for_lag() -> None:
    assert run([WRITABLE, ProbeResult(ok=True, read_only=False, io_running=False)])[0] == ["ON", "ON"]
    assert run([NO_REPL], role=Role.PRIMARY)[0] == ["ON"]  # configured primary, read_only ON


def test_auto_role_follows_read_only() -> None:
    _, h = run([G])
    roles = [h.role]
    h.observe(WRITABLE)
    roles.append(h.role)
    assert roles == [Role.REPLICA, Role.PRIMARY] and h.state is NodeState.ONLINE
    assert ServerHealth("x").role is Role.REPLICA  # never checked: not a primary


def test_configured_role_wins_and_disagreement_is_reported() -> None:
    states, h = run([WRITABLE], role=Role.REPLICA)
    assert states == ["SH:not_replicating"] and h.role is Role.REPLICA
    assert role_mismatch(h) is not None and "read_only = OFF" in str(role_mismatch(h))
    _, p = run([G], role=Role.PRIMARY)
    assert "writes will fail" in str(role_mismatch(p))
    assert role_mismatch(run([G])[1]) is None  # auto never disagrees


def test_assess() -> None:
    assert assess(G, Role.REPLICA, 10) == (None, "")
    assert assess(NULL, Role.REPLICA, 10)[0] is ShunReason.LAG_UNKNOWN
    assert assess(NULL, Role.PRIMARY, 10) == (None, "")
    assert assess(lag(10), Role.REPLICA, 10) == (None, "")
    assert assess(lag(10.5), Role.REPLICA, 10) == (ShunReason.LAG_OVER_MAX, "lag 10.5 s > 10 s")


# --------------------------------------------------------------------------------------------------
# Properties

_lags = st.one_of(st.none(), st.floats(min_value=0, max_value=100))
_probes = st.one_of(
    st.builds(ProbeResult.failed, st.just("down"), st.just(0.0)),
    st.builds(
        ProbeResult,
        ok=st.just(True),
        read_only=st.one_of(st.none(), st.booleans()),
        lag_seconds=_lags,
        io_running=st.one_of(st.none(), st.booleans()),
        sql_running=st.one_of(st.none(), st.booleans()),
    ),
)
_policies = st.builds(
    HealthPolicy,
    failures_to_offline=st.integers(1, 5),
    successes_to_online=st.integers(1, 4),
    max_replication_lag=st.floats(min_value=0.5, max_value=50),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_probes, max_size=40), _policies, st.sampled_from([None, Role.REPLICA]))
def test_never_online_while_the_latest_lag_is_unknown(
    seq: list[ProbeResult], policy: HealthPolicy, role: Role | None
) -> None:
    h = ServerHealth("db2", policy, role)
    last_ok: ProbeResult | None = None
    for r in seq:
        h.observe(r)
        if r.ok:
            last_ok = r
        if last_ok is None or h.role is Role.PRIMARY:
            continue
        # A replica whose latest successful check showed NULL lag (or stopped/no replication) is not ONLINE.
        if last_ok.lag_seconds is None or not (last_ok.io_running and last_ok.sql_running):
            assert h.state is not NodeState.ONLINE, (seq, h.state)
        # ... nor one whose latest lag is over the limit.
        if last_ok.lag_seconds is not None and last_ok.lag_seconds > policy.max_replication_lag:
            assert h.state is not NodeState.ONLINE


@settings(max_examples=300, deadline=None)
@given(st.lists(_probes, max_size=40), _policies)
def test_offline_exactly_after_enough_failures(seq: list[ProbeResult], policy: HealthPolicy) -> None:
    h = ServerHealth("db2", policy)
    run_of_failures = 0
    for r in seq:
        before = h.state
        h.observe(r)
        run_of_failures = 0 if r.ok else run_of_failures + 1
        if run_of_failures >= policy.failures_to_offline:
            assert h.state is NodeState.OFFLINE
        if before is not NodeState.OFFLINE and h.state is NodeState.OFFLINE:
            # never early: a checked server goes OFFLINE only on the failures_to_offline-th failure
            assert run_of_failures >= policy.failures_to_offline


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 60), _policies, st.booleans())
def test_alternating_checks_change_state_at_most_twice(
    n: int, policy: HealthPolicy, fail_first: bool
) -> None:
    seq = [F if (i % 2 == 0) == fail_first else G for i in range(n)]
    states, _ = run(seq, policy)
    changes = sum(1 for a, b in itertools.pairwise(states) if a != b)
    if policy.failures_to_offline > 1 and policy.successes_to_online > 1:
        assert changes <= 2, states


# Irregular fail/success streaks (a flapping network path is not strictly alternating).
_streaks = st.lists(st.tuples(st.booleans(), st.integers(1, 8)), max_size=25)


def _flatten(streaks: list[tuple[bool, int]]) -> list[ProbeResult]:
    return [F if failed else G for failed, n in streaks for _ in range(n)]


@settings(max_examples=400, deadline=None)
@given(_streaks, _policies)
def test_irregular_streaks_never_come_back_online_while_flapping(
    streaks: list[tuple[bool, int]], policy: HealthPolicy
) -> None:
    """Whatever the streaks: ONLINE is entered (after the first check) only with the last
    ``successes_to_online`` checks good and fewer than ``failures_to_offline`` of the last
    ``2 * failures_to_offline`` failed; OFFLINE does not reset that; and between two entries into
    ONLINE at least ``failures_to_offline`` checks failed (leaving ONLINE costs that many)."""
    seq = _flatten(streaks)
    f, window = policy.failures_to_offline, policy.flap_window
    h = ServerHealth("db2", policy)
    failed_since_online: int | None = None
    for i, r in enumerate(seq):
        before = h.state
        h.observe(dataclasses.replace(r, at=float(i)))
        if failed_since_online is not None and not r.ok:
            failed_since_online += 1
        if h.state is NodeState.ONLINE and before is not NodeState.ONLINE and i > 0:
            recent = seq[max(0, i + 1 - window) : i + 1]
            assert sum(not x.ok for x in recent) < f, (i, seq)
            assert all(x.ok for x in seq[i + 1 - policy.successes_to_online : i + 1]), (i, seq)
            if failed_since_online is not None:
                assert failed_since_online >= f, (i, seq)
        if h.state is NodeState.ONLINE and before is not NodeState.ONLINE:
            failed_since_online = 0


@settings(max_examples=300, deadline=None)
@given(_streaks, st.integers(2, 5), st.integers(2, 4))
def test_irregular_streaks_change_state_at_most_twice_per_outage(
    streaks: list[tuple[bool, int]], failures: int, successes: int
) -> None:
    """A healthy replica with intermittent failed checks: state changes (after the first check) never
    outnumber twice the failed checks divided by ``failures_to_offline``: every round trip out of
    ONLINE and back costs at least that many failures, whatever the pattern."""
    policy = HealthPolicy(failures_to_offline=failures, successes_to_online=successes)
    seq = [G, *_flatten(streaks)]
    states, _ = run(seq, policy)
    changes = sum(1 for a, b in itertools.pairwise(states) if a != b)
    failed = sum(not r.ok for r in seq)
    # out: ONLINE -> SHUNNED (-> OFFLINE) needs >= f failures; back: one change.
    assert changes <= 3 * (failed // failures) + (1 if failed % failures else 0), (states, seq)


def test_recovery_after_a_clean_outage_takes_failures_plus_one_good_checks() -> None:
    """Measured in checks (the monitor's unit): before the fix 2 (successes_to_online), now
    failures_to_offline + 1 for an outage of failures_to_offline or more failed checks."""
    for f in (1, 2, 3, 5):
        for outage in (f, f + 1, 10):
            policy = HealthPolicy(failures_to_offline=f, successes_to_online=2)
            h = ServerHealth("db2", policy)
            for r in [G] + [F] * outage:
                h.observe(r)
            assert h.state is NodeState.OFFLINE
            good = 0
            while h.state is not NodeState.ONLINE:
                h.observe(G)
                good += 1
            assert good == max(2, f + 1), (f, outage, good)


# --------------------------------------------------------------------------------------------------
# Primary election: build_nodes


def _view(name: str, *checks: ProbeResult, role: Role | None = None, weight: int = 1) -> ServerView:
    h = ServerHealth(name, HealthPolicy(), role)
    for r in checks:
        h.observe(r)
    return ServerView(name, f"{name}.local", 3306, weight, h)


def _summary(nodes: Any) -> list[tuple[str, str, str, str | None]]:
    return [(n.name, n.role.value, n.state.value, n.reason) for n in nodes]


def test_build_nodes_elects_the_writable_server() -> None:
    nodes = build_nodes([_view("a", WRITABLE), _view("b", G), _view("c", SQL_STOPPED)], None)
    assert _summary(nodes) == [
        ("a", "primary", "online", None),
        ("b", "replica", "online", None),
        ("c", "replica", "shunned", "replication_stopped"),
    ]
    assert nodes[0].lag_seconds == 0.0 and nodes[0].address == ("a.local", 3306)
    t = Topology(nodes)
    assert t.primary is not None and t.primary.name == "a"
    chosen = t.choose_replica(0.99)
    assert chosen is not None and chosen.name == "b"  # c is shunned


def test_build_nodes_second_writable_server_is_shunned_and_primary_is_sticky() -> None:
    views = [_view("a", WRITABLE), _view("b", WRITABLE)]
    assert _summary(build_nodes(views, "b")) == [
        ("a", "replica", "shunned", "writable_not_primary"),
        ("b", "primary", "online", None),
    ]
    assert build_nodes(views, None)[0].role is Role.PRIMARY  # no history: configuration order


def test_build_nodes_failover_to_the_online_writable_server() -> None:
    dead = _view("a", WRITABLE, F, F, F)  # last seen writable, now OFFLINE
    promoted = _view("b", WRITABLE)
    assert _summary(build_nodes([dead, promoted], "a")) == [
        ("a", "replica", "offline", "unreachable"),
        ("b", "primary", "online", None),
    ]
    # With no other candidate the dead primary stays the (offline) primary: writes fail, not misroute.
    nodes = build_nodes([dead, _view("b", IO_STOPPED)], "a")
    assert _summary(nodes)[0] == ("a", "primary", "offline", "unreachable")
    assert nodes[0].lag_seconds is None


def _at(r: ProbeResult, at: float) -> ProbeResult:
    return dataclasses.replace(r, at=at)


def test_a_replica_that_lost_the_primary_is_judged_after_the_primary() -> None:
    """The primary is killed: a replica's check sees its IO thread lost it before the primary's own
    check fails. Until the primary has been checked since, the replica keeps serving (else both
    replicas would be shunned and reads sent to the dead primary); a good primary check after that
    shuns it (the IO thread broke for another reason), a failed one keeps it serving."""
    policy = HealthPolicy()
    primary, r1, r2 = (ServerHealth(n, policy) for n in ("a", "b", "c"))
    primary.observe(_at(WRITABLE, 1.0), started=0.99)
    for h in (r1, r2):
        h.observe(_at(lag(0.5), 1.0))
    for h in (r1, r2):  # the primary dies at 1.5; both replicas notice first
        h.observe(_at(IO_STOPPED, 2.0), started=1.99)
        assert h.state is NodeState.SHUNNED and h.io_lost_at == 2.0

    def nodes() -> list[tuple[str, str, str, str | None]]:
        views = [ServerView(h.name, "h", 1, 1, h) for h in (primary, r1, r2)]
        return _summary(build_nodes(views, "a", 10.0))

    assert nodes()[1:] == [("b", "replica", "online", None), ("c", "replica", "online", None)]
    views = [ServerView(h.name, "h", 1, 1, h) for h in (primary, r1, r2)]
    assert build_nodes(views, "a", 10.0)[1].lag_seconds == 0.5  # the last known lag
    primary.observe(ProbeResult.failed("(2003) refused", 2.1), started=2.05)  # it is dead
    assert nodes()[1:] == [("b", "replica", "online", None), ("c", "replica", "online", None)]
    alive = ServerHealth("a", policy)
    alive.observe(_at(WRITABLE, 1.0), started=0.99)
    alive.observe(_at(WRITABLE, 2.1), started=2.05)  # checked after the loss, and it answers
    views = [ServerView(h.name, "h", 1, 1, h) for h in (alive, r1, r2)]
    assert [n.state for n in build_nodes(views, "a", 10.0)[1:]] == [NodeState.SHUNNED] * 2


def test_a_replica_being_repointed_keeps_serving_reads() -> None:
    """After a promotion the controller repoints the other replica: STOP REPLICA, then the IO
    thread connecting, then two good checks. Meanwhile it serves with its last known lag, for a
    bounded number of checks and only towards the announced new primary."""
    policy = HealthPolicy()
    new, r = ServerHealth("b", policy), ServerHealth("c", policy)
    new.observe(_at(WRITABLE, 1.0))
    r.observe(_at(lag(1.5), 1.0))
    r.expect_repoint("b", 5)
    views = [ServerView(h.name, "h", 1, 1, h) for h in (new, r)]
    states = []
    for i, check in enumerate([SQL_STOPPED, IO_STOPPED, NULL, lag(0.2), lag(0.1), lag(0.1)]):
        r.observe(_at(check, 2.0 + i))
        node = build_nodes(views, "b", 10.0)[1]
        states.append(node.state)
        if i < 3:
            assert node.lag_seconds == 1.5, i  # the last known lag while replication restarts
    assert states == [NodeState.ONLINE] * 6
    assert r.state is NodeState.ONLINE and r.repoint_checks_left == 0  # the grace ended on its own
    # Not towards another server, not past the bound, not for lag over the limit.
    other = ServerHealth("c", policy)
    other.observe(_at(lag(0.5), 1.0))
    other.expect_repoint("z", 5)
    other.observe(_at(SQL_STOPPED, 2.0))
    assert (
        build_nodes([ServerView("b", "h", 1, 1, new), ServerView("c", "h", 1, 1, other)], "b", 10.0)[1].state
        is NodeState.SHUNNED
    )
    other.expect_repoint("b", 2)
    other.observe(_at(SQL_STOPPED, 3.0))
    online = build_nodes([ServerView("b", "h", 1, 1, new), ServerView("c", "h", 1, 1, other)], "b", 10.0)
    assert online[1].state is NodeState.ONLINE
    other.observe(_at(SQL_STOPPED, 4.0))  # the second check of two: the grace is used up
    late = build_nodes([ServerView("b", "h", 1, 1, new), ServerView("c", "h", 1, 1, other)], "b", 10.0)
    assert late[1].state is NodeState.SHUNNED
    other.expect_repoint("b", 5)
    other.observe(_at(lag(30), 5.0))
    assert (
        build_nodes([ServerView("b", "h", 1, 1, new), ServerView("c", "h", 1, 1, other)], "b", 10.0)[1].state
        is NodeState.SHUNNED
    )


def test_build_nodes_configured_primary_wins() -> None:
    nodes = build_nodes([_view("a", G, role=Role.PRIMARY), _view("b", WRITABLE)], "b")
    assert _summary(nodes) == [
        ("a", "primary", "online", None),
        ("b", "replica", "shunned", "writable_not_primary"),
    ]
    # A configured replica that is writable stays a replica (the disagreement is reported elsewhere).
    nodes = build_nodes(
        [_view("a", WRITABLE, role=Role.PRIMARY), _view("b", G, WRITABLE, role=Role.REPLICA)], None
    )
    assert _summary(nodes)[1] == ("b", "replica", "shunned", "not_replicating")


def test_build_nodes_no_primary_and_unchecked() -> None:
    nodes = build_nodes([_view("a"), _view("b", G)], None)
    assert _summary(nodes) == [("a", "replica", "offline", "not_checked"), ("b", "replica", "online", None)]
    assert Topology(nodes).primary is None


# --------------------------------------------------------------------------------------------------
# probe: the pure parts


def test_flavor_for_version() -> None:
    assert flavor_for_version("10.11.19-MariaDB-0+deb12u1-log") is Flavor.MARIADB
    assert flavor_for_version("5.5.5-10.6.12-MariaDB") is Flavor.MARIADB
    assert flavor_for_version("8.0.36") is Flavor.MYSQL
    assert flavor_for_version("8.4.0-log") is Flavor.MYSQL
    assert flavor_for_version("8.0.21") is Flavor.MYSQL_LEGACY
    assert flavor_for_version("5.7.44-log") is Flavor.MYSQL_LEGACY
    assert Flavor.MYSQL.status_sql == "SHOW REPLICA STATUS"
    assert Flavor.MARIADB.status_sql == Flavor.MYSQL_LEGACY.status_sql == "SHOW SLAVE STATUS"


def test_replication_status_parsing() -> None:
    assert _replication([]) == (None, None, None)
    maria = {"Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": 3}
    assert _replication([maria]) == (True, True, 3.0)
    mysql = {"Replica_IO_Running": "Connecting", "Replica_SQL_Running": "Yes", "Seconds_Behind_Source": None}
    assert _replication([mysql]) == (False, True, None)
    # channels: every thread must run; the largest lag; unknown if any is unknown
    assert _replication([maria, {**maria, "Seconds_Behind_Master": 7}]) == (True, True, 7.0)
    assert _replication([maria, {**maria, "Seconds_Behind_Master": None}]) == (True, True, None)


def test_describe_error() -> None:
    assert describe_error(OSError(2003, "Can't connect")) == "(2003) Can't connect"
    assert describe_error(TimeoutError()) == "timed out"
    assert describe_error(RuntimeError("boom\nmore")) == "boom"


# --------------------------------------------------------------------------------------------------
# Monitor with a fake probe: publishing, versions, request_probe


class FakeServers:
    """Scripted check results per server name, read by the patched probe."""

    def __init__(self) -> None:
        self.results: dict[str, ProbeResult] = {}
        self.calls: dict[str, int] = {}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeServers:
    servers = FakeServers()

    async def open_connection(host: str, port: int, *args: Any, **kw: Any) -> Any:
        return host

    async def probe(conn: Any, flavor: Any, **kw: Any) -> ProbeResult:
        servers.calls[conn] = servers.calls.get(conn, 0) + 1
        return servers.results[conn]

    monkeypatch.setattr(monitor_mod, "open_connection", open_connection)
    monkeypatch.setattr(monitor_mod, "probe", probe)
    monkeypatch.setattr(monitor_mod, "close_quietly", lambda conn: None)
    return servers


async def _wait(cond: Any, timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_monitor_publishes_only_changes(fake: FakeServers) -> None:
    fake.results = {"a": WRITABLE, "b": G}
    published: list[Topology] = []
    servers = [ServerConfig(name=n, host=n) for n in ("a", "b")]
    m = monitor_mod.Monitor(
        servers,
        MonitorConfig(interval_seconds=0.02),
        user="mon",
        password="pw",
        on_topology=published.append,
    )
    await m.start()
    try:
        assert [t.version for t in published] == [1]
        assert published[0].primary is not None and published[0].primary.name == "a"
        await _wait(lambda: fake.calls["b"] >= 5)
        assert len(published) == 1  # nothing changed: nothing published
        fake.results["b"] = SQL_STOPPED
        await _wait(lambda: len(published) == 2)
        b = published[1].by_name["b"]
        assert (published[1].version, b.state, b.reason) == (2, NodeState.SHUNNED, "replication_stopped")
        st_b = m.stats["b"]
        assert st_b.state is NodeState.SHUNNED and st_b.state_changes == 2 and st_b.connects == 1
        assert m.topology is published[-1]
    finally:
        await m.stop()
    assert not m.running


async def test_monitor_request_probe_checks_at_once(fake: FakeServers) -> None:
    fake.results = {"a": WRITABLE}
    m = monitor_mod.Monitor(
        [ServerConfig(name="a", host="a")],
        MonitorConfig(interval_seconds=30),
        user="mon",
        password="pw",
        on_topology=lambda t: None,
    )
    await m.start()
    try:
        assert fake.calls["a"] == 1
        m.request_probe("a")
        m.request_probe("nonexistent")  # ignored
        await _wait(lambda: fake.calls["a"] == 2, timeout=1.0)
    finally:
        await m.stop()


async def test_monitor_survives_a_failing_callback(fake: FakeServers) -> None:
    fake.results = {"a": WRITABLE}
    calls: list[int] = []

    def boom(t: Topology) -> None:
        calls.append(t.version)
        raise RuntimeError("app bug")

    m = monitor_mod.Monitor(
        [ServerConfig(name="a", host="a")],
        MonitorConfig(interval_seconds=0.02),
        user="mon",
        password="pw",
        on_topology=boom,
    )
    await m.start()
    try:
        fake.results["a"] = F
        await _wait(lambda: len(calls) == 2)
        assert m.topology is not None and m.topology.by_name["a"].state is NodeState.OFFLINE
    finally:
        await m.stop()


def test_monitor_credentials_fall_back_to_the_first_user() -> None:
    base = config_text(users=[user(backend_user="app_be")])
    m = monitor_mod.Monitor.from_config(parse_config(base), on_topology=lambda t: None)
    assert (m.user, m._password) == ("app_be", "pw")
    m = monitor_mod.Monitor.from_config(
        parse_config(base + '[monitor]\nuser = "mon"\npassword = "mpw"\n'), on_topology=lambda t: None
    )
    assert (m.user, m._password) == ("mon", "mpw")
    assert m.policy.failures_to_offline == 3 and m.policy.lag_recovery_threshold == 8.0


# -- lag-weighted reads -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lag", "max_lag", "factor"),
    [
        (0.0, 10.0, 1.0),
        (1.0, 10.0, 0.9),
        (5.0, 10.0, 0.5),
        (9.0, 10.0, 0.1),
        (10.0, 10.0, 0.1),
        (0.5, 1.0, 0.5),
    ],
)
def test_lag_factor(lag: float, max_lag: float, factor: float) -> None:
    from rwproxy.topology.election import lag_factor

    assert lag_factor(lag, max_lag) == pytest.approx(factor)


def test_lagging_replica_gets_proportionally_fewer_reads() -> None:
    fresh = node("fresh", lag=0.0, read_weight=1.0)
    behind = node("behind", lag=5.0, read_weight=0.5)
    topo = topology(primary("p"), fresh, behind)
    grid = [(i + 0.5) / 300 for i in range(300)]
    picks = [topo.choose_replica(r) for r in grid]
    assert picks.count(fresh) == 200 and picks.count(behind) == 100


def test_build_nodes_scales_replica_read_weight_by_lag() -> None:
    nodes = build_nodes([_view("a", WRITABLE), _view("b", lag(0)), _view("c", lag(5), weight=2)], None, 10.0)
    by = {n.name: n for n in nodes}
    assert by["a"].read_weight is None  # the primary
    assert by["b"].read_weight == pytest.approx(1.0)
    assert by["c"].read_weight == pytest.approx(1.0)  # weight 2 x factor 0.5
    no_weighting = {n.name: n for n in build_nodes([_view("a", WRITABLE), _view("c", lag(5))], None)}
    assert no_weighting["c"].read_weight is None


# Lag-cascade guard: soft threshold with min_replicas


@pytest.mark.parametrize(
    ("lags", "soft", "min_replicas", "serving"),
    [
        ((0.5, 1.0, 2.0), 3.0, 1, "bcd"),  # all under the soft threshold
        ((0.5, 4.0, 5.0), 3.0, 1, "b"),  # two over: cut
        ((4.0, 6.0, 5.0), 3.0, 1, "b"),  # all over: the least-lagged one keeps serving
        ((4.0, 6.0, 5.0), 3.0, 2, "bd"),
        ((4.0, 6.0, 5.0), 3.0, 0, ""),  # min_replicas = 0: nobody (reads go by on_no_replica)
        ((0.5, 4.0, 5.0), 3.0, 3, "bcd"),  # keep three serving
        ((4.0, 4.0, 5.0), 3.0, 1, "b"),  # ties: by name
    ],
)
def test_soft_lag_guard(lags: tuple[float, ...], soft: float, min_replicas: int, serving: str) -> None:
    views = [_view("a", WRITABLE)] + [_view(n, lag(x)) for n, x in zip("bcd", lags, strict=True)]
    nodes = build_nodes(views, None, 10.0, soft_lag=soft, min_replicas=min_replicas)
    t = Topology(nodes)
    assert "".join(n.name for n in t.eligible_replicas()) == serving
    for n in nodes[1:]:
        assert n.state.value == "online"  # still ONLINE: only out of read selection
        assert (n.reason == "lag_over_soft_threshold") is (n.name not in serving)


def test_soft_lag_guard_never_keeps_a_shunned_replica() -> None:
    views = [_view("a", WRITABLE), _view("b", lag(11.0), lag(11.0), lag(11.0)), _view("c", lag(4.0))]
    nodes = build_nodes(views, None, 10.0, soft_lag=3.0, min_replicas=2)
    assert [n.name for n in Topology(nodes).eligible_replicas()] == ["c"]


def test_nodes_carry_parsed_gtid_positions() -> None:
    at = ProbeResult(
        ok=True, read_only=True, lag_seconds=0.0, io_running=True, sql_running=True, gtid_position="0-1-5"
    )
    bad = ProbeResult(
        ok=True, read_only=True, lag_seconds=0.0, io_running=True, sql_running=True, gtid_position="?"
    )
    nodes = build_nodes([_view("a", WRITABLE), _view("b", at), _view("c", bad)], None)
    assert nodes[0].gtid is None
    assert nodes[1].gtid is not None and nodes[1].gtid.covers("0-3-5") and not nodes[1].gtid.covers("0-1-6")
    assert nodes[2].gtid is None  # unparseable: unknown, never "applied everything"
