"""FailoverController: watches the topology, promotes a replica when the primary is really dead
(``failover.mode = "promote"``), asks AWS to (``"rds"``), fences an old primary that comes back,
and runs planned switchovers. One failover or switchover at a time; statements that need the
primary wait in the ``WriteBuffer`` meanwhile. The switchover's steps are in ``switchover``, the AWS
failover's in ``rds``, the report/timing/stats both share in ``report``.

Every step is logged at INFO (one line each) and kept in ``FailoverStats`` (metrics, /status).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from rwproxy.backend.own_account import own_account, own_credentials
from rwproxy.coordination.hooks import coordination_guard, coordination_publish, coordination_refuses
from rwproxy.failover import sql
from rwproxy.failover.actions import ActionError, Admin
from rwproxy.failover.buffer import WriteBuffer
from rwproxy.failover.decision import Candidate, ReplicaView, choose_candidate, may_rejoin, primary_is_dead
from rwproxy.failover.rds import rds_failover
from rwproxy.failover.report import FailoverStats, run_role_change
from rwproxy.failover.report import step as _step
from rwproxy.failover.semisync import SemiSyncRoles, read_semi_sync
from rwproxy.failover.switchover import SwitchoverError, run_switchover
from rwproxy.topology.model import Node, Topology
from rwproxy.topology.probe import Flavor

if TYPE_CHECKING:
    from rwproxy.failover.ports import FailoverHost
    from rwproxy.topology.monitor import Monitor

__all__ = ["FailoverController", "FailoverStats", "SwitchoverError"]

log = logging.getLogger(__name__)

SEMI_SYNC_EVERY = 5.0  # seconds between two reads of the primary's semi-sync state


class FailoverController:
    def __init__(self, app: FailoverHost, monitor: Monitor) -> None:
        cfg = app.config.failover
        self.app = app
        self.monitor = monitor
        self.cfg = cfg
        self.mode = cfg.mode
        account = own_account(app.config, "failover")
        m = app.config.monitor
        self.admin = Admin(
            account.user,
            account.password,
            timeout=m.connect_timeout_seconds + m.check_timeout_seconds,
            credentials=(lambda: own_credentials(account, app.aws.credentials))
            if account.via_source
            else None,
        )
        self.buffer = WriteBuffer()
        self.stats = FailoverStats()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_failover: float | None = None
        self._promoted_at: dict[str, tuple[str, str]] = {}  # old primary -> (new primary, position)
        self._said: set[str] = set()  # log-once keys
        self._semi_sync_at = 0.0
        self._semi_sync_fast_until = 0.0  # after a role change: read it every tick for a while
        self.semi = SemiSyncRoles(self.admin)  # carries semi-sync across role changes

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="rwproxy-failover")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def on_topology(self, topology: Topology) -> None:
        self._wake.set()
        self.buffer.poke()

    def primary_ready(self) -> bool:
        """A primary that can take statements now: ONLINE and its last check good."""
        primary = self.app.topology.primary
        if primary is None or not primary.online:
            return False
        health = self.monitor.health_of(primary.name)
        return health is None or not health.failing

    @property
    def in_progress(self) -> bool:
        return self._lock.locked()

    # -- the watch loop ----------------------------------------------------------------------

    async def _loop(self) -> None:
        interval = self.app.config.monitor.interval_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("failover: internal error while watching the topology")

    async def _tick(self) -> None:
        topology = self.app.topology
        if self.mode in ("promote", "rds") and not self.in_progress:
            await self._check_primary(topology)
        if (
            self.mode == "promote"
            and self._promoted_at
            and not self.in_progress
            and coordination_refuses(self.app) is None
        ):
            await self._fence(topology)
        now = time.monotonic()
        every = 0.0 if now < self._semi_sync_fast_until else SEMI_SYNC_EVERY
        if now - self._semi_sync_at >= every and not self.in_progress:
            self._semi_sync_at = now
            await self._read_semi_sync(topology)

    async def _check_primary(self, topology: Topology) -> None:
        primary = topology.primary
        if primary is None:
            return
        health = self.monitor.health_of(primary.name)
        if health is None or not health.failing:
            self._said.discard("dead")
            return
        self.monitor.request_all()  # fresh replica checks for the confirmation
        replicas = []
        for node in topology.replicas:
            h = self.monitor.health_of(node.name)
            if h is not None:
                replicas.append(
                    ReplicaView(node.name, not h.failing and h.checks > 0, h.io_running, h.sql_running)
                )
        dead, why = primary_is_dead(
            not health.failing,
            health.consecutive_failures,
            self.app.config.monitor.failures_to_offline,
            replicas,
            self.cfg.verify_with_replicas,
        )
        if not dead:
            self._say_once(
                f"suspect:{why}",
                f"failover: primary {primary.name} is failing checks; not failing over: {why}",
            )
            return
        if (
            self._last_failover is not None
            and time.monotonic() - self._last_failover < self.cfg.min_interval_seconds
        ):
            self._say_once(
                "antiflap",
                f"failover: primary {primary.name} is down ({why}) but the last failover was less than "
                f"failover.min_interval_seconds = {self.cfg.min_interval_seconds:g} s ago: "
                "not failing over again",
                logging.ERROR,
            )
            return
        refused = coordination_refuses(self.app, min_interval=self.cfg.min_interval_seconds)
        if refused is not None:
            self._say_once(
                f"coordination:{primary.name}",
                f"failover: primary {primary.name} is down ({why}); not failing over: {refused}",
                logging.WARNING,
            )
            return
        if self.mode == "rds":
            await rds_failover(self, primary, why)
        else:
            await self.failover(primary.name, why)

    # -- promote -----------------------------------------------------------------------------

    async def failover(self, old: str, why: str) -> dict[str, Any]:
        """Promote the most advanced replica in place of ``old`` (which is dead)."""
        async with self._lock:
            started = time.monotonic()
            self._last_failover = started
            report: dict[str, Any] = {"kind": "failover", "from": old, "reason": why, "steps": []}
            log.warning("failover: primary %s is down: %s; promoting a replica", old, why)

            async def body() -> None:
                new = await self._promote_best(old, report)
                report["to"] = new
                await self._wait_primary(new)

            async def on_failure(exc: ActionError) -> None:
                log.error("failover: failed: %s (the buffered statements will time out)", exc)

            await run_role_change(
                self,
                report,
                results=self.stats.failovers,
                seconds_key="seconds",
                started=started,
                hold=f"failover from {old} in progress",
                body=body,
                on_failure=on_failure,
            )
            log.info("failover: %s in %.3f s", report["result"], report["seconds"])
            return report

    async def _promote_best(self, old: str, report: dict[str, Any]) -> str:
        topology = self.app.topology
        candidates: list[Candidate] = []
        for order, node in enumerate(topology.nodes):
            if node.name == old:
                continue
            health = self.monitor.health_of(node.name)
            if health is None or health.failing:
                continue
            flavor = await self._flavor(node)
            try:
                pos = await self.admin.positions(node.host, node.port, flavor)
            except ActionError as exc:
                _step(report, f"skipped {node.name}: {exc}")
                continue
            server = self.monitor.server_of(node.name)
            priority = server.priority if server is not None else 0
            candidates.append(Candidate(node.name, pos.fetched, pos.applied, priority, pos.sql_error, order))
        chosen, why = choose_candidate(candidates)
        if chosen is None:
            raise ActionError(why)
        _step(report, why)
        node = topology.by_name[chosen.name]
        flavor = await self._flavor(node)
        await coordination_guard(self.app, f"promote {node.name}")
        position = await self.admin.promote(node.host, node.port, flavor, self.cfg.catchup_timeout_seconds)
        _step(report, f"promoted {node.name} (applied its relay log, read_only = OFF) at {position or '-'}")
        await self.semi.promoted(node, flavor)
        self._promoted_at[old] = (node.name, position)
        self.monitor.repointing([n.name for n in topology.nodes if n.name not in (old, node.name)], node.name)
        self.monitor.promoted(node.name, f"promoted by rwproxy in place of {old}")
        await coordination_publish(self.app, report, node.name, old, position)
        for other in topology.nodes:
            if other.name in (old, node.name):
                continue
            health = self.monitor.health_of(other.name)
            if health is None or health.failing:
                _step(report, f"{other.name} unreachable: repoint it to {node.name} when it is back")
                continue
            await self._repoint_step(report, other, node, old_primary=False)
        return node.name

    async def _repoint_step(
        self, report: dict[str, Any], other: Node, primary: Node, *, old_primary: bool
    ) -> None:
        """Repoint ``other`` to ``primary``; either way a report step (no repoint expected on failure)."""
        try:
            await self._repoint(other, primary, old_primary=old_primary)
            _step(report, f"repointed {other.name} to {primary.name}")
        except ActionError as exc:
            self.monitor.repointing([other.name], None)
            _step(report, f"could not repoint {other.name}: {exc}")

    async def _repoint(self, replica: Node, primary: Node, *, old_primary: bool) -> None:
        cfg = self.cfg
        await coordination_guard(self.app, f"repoint {replica.name}")
        flavor = await self._flavor(replica)
        await self.semi.follow(replica, flavor)  # before the repoint restarts its IO thread
        statements: list[str | tuple[str, tuple[Any, ...]]] = []
        if old_primary:
            statements += sql.read_only(flavor, True)
            statements += sql.prepare_rejoin(flavor)
        statements += sql.change_source(
            flavor,
            primary.host,
            primary.port,
            cfg.replication_user or "",
            cfg.replication_password or "",
            cfg.connect_retry_seconds,
            old_primary=old_primary,
        )
        await self.admin.run(replica.host, replica.port, statements)

    async def _wait_primary(self, name: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            primary = self.app.topology.primary
            if primary is not None and primary.name == name and primary.online:
                return
            await asyncio.sleep(0.01)
        raise ActionError(f"{name} was promoted but the monitor does not see it as the primary")

    # -- fencing -----------------------------------------------------------------------------

    async def _fence(self, topology: Topology) -> None:
        """An old primary that is reachable again: read_only = ON at once; then rejoin it as a
        replica of the new primary if it has nothing the new primary lacks, else keep it out."""
        for old, (new, promoted_at) in list(self._promoted_at.items()):
            health = self.monitor.health_of(old)
            node = topology.by_name.get(old)
            primary = topology.primary
            if health is None or node is None or health.failing or health.checks == 0:
                continue
            if primary is None or primary.name != new:
                continue
            flavor = await self._flavor(node)
            try:
                await coordination_guard(self.app, f"fence {old}")
                await self.admin.run(node.host, node.port, sql.read_only(flavor, True))
                written = await self.admin.scalar(node.host, node.port, sql.written_position_sql(flavor))
            except ActionError as exc:
                self._say_once(
                    f"fence:{old}:{exc}", f"failover: cannot fence {old} yet: {exc}", logging.WARNING
                )
                continue
            ok, why = may_rejoin(str(written or ""), promoted_at)
            if not ok:
                if old not in self.stats.fenced:
                    log.error("failover: fenced %s (read_only = ON, out of routing): %s", old, why)
                self.stats.fenced[old] = why
                del self._promoted_at[old]
                continue
            try:
                await self._repoint(node, primary, old_primary=True)
            except ActionError as exc:
                self._say_once(f"rejoin:{old}", f"failover: {old} could not rejoin: {exc}", logging.ERROR)
                self.stats.fenced[old] = str(exc)
                continue
            log.info("failover: %s rejoined as a replica of %s: %s", old, new, why)
            self._semi_sync_changed(None)
            self.stats.fenced.pop(old, None)
            del self._promoted_at[old]

    # -- switchover --------------------------------------------------------------------------

    async def switchover(self, to: str | None = None) -> dict[str, Any]:
        """Planned: buffer writes, let open transactions finish, old primary read-only, wait until
        the candidate has everything, promote it, repoint the others and the old primary, release."""
        return await run_switchover(self, to)

    # -- semi-sync ----------------------------------------------------------------------------

    async def _read_semi_sync(self, topology: Topology) -> None:
        primary = topology.primary
        if primary is not None and primary.online:
            flavor = self.monitor.flavor_of(primary.name)
            self.stats.semi_sync = await read_semi_sync(self.admin, primary, flavor)
            self.semi.remember(self.stats.semi_sync)

    def _semi_sync_changed(self, report: dict[str, Any] | None) -> None:
        """After a role change: the semi-sync changes made go in the report, and the new primary's
        state is read every tick for 15 s (its replicas reconnect as semi-sync clients)."""
        steps = self.semi.take_steps()
        if report is not None:
            report["semi_sync_changes"] = steps
        self._semi_sync_fast_until = time.monotonic() + 15.0
        self._wake.set()

    # -- coordination (rwproxy.coordination: another leader's promotion) ----------------------

    def adopt_promotion(self, old: str, new: str, position: str) -> None:
        """A promotion another leader made: fence ``old`` here when it comes back."""
        self._promoted_at.setdefault(old, (new, position))

    async def finish_promotion(self, old: str, new: str, position: str) -> None:
        """Another leader promoted ``new`` in place of ``old``: repoint the reachable replicas."""
        async with self._lock:
            self.adopt_promotion(old, new, position)
            report: dict[str, Any] = {"steps": []}
            for other in self.app.topology.nodes:
                health = self.monitor.health_of(other.name)
                if other.name not in (old, new) and health is not None and not health.failing:
                    try:
                        await self._repoint(other, self.app.topology.by_name[new], old_primary=False)
                        _step(report, f"repointed {other.name} to {new} (finishing the promotion)")
                    except (ActionError, KeyError) as exc:
                        _step(report, f"could not repoint {other.name} to {new}: {exc}")

    # -- helpers -----------------------------------------------------------------------------

    async def _flavor(self, node: Node) -> Flavor:
        flavor = self.monitor.flavor_of(node.name)
        if flavor is not None:
            return flavor
        return await self.admin.flavor(node.host, node.port)

    def _say_once(self, key: str, message: str, level: int = logging.INFO) -> None:
        if key not in self._said:
            self._said.add(key)
            log.log(level, message)
