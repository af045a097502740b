"""The failover controller's I/O: short-lived admin connections to one server at a time.

Every function opens its own connection (``rwproxy.topology.probe.open_connection``: bounded connect,
autocommit), runs a few statements, closes it, and raises ``ActionError`` with the server's message
when something fails. No state here: the controller decides, these do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiomysql

from rwproxy.failover import sql
from rwproxy.topology.probe import Flavor, close_quietly, describe_error, flavor_for_version, open_connection

if TYPE_CHECKING:
    from rwproxy.backend.pool import BackendCredentials

__all__ = ["ActionError", "Admin", "Positions"]

log = logging.getLogger(__name__)


class ActionError(Exception):
    """A failover step failed on a server; the message names the server and the step."""


@dataclass(frozen=True, slots=True)
class Positions:
    """A replica's replication state read at failover time (fresher than the monitor's)."""

    applied: str | None
    fetched: str | None
    io_running: bool | None
    sql_running: bool | None
    sql_error: bool


@dataclass(frozen=True, slots=True)
class Admin:
    """How to reach servers for failover statements. ``credentials``, when set, gives the login at
    each connect instead of ``user``/``password`` (``[backend] credentials``: env, secret, IAM)."""

    user: str
    password: str = field(repr=False)
    timeout: float = 5.0
    credentials: Callable[[], BackendCredentials] | None = field(default=None, compare=False, repr=False)

    async def _connect(self, host: str, port: int) -> aiomysql.Connection:
        try:
            user, password, require_tls = self.user, self.password, False
            if self.credentials is not None:
                creds = self.credentials()
                user, password, require_tls = creds.user, creds.password, creds.require_tls
                if creds.password_for is not None:
                    password = await creds.password_for(f"{host}:{port}", host, port)
            return await open_connection(
                host, port, user, password, timeout=self.timeout, require_tls=require_tls
            )
        except Exception as exc:
            raise ActionError(f"cannot connect to {host}:{port}: {describe_error(exc)}") from exc

    async def run(
        self, host: str, port: int, statements: Sequence[str | tuple[str, tuple[Any, ...]]]
    ) -> None:
        conn = await self._connect(host, port)
        try:
            async with conn.cursor() as cur:
                for st in statements:
                    text, args = (st, ()) if isinstance(st, str) else st
                    try:
                        await cur.execute(text, args or None)
                    except Exception as exc:
                        shown = text if "PASSWORD" not in text.upper() else text.split(",")[0] + ", ..."
                        raise ActionError(f"{host}:{port}: {shown!r} failed: {describe_error(exc)}") from exc
        finally:
            close_quietly(conn)

    async def flavor(self, host: str, port: int) -> Flavor:
        conn = await self._connect(host, port)
        try:
            async with conn.cursor() as cur:
                await cur.execute("SELECT VERSION()")
                row = await cur.fetchone()
            return flavor_for_version(str(row[0]))
        finally:
            close_quietly(conn)

    async def scalar(self, host: str, port: int, query: str, args: tuple[Any, ...] = ()) -> Any:
        conn = await self._connect(host, port)
        try:
            async with conn.cursor() as cur:
                await cur.execute(query, args or None)
                row = await cur.fetchone()
            return None if row is None else row[0]
        except ActionError:
            raise
        except Exception as exc:
            raise ActionError(f"{host}:{port}: {query!r} failed: {describe_error(exc)}") from exc
        finally:
            close_quietly(conn)

    async def positions(self, host: str, port: int, flavor: Flavor) -> Positions:
        conn = await self._connect(host, port)
        try:
            async with conn.cursor() as cur:
                await cur.execute(sql.applied_position_sql(flavor))
                applied = (await cur.fetchone())[0]
            async with conn.cursor(aiomysql.DictCursor) as dcur:
                await dcur.execute(flavor.status_sql)
                status = await dcur.fetchone() or {}
        except Exception as exc:
            raise ActionError(
                f"{host}:{port}: reading replication positions failed: {describe_error(exc)}"
            ) from exc
        finally:
            close_quietly(conn)
        io = status.get("Slave_IO_Running", status.get("Replica_IO_Running"))
        sqlr = status.get("Slave_SQL_Running", status.get("Replica_SQL_Running"))
        errno = status.get("Last_SQL_Errno") or 0
        fetched = status.get(sql.fetched_position_key(flavor))
        return Positions(
            applied=_clean(applied),
            fetched=_clean(fetched),
            io_running=None if io is None else io == "Yes",
            sql_running=None if sqlr is None else sqlr == "Yes",
            sql_error=bool(errno),
        )

    async def promote(self, host: str, port: int, flavor: Flavor, catchup_timeout: float) -> str:
        """Stop fetching, apply the relay log (within ``catchup_timeout``), forget the old source,
        become writable. Returns the GTID position the server had when it became the primary."""
        conn = await self._connect(host, port)
        try:
            async with conn.cursor(aiomysql.DictCursor) as cur:
                await cur.execute("STOP REPLICA IO_THREAD")
                await cur.execute(flavor.status_sql)
                status = await cur.fetchone() or {}
                fetched = _clean(status.get(sql.fetched_position_key(flavor)))
                if fetched:
                    await cur.execute(sql.wait_sql(flavor), (fetched, catchup_timeout))
                    row = await cur.fetchone() or {}
                    if next(iter(row.values()), None) != 0:
                        await cur.execute("START REPLICA IO_THREAD")
                        raise ActionError(
                            f"{host}:{port} did not apply its relay log ({fetched}) "
                            f"within {catchup_timeout:g} s"
                        )
                for st in ["STOP REPLICA", "RESET REPLICA ALL", *sql.read_only(flavor, False)]:
                    await cur.execute(st)
                await cur.execute(sql.applied_position_sql(flavor))
                row = await cur.fetchone() or {}
                return _clean(next(iter(row.values()), None)) or ""
        except ActionError:
            raise
        except Exception as exc:
            raise ActionError(f"promoting {host}:{port} failed: {describe_error(exc)}") from exc
        finally:
            close_quietly(conn)

    async def wait_applied(self, host: str, port: int, flavor: Flavor, position: str, timeout: float) -> bool:
        """True once the server applied ``position`` (within ``timeout`` seconds)."""
        if not position:
            return True
        result = await asyncio.wait_for(
            self.scalar(host, port, sql.wait_sql(flavor), (position, timeout)), timeout + self.timeout
        )
        return bool(result == 0)


def _clean(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).replace("\n", "").strip()
    return text or None
