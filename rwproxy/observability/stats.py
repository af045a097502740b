"""Counters kept cheaply on the hot path (one per process), read by the metrics collector at scrape
time (``rwproxy.observability.metrics``) and by ``/status``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from rwproxy.router.policy import Route, RouteReason
from rwproxy.router.statement import Kind

__all__ = ["ProxyStats"]


@dataclass(slots=True)
class ProxyStats:
    """Counters kept cheaply on the hot path; exported by the metrics issue."""

    refused_connections: int = 0
    idle_closed: int = 0
    read_only_errors: int = 0  # ERROR 1290/1836 seen from a server (topology signal)
    protocol_errors: int = 0
    replica_fallbacks: int = 0
    replay_failures: int = 0
    auth_failures: int = 0
    routes: Counter[tuple[str, RouteReason]] = field(default_factory=Counter)  # (node name, reason)
    errors: Counter[int] = field(default_factory=Counter)
    pins: Counter[str] = field(default_factory=Counter)
    # read_your_writes waits on a replica by outcome: applied / timeout / error (then the primary).
    causal_waits: Counter[str] = field(default_factory=Counter)
    client_connections: int = 0  # accepted since start (rwproxy_client_connections_accepted_total)
    config_reloads: Counter[str] = field(default_factory=Counter)  # by result: ok / error
    last_reload_ok: bool = True
    # Times the published topology went from some usable replica to none (see no_replica_reads).
    no_replica_periods: int = 0
    # COM_QUERY statements by kind (rwproxy.router.statement.Kind): select, insert, set, begin ...
    kinds: Counter[Kind] = field(default_factory=Counter)
    # Backend connections and multiplexing (rwproxy.frontend.backend_link, rwproxy.frontend.multiplex).
    backend_replaced: int = 0  # lost backend connections replaced, session state replayed
    mux_handoffs: int = 0  # an idle session's backend connection given to another session
    mux_replays: int = 0  # commands replayed to bring a connection to a session's state
    mux_resets: int = 0  # connections reset (COM_RESET_CONNECTION) before taking another's state
    mux_pins: Counter[str] = field(default_factory=Counter)  # why a session kept its connections
    # Replica reads stopped by routing.replica_read_timeout_seconds (rwproxy.frontend.read_timeouts).
    read_timeouts: int = 0
    # universal consistency (rwproxy.frontend.universal.PositionBatch): reads that waited for the
    # primary's position, position queries sent (one serves a batch of reads), and failed ones.
    universal_reads: int = 0
    universal_position_queries: int = 0
    universal_position_failures: int = 0

    @property
    def no_replica_reads(self) -> int:
        """Reads that found no usable replica: served by the primary or refused (on_no_replica)."""
        return sum(
            n
            for (_, reason), n in self.routes.items()
            if reason in (RouteReason.NO_REPLICA, RouteReason.NO_REPLICA_ERROR)
        )

    def count_route(self, r: Route) -> None:
        node = r.node
        self.routes[(node.name if node is not None else "-", r.reason)] += 1
        if r.pin is not None:
            self.pins[r.pin.name] += 1

    def count_error(self, code: int) -> None:
        self.errors[code] += 1
