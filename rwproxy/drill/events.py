"""What a drill records: one event per client operation, and the proxy's view over time.

Times are seconds since the drill started (``time.monotonic()`` based), so that they compare with
each other and with the fault time; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "ERROR",
    "IN_DOUBT",
    "IN_DOUBT_CODES",
    "OK",
    "SCENARIOS",
    "STALE",
    "ReadEvent",
    "StatusSample",
    "WriteEvent",
]

SCENARIOS = ("failover", "switchover", "replica-loss", "lag")

OK = "ok"
ERROR = "error"  # the server (or proxy) answered with an error: the statement did not run
IN_DOUBT = "in_doubt"  # the connection was lost while the statement ran: it may or may not have committed
STALE = "stale"  # a read that answered, but without a write it should have seen

# Error codes after which a statement that was sent may still have committed: lost connections
# (client side 2013/2006/2055, rwproxy relays a backend lost mid-statement as 2013), a killed
# connection (1927 ER_CONNECTION_KILLED, 1053 ER_SERVER_SHUTDOWN) and read timeouts.
IN_DOUBT_CODES = frozenset({2013, 2006, 2055, 1927, 1053})


@dataclass(frozen=True, slots=True)
class WriteEvent:
    """One INSERT of ``seq`` by writer ``writer`` (``seq`` None: the client could not even connect)."""

    seq: int | None
    writer: int
    start: float
    end: float
    outcome: str  # OK | ERROR | IN_DOUBT
    code: int | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class ReadEvent:
    """One read. ``kind``: "ryw" (read back this session's own marker write) or "plain" (read the
    newest write any writer had acknowledged when the read started)."""

    reader: int
    kind: str
    start: float
    end: float
    outcome: str  # OK | STALE | ERROR
    code: int | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class StatusSample:
    """The proxy's view (admin ``/status``) when it changed: ``nodes`` is (name, role, state) per
    server; ``ok`` False when the admin interface did not answer."""

    t: float
    ok: bool
    nodes: tuple[tuple[str, str, str], ...] = ()
    lags: dict[str, float | None] = field(default_factory=dict, compare=False)

    def primary(self) -> str | None:
        """The ONLINE primary in this view, if exactly one."""
        found = [name for name, role, state in self.nodes if role == "primary" and state == "online"]
        return found[0] if len(found) == 1 else None

    def view(self) -> dict[str, tuple[str, str]]:
        return {name: (role, state) for name, role, state in self.nodes}
