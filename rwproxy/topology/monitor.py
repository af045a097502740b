"""The backend monitor: checks every server on its own connection and publishes topology snapshots.

    monitor = Monitor.from_config(config, on_topology=lambda t: setattr(app, "topology", t))
    await monitor.start()      # returns once every server was checked once (bounded by the timeouts)
    monitor.request_probe("db2")   # check db2 now (the data path, on ERROR 1290/1836)
    monitor.set_servers(servers)   # config reload: add / remove / update servers live
    monitor.set_settings(settings, user=..., password=...)  # config reload: [monitor] settings
    await monitor.stop()

One asyncio task per server, each with its own monitor connection (never a client's), reconnecting
after any failed check. Every ``interval_seconds`` a task checks its server (``probe.probe``), feeds
the result to the server's ``ServerHealth`` and rebuilds the nodes of all servers
(``election.build_nodes``). When any node differs from the last published snapshot (state, reason,
role, lag), a NEW immutable ``Topology`` with ``version + 1`` is handed to ``on_topology``; nothing is
published for a check that changed nothing. Nothing is published before every server has been
checked once.

Logging: one INFO line per change of a server's published role/state/reason, one WARNING when a
configured role starts to disagree with read_only; never a line per check. Per-server counters live
in ``Monitor.stats`` (plain ``ServerStats`` objects, for ``rwproxy status`` and metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as _ssl
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from rwproxy.backend.own_account import own_account
from rwproxy.topology.election import ServerView, build_nodes
from rwproxy.topology.health import ProbeResult, ServerHealth, role_mismatch
from rwproxy.topology.heartbeat_io import Heartbeat
from rwproxy.topology.model import Node, NodeState, Topology
from rwproxy.topology.monitor_state import ServerStats, Slot, configured_role, health_policy, note_changes
from rwproxy.topology.probe import (
    Flavor,
    close_quietly,
    describe_error,
    flavor_for_version,
    open_connection,
    probe,
)

if TYPE_CHECKING:
    import aiomysql

    from rwproxy.backend.pool import BackendCredentials
    from rwproxy.config import Config, MonitorConfig, ServerConfig

__all__ = ["Monitor", "ServerStats"]

log = logging.getLogger(__name__)

# request_probe() wakes a server's task early, but checks stay at least this far apart (capped at
# interval_seconds): a burst of ERROR 1290 from the data path must not turn into a check storm.
REQUESTED_CHECK_MIN_GAP = 0.1


class Monitor:
    def __init__(
        self,
        servers: Sequence[ServerConfig],
        settings: MonitorConfig,
        *,
        user: str,
        password: str,
        on_topology: Callable[[Topology], None],
        ssl: _ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.policy = health_policy(settings)
        self.user = user  # the monitor account (for status output; the password stays private)
        self._password = password
        self._on_topology = on_topology
        self._ssl = ssl
        self._clock = clock
        self._slots = {
            s.name: Slot(
                server=s,
                health=ServerHealth(s.name, self.policy, configured_role(s.role)),
                stats=ServerStats(s.name),
            )
            for s in servers
        }
        self._order = list(self._slots.values())
        self._ready = asyncio.Event()
        self._started = False  # set_servers starts tasks for new servers only once start() ran
        # Set by the app when the monitor logs in with [backend] credentials (not a fixed password).
        self.credentials: Callable[[], BackendCredentials] | None = None
        self.topology: Topology | None = None  # the last published snapshot
        self.version = 0
        # failover.mode = "observe": two writable servers at once give no primary (writes refused).
        self.refuse_split_brain = False
        # [monitor] heartbeat_table: sub-second lag from a pt-heartbeat table (None: off).
        self.heartbeat = Heartbeat.from_settings(
            settings, primary=self._heartbeat_primary, connect=self._heartbeat_connect
        )

    @classmethod
    def from_config(
        cls,
        config: Config,
        on_topology: Callable[[Topology], None],
        *,
        ssl: _ssl.SSLContext | None = None,
    ) -> Monitor:
        """Credentials: ``own_account(config, "monitor")`` (``rwproxy.backend.own_account``); the app
        sets ``credentials`` when they come from ``[backend] credentials``."""
        account = own_account(config, "monitor")
        monitor = cls(
            config.servers,
            config.monitor,
            user=account.user,
            password=account.password,
            on_topology=on_topology,
            ssl=ssl,
        )
        monitor.refuse_split_brain = config.failover.mode == "observe"
        return monitor

    # -- public ------------------------------------------------------------------------------

    @property
    def stats(self) -> Mapping[str, ServerStats]:
        return {name: slot.stats for name, slot in self._slots.items()}

    @property
    def running(self) -> bool:
        return any(slot.task is not None for slot in self._order)

    async def start(self, *, wait: bool = True) -> None:
        """Start one task per server. ``wait``: return once every server was checked once and the
        first snapshot published (at most connect + check timeout, plus a margin)."""
        if self.running:
            return
        self._started = True
        if not self._order:  # no servers yet (RDS discovery not answered): publish the empty topology
            self._ready.set()
            self._publish()
        for slot in self._order:
            slot.task = asyncio.create_task(self._run(slot), name=f"rwproxy-monitor-{slot.server.name}")
        if self.heartbeat is not None:
            self.heartbeat.start()
        if wait:
            bound = self.settings.connect_timeout_seconds + self.settings.check_timeout_seconds + 1.0
            try:
                await asyncio.wait_for(self._ready.wait(), bound)
            except TimeoutError:  # cannot happen while every step is bounded; publish what there is
                log.warning("monitor: not every server was checked within %.1f s", bound)
                self._ready.set()
                self._publish()

    async def stop(self) -> None:
        """Cancel the tasks and close the monitor connections."""
        self._started = False
        tasks = [slot.task for slot in self._order if slot.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.heartbeat is not None:
            await self.heartbeat.stop()
        for slot in self._order:
            slot.task = None
            close_quietly(slot.conn)
            slot.conn = None

    def request_probe(self, server_name: str) -> None:
        """Check ``server_name`` now instead of at its next interval (unknown names are ignored)."""
        slot = self._slots.get(server_name)
        if slot is not None:
            slot.wake.set()

    def report_unreachable(self, server_name: str) -> None:
        """A session could not connect to ``server_name``: evidence. Check it now, and call it
        ``suspected`` until a check that started after this report has ended."""
        slot = self._slots.get(server_name)
        if slot is not None:
            slot.suspect_at = self._clock()
            slot.wake.set()

    def suspected(self, server_name: str) -> bool:
        """A connect failure was reported and no check has looked at the server since."""
        slot = self._slots.get(server_name)
        return slot is not None and slot.suspect_at is not None

    # -- failover support (rwproxy.failover.controller) -----------------------------------------

    def health_of(self, name: str) -> ServerHealth | None:
        slot = self._slots.get(name)
        return slot.health if slot is not None else None

    def flavor_of(self, name: str) -> Flavor | None:
        slot = self._slots.get(name)
        return slot.flavor if slot is not None else None

    def server_of(self, name: str) -> ServerConfig | None:
        slot = self._slots.get(name)
        return slot.server if slot is not None else None

    def request_all(self) -> None:
        """Check every server now."""
        for slot in self._order:
            slot.wake.set()

    def repointing(
        self, names: Sequence[str], new_primary: str | None, *, demoted: str | None = None
    ) -> None:
        """The failover controller is about to repoint ``names`` to ``new_primary`` (None: it gave
        up on them): those serving reads now, and ``demoted`` (the old primary of a switchover: it
        has everything up to the switch), keep serving with their last known lag while their
        replication restarts (at most successes_to_online + failures_to_offline + 2 checks)."""
        published = self.topology.by_name if self.topology is not None else {}
        checks = self.policy.successes_to_online + self.policy.failures_to_offline + 2
        for name in names:
            slot, node = self._slots.get(name), published.get(name)
            serving = (node is not None and node.online) or name == demoted
            if slot is not None and (new_primary is None or serving):
                slot.health.expect_repoint(new_primary, checks)

    def _check_primary_now(self) -> None:
        primary = self.topology.primary if self.topology is not None else None
        if primary is not None:
            self.request_probe(primary.name)

    def promoted(self, name: str, detail: str) -> None:
        """The failover controller made ``name`` writable and checked it: publish it as the primary
        now instead of after successes_to_online checks; every server is checked again at once."""
        slot = self._slots.get(name)
        if slot is None:
            return
        transition = slot.health.force_online(detail, self._clock())
        if transition is not None:
            log.info("monitor: %s", transition.describe())
        self.request_all()
        self._publish()

    # -- dynamic membership (config reload, RDS discovery) ---------------------------------------

    def set_servers(self, servers: Sequence[ServerConfig]) -> None:
        """Monitor exactly ``servers`` from now on (config reload, discovery): new servers get a task
        (OFFLINE "not_checked" until their first check), removed ones lose theirs, a changed weight
        or role applies at once; a changed host/port makes a new server under the old name. The
        snapshot is republished. Call on the event-loop thread."""
        wanted = {s.name for s in servers}
        running = self._started or self.running  # started with no servers yet (RDS): start tasks now
        for name in [n for n in self._slots if n not in wanted]:
            self._drop_slot(self._slots.pop(name))
            log.info("monitor: %s: no longer monitored", name)
        for server in servers:
            slot = self._slots.get(server.name)
            if slot is not None and slot.server.address == server.address:
                if slot.server != server:
                    slot.server = server
                    slot.health.configured_role = configured_role(server.role)
                continue
            if slot is not None:
                self._drop_slot(slot)
            slot = Slot(
                server=server,
                health=ServerHealth(server.name, self.policy, configured_role(server.role)),
                stats=ServerStats(server.name),
            )
            self._slots[server.name] = slot
            if running:
                slot.task = asyncio.create_task(self._run(slot), name=f"rwproxy-monitor-{server.name}")
            log.info("monitor: %s: monitoring %s:%d", server.name, server.host, server.port)
        self._order = [self._slots[s.name] for s in servers]
        if self._ready.is_set() or not self._order:
            self._ready.set()
            self._publish()

    def set_settings(self, settings: MonitorConfig, *, user: str, password: str) -> None:
        """New ``[monitor]`` settings (config reload): pacing from the next check, thresholds at
        once, credentials at a reconnect before each server's next check."""
        self._heartbeat_settings(self.settings, settings)
        self.settings = settings
        policy = health_policy(settings)
        if policy != self.policy:
            self.policy = policy
            for slot in self._slots.values():
                slot.health.policy = policy
                recent = slot.health._recent  # the flapping window follows failures_to_offline
                slot.health._recent = deque(recent, maxlen=policy.flap_window)
        if (user, password) != (self.user, self._password):
            self.user, self._password = user, password
            for slot in self._slots.values():
                slot.relogin = True
        for slot in self._slots.values():
            slot.wake.set()  # a shorter interval applies now, not after the old one
        if self._ready.is_set():
            self._publish()  # lag thresholds may move servers between states

    def _drop_slot(self, slot: Slot) -> None:
        if slot.task is not None:
            slot.task.cancel()  # its finally closes the monitor connection
            slot.task = None
        else:
            close_quietly(slot.conn)
            slot.conn = None

    # -- per-server task ---------------------------------------------------------------------

    async def _run(self, slot: Slot) -> None:
        try:
            while True:
                interval = self.settings.interval_seconds  # per round: a reload may change it
                min_gap = min(interval, REQUESTED_CHECK_MIN_GAP)
                started = self._clock()
                slot.wake.clear()
                try:
                    result = await self._check(slot)
                    if slot.suspect_at is not None and started > slot.suspect_at:
                        slot.suspect_at = None  # this check saw the server after the report
                    self._record(slot, result, started)
                except Exception:  # a bug here must not stop monitoring this server
                    log.exception("monitor: check of %s failed unexpectedly", slot.server.name)
                delay = started + interval - self._clock()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(slot.wake.wait(), delay)
                        gap = started + min_gap - self._clock()  # woken by request_probe
                        if gap > 0:
                            await asyncio.sleep(gap)
        finally:
            close_quietly(slot.conn)
            slot.conn = None

    async def _check(self, slot: Slot) -> ProbeResult:
        s = self.settings
        if slot.relogin:
            slot.relogin = False
            close_quietly(slot.conn)
            slot.conn = None
        if slot.conn is None:
            # A failing server may be hung (accepts TCP, never answers): a shorter connect timeout.
            timeout = s.connect_timeout_seconds
            if slot.health.failing and slot.health.checks:
                timeout = min(timeout, s.failing_connect_timeout_seconds or s.check_timeout_seconds)
            try:
                server = slot.server
                slot.conn = await self._connect(server.name, server.host, server.port, timeout)
            except TimeoutError:
                return ProbeResult.failed(f"connect timed out after {timeout:g} s", self._clock())
            except Exception as exc:
                return ProbeResult.failed(f"cannot connect: {describe_error(exc)}", self._clock())
            slot.stats.connects += 1
            slot.flavor = None  # the server may have been replaced: detect again
        result = await probe(slot.conn, slot.flavor, timeout=s.check_timeout_seconds, clock=self._clock)
        if self.heartbeat is not None and result.ok:
            result = await self._heartbeat_lag(slot, slot.conn, result)
        if result.ok:
            if slot.flavor is None and result.version is not None:
                slot.flavor = flavor_for_version(result.version)
        else:
            close_quietly(slot.conn)  # state unknown after an error or a timeout
            slot.conn = None
        return result

    def _record(self, slot: Slot, result: ProbeResult, started: float) -> None:
        h = slot.health
        duration = self._clock() - started
        lost_before = h.io_lost_at
        h.observe(result, started=started)
        if h.io_lost_at is not None and lost_before is None:
            self._check_primary_now()  # judge the replica only once the primary's fate is known
        st = slot.stats
        st.checks, st.failures = h.checks, h.failures
        st.consecutive_failures = h.consecutive_failures
        st.last_check_at, st.last_check_seconds = result.at, duration
        if result.ok:
            st.last_lag_seconds = result.lag_seconds
            st.read_only, st.version, st.gtid_position = h.read_only, h.version, h.gtid_position
        else:
            st.last_error, st.last_error_at = result.error, result.at
        mismatch = role_mismatch(h)
        if mismatch != st.role_mismatch:
            if mismatch is not None:
                log.warning("monitor: %s: %s", slot.server.name, mismatch)
            else:
                log.info("monitor: %s: configured role and read_only agree again", slot.server.name)
            st.role_mismatch = mismatch
        if not self._ready.is_set():
            if any(x.health.checks == 0 for x in self._order):
                return
            self._ready.set()
        self._publish()

    # -- heartbeat lag (rwproxy.topology.heartbeat_io) ----------------------------------------

    async def _heartbeat_lag(self, slot: Slot, conn: aiomysql.Connection, result: ProbeResult) -> ProbeResult:
        assert self.heartbeat is not None
        result, source = await self.heartbeat.adjust(
            slot.server.name, conn, result, timeout=self.settings.check_timeout_seconds
        )
        slot.stats.lag_source = source.value if result.replicating_configured else None
        return result

    def _heartbeat_settings(self, old: MonitorConfig, new: MonitorConfig) -> None:
        """Config reload: a changed heartbeat_* setting replaces the heartbeat (and its writer)."""
        keys = ("heartbeat_table", "heartbeat_write", "heartbeat_interval_seconds")
        if all(getattr(old, k) == getattr(new, k) for k in keys):
            return
        previous = self.heartbeat
        self.heartbeat = Heartbeat.from_settings(
            new, primary=self._heartbeat_primary, connect=self._heartbeat_connect
        )
        if previous is not None:
            asyncio.get_running_loop().create_task(previous.stop())
        if self.heartbeat is not None and self.running:
            self.heartbeat.start()

    def _heartbeat_primary(self) -> Node | None:
        """Where the heartbeat writer writes: the published primary, unless it is OFFLINE."""
        primary = self.topology.primary if self.topology is not None else None
        return primary if primary is not None and primary.state is not NodeState.OFFLINE else None

    async def _heartbeat_connect(self, node: Node) -> aiomysql.Connection:
        """The writer's own connection, with the monitor's credentials."""
        return await self._connect(node.name, node.host, node.port)

    async def _connect(
        self, name: str, host: str, port: int, timeout: float | None = None
    ) -> aiomysql.Connection:
        """A monitor connection: [monitor] credentials, or [backend] ones (env, secret, IAM token)."""
        user, password, require_tls = self.user, self._password, False
        if self.credentials is not None:
            creds = self.credentials()
            user, password, require_tls = creds.user, creds.password, creds.require_tls
            if creds.password_for is not None:
                password = await creds.password_for(name, host, port)
        return await open_connection(
            host,
            port,
            user,
            password,
            timeout=timeout or self.settings.connect_timeout_seconds,
            ssl=self._ssl,
            require_tls=require_tls,
        )

    # -- snapshots ---------------------------------------------------------------------------

    def _publish(self) -> None:
        previous = self.topology
        prev_primary = previous.primary.name if previous is not None and previous.primary else None
        views = [
            ServerView(s.server.name, s.server.host, s.server.port, s.server.weight, s.health)
            for s in self._order
        ]
        policy = self.policy
        nodes = build_nodes(
            views,
            prev_primary,
            policy.max_replication_lag,
            soft_lag=policy.soft_replication_lag,
            min_replicas=policy.min_replicas,
            refuse_split_brain=self.refuse_split_brain,
        )
        if previous is not None and nodes == previous.nodes:
            return
        self.version += 1
        topology = Topology(nodes=nodes, version=self.version)
        note_changes(previous, topology, self._slots, self._clock())
        new_primary = topology.primary.name if topology.primary is not None else None
        if previous is not None and new_primary != prev_primary:
            log.info("monitor: the primary is now %s (was %s)", new_primary or "none", prev_primary or "none")
        self.topology = topology
        try:
            self._on_topology(topology)
        except Exception:
            log.exception("monitor: on_topology failed for topology version %d", topology.version)
