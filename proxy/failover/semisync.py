"""The primary's semi-synchronous replication state: is it on, and how many replicas acknowledge.
RPO is 0 only while it is on with at least one acknowledging replica (drill reports say so)."""

from __future__ import annotations

from typing import Any

from proxy.failover import sql
from proxy.failover.actions import ActionError, Admin
from proxy.topology.model import Node
from proxy.topology.probe import Flavor, close_quietly

__all__ = ["read_semi_sync"]


async def read_semi_sync(admin: Admin, primary: Node, flavor: Flavor | None) -> dict[str, Any]:
    """{"primary", "enabled" (None: unknown), "clients" (acknowledging replicas, None: unknown)}."""
    enabled_sql, clients_sql = sql.semi_sync_sql(flavor)
    enabled: bool | None = None
    clients: int | None = None
    try:
        conn = await admin._connect(primary.host, primary.port)
    except ActionError:
        return {"primary": primary.name, "enabled": None, "clients": None}
    try:
        async with conn.cursor() as cur:
            try:
                await cur.execute(enabled_sql)
                row = await cur.fetchone()
                enabled = bool(int(row[0])) if row and row[0] is not None else None
            except Exception:
                enabled = False  # the variable does not exist: the semi-sync plugin is not loaded
            try:
                await cur.execute(clients_sql)
                row = await cur.fetchone()
                clients = int(row[1]) if row else None
            except Exception:
                clients = None
    finally:
        close_quietly(conn)
    return {"primary": primary.name, "enabled": enabled, "clients": clients}
