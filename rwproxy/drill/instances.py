"""Several rwproxy instances in one drill (``--admin A --also-admin B ...``): which one led.

Each instance's ``/status`` is read before the fault and after the drill; the report's
``coordination`` block lists, per instance, its name, whether it led (before / after), whether etcd
answered, and how many failovers / switchovers it ran meanwhile, plus ``acted``: the instances
that ran one (exactly one expected with ``[coordination]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rwproxy.drill.status_watch import fetch_status

__all__ = ["render_coordination", "snapshot", "summarize"]


def snapshot(admins: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    """admin address -> its /status (None when it does not answer)."""
    out: dict[str, dict[str, Any] | None] = {}
    for admin in admins:
        try:
            out[admin] = fetch_status(admin, timeout=2.0)
        except (OSError, ValueError):
            out[admin] = None
    return out


def _actions(doc: Mapping[str, Any] | None) -> int:
    failover = (doc or {}).get("failover") or {}
    return int((failover.get("failovers") or {}).get("ok", 0)) + int(
        (failover.get("switchovers") or {}).get("ok", 0)
    )


def summarize(
    before: Mapping[str, Mapping[str, Any] | None], after: Mapping[str, Mapping[str, Any] | None]
) -> dict[str, Any] | None:
    """The report's ``coordination`` block; None when no instance runs [coordination]."""
    instances: list[dict[str, Any]] = []
    for admin in before.keys() | after.keys():
        b, a = before.get(admin), after.get(admin)
        cb = (b or {}).get("coordination") or {}
        ca = (a or {}).get("coordination") or {}
        instances.append(
            {
                "admin": admin,
                "instance": ca.get("instance") or cb.get("instance"),
                "led_before": cb.get("is_leader"),
                "led_after": ca.get("is_leader") if a is not None else None,
                "answered_after": a is not None,
                "etcd_up_after": ca.get("etcd_up"),
                "actions": _actions(a) - _actions(b) if a is not None and b is not None else None,
            }
        )
    if not any(i["instance"] for i in instances):
        return None
    instances.sort(key=lambda i: str(i["admin"]))
    acted = [str(i["instance"] or i["admin"]) for i in instances if (i["actions"] or 0) > 0]
    return {"instances": instances, "acted": acted}


def render_coordination(block: Mapping[str, Any] | None) -> list[str]:
    if not block:
        return []
    lines = []
    for i in block["instances"]:
        led = "leader" if i["led_before"] else "follower"
        now = "gone" if not i["answered_after"] else ("leader" if i["led_after"] else "follower")
        lines.append(
            f"instance         {i['instance'] or '?'} ({i['admin']}): {led} -> {now}, "
            f"{i['actions'] if i['actions'] is not None else '?'} failover/switchover(s)"
        )
    acted = block["acted"]
    lines.append(
        "led by           "
        + (", ".join(acted) if acted else "nobody (no failover or switchover ran)")
        + ("   MORE THAN ONE INSTANCE ACTED" if len(acted) > 1 else "")
    )
    return lines
