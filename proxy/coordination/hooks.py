"""What the failover controller calls before and after each step; no-ops without
``[coordination]`` (``app.coordination`` is None), so a single instance behaves as before."""

from __future__ import annotations

import logging
from typing import Any

from proxy.failover.actions import ActionError

__all__ = ["coordination_guard", "coordination_publish", "coordination_refuses"]

log = logging.getLogger(__name__)


def coordination_refuses(app: Any) -> str | None:
    """Why this instance must not act now (it does not lead, etcd is unreachable), or None."""
    c = getattr(app, "coordination", None)
    return None if c is None or c.may_act() else str(c.why_not())


async def coordination_guard(app: Any, step: str) -> None:
    """An etcd Txn confirms the leadership right before ``step``; raises NotLeader (an ActionError)."""
    c = getattr(app, "coordination", None)
    if c is not None:
        await c.guard(step)


async def coordination_publish(app: Any, report: dict[str, Any], new: str, old: str, position: str) -> None:
    """Publish ``new`` as the primary (epoch + 1); a failure is a report step, not a failed failover
    (the next leader adopts a writable primary that was not published)."""
    c = getattr(app, "coordination", None)
    if c is None:
        return
    try:
        published = await c.publish(new, old, position)
        text = f"published primary {new} in etcd, epoch {published.epoch}"
    except ActionError as exc:
        text = f"could not publish {new} in etcd: {exc}"
    report["steps"].append(text)
    log.info("failover: %s", text)
