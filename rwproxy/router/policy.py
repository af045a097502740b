"""The routing decision: ``route(statement, session, topology, options, rule, rand) -> Route``.

Pure: no I/O, no clock, no randomness of its own (the caller passes ``rand`` in [0, 1)). Every route
carries a reason, used by ``rwproxy explain``, logs and metric labels.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from rwproxy.router.causal_token import read_gtid
from rwproxy.router.session_state import Consistency, PinReason, SessionState
from rwproxy.router.statement import Hint, Kind, PrimaryReason, StatementInfo
from rwproxy.topology.model import Node, Topology, lag_order, lag_within, read_share, weighted_choice

__all__ = [
    "PolicyOptions",
    "Route",
    "RouteReason",
    "Strategy",
    "Target",
    "causal_route",
    "choose_replica",
    "pick_replica",
    "primary_route",
    "route",
]


class Target(enum.Enum):
    PRIMARY = "primary"
    REPLICA = "replica"


class Strategy(enum.Enum):
    """How a replica is chosen among the usable ones (``routing.strategy``)."""

    WEIGHTED = "weighted"  # random, in proportion to the lag-scaled weights (read_weight)
    LEAST_LAG = "least_lag"  # the one with the smallest replication lag
    LEAST_OUTSTANDING = "least_outstanding"  # the fewest statements in flight per unit of weight


class RouteReason(enum.Enum):
    __hash__ = object.__hash__  # members are singletons; C-level hash for the per-query counters

    READ = "a plain read: a replica serves it"
    STATEMENT = "the statement needs the primary"
    IN_TRANSACTION = "the session is inside a transaction"
    AUTOCOMMIT_OFF = "autocommit is off: every statement is part of a transaction"
    PINNED = "the session is pinned to the primary"
    HINT_PRIMARY = "a /* rwproxy:primary */ hint"
    HINT_REPLICA = "a /* rwproxy:replica */ hint"
    RULE_PRIMARY = "a routing rule sends it to the primary"
    RULE_REPLICA = "a routing rule sends it to a replica"
    READS_TO_PRIMARY = "routing.reads_to_primary is on"
    CONSISTENCY_PRIMARY = "the session's consistency is 'primary'"
    # CAUSAL_APPLIED/WAIT/FALLBACK: read_your_writes, a @rwproxy_wait_gtid token
    # (rwproxy.router.causal_token) and universal (after UNIVERSAL_WAIT) reads alike.
    CAUSAL_APPLIED = "causal read: a replica known to have applied the GTID the read must see"
    CAUSAL_WAIT = "causal read: a replica that must first apply the GTID the read must see"
    CAUSAL_PRIMARY = "read_your_writes: the GTID of the session's last write is unknown"
    CAUSAL_FALLBACK = "causal read: no replica applied the GTID the read must see in time"
    CAUSAL_NO_WAIT = "read_your_writes: no usable replica can wait for a GTID (Aurora): the primary serves it"
    UNIVERSAL_WAIT = "universal: the read waits for the primary's position when it arrived"
    NO_REPLICA = "no replica is usable: the primary serves the read"
    NO_REPLICA_WITHIN_LAG = "no replica within the statement's max_lag: the primary serves the read"
    NO_REPLICA_ERROR = "no replica is usable and routing.on_no_replica = 'error'"
    NO_PRIMARY = "no primary is known"
    SPLIT_BRAIN = "several servers are writable at once: writes are refused until only one is"
    # Set by rwproxy.router.fallback when the routed server could not serve the statement.
    REPLICA_RETRY = "the chosen replica could not serve the read: another replica serves it"
    REPLICA_UNREACHABLE = "the chosen replica could not serve the read: the primary serves it"


# Primary reasons that a replica hint or rule may not override: moving them would change results.
_NOT_OVERRIDABLE = frozenset(
    {
        PrimaryReason.WRITE,
        PrimaryReason.DDL,
        PrimaryReason.LOCKING_READ,
        PrimaryReason.SELECT_INTO,
        PrimaryReason.NAMED_LOCK,
        PrimaryReason.SEQUENCE,
        PrimaryReason.USER_VAR_ASSIGN,
        PrimaryReason.CALL,
        PrimaryReason.MULTI_STATEMENT,
        PrimaryReason.TRANSACTION,
        PrimaryReason.SESSION_COMMAND,
        PrimaryReason.LOCK_TABLES,
        PrimaryReason.SQL_PREPARE,
        PrimaryReason.HANDLER,
        PrimaryReason.KILL,
    }
)
_READ_KINDS = frozenset({Kind.SELECT, Kind.SHOW})


@dataclass(frozen=True, slots=True)
class PolicyOptions:
    on_no_replica_primary: bool = True  # False: error when no replica is usable
    reads_to_primary: bool = False
    strategy: Strategy = Strategy.WEIGHTED
    # LEAST_OUTSTANDING: statements in flight per node name (a live mapping the caller keeps).
    outstanding: Mapping[str, int] | None = None


class Route:
    """Where a statement goes and why. Built once per statement: a plain class (compiled by
    ``rwproxy.native``, a C struct built without Python-level code; a NamedTuple's ``__new__`` is
    Python code even when its caller is compiled). Immutable by convention: ``replace`` copies."""

    __slots__ = ("node", "pin", "reason", "statement_reason", "target")

    def __init__(
        self,
        target: Target,
        node: Node | None,  # None: nowhere to send it (see reason)
        reason: RouteReason,
        statement_reason: PrimaryReason | None = None,
        pin: PinReason | None = None,
    ) -> None:
        self.target = target
        self.node = node
        self.reason = reason
        self.statement_reason = statement_reason
        self.pin = pin

    def replace(self, *, node: Node | None) -> Route:
        """This route with another ``node`` (None: not counted anywhere until it is rerouted)."""
        return Route(self.target, node, self.reason, self.statement_reason, self.pin)

    def _key(self) -> tuple[object, ...]:
        return (self.target, self.node, self.reason, self.statement_reason, self.pin)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Route) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"Route(target={self.target}, node={self.node!r}, reason={self.reason}, "
            f"statement_reason={self.statement_reason}, pin={self.pin})"
        )

    def explain(self) -> str:
        """One line for humans: ``primary (db1): the statement needs the primary: takes row locks``."""
        where = self.target.value + (f" ({self.node.name})" if self.node else " (none available)")
        detail = self.reason.value
        if self.statement_reason is not None:
            detail += f": it {self.statement_reason.value}"
        if self.pin is not None:
            detail += f": {self.pin.value}"
        return f"{where}: {detail}"


_DEFAULT_OPTIONS = PolicyOptions()
# Enum members read on every statement: module constants are ~10x cheaper than Enum.MEMBER lookups.
_PRIMARY, _REPLICA = Target.PRIMARY, Target.REPLICA
_HINT_PRIMARY, _HINT_REPLICA = Hint.PRIMARY, Hint.REPLICA
_READ = RouteReason.READ
_EVENTUAL, _C_PRIMARY, _UNIVERSAL = Consistency.EVENTUAL, Consistency.PRIMARY, Consistency.UNIVERSAL
_WEIGHTED = Strategy.WEIGHTED


def route(
    info: StatementInfo,
    session: SessionState,
    topology: Topology,
    options: PolicyOptions = _DEFAULT_OPTIONS,
    rule: Target | None = None,
    rand: float = 0.0,
) -> Route:
    """Decide where one statement runs. ``rule`` is the target of the first matching user rule."""
    primary = topology.primary
    # 1. Session-wide reasons: transactions and pins beat everything (they define what results mean).
    if session.in_transaction:
        return _to_primary(primary, RouteReason.IN_TRANSACTION)
    if not session.autocommit:
        return _to_primary(primary, RouteReason.AUTOCOMMIT_OFF)
    pin = session.pin()
    if pin is not None:
        return _to_primary(primary, RouteReason.PINNED, pin=pin)
    # 2. Explicit choices: hints, then rules (skipped at once in the usual case: neither).
    reason = info.primary_reason
    hint = info.hint
    if hint is not None or rule is not None:
        overridable = info.kind in _READ_KINDS and (reason is None or reason not in _NOT_OVERRIDABLE)
        if hint is _HINT_PRIMARY:
            return _to_primary(primary, RouteReason.HINT_PRIMARY)
        if rule is _PRIMARY:
            return _to_primary(primary, RouteReason.RULE_PRIMARY)
        if hint is _HINT_REPLICA and overridable:
            return _to_replica(topology, options, RouteReason.HINT_REPLICA, rand)
        if rule is _REPLICA and overridable:
            return _to_replica(topology, options, RouteReason.RULE_REPLICA, rand)
    # 3. The statement itself.
    if reason is not None:
        return _to_primary(primary, RouteReason.STATEMENT, statement_reason=reason)
    if info.reads_user_vars and session.user_vars_in_query:
        return _to_primary(primary, RouteReason.PINNED, pin=PinReason.USER_VARS)
    if options.reads_to_primary:
        return _to_primary(primary, RouteReason.READS_TO_PRIMARY)
    if session.consistency is not _EVENTUAL or session.wait_gtid is not None:
        if session.consistency is _C_PRIMARY:
            return _to_primary(primary, RouteReason.CONSISTENCY_PRIMARY)
        if session.consistency is _UNIVERSAL:
            return _universal(topology, options, info.max_lag)
        if session.write_unconfirmed:
            return _to_primary(primary, RouteReason.CAUSAL_PRIMARY)
        gtid = read_gtid(session)  # the session's last write and/or its @rwproxy_wait_gtid token
        if gtid is not None:
            return _causal(topology, options, gtid, info.max_lag, rand)
    if info.max_lag is not None:
        return _within_lag(topology, options, info.max_lag, rand)
    return _to_replica(topology, options, _READ, rand)


def primary_route(topology: Topology) -> Route:
    """The primary for a command with no statement to classify (NO_PRIMARY when none is usable)."""
    return _to_primary(topology.primary, RouteReason.STATEMENT)


def choose_replica(replicas: tuple[Node, ...], rand: float) -> Node | None:
    """Weighted random choice among ONLINE replicas with weight > 0; ``rand`` in [0, 1)."""
    return weighted_choice(replicas, rand)


def _to_primary(
    primary: Node | None,
    reason: RouteReason,
    *,
    statement_reason: PrimaryReason | None = None,
    pin: PinReason | None = None,
) -> Route:
    if primary is None or not primary.online:
        return Route(_PRIMARY, None, RouteReason.NO_PRIMARY, statement_reason, pin)
    return Route(_PRIMARY, primary, reason, statement_reason, pin)


def _to_replica(topology: Topology, options: PolicyOptions, reason: RouteReason, rand: float) -> Route:
    if options.strategy is not _WEIGHTED:
        return _by_strategy(topology, options, reason, topology.eligible_replicas(), rand)
    node = topology.choose_replica(rand)
    if node is not None:
        return Route(_REPLICA, node, reason)
    return _no_replica(topology, options)


def _no_replica(
    topology: Topology, options: PolicyOptions, reason: RouteReason = RouteReason.NO_REPLICA
) -> Route:
    if options.on_no_replica_primary:
        return _to_primary(topology.primary, reason)
    return Route(Target.REPLICA, None, RouteReason.NO_REPLICA_ERROR)


def pick_replica(options: PolicyOptions, candidates: tuple[Node, ...], rand: float) -> Node | None:
    """One of ``candidates`` (usable replicas) by the configured strategy."""
    if not candidates:
        return None
    strategy = options.strategy
    if strategy is Strategy.LEAST_LAG:
        return min(candidates, key=lag_order)
    if strategy is Strategy.LEAST_OUTSTANDING:
        counts = options.outstanding or {}
        return min(candidates, key=lambda n: (counts.get(n.name, 0) + 1) / _weight(n))
    return weighted_choice(candidates, rand)


def _by_strategy(
    topology: Topology, options: PolicyOptions, reason: RouteReason, candidates: tuple[Node, ...], rand: float
) -> Route:
    node = pick_replica(options, candidates, rand)
    if node is not None:
        return Route(_REPLICA, node, reason)
    return _no_replica(topology, options)


def _within_lag(topology: Topology, options: PolicyOptions, max_lag: float, rand: float) -> Route:
    """A ``/* rwproxy:max_lag=N */`` read: only replicas whose known lag is at most N seconds."""
    candidates = tuple(n for n in topology.eligible_replicas() if lag_within(n, max_lag))
    node = pick_replica(options, candidates, rand)
    if node is not None:
        return Route(_REPLICA, node, _READ)
    return _no_replica(topology, options, RouteReason.NO_REPLICA_WITHIN_LAG)


def _causal(
    topology: Topology, options: PolicyOptions, gtid: str, max_lag: float | None, rand: float
) -> Route:
    """A READ_YOUR_WRITES read after a write with a known GTID: a replica the monitor saw apply it,
    else the least-lagged replica (the session waits there for the GTID, then falls back). Replicas
    that cannot wait for a GTID (``Node.gtid_waits`` False: Aurora) are never chosen: with only
    those, the primary serves the read."""
    candidates = _candidates(topology, max_lag)
    if not candidates:
        return _no_replica(topology, options)
    if not all(n.gtid_waits for n in candidates):
        candidates = tuple(n for n in candidates if n.gtid_waits)
        if not candidates:
            return _to_primary(topology.primary, RouteReason.CAUSAL_NO_WAIT)
    applied = tuple(n for n in candidates if n.gtid is not None and _covers(n, gtid))
    if applied:
        node = pick_replica(options, applied, rand)
        return Route(_REPLICA, node, RouteReason.CAUSAL_APPLIED)
    return Route(_REPLICA, min(candidates, key=lag_order), RouteReason.CAUSAL_WAIT)


def _universal(topology: Topology, options: PolicyOptions, max_lag: float | None) -> Route:
    """A UNIVERSAL read: UNIVERSAL_WAIT on the least-lagged usable replica (the caller learns the
    primary's position, then ``causal_route`` decides), or the usual no-replica route."""
    candidates = _candidates(topology, max_lag)
    if not candidates:
        return _no_replica(topology, options)
    return Route(_REPLICA, min(candidates, key=lag_order), RouteReason.UNIVERSAL_WAIT)


def causal_route(
    topology: Topology, options: PolicyOptions, gtid: str, max_lag: float | None, rand: float
) -> Route:
    """Where a read that must see ``gtid`` goes (CAUSAL_APPLIED / CAUSAL_WAIT / primary)."""
    return _causal(topology, options, gtid, max_lag, rand)


def _candidates(topology: Topology, max_lag: float | None) -> tuple[Node, ...]:
    candidates = topology.eligible_replicas()
    if max_lag is not None:
        candidates = tuple(n for n in candidates if lag_within(n, max_lag))
    return candidates


def _covers(node: Node, gtid: str) -> bool:
    try:
        return node.gtid is not None and node.gtid.covers(gtid)
    except ValueError:  # a GTID of another flavour than the position
        return False


def _weight(node: Node) -> float:
    weight = read_share(node)
    return weight if weight > 0 else 1e-9
