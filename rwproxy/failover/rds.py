"""``failover.mode = "rds"``: when the primary is dead, ask AWS to fail over (FailoverDBCluster)
or wait for it to, with the writes buffered until a new primary is ready."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from rwproxy.coordination.hooks import coordination_guard
from rwproxy.topology.model import Node

if TYPE_CHECKING:
    from rwproxy.failover.controller import FailoverController
    from rwproxy.failover.ports import FailoverHost

__all__ = ["rds_actions", "rds_failover"]

log = logging.getLogger("rwproxy.failover.controller")  # the controller's lines, whichever module writes


async def rds_failover(fc: FailoverController, primary: Node, why: str) -> None:
    async with fc._lock:
        fc._last_failover = time.monotonic()
        fc.buffer.hold(f"AWS failover from {primary.name} in progress")
        try:
            actions = rds_actions(fc.app)
            cluster = fc.app.config.topology_source.cluster_id
            if actions is None or cluster is None:
                log.warning(
                    "failover: primary %s is down (%s); waiting for AWS to fail over", primary.name, why
                )
            else:
                log.warning(
                    "failover: primary %s is down (%s); FailoverDBCluster %s", primary.name, why, cluster
                )
                from rwproxy.discovery.rds_actions import RdsActionError

                await coordination_guard(fc.app, f"FailoverDBCluster {cluster}")
                try:
                    await actions.failover_db_cluster(cluster)
                except RdsActionError as exc:
                    # Aurora fails over by itself when its writer dies and then refuses another
                    # request (InvalidDBClusterStateFault): keep waiting for the new writer.
                    log.warning("failover: %s; waiting for AWS to fail over by itself", exc)
            deadline = time.monotonic() + fc.cfg.buffer_timeout_seconds
            while time.monotonic() < deadline and not fc.primary_ready():
                await asyncio.sleep(0.05)
            fc.stats.failovers["ok" if fc.primary_ready() else "failed"] += 1
        except Exception as exc:  # RdsActionError and boto errors
            fc.stats.failovers["failed"] += 1
            log.error("failover: AWS failover failed: %s", exc)
        finally:
            fc.buffer.release()


def rds_actions(app: FailoverHost) -> Any:
    aws = app.aws
    if aws.clients is None:
        return None
    from rwproxy.discovery.rds_actions import RdsActions

    return RdsActions(
        aws.clients,
        discovery=aws.discovery,
        allow_promote_read_replica=app.config.topology_source.promote_read_replica,
    )
