"""Semi-synchronous replication: the primary's state (is it on, how many replicas acknowledge) and
carrying it across a failover or switchover.

RPO is 0 only while semi-sync is on with at least one acknowledging replica (drill reports say so).
MySQL/MariaDB keep the two sides per server (``rpl_semi_sync_master_enabled`` /
``rpl_semi_sync_slave_enabled``; MySQL 8: ``_source_`` / ``_replica_``) and a role change moves
neither, so without help a promoted replica runs without semi-sync (RPO 0 silently gone) and a
demoted primary keeps its master side on, so that its applier waits for acknowledgements nobody
sends and it serves stale reads. ``SemiSyncRoles`` fixes both when the old primary had semi-sync on:

* the promoted server: master side ON with the old primary's timeout and wait point (known from the
  periodic read, or read from the old primary itself before a switchover);
* every server repointed to it (the other replicas, the demoted or rejoining old primary): master
  side OFF, replica side ON. The repoint (``STOP REPLICA`` ... ``START REPLICA``) that follows
  restarts the IO thread, which is when the replica side takes effect.

Each change is one INFO log line and one count in ``changes`` (metric
``rwproxy_semi_sync_changes_total{server,side,action}``). A server without the semi-sync variables
(plugin not loaded) is logged once and left alone: the failover itself never fails for semi-sync.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rwproxy.failover import sql
from rwproxy.failover.actions import ActionError, Admin
from rwproxy.topology.model import Node
from rwproxy.topology.probe import Flavor, close_quietly, describe_error

__all__ = ["SemiSyncRoles", "SemiSyncSettings", "read_semi_sync", "semi_sync_variables"]

log = logging.getLogger(__name__)

WAIT_POINTS = ("AFTER_SYNC", "AFTER_COMMIT")


@dataclass(frozen=True, slots=True)
class SemiSyncSettings:
    """A primary's master-side semi-sync settings (None: not known)."""

    enabled: bool
    timeout_ms: int | None = None
    wait_point: str | None = None


_OLD_NAMES = ("rpl_semi_sync_master", "rpl_semi_sync_slave_enabled")  # MariaDB, MySQL before 8.0.26
_NEW_NAMES = ("rpl_semi_sync_source", "rpl_semi_sync_replica_enabled")  # MySQL 8.0.26+ plugins


def semi_sync_variables(flavor: Flavor | None) -> tuple[str, str]:
    """(master-side prefix, replica-side enabled variable) for the flavour (the first to try)."""
    return _OLD_NAMES if flavor in (Flavor.MARIADB, Flavor.MYSQL_LEGACY) else _NEW_NAMES


async def read_semi_sync(admin: Admin, primary: Node, flavor: Flavor | None) -> dict[str, Any]:
    """{"primary", "enabled" (None: unknown), "clients" (acknowledging replicas, None: unknown),
    "timeout_ms", "wait_point" (None: unknown)}."""
    enabled_sql, clients_sql = sql.semi_sync_sql(flavor)
    prefix, _ = semi_sync_variables(flavor)
    out: dict[str, Any] = {
        "primary": primary.name,
        "enabled": None,
        "clients": None,
        "timeout_ms": None,
        "wait_point": None,
    }
    try:
        conn = await admin._connect(primary.host, primary.port)
    except ActionError:
        return out
    try:
        async with conn.cursor() as cur:
            try:
                await cur.execute(enabled_sql)
                row = await cur.fetchone()
                out["enabled"] = bool(int(row[0])) if row and row[0] is not None else None
            except Exception:
                out["enabled"] = False  # the variable does not exist: the semi-sync plugin is not loaded
            try:
                await cur.execute(clients_sql)
                row = await cur.fetchone()
                out["clients"] = int(row[1]) if row else None
            except Exception:
                out["clients"] = None
            if out["enabled"]:
                try:
                    await cur.execute(f"SELECT @@GLOBAL.{prefix}_timeout, @@GLOBAL.{prefix}_wait_point")
                    row = await cur.fetchone()
                    out["timeout_ms"] = int(row[0]) if row and row[0] is not None else None
                    point = str(row[1]).upper() if row and row[1] is not None else None
                    out["wait_point"] = point if point in WAIT_POINTS else None
                except Exception:
                    pass  # older servers without wait_point: enabled is what matters
    finally:
        close_quietly(conn)
    return out


class SemiSyncRoles:
    """Carries the old primary's semi-sync across a role change (see the module docstring)."""

    def __init__(self, admin: Admin) -> None:
        self.admin = admin
        self.known: SemiSyncSettings | None = None  # the primary's, from the last read
        self.changes: Counter[tuple[str, str, str]] = Counter()  # (server, side, action)
        self.steps: list[str] = []  # changes since the last take_steps() (for the failover report)
        self._warned: set[str] = set()

    def remember(self, state: dict[str, Any]) -> None:
        """A read of the primary (``read_semi_sync``); unknown (unreachable) reads are ignored."""
        if state.get("enabled") is None:
            return
        self.known = SemiSyncSettings(
            bool(state["enabled"]), state.get("timeout_ms"), state.get("wait_point")
        )

    async def read_from(self, primary: Node, flavor: Flavor | None) -> None:
        """Before a switchover: the old primary's settings, fresh."""
        self.remember(await read_semi_sync(self.admin, primary, flavor))

    def take_steps(self) -> list[str]:
        steps, self.steps = self.steps, []
        return steps

    async def promoted(self, node: Node, flavor: Flavor | None) -> None:
        """``node`` is the new primary: master side on as the old primary had it."""
        known = self.known
        if known is not None and not known.enabled:
            return

        def plan(master: bool, replica: bool, prefix: str, _: str) -> list[str | tuple[str, tuple[Any, ...]]]:
            settings = known
            if settings is None and replica:  # never read the old primary: its replicas' side says it
                settings = SemiSyncSettings(True)
            if settings is None or not settings.enabled:
                return []
            out: list[str | tuple[str, tuple[Any, ...]]] = []
            if settings.timeout_ms is not None:
                out.append((f"SET GLOBAL {prefix}_timeout = %s", (int(settings.timeout_ms),)))
            if settings.wait_point in WAIT_POINTS:
                out.append((f"SET GLOBAL {prefix}_wait_point = %s", (settings.wait_point,)))
            if not master:
                out.append(f"SET GLOBAL {prefix}_enabled = 1")
            return out

        done = await self._apply(node, flavor, plan)
        if done is not None and any(str(st).endswith("_enabled = 1") for st in done[1]):
            shown = ", ".join(
                x
                for x in (
                    f"timeout {known.timeout_ms} ms" if known and known.timeout_ms is not None else "",
                    f"wait point {known.wait_point}" if known and known.wait_point else "",
                )
                if x
            )
            why = f"as the old primary had it ({shown or 'defaults'})"
            self._changed(node.name, "primary", "enabled", why)

    async def follow(self, node: Node, flavor: Flavor | None) -> None:
        """``node`` is about to be repointed to the new primary (the repoint restarts its IO thread):
        master side off, replica side on, when the old primary had semi-sync on."""
        if self.known is None or not self.known.enabled:
            return

        def plan(
            master: bool, replica: bool, prefix: str, replica_var: str
        ) -> list[str | tuple[str, tuple[Any, ...]]]:
            out: list[str | tuple[str, tuple[Any, ...]]] = []
            if master:
                out.append(f"SET GLOBAL {prefix}_enabled = 0")
            if not replica:
                out.append(f"SET GLOBAL {replica_var} = 1")
            return out

        done = await self._apply(node, flavor, plan)
        if done is None:
            return
        (master, replica), _ = done
        if master:
            why = "a replica now: its applier must not wait for acks"
            self._changed(node.name, "primary", "disabled", why)
        if not replica:
            self._changed(node.name, "replica", "enabled", "acknowledges the new primary's writes")

    async def _apply(
        self,
        node: Node,
        flavor: Flavor | None,
        plan: Callable[[bool, bool, str, str], list[str | tuple[str, tuple[Any, ...]]]],
    ) -> tuple[tuple[bool, bool], list[str | tuple[str, tuple[Any, ...]]]] | None:
        """On one connection: read (master side on, replica side on) under the flavour's variable
        names (else the other naming), run ``plan(master, replica, prefix, replica_var)``'s
        statements. Returns (what was read, the statements) when all ran, else None (logged once)."""
        first = semi_sync_variables(flavor)
        names = [first, _NEW_NAMES if first is _OLD_NAMES else _OLD_NAMES]
        try:
            conn = await self.admin._connect(node.host, node.port)
        except ActionError as exc:
            self._warn(node.name, f"cannot reach it: {exc}")
            return None
        try:
            async with conn.cursor() as cur:
                sides: tuple[bool, bool] | None = None
                error = ""
                for prefix, replica_var in names:
                    try:
                        await cur.execute(f"SELECT @@GLOBAL.{prefix}_enabled, @@GLOBAL.{replica_var}")
                        row = await cur.fetchone()
                        sides = bool(int(row[0])), bool(int(row[1]))
                        break
                    except Exception as exc:
                        error = describe_error(exc)
                if sides is None:
                    self._warn(node.name, f"no semi-sync variables ({error}): left as it is")
                    return None
                statements = plan(*sides, prefix, replica_var)
                for st in statements:
                    text, args = (st, ()) if isinstance(st, str) else st
                    await cur.execute(text, args or None)
            return sides, statements
        except Exception as exc:
            self._warn(node.name, f"semi-sync change failed: {describe_error(exc)}")
            return None
        finally:
            close_quietly(conn)

    def _changed(self, server: str, side: str, action: str, why: str) -> None:
        self.changes[(server, side, action)] += 1
        text = f"semi-sync: {server}: {side} side {action} ({why})"
        self.steps.append(text)
        log.info("failover: %s", text)

    def _warn(self, server: str, text: str) -> None:
        if server + text not in self._warned:
            self._warned.add(server + text)
            log.warning("failover: semi-sync: %s: %s", server, text)
