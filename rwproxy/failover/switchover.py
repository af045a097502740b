"""A planned switchover (``FailoverController.switchover``): buffer writes, let open transactions
finish, old primary read-only, wait until the candidate has everything, promote it, repoint the
others and the old primary, release. Undone (old primary writable again) when a step fails."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from rwproxy.coordination.hooks import coordination_guard, coordination_publish, coordination_refuses
from rwproxy.failover import sql
from rwproxy.failover.actions import ActionError
from rwproxy.failover.buffer import drain_sessions
from rwproxy.failover.report import run_role_change
from rwproxy.failover.report import step as _step
from rwproxy.topology.model import Node, Topology, lag_order

if TYPE_CHECKING:
    from rwproxy.failover.controller import FailoverController

__all__ = ["SwitchoverError", "run_switchover", "switchover_target"]

log = logging.getLogger("rwproxy.failover.controller")  # the controller's lines, whichever module writes


class SwitchoverError(Exception):
    """A switchover was refused or failed (the message says why; the old primary is kept)."""


async def run_switchover(fc: FailoverController, to: str | None) -> dict[str, Any]:
    """Planned: buffer writes, let open transactions finish, old primary read-only, wait until
    the candidate has everything, promote it, repoint the others and the old primary, release."""
    if fc.mode == "rds":
        raise SwitchoverError('switchover with failover.mode = "rds" is AWS\'s (FailoverDBCluster)')
    fixed = [s.name for s in fc.app.config.servers if s.role != "auto"]
    if fixed:
        raise SwitchoverError(
            f'switchover moves the primary role: servers {", ".join(fixed)} need role = "auto"'
        )
    if fc.in_progress:
        raise SwitchoverError("a failover or switchover is already running")
    refused = coordination_refuses(fc.app)
    if refused is not None:
        raise SwitchoverError(f"switchover refused: {refused}")
    async with fc._lock:
        topology = fc.app.topology
        old = topology.primary
        if old is None or not old.online:
            raise SwitchoverError("there is no ONLINE primary to switch over from")
        target = switchover_target(topology, to)
        started = time.monotonic()
        report: dict[str, Any] = {"kind": "switchover", "from": old.name, "to": target.name, "steps": []}
        log.info("switchover: %s -> %s", old.name, target.name)
        await fc.semi.read_from(old, await fc._flavor(old))  # before writes wait
        demoted = False

        async def body() -> None:
            nonlocal demoted
            workers = getattr(fc.app, "workers", None)  # worker processes: their sessions (rwproxy.workers)
            open_txns = await (
                workers.drain(old.name, fc.cfg.drain_timeout_seconds)
                if workers is not None
                else drain_sessions(fc.app.sessions, old.name, fc.cfg.drain_timeout_seconds)
            )
            _step(report, f"new writes buffered; {open_txns} transaction(s) still open after the drain")
            flavor = await fc._flavor(old)
            await coordination_guard(fc.app, f"switchover: {old.name} read_only = ON")
            await fc.admin.run(old.host, old.port, sql.read_only(flavor, True))
            demoted = True
            position = str(await fc.admin.scalar(old.host, old.port, sql.written_position_sql(flavor)) or "")
            _step(report, f"{old.name} read_only = ON at {position or '-'}")
            tflavor = await fc._flavor(target)
            if not await fc.admin.wait_applied(
                target.host, target.port, tflavor, position, fc.cfg.catchup_timeout_seconds
            ):
                raise ActionError(
                    f"{target.name} did not catch up within {fc.cfg.catchup_timeout_seconds:g} s"
                )
            _step(report, f"{target.name} applied everything")
            await coordination_guard(fc.app, f"switchover: promote {target.name}")
            promoted_at = await fc.admin.promote(
                target.host, target.port, tflavor, fc.cfg.catchup_timeout_seconds
            )
            await fc.semi.promoted(target, tflavor)
            others = [n.name for n in topology.nodes if n.name != target.name]
            fc.monitor.repointing(others, target.name, demoted=old.name)
            fc.monitor.promoted(target.name, f"switchover from {old.name}")
            _step(report, f"promoted {target.name} at {promoted_at or '-'}")
            await coordination_publish(fc.app, report, target.name, old.name, promoted_at)
            for other in topology.nodes:
                if other.name == target.name:
                    continue
                await fc._repoint_step(report, other, target, old_primary=other.name == old.name)
            await fc._wait_primary(target.name)

        async def on_failure(exc: ActionError) -> None:
            log.error("switchover: failed: %s", exc)
            if demoted and fc.app.topology.primary is not None and fc.app.topology.primary.name == old.name:
                with contextlib.suppress(ActionError):
                    await fc.admin.run(old.host, old.port, sql.read_only(await fc._flavor(old), False))
                    _step(report, f"{old.name} writable again (switchover undone)")

        await run_role_change(
            fc,
            report,
            results=fc.stats.switchovers,
            seconds_key="write_pause_seconds",
            started=started,
            hold=f"switchover from {old.name} to {target.name} in progress",
            body=body,
            on_failure=on_failure,
        )
        log.info("switchover: %s, writes paused %.3f s", report["result"], report["write_pause_seconds"])
        if report["result"] != "ok":
            raise SwitchoverError(report["result"])
        return report


def switchover_target(topology: Topology, to: str | None) -> Node:
    if to is not None:
        node = topology.by_name.get(to)
        if node is None:
            raise SwitchoverError(f"unknown server {to!r}")
        if node is topology.primary:
            raise SwitchoverError(f"{to} is already the primary")
        if not node.online:
            raise SwitchoverError(f"{to} is not ONLINE ({node.state.value}, {node.reason})")
        return node
    online = [n for n in topology.replicas if n.online]
    if not online:
        raise SwitchoverError("no ONLINE replica to switch over to")
    return min(online, key=lag_order)
