"""What the failover controller calls before and after each step; no-ops without
``[coordination]`` (``app.coordination`` is None), so a single instance behaves as before."""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from rwproxy.coordination.election import Published
from rwproxy.failover.actions import ActionError

__all__ = [
    "Coordinated",
    "CoordinationView",
    "coordination_guard",
    "coordination_publish",
    "coordination_refuses",
    "coordination_too_soon",
]

log = logging.getLogger(__name__)


class _Elected(Protocol):
    @property
    def published(self) -> Published | None: ...


class CoordinationView(Protocol):
    """What the failover controller asks of ``rwproxy.coordination.Coordinator``."""

    @property
    def elector(self) -> _Elected: ...

    def may_act(self) -> bool: ...

    def why_not(self) -> str: ...

    async def guard(self, step: str) -> None: ...

    async def publish(self, primary: str, from_: str | None, position: str) -> Published: ...


class Coordinated(Protocol):
    """An app that may run with ``[coordination]``: ``coordination`` None without it."""

    @property
    def coordination(self) -> CoordinationView | None: ...


def coordination_refuses(app: Coordinated, *, min_interval: float | None = None) -> str | None:
    """Why this instance must not act now (it does not lead, etcd is unreachable; with
    ``min_interval``, a failover: a leader moved the primary less than that long ago), or None."""
    c = app.coordination
    if c is None:
        return None
    if not c.may_act():
        return str(c.why_not())
    return coordination_too_soon(app, min_interval) if min_interval else None


def coordination_too_soon(app: Coordinated, min_interval: float) -> str | None:
    """Anti-flapping across instances: the last failover/switchover any leader published (etcd's
    primary key, ``from`` set) was less than ``min_interval`` seconds ago (wall clock)."""
    c = app.coordination
    published = c.elector.published if c is not None else None
    if published is None or published.from_ is None or not published.at:
        return None
    age = time.time() - published.at
    if age >= min_interval:
        return None
    return (
        f"{published.leader or 'a leader'} moved the primary to {published.primary} (epoch "
        f"{published.epoch}) {max(age, 0):.0f} s ago, less than failover.min_interval_seconds = "
        f"{min_interval:g} s"
    )


async def coordination_guard(app: Coordinated, step: str) -> None:
    """An etcd Txn confirms the leadership right before ``step``; raises NotLeader (an ActionError)."""
    c = app.coordination
    if c is not None:
        await c.guard(step)


async def coordination_publish(
    app: Coordinated, report: dict[str, Any], new: str, old: str, position: str
) -> None:
    """Publish ``new`` as the primary (epoch + 1); a failure is a report step, not a failed failover
    (the next leader adopts a writable primary that was not published)."""
    c = app.coordination
    if c is None:
        return
    try:
        published = await c.publish(new, old, position)
        text = f"published primary {new} in etcd, epoch {published.epoch}"
    except ActionError as exc:
        text = f"could not publish {new} in etcd: {exc}"
    report["steps"].append(text)
    log.info("failover: %s", text)
