"""The ``Coordinator``: runs the etcd election for one rwproxy instance and tells the failover
controller whether it may act.

    coordination = Coordinator.from_app(app)   # None without [coordination] etcd
    await coordination.start()                 # first election round done (bounded by the timeout)
    coordination.may_act()                     # True only on the leader, with etcd reachable
    await coordination.guard("promote db2")    # a Txn on the leader key; NotLeader otherwise
    await coordination.publish("db2", "db1", position)
    await coordination.stop()                  # revokes the lease: another instance leads at once

While leading, each round also reconciles etcd with the servers: a primary nobody published yet is
published (epoch 1); a writable server that is not the published primary, while the published one
is gone, is a promotion whose leader died before publishing (or an operator's): it is published
with epoch + 1 and finished (the other replicas repointed, the old primary fenced when it returns).
Followers only read the key: their routing follows the servers' read_only state as in
``failover.mode = "observe"``; /status shows whether they agree with the published primary, and
a lasting disagreement is logged (WARNING, once per epoch).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any, Protocol

from rwproxy.coordination.election import Elector, NotLeader, Published
from rwproxy.coordination.etcd import EtcdClient

if TYPE_CHECKING:
    from rwproxy.config import Config
    from rwproxy.config.coordination import CoordinationConfig
    from rwproxy.failover.controller import FailoverController
    from rwproxy.topology.model import Topology
    from rwproxy.topology.monitor import Monitor

__all__ = ["Coordinator", "CoordinatorHost", "NotLeader"]

log = logging.getLogger(__name__)


class CoordinatorHost(Protocol):
    """What the coordinator reads of the proxy (``rwproxy.app.ProxyApp`` satisfies it)."""

    @property
    def config(self) -> Config: ...

    @property
    def topology(self) -> Topology: ...

    @property
    def monitor(self) -> Monitor | None: ...

    @property
    def failover(self) -> FailoverController | None: ...


class Coordinator:
    def __init__(self, app: CoordinatorHost, cfg: CoordinationConfig) -> None:
        self.app = app
        self.cfg = cfg
        self.instance = cfg.instance or f"{socket.gethostname()}-{os.getpid()}"
        self.prefix = f"{cfg.prefix}/{cfg.cluster}"
        self.client = EtcdClient(cfg.etcd, timeout=cfg.request_timeout_seconds)
        self.elector = Elector(self.client, self.prefix, self.instance, cfg.lease_ttl_seconds)
        self.interval = max(cfg.lease_ttl_seconds / 3, 0.2)
        self._task: asyncio.Task[None] | None = None
        self._adopted: set[tuple[str, int]] = set()  # (primary, epoch) already reconciled as leader
        self._said: set[str] = set()
        self._mismatch: str | None = None  # follower: (epoch, primary) disagreeing last round

    @classmethod
    def from_app(cls, app: CoordinatorHost) -> Coordinator | None:
        cfg = app.config.coordination
        if not cfg.enabled:
            return None
        failover = app.config.failover
        if failover.mode == "promote" and cfg.lease_ttl_seconds <= failover.catchup_timeout_seconds:
            log.warning(
                "coordination: lease_ttl_seconds (%d) <= failover.catchup_timeout_seconds (%g): a "
                "leader cut off from etcd in the middle of a promotion may still finish it after "
                "another instance took over",
                cfg.lease_ttl_seconds,
                failover.catchup_timeout_seconds,
            )
        return cls(app, cfg)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        log.info(
            "coordination: instance %s, etcd %s, keys under %s/, lease %d s",
            self.instance,
            ", ".join(self.cfg.etcd),
            self.prefix,
            self.cfg.lease_ttl_seconds,
        )
        await self.elector.round()
        self._task = asyncio.create_task(self._loop(), name="rwproxy-coordination")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.elector.resign()
        await self.client.close()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.elector.round()
                if self.elector.is_leader:
                    await self._reconcile()
                else:
                    self._compare_with_published()
            except asyncio.CancelledError:
                raise
            except NotLeader as exc:
                log.info("coordination: %s", exc)
            except Exception:
                log.exception("coordination: internal error")

    # -- what the failover controller asks ---------------------------------------------------

    def may_act(self) -> bool:
        return self.elector.is_leader

    def why_not(self) -> str:
        return self.elector.why_not_leader()

    async def guard(self, step: str) -> None:
        await self.elector.guard(step)

    async def publish(self, primary: str, from_: str | None, position: str) -> Published:
        published = await self.elector.publish(primary, from_, position)
        self._adopted.add((published.primary, published.epoch))
        return published

    # -- the leader's reconciliation ---------------------------------------------------------

    async def _reconcile(self) -> None:
        failover = self.app.failover
        monitor = self.app.monitor
        if failover is None or monitor is None or failover.in_progress:
            return
        topology = self.app.topology
        primary = topology.primary
        if primary is None or not primary.online:
            return
        health = monitor.health_of(primary.name)
        if health is None or health.failing:
            return
        published = self.elector.published
        if published is None:
            await self.publish(primary.name, None, "")
            return
        old = topology.by_name.get(published.from_ or "") if published.from_ else None
        if published.primary == primary.name:
            # A failover published by an earlier leader: fence its old primary when it returns, and
            # when that leader may have died before repointing every replica (a recent epoch of
            # another instance), repoint them now (promote mode only; repointing is idempotent).
            key = (published.primary, published.epoch)
            if key in self._adopted:
                return
            self._adopted.add(key)
            if old is not None and not old.online:
                failover.adopt_promotion(old.name, primary.name, published.position)
            recent = time.time() - published.at < max(30.0, 4.0 * self.cfg.lease_ttl_seconds)
            if (
                failover.mode == "promote"
                and published.from_
                and published.leader != self.instance
                and recent
            ):
                log.info(
                    "coordination: finishing the promotion of %s (epoch %d, published by %s)",
                    primary.name,
                    published.epoch,
                    published.leader or "another instance",
                )
                await failover.finish_promotion(published.from_, primary.name, published.position)
            return
        was = topology.by_name.get(published.primary)
        if was is not None and was.online:
            return  # both look fine: a snapshot in transition; the next round decides
        stats = monitor.stats.get(primary.name)
        position = (stats.gtid_position if stats is not None else None) or ""
        log.warning(
            "coordination: %s is writable but %s (epoch %d) is the published primary and is gone: "
            "adopting %s",
            primary.name,
            published.primary,
            published.epoch,
            primary.name,
        )
        await self.publish(primary.name, published.primary, position)
        if failover.mode == "promote":  # rds / observe: the servers are not rwproxy's to repoint
            await failover.finish_promotion(published.primary, primary.name, position)

    def _compare_with_published(self) -> None:
        """A follower that routes writes to another server than the published primary for two
        rounds in a row says so (once per published epoch): read_only and the leader disagree."""
        published = self.elector.published
        primary = self.app.topology.primary
        if published is None or primary is None or not primary.online or primary.name == published.primary:
            self._mismatch = None
            return
        key = f"disagree:{published.epoch}:{primary.name}"
        seen_before, self._mismatch = self._mismatch == key, key  # two rounds in a row: not a race
        if seen_before and key not in self._said:
            self._said.add(key)
            log.warning(
                "coordination: routing writes to %s (read_only = OFF there) but the leader %s "
                "published %s (epoch %d)",
                primary.name,
                published.leader or "?",
                published.primary,
                published.epoch,
            )

    # -- status ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        e = self.elector
        published = e.published
        primary = self.app.topology.primary
        doc: dict[str, Any] = {
            "instance": self.instance,
            "cluster": self.cfg.cluster,
            "etcd_up": e.etcd_up,
            "etcd_endpoint": self.client.endpoint,
            "is_leader": e.is_leader,
            "leader": e.leader_name,
            "may_promote": e.is_leader,
            "mode": "leader" if e.is_leader else ("follower" if e.etcd_up else "observe-only"),
            "published": published.as_dict() if published else None,
            "agrees_with_published": (
                published is not None and primary is not None and primary.name == published.primary
            ),
            "elections_won": e.elections_won,
            "leadership_lost": e.leadership_lost,
        }
        if not e.is_leader:
            doc["why_not_leader"] = e.why_not_leader()
        if e.last_error:
            doc["etcd_error"] = e.last_error
        return doc
