"""Per-server health: a pure state machine fed with probe results (no I/O, no clock: time comes in).

States (``NodeState``) and why (``ShunReason``):

* ONLINE  — reachable and, for a replica, replicating with known lag under the limit.
* SHUNNED — reachable but must not serve reads: lag over the limit (LAG_OVER_MAX), lag NULL
  (LAG_UNKNOWN: never read as 0), an IO or SQL thread not running (REPLICATION_STOPPED), read_only
  but no replication configured (NOT_REPLICATING), too many intermittent failed checks
  (CHECK_FAILURES), or writable next to the elected primary (WRITABLE_NOT_PRIMARY, set by
  ``build_nodes``).
* OFFLINE — UNREACHABLE (``failures_to_offline`` failed checks in a row) or NOT_CHECKED (no result yet).

Hysteresis, so that a server does not flap with its checks:

* OFFLINE only after ``failures_to_offline`` consecutive failed checks (default 3). Fewer leave the
  state as it is, except that ``failures_to_offline`` failures among the last
  ``2 * failures_to_offline`` checks shun an ONLINE server (CHECK_FAILURES): a server failing every
  other check is not left serving, and does not change state on every check either.
* Back to ONLINE only after ``successes_to_online`` consecutive good checks (default 2), and only
  while fewer than ``failures_to_offline`` of the last ``2 * failures_to_offline`` checks failed
  (the flap window). The window survives OFFLINE and SHUNNED (it is cleared only on entering
  ONLINE), so a server whose checks fail intermittently cannot go OFFLINE -> ONLINE -> SHUNNED:
  after an outage of ``failures_to_offline`` or more failed checks, recovery takes
  ``failures_to_offline + 1`` good checks (4 by default) instead of ``successes_to_online``.
* Lag: a replica is shunned when its lag exceeds ``max_replication_lag`` and counts as good again only
  at or below ``lag_recovery_fraction * max_replication_lag`` (default 80 %: with a 10 s limit, shun
  above 10 s, come back at 8 s or less).
* A bad replication condition (NULL lag, stopped thread) shuns at once, on the first check that shows it.
* The very first result is trusted as it is (there is no history to smooth): good → ONLINE,
  reachable but bad → SHUNNED, failed → OFFLINE.

Roles: a server configured ``primary``/``replica`` keeps that role; ``auto`` follows ``read_only``
(OFF: a primary candidate, ON or unknown: a replica). Lag and replication checks apply to replicas only.
``rwproxy.topology.election.build_nodes`` turns all servers' health into topology nodes, electing one
primary.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from rwproxy.topology.model import NodeState, Role

__all__ = [
    "HealthPolicy",
    "ProbeResult",
    "ServerHealth",
    "ShunReason",
    "Transition",
    "assess",
    "role_mismatch",
]


class ShunReason(enum.Enum):
    """Why a server is not ONLINE. The values appear in ``Node.reason``, logs and metrics."""

    # SHUNNED
    LAG_OVER_MAX = "lag_over_max"
    LAG_UNKNOWN = "lag_unknown"
    REPLICATION_STOPPED = "replication_stopped"
    NOT_REPLICATING = "not_replicating"
    CHECK_FAILURES = "check_failures"
    WRITABLE_NOT_PRIMARY = "writable_not_primary"
    SPLIT_BRAIN = "split_brain"  # several writable servers and failover.mode = "observe": no primary
    # OFFLINE
    UNREACHABLE = "unreachable"
    NOT_CHECKED = "not_checked"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One health check of one server. ``ok`` False: the server could not be checked (``error`` says
    why) and every other field is None. ``None`` fields of an ok result mean "the server did not say":
    io/sql_running None and lag None together mean no replication is configured.
    ``at`` is a monotonic time in seconds."""

    ok: bool
    error: str | None = None
    read_only: bool | None = None
    lag_seconds: float | None = None
    io_running: bool | None = None
    sql_running: bool | None = None
    gtid_position: str | None = None
    at: float = 0.0
    version: str | None = None  # SELECT VERSION()
    # The server can wait for a GTID (MASTER_GTID_WAIT / WAIT_FOR_EXECUTED_GTID_SET) for causal reads.
    # False on Aurora (``probe_aurora``): it reports no GTID position to wait for.
    gtid_waits: bool = True

    @classmethod
    def failed(cls, error: str, at: float) -> ProbeResult:
        return cls(ok=False, error=error, at=at)

    @property
    def replicating_configured(self) -> bool:
        return self.io_running is not None or self.sql_running is not None or self.lag_seconds is not None


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    failures_to_offline: int = 3
    successes_to_online: int = 2
    max_replication_lag: float = 10.0
    lag_recovery_fraction: float = 0.8
    soft_replication_lag: float | None = None  # lag-cascade guard (see build_nodes)
    min_replicas: int = 1

    def __post_init__(self) -> None:
        if self.failures_to_offline < 1 or self.successes_to_online < 1:
            raise ValueError("failures_to_offline and successes_to_online must be at least 1")
        if self.max_replication_lag <= 0:
            raise ValueError("max_replication_lag must be greater than 0")
        if not 0 < self.lag_recovery_fraction <= 1:
            raise ValueError("lag_recovery_fraction must be in (0, 1]")

    @property
    def lag_recovery_threshold(self) -> float:
        return self.max_replication_lag * self.lag_recovery_fraction

    @property
    def flap_window(self) -> int:
        """Checks looked at for intermittent failures (CHECK_FAILURES)."""
        return 2 * self.failures_to_offline


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of state or reason, for one log line."""

    server: str
    old_state: NodeState
    old_reason: ShunReason | None
    new_state: NodeState
    new_reason: ShunReason | None
    detail: str
    at: float

    def describe(self) -> str:
        def show(state: NodeState, reason: ShunReason | None) -> str:
            return state.name + (f" ({reason.value})" if reason is not None else "")

        text = f"{show(self.old_state, self.old_reason)} -> {show(self.new_state, self.new_reason)}"
        return f"{text}: {self.detail}" if self.detail else text


def assess(result: ProbeResult, role: Role, lag_limit: float) -> tuple[ShunReason | None, str]:
    """The verdict on one successful check: (None, "") when good, else (reason, detail)."""
    if role is Role.PRIMARY:
        return None, ""
    if not result.replicating_configured:
        return ShunReason.NOT_REPLICATING, "read-only but no replication configured"
    if not result.sql_running:
        return ShunReason.REPLICATION_STOPPED, "SQL thread not running"
    if not result.io_running:
        return ShunReason.REPLICATION_STOPPED, "IO thread not running"
    lag = result.lag_seconds
    if lag is None:
        return ShunReason.LAG_UNKNOWN, "Seconds_Behind_Master is NULL"
    if lag > lag_limit:
        return ShunReason.LAG_OVER_MAX, f"lag {lag:g} s > {lag_limit:g} s"
    return None, ""


class ServerHealth:
    """The health of one server, changed only by ``observe``. Read the attributes freely."""

    def __init__(self, name: str, policy: HealthPolicy | None = None, configured_role: Role | None = None):
        self.name = name
        self.policy = policy or HealthPolicy()
        self.configured_role = configured_role  # None: "auto", follow read_only
        self.state = NodeState.OFFLINE
        self.reason: ShunReason | None = ShunReason.NOT_CHECKED
        self.detail = "not checked yet"
        self.since: float | None = None  # ``at`` of the check that entered the state
        # Last values seen on a successful check (kept through failed checks).
        self.read_only: bool | None = None
        self.lag_seconds: float | None = None
        self.gtid_position: str | None = None
        self.version: str | None = None
        self.gtid_waits = True  # see ProbeResult.gtid_waits
        self.io_running: bool | None = None  # replication threads at the last successful check
        self.sql_running: bool | None = None
        self.last_known_lag: float | None = None  # the last lag that was not NULL
        self.last_check_started: float | None = None  # start of the last check (``observe(started=)``)
        # ``at`` of the first check of the current run showing the IO thread down, SQL thread up.
        self.io_lost_at: float | None = None
        # The failover controller is repointing this server to ``repointing_to`` (``expect_repoint``):
        # replication stopped / NULL lag / not replicating meanwhile is the repoint, not a fault.
        self.repointing_to: str | None = None
        self.repoint_checks_left = 0
        self.last_error: str | None = None
        self.checks = 0
        self.failures = 0
        self.consecutive_failures = 0
        self.consecutive_ok = 0  # reachable, whatever the verdict
        self.consecutive_good = 0  # reachable and good
        self._recent: deque[bool] = deque(maxlen=self.policy.flap_window)  # True: failed

    @property
    def role(self) -> Role:
        if self.configured_role is not None:
            return self.configured_role
        return Role.PRIMARY if self.read_only is False else Role.REPLICA

    def observe(self, result: ProbeResult, started: float | None = None) -> Transition | None:
        """Feed one check (``started``: when it began, default ``result.at``); returns the
        transition when state or reason changed."""
        p = self.policy
        first = self.reason is ShunReason.NOT_CHECKED
        self.checks += 1
        self.last_check_started = result.at if started is None else started
        if self.repoint_checks_left > 0:
            self.repoint_checks_left -= 1
        self._recent.append(not result.ok)
        if not result.ok:
            self.failures += 1
            self.consecutive_failures += 1
            self.consecutive_ok = self.consecutive_good = 0
            self.last_error = result.error or "check failed"
            if first or self.consecutive_failures >= p.failures_to_offline:
                n = self.consecutive_failures
                detail = f"{n} failed check{'s' if n > 1 else ''} in a row: {self.last_error}"
                return self._move(NodeState.OFFLINE, ShunReason.UNREACHABLE, detail, result.at)
            failed = sum(self._recent)
            if self.state is NodeState.ONLINE and failed >= p.failures_to_offline:
                detail = f"{failed} of the last {len(self._recent)} checks failed: {self.last_error}"
                return self._move(NodeState.SHUNNED, ShunReason.CHECK_FAILURES, detail, result.at)
            return None

        self.consecutive_failures = 0
        self.consecutive_ok += 1
        if result.read_only is not None:
            self.read_only = result.read_only
        self.lag_seconds = result.lag_seconds
        if result.lag_seconds is not None:
            self.last_known_lag = result.lag_seconds
        lost = result.io_running is False and result.sql_running is True
        if not lost:
            self.io_lost_at = None
        elif self.io_lost_at is None:
            self.io_lost_at = result.at
        self.gtid_position = result.gtid_position
        self.gtid_waits = result.gtid_waits
        self.io_running, self.sql_running = result.io_running, result.sql_running
        if result.version is not None:
            self.version = result.version
        online = self.state is NodeState.ONLINE
        limit = p.max_replication_lag if online else p.lag_recovery_threshold
        reason, detail = assess(result, self.role, limit)
        if reason is not None:
            self.consecutive_good = 0
            if reason is ShunReason.LAG_OVER_MAX and not online and result.lag_seconds is not None:
                detail = (
                    f"lag {result.lag_seconds:g} s; back at {p.lag_recovery_threshold:g} s or less "
                    f"(max_replication_lag {p.max_replication_lag:g} s)"
                )
            if self.state is NodeState.OFFLINE and not first and self.consecutive_ok < p.successes_to_online:
                return None  # reachable again, not yet for long enough to leave OFFLINE
            return self._move(NodeState.SHUNNED, reason, detail, result.at)
        self.consecutive_good += 1
        if online:
            self.repoint_checks_left = 0  # repointed and replicating: the grace is over
            return None
        if first:
            return self._move(NodeState.ONLINE, None, "first check good", result.at)
        if self.consecutive_good < p.successes_to_online:
            return None
        self.repoint_checks_left = 0  # good again on its own: a repoint grace ends
        failed = sum(self._recent)
        if failed >= p.failures_to_offline:  # still flapping: stay out, say until when
            self.detail = (
                f"{self.consecutive_good} good checks in a row, but {failed} of the last "
                f"{len(self._recent)} checks failed (back ONLINE once fewer than {p.failures_to_offline} did)"
            )
            return None
        return self._move(NodeState.ONLINE, None, f"{self.consecutive_good} good checks in a row", result.at)

    def expect_repoint(self, new_primary: str | None, checks: int) -> None:
        """The failover controller is about to repoint this server to ``new_primary`` (None: it gave
        up): for up to ``checks`` checks, or until it is ONLINE again, ``build_nodes`` keeps it
        serving reads with its last known lag while its replication restarts."""
        self.repointing_to = new_primary
        self.repoint_checks_left = checks if new_primary is not None else 0

    def force_online(self, detail: str, at: float) -> Transition | None:
        """Trust the server now (the failover controller just promoted it and checked it)."""
        self.consecutive_good = max(self.consecutive_good, self.policy.successes_to_online)
        self.read_only = False
        self._recent.clear()
        return self._move(NodeState.ONLINE, None, detail, at)

    @property
    def failing(self) -> bool:
        """The last check failed, or the server is OFFLINE."""
        return self.consecutive_failures > 0 or self.state is NodeState.OFFLINE

    def _move(self, state: NodeState, reason: ShunReason | None, detail: str, at: float) -> Transition | None:
        self.detail = detail
        if state is self.state and reason is self.reason:
            return None
        if state is NodeState.ONLINE:
            # A fresh start: old failures do not count twice. Kept through OFFLINE and SHUNNED: the
            # failures of an outage still count when the server asks to come back.
            self._recent.clear()
        t = Transition(self.name, self.state, self.reason, state, reason, detail, at)
        self.state, self.reason, self.since = state, reason, at
        return t


def role_mismatch(health: ServerHealth) -> str | None:
    """When a configured role disagrees with read_only: what to tell the operator."""
    role, ro = health.configured_role, health.read_only
    if role is Role.PRIMARY and ro is True:
        return 'configured role = "primary" but the server is read_only = ON (writes will fail)'
    if role is Role.REPLICA and ro is False:
        return 'configured role = "replica" but the server is read_only = OFF (writable)'
    return None
