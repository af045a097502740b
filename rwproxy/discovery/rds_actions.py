"""RDS failover actions, for a failover controller (``failover.mode = "rds"``).

    actions = RdsActions(AwsClients(config.aws), discovery=app.aws.discovery,
                         allow_promote_read_replica=config.topology_source.promote_read_replica)
    await actions.failover_db_cluster("orders-aurora", target="orders-aurora-2")   # Aurora
    await actions.reboot_with_failover("orders-db")           # RDS Multi-AZ instance (drills)
    await actions.promote_read_replica("orders-replica-1")    # one-way; only when allowed

Every call runs boto3 in a worker thread, raises ``RdsActionError`` (with the AWS error code) when
RDS refuses, and asks the discovery task to read the topology again at once. The call returns when
RDS *accepted* the request: the switch itself takes RDS tens of seconds. The controller waits for the
new writer to appear (``RdsDiscovery``) and writable (the monitor), buffering writes meanwhile.

PromoteReadReplica is one-way: the promoted instance becomes a standalone writable instance, the old
source keeps running and stays writable, and the other read replicas do NOT follow — they keep
replicating from the old source. rwproxy does not repoint them (RDS MySQL offers no API for it).
It is refused unless ``[topology] promote_read_replica = true``, and it logs a warning saying so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rwproxy.discovery.aws import AwsClients, error_code

if TYPE_CHECKING:
    from rwproxy.discovery.source import RdsDiscovery

__all__ = ["ActionResult", "RdsActionError", "RdsActions"]

log = logging.getLogger(__name__)


class RdsActionError(Exception):
    """RDS refused or could not be asked. ``code``: the AWS error code ("InvalidDBClusterStateFault"...),
    or "NotAllowed" for a promotion that is not enabled."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class ActionResult:
    action: str  # "FailoverDBCluster", "RebootDBInstance", "PromoteReadReplica"
    target: str  # the cluster or instance id
    requested_at: float  # time.time()
    seconds: float  # how long RDS took to accept the request
    status: str | None  # the cluster's / instance's status in RDS's answer


class RdsActions:
    def __init__(
        self,
        clients: AwsClients,
        *,
        discovery: RdsDiscovery | None = None,
        allow_promote_read_replica: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clients = clients
        self.discovery = discovery
        self.allow_promote_read_replica = allow_promote_read_replica
        self._clock = clock

    async def failover_db_cluster(self, cluster_id: str, target: str | None = None) -> ActionResult:
        """Aurora: FailoverDBCluster, to ``target`` (a reader's instance id) or RDS's choice."""
        kwargs: dict[str, Any] = {"DBClusterIdentifier": cluster_id}
        if target is not None:
            kwargs["TargetDBInstanceIdentifier"] = target
        where = f"{cluster_id}" + (f" -> {target}" if target else "")
        done = await self._call("FailoverDBCluster", where, "failover_db_cluster", kwargs)
        return _result("FailoverDBCluster", cluster_id, done, "DBCluster", "Status")

    async def reboot_with_failover(self, instance_id: str) -> ActionResult:
        """RDS Multi-AZ instance: RebootDBInstance(ForceFailover=True) — the standby takes over
        behind the same endpoint (for drills; RDS refuses it on a Single-AZ instance)."""
        kwargs = {"DBInstanceIdentifier": instance_id, "ForceFailover": True}
        done = await self._call("RebootDBInstance", instance_id, "reboot_db_instance", kwargs)
        return _result("RebootDBInstance", instance_id, done, "DBInstance", "DBInstanceStatus")

    async def promote_read_replica(self, instance_id: str) -> ActionResult:
        """RDS MySQL: PromoteReadReplica — one-way (see the module doc). Refused unless enabled."""
        if not self.allow_promote_read_replica:
            raise RdsActionError(
                f"PromoteReadReplica of {instance_id} is not enabled: it is one-way and the other "
                "replicas do not follow; set [topology] promote_read_replica = true to allow it",
                "NotAllowed",
            )
        log.warning(
            "rds: promoting read replica %s: this is one-way; the other read replicas keep replicating "
            "from the old source and are NOT repointed, and the old source stays writable",
            instance_id,
        )
        kwargs = {"DBInstanceIdentifier": instance_id}
        done = await self._call("PromoteReadReplica", instance_id, "promote_read_replica", kwargs)
        return _result("PromoteReadReplica", instance_id, done, "DBInstance", "DBInstanceStatus")

    # -- internals ---------------------------------------------------------------------------

    async def _call(
        self, action: str, where: str, method: str, kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], float, float]:
        """(response, requested_at, seconds)."""
        started = self._clock()
        requested_at = time.time()
        log.info("rds: %s %s", action, where)
        clients = self.clients

        def call() -> dict[str, Any]:
            return dict(getattr(clients.client("rds"), method)(**kwargs))

        try:
            response = await asyncio.to_thread(call)
        except Exception as exc:
            code = error_code(exc)
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warning("rds: %s %s refused: %s", action, where, text)
            raise RdsActionError(f"{action} {where}: {text}", code) from exc
        seconds = self._clock() - started
        log.info("rds: %s %s accepted in %.2f s; re-reading the topology", action, where, seconds)
        if self.discovery is not None:
            self.discovery.request_refresh()
        return response, requested_at, seconds


def _result(
    action: str, target: str, done: tuple[dict[str, Any], float, float], key: str, field: str
) -> ActionResult:
    response, requested_at, seconds = done
    body = response.get(key) or {}
    status = body.get(field) if isinstance(body, dict) else None
    return ActionResult(action, target, requested_at, seconds, status)
