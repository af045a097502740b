"""The admin SQL interface: a MySQL-protocol endpoint (mysql-mimic) answering from rwproxy's live state.

    mariadb -h 127.0.0.1 -P 6032 -u admin -p
    SELECT * FROM servers;
    SELECT digest, count, avg_time_us FROM query_digest ORDER BY count DESC LIMIT 5;
    UPDATE servers SET admin_status = 'OFFLINE' WHERE name = 'db2';   -- drain (ONLINE: undrain)
    SET SERVER db2 OFFLINE;                                            -- the same, ProxySQL-like
    SWITCHOVER TO db2;   RELOAD CONFIG;

Served on ``[admin] sql_listen`` (default ``127.0.0.1:6032``) when ``[[admin.users]]`` exist (its own
accounts, mysql_native_password). Tables (``rwproxy.admin.tables``): servers, pools, sessions,
query_digest, routing_rules, stats, in the database ``rwproxy`` (``SHOW TABLES``, ``DESCRIBE t``
work); SELECTs (WHERE, ORDER BY, LIMIT, GROUP BY, aggregates) run in sqlglot's Python executor over
rows built at that moment. Handlers run on the proxy's loop thread: the state is read without locks.

Admin statements (each answers a result set saying what it did):

* ``UPDATE servers SET admin_status = 'OFFLINE'|'ONLINE' [WHERE ...]`` and ``SET SERVER <name>
  OFFLINE|ONLINE``: drain / undrain (``rwproxy.admin.drain``: no new statements go to the server,
  running ones finish; the primary cannot be drained).
* ``EXPLAIN ROUTE '<sql>'``: where the statement would go now and why, with its digest
  (``rwproxy.admin.explain``; rows of field, value).
* ``SWITCHOVER TO <name>`` calls ``app.switchover(name)``, ``RELOAD CONFIG`` calls
  ``app.reload_config()``; a refusal or failure answers an error with the reason.

Authentication bypass in mysql-mimic (``shared/notes/protocol-findings.md``): its
``Connection.authenticate`` answers ERR 1045 but returns normally, and the command loop would then
run a client's queries anyway. Closed twice here: ``_AdminConnection.authenticate`` raises
``_AuthFailed`` (a BaseException, so mimic's ``except Exception`` handlers do not swallow it) and the
connection is closed without reading another byte - also after a failed COM_CHANGE_USER -; and
``AdminSession`` refuses every query while ``username`` is None. Unknown users get the same ERR 1045
as a wrong password. Tested with a raw socket in tests/integration/test_admin_sql.py.

mysql-mimic is pinned (pyproject.toml) because ``_AdminConnection`` overrides
``Connection.authenticate`` and this module builds ``Connection``/``MysqlStream`` itself instead of
using ``MysqlServer`` (whose connection class cannot be replaced).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mysql_mimic import Session
from mysql_mimic.auth import IdentityProvider, NativePasswordAuthPlugin, User
from mysql_mimic.connection import Connection
from mysql_mimic.control import LocalControl
from mysql_mimic.errors import ErrorCode, MysqlError
from mysql_mimic.stream import MysqlStream
from sqlglot import exp
from sqlglot.executor import execute

from rwproxy.admin import tables
from rwproxy.admin.drain import DrainError, set_drained
from rwproxy.observability.metrics import rwproxy_version

if TYPE_CHECKING:
    from rwproxy.admin.ports import AdminSqlHost

__all__ = ["AdminSql", "start_admin_sql"]

log = logging.getLogger(__name__)

DATABASE = "rwproxy"
_ADMIN_STATUS = ("ONLINE", "OFFLINE")
_SET_SERVER = re.compile(r"\s*SET\s+SERVER\s+`?([A-Za-z0-9_.-]+)`?\s+(ONLINE|OFFLINE)\s*;?\s*\Z", re.I)
_SWITCHOVER = re.compile(r"\s*SWITCHOVER\s+TO\s+`?([A-Za-z0-9_.-]+)`?\s*;?\s*\Z", re.I)
_RELOAD = re.compile(r"\s*RELOAD\s+CONFIG\s*;?\s*\Z", re.I)
_EXPLAIN_ROUTE = re.compile(
    r"""\s*EXPLAIN\s+ROUTE\s+(?:'((?:[^'\\]|\\.|'')*)'|"((?:[^"\\]|\\.|"")*)")\s*;?\s*\Z""", re.I | re.S
)
_RESULT_COLUMNS = ["server", "admin_status", "changed"]
_UNSUPPORTED = ErrorCode.NOT_SUPPORTED_YET
_WRONG_VALUE = ErrorCode.WRONG_VALUE_FOR_VAR


class _QuietUserErrors(logging.Filter):
    """mysql-mimic logs every error answered to a client (a typo, an unknown table) at ERROR level;
    those are the client's business. Its logs of real exceptions pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not isinstance(record.msg, MysqlError)


_quiet = _QuietUserErrors()


class _AuthFailed(BaseException):
    """Authentication failed: end the connection. A BaseException so that mysql-mimic's
    ``except Exception`` handlers (which would answer and keep reading) let it through."""


class _Identity(IdentityProvider):  # type: ignore[misc]
    def __init__(self, users: dict[str, str]) -> None:
        self._users = users  # name -> SHA1(SHA1(password)) hex
        self._plugin = NativePasswordAuthPlugin()

    def get_plugins(self) -> list[NativePasswordAuthPlugin]:
        return [self._plugin]

    async def get_user(self, username: str) -> User:
        stage2 = self._users.get(username)
        # An unknown user gets a random hash: the same ERR 1045 as a wrong password, no user probing.
        auth = stage2 if stage2 is not None else secrets.token_hex(20)
        return User(name=username, auth_string=auth, auth_plugin=NativePasswordAuthPlugin.name)


class _AdminConnection(Connection):  # type: ignore[misc]
    async def authenticate(self, *args: Any, **kwargs: Any) -> None:
        self.session.username = None  # COM_CHANGE_USER too: a failed attempt leaves nobody logged in
        await super().authenticate(*args, **kwargs)
        if self.session.username is None:
            raise _AuthFailed


class AdminSession(Session):  # type: ignore[misc]
    """One admin client. Every query is refused unless authentication succeeded."""

    def __init__(self, app: AdminSqlHost) -> None:
        super().__init__()
        self.app = app
        self.variables.set("version", f"{app.server_version}-rwproxy-admin", force=True)
        self.variables.set("version_comment", f"rwproxy {rwproxy_version()} admin", force=True)

    async def init(self, connection: Connection) -> None:
        await super().init(connection)
        if self.username is None:  # cannot happen with _AdminConnection; belt and braces
            raise _AuthFailed
        self.database = self.database or DATABASE  # type: ignore[has-type]

    async def handle_query(self, sql: str, attrs: dict[str, str]) -> Any:
        if self.username is None:
            raise _AuthFailed
        m = _SET_SERVER.match(sql)
        if m is not None:
            return self._drain([m.group(1)], m.group(2).upper() == "OFFLINE", strict=True)
        m = _SWITCHOVER.match(sql)
        if m is not None:
            return await self._call_app("SWITCHOVER", self.app.switchover(m.group(1)))
        if _RELOAD.match(sql):
            return await self._call_app("RELOAD CONFIG", self.app.reload_config())
        m = _EXPLAIN_ROUTE.match(sql)
        if m is not None:
            return _explain_rows(
                self.app, _unquote(m.group(1), "'") if m.group(1) is not None else _unquote(m.group(2), '"')
            )
        return await super().handle_query(sql, attrs)

    async def use(self, database: str) -> None:
        if self.username is None:
            raise _AuthFailed
        if database.lower() not in (DATABASE, "information_schema"):
            raise MysqlError(f"Unknown database '{database}' (the admin tables are in '{DATABASE}')", 1049)
        self.database = database

    async def schema(self) -> dict[str, Any]:
        return {DATABASE: tables.SCHEMA}

    async def query(self, expression: exp.Expression, sql: str, attrs: dict[str, str]) -> Any:
        if self.username is None:
            raise _AuthFailed
        if isinstance(expression, exp.Update):
            return await self._update(expression)
        if isinstance(expression, exp.Query):
            return await self._select(expression)
        raise MysqlError(
            "rwproxy admin: only SELECT, UPDATE servers SET admin_status = ..., SET SERVER <name> "
            "ONLINE|OFFLINE, SWITCHOVER TO <name> and RELOAD CONFIG are supported",
            ErrorCode.NOT_SUPPORTED_YET,
        )

    # -- SELECT ------------------------------------------------------------------------------

    async def _select(self, expression: exp.Expression) -> Any:
        expression = expression.copy()
        names: set[str] = set()
        for table in expression.find_all(exp.Table):
            name = table.name.lower()
            db = table.text("db").lower()
            if name not in tables.SCHEMA or db not in ("", DATABASE):
                known = ", ".join(tables.SCHEMA)
                raise MysqlError(
                    f"Table '{table.sql(dialect='mysql')}' doesn't exist (tables: {known})",
                    1146,
                )
            table.set("db", None)
            table.set("this", exp.to_identifier(name))
            names.add(name)
        data = {name: await _rows(self.app, name) for name in names}
        schema = {name: tables.SCHEMA[name] for name in names}
        try:
            result = execute(expression, schema=schema, tables=data, dialect="mysql")
        except MysqlError:
            raise
        except Exception as exc:
            raise MysqlError(f"rwproxy admin: cannot run this query: {exc}") from exc
        return result.rows, list(result.columns)

    # -- admin statements --------------------------------------------------------------------

    async def _update(self, expression: exp.Update) -> Any:
        table = expression.this
        if not isinstance(table, exp.Table) or table.name.lower() != "servers":
            raise MysqlError("rwproxy admin: only the servers table can be updated", _UNSUPPORTED)
        status: str | None = None
        for item in expression.expressions:
            column = item.this if isinstance(item, exp.EQ) else None
            value = item.expression if isinstance(item, exp.EQ) else None
            if not isinstance(column, exp.Column) or column.name.lower() != "admin_status":
                raise MysqlError(
                    "rwproxy admin: only admin_status can be set (to 'ONLINE' or 'OFFLINE')",
                    ErrorCode.NOT_SUPPORTED_YET,
                )
            text = value.this.upper() if isinstance(value, exp.Literal) and value.is_string else None
            if text not in _ADMIN_STATUS:
                got = value.sql() if value is not None else "?"
                raise MysqlError(
                    f"rwproxy admin: admin_status must be 'ONLINE' or 'OFFLINE', got {got}", _WRONG_VALUE
                )
            status = text
        if status is None:
            raise MysqlError("rwproxy admin: SET admin_status = ... is missing", ErrorCode.PARSE_ERROR)
        select = exp.select("name").from_("servers")
        where = expression.args.get("where")
        if where is not None:
            select = select.where(where.this.copy())
        names = [str(row[0]) for row in (await self._select(select))[0]]
        return self._drain(names, status == "OFFLINE", strict=False)

    def _drain(self, names: list[str], drained: bool, *, strict: bool) -> Any:
        """Drain/undrain every name; nothing changes when one is unknown. The primary cannot be
        drained: an error when named alone (or by SET SERVER), a row saying so among several."""
        app = self.app
        primary = app.topology.primary
        primary_name = primary.name if primary is not None else None
        try:
            for name in names:
                if name not in app.topology.by_name or (
                    drained and name == primary_name and (strict or len(names) == 1)
                ):
                    set_drained(app, name, drained)  # raises DrainError saying why
            rows = []
            for name in names:
                if drained and name == primary_name and name not in app.drained:
                    rows.append((name, "ONLINE", "no: the primary cannot be drained"))
                    continue
                changed = set_drained(app, name, drained)
                status = "OFFLINE" if drained else "ONLINE"
                rows.append((name, status, "yes" if changed else "no: already so"))
        except DrainError as exc:
            raise MysqlError(f"rwproxy admin: {exc}", ErrorCode.WRONG_VALUE_FOR_VAR) from exc
        return rows, _RESULT_COLUMNS

    async def _call_app(self, what: str, call: Awaitable[object]) -> Any:
        try:
            result = await call
        except MysqlError:
            raise
        except Exception as exc:
            raise MysqlError(f"rwproxy admin: {what} failed: {exc}") from exc
        if result is None:
            return [], []
        return [(str(result),)], ["result"]


def _unquote(text: str, quote: str) -> str:
    """The value of a MySQL string literal's body (backslash escapes, doubled quotes)."""
    escapes = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "Z": "\x1a", "b": "\b"}
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(escapes.get(text[i + 1], text[i + 1]))
            i += 2
        elif c == quote and text[i + 1 : i + 2] == quote:
            out.append(quote)
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _explain_rows(app: AdminSqlHost, sql: str) -> Any:
    """``EXPLAIN ROUTE '<sql>'``: one (field, value) row per line of ``rwproxy explain``."""
    from rwproxy.admin.explain import live

    doc = live(app, sql)
    replicas = ", ".join(
        f"{r['name']} {r['state']}" + ("" if r["lag_seconds"] is None else f" lag {r['lag_seconds']:g}s")
        for r in doc["topology"]["replicas"]
    )
    rows = [
        ("statement", doc["statement"]),
        ("effects", ", ".join(doc["effects"])),
        ("digest", doc["digest"]),
        ("digest_id", doc["digest_id"]),
        ("rule", doc["rule"]),
        ("target", doc["target"]),
        ("server", doc["server"]),
        ("reason", doc["reason"]),
        ("statement_reason", doc["statement_reason"]),
        ("pin", doc["pin"]),
        ("primary", doc["topology"]["primary"]),
        ("replicas", replicas),
        ("topology_version", str(doc["topology"]["version"])),
    ]
    return rows, ["field", "value"]


@dataclass(slots=True)
class AdminSql:
    """A running admin SQL listener."""

    server: asyncio.Server
    addresses: list[tuple[str, int]]
    writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def host(self) -> str:
        return self.addresses[0][0]

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    async def stop(self) -> None:
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.wait_closed(), 2.0)


async def _rows(app: AdminSqlHost, name: str) -> list[dict[str, Any]]:
    """With worker processes, ``sessions`` and ``query_digest`` of every worker (rwproxy.workers.views)."""
    from rwproxy.workers.views import instance_rows

    rows = await instance_rows(app, name)
    return tables.build(app, name) if rows is None else rows


async def start_admin_sql(app: AdminSqlHost, *, listen: str | None = None) -> AdminSql | None:
    """Serve the admin SQL interface on ``listen`` (default ``[admin] sql_listen``).

    Returns None when ``sql_listen = ""`` or no ``[[admin.users]]`` is configured (nobody could log
    in). Raises OSError when the address cannot be bound.
    """
    admin = app.config.admin
    if listen is not None:
        admin = admin.model_copy(update={"sql_listen": listen})
    address = admin.sql_address
    if address is None:
        if admin.sql_listen and not admin.users:
            log.info("admin SQL interface off: no [[admin.users]] configured")
        return None
    mimic_log = logging.getLogger("mysql_mimic.connection")
    if _quiet not in mimic_log.filters:
        mimic_log.addFilter(_quiet)
    if mimic_log.level == logging.NOTSET:  # it says "Started new connection" per admin client at INFO
        mimic_log.setLevel(logging.WARNING)
    identity = _Identity({u.name: u.native_stage2_hex for u in admin.users})
    control = LocalControl()
    handle: AdminSql | None = None

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert handle is not None
        handle.writers.add(writer)
        peer = writer.get_extra_info("peername")
        conn = _AdminConnection(
            stream=MysqlStream(reader, writer),
            session=AdminSession(app),
            control=control,
            identity_provider=identity,
        )
        conn_id = await control.add(conn)
        conn.connection_id = conn_id
        try:
            await conn.start()
        except _AuthFailed:
            user = conn.session.variables.get("external_user")
            log.info("admin SQL: access denied for %r from %s", user, peer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        except Exception as exc:  # a client that hangs up mid-handshake, a malformed packet, ...
            log.debug("admin SQL: connection from %s ended: %r", peer, exc)
        finally:
            handle.writers.discard(writer)
            writer.close()
            await control.remove(conn_id)

    server = await asyncio.start_server(client, address[0], address[1], reuse_address=True)
    bound = [(str(s.getsockname()[0]), int(s.getsockname()[1])) for s in server.sockets]
    handle = AdminSql(server, bound)
    log.info("admin SQL on %s", ", ".join(f"{h}:{p}" for h, p in bound))
    return handle
