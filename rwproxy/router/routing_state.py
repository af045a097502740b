"""The routing settings a session reads per statement, as one object replaced whole on reload.

    app.routing = RoutingState.from_config(config.routing)                      # at start
    app.routing = RoutingState.from_config(new.routing, app.routing, in_flight)  # rwproxy.reload

Sessions read ``app.routing`` once per statement and use that object's fields together, so a reload
never shows them half of the old settings and half of the new. ``PolicyOptions`` is built here and
nowhere else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Protocol

from rwproxy.router.policy import PolicyOptions, Strategy
from rwproxy.router.rules import RuleSet, _RuleConfig

__all__ = ["RoutingState"]


class _RoutingConfig(Protocol):
    """The part of ``rwproxy.config.RoutingConfig`` read here (the router does not import config)."""

    @property
    def on_no_replica(self) -> str: ...

    @property
    def reads_to_primary(self) -> bool: ...

    @property
    def strategy(self) -> str: ...

    @property
    def rules(self) -> Iterable[_RuleConfig]: ...

    @property
    def sticky_replica(self) -> bool: ...


class RoutingState:
    """Immutable by convention (a plain class: compiled by ``rwproxy.native`` to a C struct):
    replaced whole, never changed in place. ``outstanding`` is the one live part: statements in
    flight per server name (``least_outstanding``; None for the other strategies), counted by the
    sessions and carried over from one state to the next."""

    __slots__ = ("has_rules", "outstanding", "policy_options", "rules", "sticky_replica")

    def __init__(
        self,
        rules: RuleSet,
        policy_options: PolicyOptions,
        sticky_replica: bool,
        outstanding: Counter[str] | None,
    ) -> None:
        self.rules = rules
        self.has_rules = bool(rules)
        self.policy_options = policy_options
        self.sticky_replica = sticky_replica  # rwproxy.router.sticky
        self.outstanding = outstanding

    @classmethod
    def from_config(
        cls,
        routing: _RoutingConfig,
        previous: RoutingState | None = None,
        in_flight: Iterable[str] = (),
    ) -> RoutingState:
        """The state for ``routing``. On reload, ``previous`` is the running state: its in-flight
        counts carry over; when ``least_outstanding`` is switched on, ``in_flight`` (the servers of
        the statements running now, read only then) seeds the counts, as each will be subtracted
        when it ends."""
        strategy = Strategy(routing.strategy)
        outstanding: Counter[str] | None = None
        if strategy is Strategy.LEAST_OUTSTANDING:
            outstanding = previous.outstanding if previous is not None else None
            if outstanding is None:
                outstanding = Counter(in_flight) if previous is not None else Counter()
        options = PolicyOptions(
            on_no_replica_primary=routing.on_no_replica == "primary",
            reads_to_primary=routing.reads_to_primary,
            strategy=strategy,
            outstanding=outstanding,
        )
        return cls(RuleSet.from_config(routing.rules), options, routing.sticky_replica, outstanding)
