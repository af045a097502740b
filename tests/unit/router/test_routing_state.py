"""rwproxy.router.routing_state: PolicyOptions built in one place; in-flight counts across reloads."""

from __future__ import annotations

from collections import Counter

from rwproxy.config import parse_config
from rwproxy.config.sections import RoutingConfig
from rwproxy.router.policy import Strategy
from rwproxy.router.routing_state import RoutingState


def _routing(text: str = "") -> RoutingConfig:
    base = '[[users]]\nname = "app"\npassword = "pw"\n[[servers]]\nname = "db1"\nhost = "127.0.0.1"\n'
    return parse_config(base + "[routing]\n" + text).routing


def test_options_follow_the_config() -> None:
    state = RoutingState.from_config(
        _routing('on_no_replica = "error"\nreads_to_primary = true\nsticky_replica = true\n')
    )
    o = state.policy_options
    assert (o.on_no_replica_primary, o.reads_to_primary, o.strategy) == (False, True, Strategy.WEIGHTED)
    assert (
        state.sticky_replica and not state.has_rules and state.outstanding is None and o.outstanding is None
    )


def test_rules_are_built() -> None:
    state = RoutingState.from_config(
        _routing(
            '[[routing.rules]]\nname = "reports"\nmatch_regex = "^SELECT .* FROM report"\nroute = "primary"\n'
        )
    )
    assert state.has_rules and [r.name for r in state.rules.rules] == ["reports"]


def test_least_outstanding_counts_are_kept_across_a_reload() -> None:
    lo = _routing('strategy = "least_outstanding"\n')
    first = RoutingState.from_config(lo)
    assert first.outstanding == Counter() and first.policy_options.outstanding is first.outstanding
    assert first.outstanding is not None
    first.outstanding["db1"] += 2
    # Still least_outstanding: the same live counter (statements in flight subtract from it).
    second = RoutingState.from_config(lo, first, in_flight=["never read"])
    assert second is not first and second.outstanding is first.outstanding
    # Switched off, then on again while statements run: seeded from the ones in flight.
    off = RoutingState.from_config(_routing(), second, in_flight=["db1"])
    assert off.outstanding is None and off.policy_options.outstanding is None
    on = RoutingState.from_config(lo, off, in_flight=["db1", "db2", "db1"])
    assert on.outstanding == Counter({"db1": 2, "db2": 1})
    assert on.policy_options.outstanding is on.outstanding
