"""Leader election on an etcd lease, and the steps only the leader may take.

Keys (``<prefix>`` = ``coordination.prefix/coordination.cluster``, e.g. ``/rwproxy/orders``):

- ``<prefix>/leader``: the leading instance's name, attached to its lease. Whoever creates it (a
  Txn with ``create_revision == 0``) leads until the lease expires or is revoked; etcd deletes the
  key with the lease, and the next instance creates it anew (a new create revision).
- ``<prefix>/primary``: ``{"primary", "epoch", "from", "position", "leader"}`` (JSON), written by
  the leader only, epoch + 1 on every change of primary.

``guard(step)`` runs a Txn comparing the leader key's create revision AND lease with ours: it
succeeds only while we still hold the very key we created. A step (promote, repoint, fence,
read_only) runs only after its guard succeeded, and only while the lease has time left by our own
clock (``lease_deadline``, counted from when the last keepalive was SENT, so never later than
etcd's). When etcd cannot be reached nothing is guarded, hence nothing is done: observe only.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rwproxy.coordination.etcd import (
    Compare,
    EtcdClient,
    EtcdError,
    EtcdUnavailable,
    KeyValue,
    put_op,
    range_op,
)
from rwproxy.failover.actions import ActionError

__all__ = ["Elector", "NotLeader", "Published"]

log = logging.getLogger(__name__)


class NotLeader(ActionError):
    """A step was refused: this instance does not (provably) hold the leader key right now."""


@dataclass(frozen=True, slots=True)
class Published:
    """The ``<prefix>/primary`` key: which server the leader made (or found) the primary."""

    primary: str
    epoch: int
    from_: str | None = None
    position: str = ""
    leader: str = ""
    at: float = 0.0  # time.time() of the publication (anti-flapping across instances)
    mod_revision: int = 0

    @classmethod
    def from_kv(cls, kv: KeyValue) -> Published | None:
        try:
            doc = json.loads(kv.value)
            return cls(
                primary=str(doc["primary"]),
                epoch=int(doc["epoch"]),
                from_=doc.get("from"),
                position=str(doc.get("position") or ""),
                leader=str(doc.get("leader") or ""),
                at=float(doc.get("at") or 0.0),
                mod_revision=kv.mod_revision,
            )
        except (ValueError, KeyError, TypeError):
            log.warning("coordination: ignoring an unreadable %s: %r", kv.key, kv.value[:200])
            return None

    def to_json(self) -> str:
        return json.dumps(self.as_dict())

    def as_dict(self) -> dict[str, Any]:
        return {
            "primary": self.primary,
            "epoch": self.epoch,
            "from": self.from_,
            "position": self.position,
            "leader": self.leader,
            "at": self.at,
        }


class Elector:
    def __init__(
        self,
        client: EtcdClient,
        prefix: str,
        instance: str,
        ttl: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.instance = instance
        self.ttl = ttl
        self.leader_key = f"{prefix}/leader"
        self.primary_key = f"{prefix}/primary"
        self._clock = clock
        self.lease = 0
        self.lease_deadline = 0.0  # clock() after which our lease may have expired
        self.leader_revision = 0  # create revision of the leader key we created; 0: not leading
        self.leader_name: str | None = None  # who holds the leader key (as last read)
        self.published: Published | None = None
        self.etcd_up = False
        self.last_error: str | None = None
        self.elections_won = 0
        self.leadership_lost = 0

    # -- what the rest asks ----------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self.leader_revision != 0 and self.etcd_up and self._clock() < self.lease_deadline

    def why_not_leader(self) -> str:
        if not self.etcd_up:
            return f"etcd is unreachable ({self.last_error or 'not contacted yet'}): observing only"
        if self.leader_revision == 0:
            return f"{self.leader_name or 'nobody'} leads, not {self.instance}"
        return "the etcd lease may have expired: observing only"

    # -- one round of the election loop (every ttl/3 seconds) -------------------------------------

    async def round(self) -> None:
        """Keep the lease alive (or get one), take the leader key if it is free, verify it if ours,
        read the published primary. Any etcd failure: ``etcd_up`` False, nothing is led."""
        try:
            await self._renew()
            if self.leader_revision:
                await self._verify()
            else:
                await self._campaign()
            self.etcd_up = True
            self.last_error = None
        except EtcdError as exc:
            if self.etcd_up or self.last_error != str(exc):
                log.warning("coordination: etcd: %s", exc)
            self.etcd_up = False
            self.last_error = str(exc)
            if self.leader_revision and self._clock() >= self.lease_deadline:
                self._lost("the lease expired while etcd was unreachable")

    async def _renew(self) -> None:
        sent = self._clock()
        if self.lease:
            remaining = await self.client.keepalive(self.lease)
            if remaining > 0:
                self.lease_deadline = sent + remaining
                return
            if self.leader_revision:
                self._lost("the lease expired")
            self.lease = 0
        self.lease, granted = await self.client.grant(self.ttl)
        self.lease_deadline = sent + granted

    async def _campaign(self) -> None:
        result = await self.client.txn(
            [Compare(self.leader_key, "CREATE", 0)],
            [put_op(self.leader_key, self.instance, self.lease), range_op(self.primary_key)],
            [range_op(self.leader_key), range_op(self.primary_key)],
        )
        self._read_published(result.kvs)
        if result.succeeded:
            self.leader_revision = result.revision
            self.leader_name = self.instance
            self.elections_won += 1
            log.warning("coordination: %s is the leader now (lease %x)", self.instance, self.lease)
            return
        holder = next((kv for kv in result.kvs if kv.key == self.leader_key), None)
        self.leader_name = holder.value.decode(errors="replace") if holder else None

    async def _verify(self) -> None:
        result = await self.client.txn(
            self._ours(),
            [range_op(self.primary_key)],
            [range_op(self.leader_key), range_op(self.primary_key)],
        )
        self._read_published(result.kvs)
        if not result.succeeded:
            holder = next((kv for kv in result.kvs if kv.key == self.leader_key), None)
            self.leader_name = holder.value.decode(errors="replace") if holder else None
            self._lost("the leader key is not ours any more")

    def _ours(self) -> list[Compare]:
        return [
            Compare(self.leader_key, "CREATE", self.leader_revision),
            Compare(self.leader_key, "LEASE", self.lease),
        ]

    def _read_published(self, kvs: tuple[KeyValue, ...]) -> None:
        kv = next((kv for kv in kvs if kv.key == self.primary_key), None)
        self.published = Published.from_kv(kv) if kv is not None else None

    def _lost(self, why: str) -> None:
        if self.leader_revision:
            self.leadership_lost += 1
            log.error("coordination: %s is no longer the leader: %s", self.instance, why)
        self.leader_revision = 0
        if self.leader_name == self.instance:
            self.leader_name = None

    # -- the leader's steps ----------------------------------------------------------------------

    async def guard(self, step: str) -> None:
        """Raise ``NotLeader`` unless etcd confirms, now, that we hold the leader key."""
        if not self.is_leader:
            raise NotLeader(f"not doing {step}: {self.why_not_leader()}")
        try:
            result = await self.client.txn(self._ours(), [range_op(self.primary_key)])
        except EtcdError as exc:
            self.etcd_up = not isinstance(exc, EtcdUnavailable)
            self.last_error = str(exc)
            raise NotLeader(f"not doing {step}: etcd did not confirm the leadership: {exc}") from exc
        if not result.succeeded:
            self._lost("the leader key is not ours any more")
            raise NotLeader(f"not doing {step}: the leader key is not ours any more")
        self._read_published(result.kvs)
        if self._clock() >= self.lease_deadline:
            raise NotLeader(f"not doing {step}: the lease may have expired")

    async def publish(self, primary: str, from_: str | None, position: str) -> Published:
        """Write ``<prefix>/primary`` = ``primary`` with epoch + 1, only while we lead and only over
        the value we read last (a Txn on the leader key and the primary key's mod revision)."""
        for _ in range(3):
            if not self.is_leader:
                raise NotLeader(f"not publishing {primary}: {self.why_not_leader()}")
            current = self.published
            new = Published(
                primary=primary,
                epoch=(current.epoch if current else 0) + 1,
                from_=from_,
                position=position,
                leader=self.instance,
                at=time.time(),
            )
            known = current.mod_revision if current else 0
            compare = [*self._ours(), Compare(self.primary_key, "MOD", known)]
            try:
                result = await self.client.txn(
                    compare,
                    [put_op(self.primary_key, new.to_json()), range_op(self.primary_key)],
                    [range_op(self.leader_key), range_op(self.primary_key)],
                )
            except EtcdError as exc:
                raise NotLeader(f"not published: {exc}") from exc
            self._read_published(result.kvs)
            if result.succeeded:
                log.warning(
                    "coordination: published primary %s, epoch %d (was %s)",
                    primary,
                    new.epoch,
                    current.primary if current else "unset",
                )
                return self.published or new
            holder = next((kv for kv in result.kvs if kv.key == self.leader_key), None)
            if holder is None or holder.create_revision != self.leader_revision:
                self._lost("the leader key is not ours any more")
        raise NotLeader(f"not published: {self.primary_key} kept changing under us")

    async def resign(self) -> None:
        """Clean shutdown: revoke the lease so another instance leads at once, not after the TTL."""
        if self.lease:
            try:
                await self.client.revoke(self.lease)
            except EtcdError as exc:
                log.info("coordination: could not revoke the lease on shutdown: %s", exc)
        self.lease = 0
        self.leader_revision = 0
