"""What every dev cluster offers, whatever runs the servers: users, replication wiring, GTID waits,
delays, promotion. Subclasses only start, stop and signal servers (``local``: processes;
``containers``: Docker).
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import pymysql
from pymysql.cursors import DictCursor

from rwproxy.dev.cluster.flavor import Flavor, Statement, status_field

__all__ = ["Cluster", "ClusterError", "ClusterNode", "ClusterUnavailable"]


class ClusterError(RuntimeError):
    """The cluster did not do what was asked (start, catch up, promote...)."""


class ClusterUnavailable(ClusterError):
    """No way to run servers here (no binaries, no Docker); the message says what to install."""


@dataclass(eq=False)
class ClusterNode:
    """One server, compared by identity. ``start_node`` keeps the port (local; Docker may remap it)
    and sets a new ``pid``."""

    name: str
    host: str
    port: int
    server_id: int
    pid: int | None = None  # local servers
    container: Any = None  # docker servers (a testcontainers MySqlContainer)
    datadir: str | None = None
    socket: str | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)


class Cluster(abc.ABC):
    """A primary and N replicas with GTID replication. Context manager; ``stop()`` is idempotent and
    also runs at interpreter exit."""

    kind: str = "?"
    database = "rwtest"
    app_user, app_password = "rwapp", "rwapp-secret"
    monitor_user, monitor_password = "rwmonitor", "rwmonitor-secret"
    repl_user, repl_password = "rwrepl", "rwrepl-secret"
    # What rwproxy's failover controller uses over TCP (read_only, STOP/CHANGE/START REPLICA).
    failover_user, failover_password = "rwfailover", "rwfailover-secret"
    user_hosts: tuple[str, ...] = ("%", "localhost", "127.0.0.1")

    def __init__(self, dialect: Flavor) -> None:
        self.dialect = dialect
        self.flavor: str = dialect.name
        self.version = ""
        self.nodes: list[ClusterNode] = []
        self._primary: ClusterNode | None = None
        self._detached: set[str] = set()  # not primary and not replicating (e.g. an old primary)
        self._stopped = False

    # --- subclass hooks -----------------------------------------------------------------------------
    @abc.abstractmethod
    def _start(self) -> None:
        """Create and start all servers; set ``nodes`` and ``primary``."""

    @abc.abstractmethod
    def _shutdown(self) -> None:
        """Stop every server and remove what ``_start`` created. Must tolerate a half-done start."""

    @abc.abstractmethod
    def _admin_connect(self, node: ClusterNode, **kw: Any) -> pymysql.Connection:
        """A connection with all privileges (root), autocommit."""

    @abc.abstractmethod
    def _source_address(self, node: ClusterNode) -> tuple[str, int]:
        """Where other *servers* reach ``node`` (may differ from where the tests reach it)."""

    @abc.abstractmethod
    def is_running(self, node: ClusterNode) -> bool: ...

    @abc.abstractmethod
    def kill_node(self, node: ClusterNode, sig: int = signal.SIGKILL) -> None:
        """Send ``sig``; for signals that end the server, return once it is gone."""

    @abc.abstractmethod
    def stop_node(self, node: ClusterNode) -> None:
        """Clean shutdown; keeps the datadir."""

    @abc.abstractmethod
    def start_node(self, node: ClusterNode) -> None:
        """Start a stopped node on its datadir and port; replicas resume replication by themselves."""

    def _persist_read_only(self, node: ClusterNode, on: bool) -> None:  # noqa: B027 (optional hook)
        """Make read_only survive a restart (SET PERSIST does it on MySQL)."""

    # --- life cycle ---------------------------------------------------------------------------------
    def start(self) -> Cluster:
        atexit.register(self.stop)  # a crashed run does not leave servers behind
        try:
            self._start()
            self._bootstrap()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        self._shutdown()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def primary(self) -> ClusterNode:
        """The current primary; assign after an external failover (``promote`` does it itself)."""
        if self._primary is None:
            raise ClusterError("the cluster has no primary")
        return self._primary

    @primary.setter
    def primary(self, node: ClusterNode) -> None:
        self._primary = node
        self._detached.discard(node.name)

    @property
    def replicas(self) -> list[ClusterNode]:
        """Nodes replicating from the current primary (an old primary is not one until ``rejoin``)."""
        return [n for n in self.nodes if n is not self._primary and n.name not in self._detached]

    def node(self, name: str) -> ClusterNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    # --- SQL ----------------------------------------------------------------------------------------
    def connect(self, node: ClusterNode, **kw: Any) -> pymysql.Connection:
        """A connection as the app user over TCP, autocommit, database ``rwtest``; ``kw`` overrides."""
        params: dict[str, Any] = {**self.dsn(node), "autocommit": True, "connect_timeout": 5, **kw}
        return pymysql.connect(**params)

    def dsn(self, node: ClusterNode | None = None) -> dict[str, Any]:
        """Connect arguments (host, port, user, password, database) for the app user."""
        n = node or self.primary
        return {
            "host": n.host,
            "port": n.port,
            "user": self.app_user,
            "password": self.app_password,
            "database": self.database,
        }

    def sql(self, node: ClusterNode, statement: str, args: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement as the app user; the rows (empty for statements without a result)."""
        with self.connect(node) as conn, conn.cursor() as cur:
            cur.execute(statement, args)
            return list(cur.fetchall()) if cur.description else []

    def admin_sql(self, node: ClusterNode, statement: str, args: Any = None) -> list[tuple[Any, ...]]:
        """Like ``sql`` but as root (can write on read-only replicas, change replication...)."""
        with self._admin_connect(node) as conn, conn.cursor() as cur:
            cur.execute(statement, args)
            return list(cur.fetchall()) if cur.description else []

    def _admin_run(self, node: ClusterNode, statements: Iterable[str | Statement]) -> None:
        with self._admin_connect(node) as conn, conn.cursor() as cur:
            for st in statements:
                if isinstance(st, str):
                    cur.execute(st)
                else:
                    cur.execute(st[0], st[1])

    def replica_status(self, node: ClusterNode) -> dict[str, Any] | None:
        """SHOW REPLICA STATUS as a dict, or None when ``node`` is not a replica."""
        with self._admin_connect(node, cursorclass=DictCursor) as conn, conn.cursor() as cur:
            cur.execute("SHOW REPLICA STATUS")
            row = cur.fetchone()
        return dict(row) if row else None

    def is_replicating(self, node: ClusterNode) -> bool:
        """IO and SQL threads both running."""
        st = self.replica_status(node)
        if st is None:
            return False
        io = status_field(st, "Slave_IO_Running", "Replica_IO_Running")
        sql = status_field(st, "Slave_SQL_Running", "Replica_SQL_Running")
        return bool(io == "Yes" and sql == "Yes")

    def gtid_position(self, node: ClusterNode | None = None) -> str:
        """What ``node`` (default: the primary) has written: gtid_binlog_pos / gtid_executed."""
        rows = self.admin_sql(node or self.primary, self.dialect.gtid_position_sql)
        return str(rows[0][0] or "").replace("\n", "")

    # --- wiring -------------------------------------------------------------------------------------
    def _bootstrap(self) -> None:
        primary = self.primary
        self.version = str(self.admin_sql(primary, "SELECT VERSION()")[0][0])
        self._create_users(primary)
        for r in self.replicas:
            self._attach(r, fresh=True)
        self.wait_replicas_caught_up(timeout=60)

    def _create_users(self, node: ClusterNode) -> None:
        d = self.dialect
        sts: list[str | Statement] = []
        for host in self.user_hosts:
            sts.append(d.create_user(self.app_user, host, self.app_password))
            sts.extend(d.app_grants(self.app_user, host))
            sts.append(d.create_user(self.monitor_user, host, self.monitor_password))
            sts.append((f"GRANT {d.monitor_privileges} ON *.* TO %s@%s", (self.monitor_user, host)))
            sts.append(d.create_user(self.repl_user, host, self.repl_password))
            sts.append((f"GRANT {d.repl_privileges} ON *.* TO %s@%s", (self.repl_user, host)))
            sts.append(d.create_user(self.failover_user, host, self.failover_password))
            sts.append(("GRANT ALL PRIVILEGES ON *.* TO %s@%s", (self.failover_user, host)))
        sts.append(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
        self._admin_run(node, sts)

    def _attach(self, node: ClusterNode, *, fresh: bool = False) -> None:
        """Point ``node`` at the current primary and start replicating."""
        d = self.dialect
        host, port = self._source_address(self.primary)
        self._stop_replica_quietly(node)
        sts: list[str | Statement] = [*d.prepare_fresh_replica()] if fresh else []
        sts.append(d.change_source(host, port, self.repl_user, self.repl_password))
        sts.append("START REPLICA")
        self._admin_run(node, sts)

    def _stop_replica_quietly(self, node: ClusterNode) -> None:
        """STOP REPLICA on a node that may have no replication configured (MySQL errors then)."""
        with contextlib.suppress(pymysql.err.OperationalError, pymysql.err.InternalError):
            self.admin_sql(node, "STOP REPLICA")  # a dead node fails again on the next statement

    def wait_replicas_caught_up(
        self, timeout: float = 20, nodes: Sequence[ClusterNode] | None = None
    ) -> None:
        """Block until every running replica applied everything the primary has written
        (MASTER_GTID_WAIT / WAIT_FOR_EXECUTED_GTID_SET); ``ClusterError`` after ``timeout`` seconds.
        Stopped nodes are skipped."""
        position = self.gtid_position()
        deadline = time.monotonic() + timeout
        for r in nodes if nodes is not None else self.replicas:
            if not self.is_running(r):
                continue
            left = max(0.0, deadline - time.monotonic())
            result = self.admin_sql(r, self.dialect.gtid_wait_sql, (position, left))[0][0]
            st = self.replica_status(r) or {}
            # MASTER_GTID_WAIT compares sequence numbers only: a diverged replica "reaches" the
            # position while its IO thread is stopped by error 1236. An error is never caught up.
            error = _replication_error(st)
            if error:
                raise ClusterError(f"{r.name} replication failed: {error}")
            if result != 0:
                summary = {
                    k: v
                    for k, v in st.items()
                    if k.endswith(("_Running", "_Errno", "_Error", "Gtid_IO_Pos", "Retrieved_Gtid_Set"))
                }
                raise ClusterError(f"{r.name} not caught up to {position!r} within {timeout}s: {summary}")

    def set_delay(self, node: ClusterNode, seconds: int) -> None:
        """Make ``node`` apply events ``seconds`` after they were written (MASTER_DELAY)."""
        self._admin_run(node, ["STOP REPLICA", self.dialect.change_delay(int(seconds)), "START REPLICA"])

    def stop_sql_thread(self, node: ClusterNode) -> None:
        """STOP REPLICA SQL_THREAD: the replica keeps fetching, applies nothing, reports lag NULL."""
        self.admin_sql(node, "STOP REPLICA SQL_THREAD")

    def stop_io_thread(self, node: ClusterNode) -> None:
        self.admin_sql(node, "STOP REPLICA IO_THREAD")

    def start_replication(self, node: ClusterNode) -> None:
        """START REPLICA (both threads; a no-op for a running one)."""
        self.admin_sql(node, "START REPLICA")

    def set_read_only(self, node: ClusterNode, on: bool) -> None:
        self._admin_run(node, self.dialect.read_only(on))
        self._persist_read_only(node, on)

    def promote(self, node: ClusterNode, timeout: float = 20) -> None:
        """Self-managed failover to ``node``: stop fetching, apply what was fetched, forget the old
        source, become writable; repoint the other running replicas. The old primary is left alone
        (dead or alive) and is no longer in ``replicas``; see ``rejoin``."""
        old = self.primary
        if node is old:
            return
        d = self.dialect
        with self._admin_connect(node, cursorclass=DictCursor) as conn, conn.cursor() as cur:
            cur.execute("STOP REPLICA IO_THREAD")
            cur.execute("SHOW REPLICA STATUS")
            fetched = d.fetched_position(cur.fetchone() or {})
            if fetched:
                cur.execute(d.gtid_wait_sql, (fetched, timeout))
                if next(iter((cur.fetchone() or {None: None}).values())) != 0:
                    raise ClusterError(f"{node.name} did not apply its relay log within {timeout}s")
            for st in ["STOP REPLICA", "RESET REPLICA ALL", *d.read_only(False)]:
                cur.execute(st)
        self._persist_read_only(node, False)
        self.primary = node
        self._detached.discard(node.name)
        self._detached.add(old.name)
        for r in self.replicas:
            if self.is_running(r):
                self._attach(r)

    def rejoin(self, node: ClusterNode, timeout: float = 20) -> None:
        """Make a former primary (running) a read-only replica of the current primary and wait until
        it caught up. If it has writes the primary lacks, the primary refuses it (error 1236 under
        gtid_strict_mode; MySQL would accept it silently, so that case is checked here with
        GTID_SUBTRACT): ``ClusterError``, and the node stays detached."""
        if not self.dialect.is_mariadb:
            errant = self.admin_sql(
                self.primary, "SELECT GTID_SUBTRACT(%s, %s)", (self.gtid_position(node), self.gtid_position())
            )[0][0]
            if errant:
                raise ClusterError(
                    f"{node.name} cannot rejoin: it has transactions the primary lacks: {errant}"
                )
        self.set_read_only(node, True)
        self._stop_replica_quietly(node)
        self._admin_run(node, self.dialect.prepare_rejoin())
        self._attach(node)
        deadline = time.monotonic() + timeout
        while True:  # "Waiting for master/source to send event" only once the dump was accepted
            st = self.replica_status(node) or {}
            error = _replication_error(st)
            if error:
                self.admin_sql(node, "STOP REPLICA")
                raise ClusterError(f"{node.name} cannot rejoin: {error}")
            state = str(status_field(st, "Slave_IO_State", "Replica_IO_State") or "")
            if state.startswith("Waiting for") and state.endswith("to send event"):
                break
            if time.monotonic() > deadline:
                raise ClusterError(f"{node.name} did not connect to {self.primary.name}: {state!r}")
            time.sleep(0.02)
        self._detached.discard(node.name)
        self.wait_replicas_caught_up(max(1.0, deadline - time.monotonic()), nodes=[node])

    def set_semi_sync(self, enabled: bool, timeout_ms: int | None = None, wait: float = 10.0) -> None:
        """Semi-synchronous replication on the primary and the running replicas (off by default).
        When enabling, waits up to ``wait`` seconds until the primary counts every running replica
        as a semi-sync client (they reconnect their IO threads first)."""
        self._admin_run(self.primary, self.dialect.semi_sync_primary(enabled, timeout_ms))
        running = [r for r in self.replicas if self.is_running(r)]
        for r in running:
            sts = [*self.dialect.semi_sync_replica(enabled), "STOP REPLICA IO_THREAD"]
            self._admin_run(r, [*sts, "START REPLICA IO_THREAD"])
        deadline = time.monotonic() + wait
        while enabled and running and self.semi_sync_clients() < len(running):
            if time.monotonic() > deadline:
                raise TimeoutError(f"semi-sync: {self.semi_sync_clients()} of {len(running)} replicas joined")
            time.sleep(0.05)

    def semi_sync_clients(self) -> int:
        """Replicas the primary counts as semi-sync clients (MariaDB master_, MySQL source_)."""
        rows = self.admin_sql(self.primary, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_%_clients'")
        return int(rows[0][1]) if rows else 0

    def heal(self, timeout: float = 30) -> None:
        """Undo test disturbances: start stopped nodes, clear delays, restart replication, catch up.
        Does not undo a promotion."""
        for n in self.nodes:
            if not self.is_running(n) and n.name not in self._detached:
                self.start_node(n)
        for r in self.replicas:
            st = self.replica_status(r)
            if st is None:
                self._attach(r)
                continue
            if self.dialect.delay_of(st):
                self.set_delay(r, 0)
            self.start_replication(r)
        self.wait_replicas_caught_up(timeout=timeout)

    # --- human output -------------------------------------------------------------------------------
    def role(self, node: ClusterNode) -> str:
        if node is self._primary:
            return "primary"
        return "detached" if node.name in self._detached else "replica"

    def describe(self) -> str:
        """A table of the nodes and the commands to connect to them."""
        head = ("node", "role", "address", "server_id", "pid/container", "datadir")
        rows = [head]
        for n in self.nodes:
            where = str(n.pid) if n.pid else (getattr(n.container, "get_container_id", lambda: "")()[:12])
            state = "" if self.is_running(n) else " (down)"
            rows.append(
                (n.name, self.role(n) + state, f"{n.host}:{n.port}", str(n.server_id), where, n.datadir or "")
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = [f"rwproxy dev cluster: {self.kind}, {self.flavor} {self.version}".rstrip()]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        lines.append(
            f"users: app {self.app_user}/{self.app_password}, monitor {self.monitor_user}/"
            f"{self.monitor_password}, replication {self.repl_user}/{self.repl_password}"
        )
        lines.append("connect:")
        for n in self.nodes:
            host = "127.0.0.1" if n.host == "localhost" else n.host  # "localhost" means the socket
            lines.append(
                f"  {self.dialect.client} -h{host} -P{n.port} -u{self.app_user} -p{self.app_password} "
                f"{self.database}    # {n.name}, {self.role(n)}"
            )
        return "\n".join(lines)


def _replication_error(status: dict[str, Any]) -> str | None:
    """The error that stopped a replication thread, if one did."""
    for thread in ("IO", "SQL"):
        running = status_field(status, f"Slave_{thread}_Running", f"Replica_{thread}_Running")
        errno = status.get(f"Last_{thread}_Errno") or 0
        if running == "No" and errno:
            return f"{thread} thread error {errno}: {status.get(f'Last_{thread}_Error')}"
    return None
