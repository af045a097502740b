"""What a failover and a switchover share: the report, its steps, the clock, the result count and
the stats kept for metrics and /status (``FailoverStats``). The controller says what to do
(``body``) and what to do when it fails (``on_failure``); ``run_role_change`` does the rest."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rwproxy.failover.actions import ActionError

if TYPE_CHECKING:
    from rwproxy.failover.controller import FailoverController

__all__ = ["FailoverStats", "run_role_change", "step"]

log = logging.getLogger("rwproxy.failover.controller")  # the controller's lines, whichever module writes


@dataclass(slots=True)
class FailoverStats:
    failovers: Counter[str] = field(default_factory=Counter)  # by result: ok / failed
    switchovers: Counter[str] = field(default_factory=Counter)
    last_duration_seconds: float | None = None  # of the last failover or switchover
    last: dict[str, Any] | None = None  # report of the last failover/switchover
    fenced: dict[str, str] = field(default_factory=dict)  # server -> why it is kept out
    semi_sync: dict[str, Any] = field(default_factory=dict)  # primary's: enabled, clients


def step(report: dict[str, Any], text: str) -> None:
    report["steps"].append(text)
    log.info("failover: %s", text)


async def run_role_change(
    fc: FailoverController,
    report: dict[str, Any],
    *,
    results: Counter[str],
    seconds_key: str,
    started: float,
    hold: str,
    body: Callable[[], Awaitable[None]],
    on_failure: Callable[[ActionError], Awaitable[None]],
) -> None:
    """Hold the writes, run ``body``; count its result in ``results`` (``report["result"]``: ok /
    failed: why; an ``ActionError`` goes to ``on_failure``, anything else propagates); then release
    the writes, time it since ``started`` into ``report[seconds_key]`` and keep it in the stats."""
    fc.buffer.hold(hold)
    try:
        await body()
        results["ok"] += 1
        report["result"] = "ok"
    except ActionError as exc:
        results["failed"] += 1
        report["result"] = f"failed: {exc}"
        await on_failure(exc)
    finally:
        fc.buffer.release()
        report[seconds_key] = round(time.monotonic() - started, 3)
        fc._semi_sync_changed(report)
        fc.stats.last_duration_seconds = report[seconds_key]
        fc.stats.last = report
