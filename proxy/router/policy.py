"""The routing decision: ``route(statement, session, topology, options, rule, rand) -> Route``.

Pure: no I/O, no clock, no randomness of its own (the caller passes ``rand`` in [0, 1)). Every route
carries a reason, used by ``rwproxy explain``, logs and metric labels.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

from proxy.router.session_state import PinReason, SessionState
from proxy.router.statement import Hint, Kind, PrimaryReason, StatementInfo
from proxy.topology.model import Node, Topology, weighted_choice

__all__ = ["PolicyOptions", "Route", "RouteReason", "Target", "choose_replica", "route"]


class Target(enum.Enum):
    PRIMARY = "primary"
    REPLICA = "replica"


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
    NO_REPLICA = "no replica is usable: the primary serves the read"
    NO_REPLICA_ERROR = "no replica is usable and routing.on_no_replica = 'error'"
    NO_PRIMARY = "no primary is known"


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


class Route(NamedTuple):
    """Where a statement goes and why. A NamedTuple: built once per statement, so it must be cheap."""

    target: Target
    node: Node | None  # None: nowhere to send it (see reason)
    reason: RouteReason
    statement_reason: PrimaryReason | None = None
    pin: PinReason | None = None

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
    return _to_replica(topology, options, _READ, rand)


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
    node = topology.choose_replica(rand)
    if node is not None:
        return Route(_REPLICA, node, reason)
    if options.on_no_replica_primary:
        return _to_primary(topology.primary, RouteReason.NO_REPLICA)
    return Route(Target.REPLICA, None, RouteReason.NO_REPLICA_ERROR)
