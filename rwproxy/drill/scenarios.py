"""Drill scenarios and the run itself: set up the drill table through the proxy, start the workload
(and the ``/status`` watcher), inject the fault, stop, verify on the primary, build the report.

    result = run_drill(DrillOptions("replica-loss", proxy="127.0.0.1:6033", user=..., password=...,
                                    admin="127.0.0.1:9306"), cluster=cluster)
    result.report["verification"]["lost_acknowledged"]

Scenarios: ``failover`` (SIGKILL the primary), ``switchover`` (``POST /switchover`` on the admin
HTTP), ``replica-loss`` (SIGKILL one replica), ``lag`` (delay one replica, then undo it). With
``trigger`` the operator's command replaces the built-in fault (any scenario).
"""

from __future__ import annotations

import datetime
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

import pymysql

from rwproxy.dev.cluster.base import Cluster, ClusterNode
from rwproxy.drill import instances
from rwproxy.drill.events import SCENARIOS, ReadEvent, StatusSample, WriteEvent
from rwproxy.drill.faults import (
    DelayReplica,
    Fault,
    FaultError,
    KillNode,
    Switchover,
    Trigger,
    Unsupported,
    _post,
    probe_switchover,
)
from rwproxy.drill.report import ReportInputs, build_report
from rwproxy.drill.status_watch import StatusWatcher
from rwproxy.drill.workload import DrillTable, Workload, error_code

__all__ = ["SCENARIOS", "DrillError", "DrillOptions", "DrillResult", "reverify", "run_drill"]

DEFAULT_SCHEMA = "rwproxy_drill"


class DrillError(RuntimeError):
    """The drill cannot run as asked (bad options, nothing to inject the fault with...)."""


@dataclass
class DrillOptions:
    scenario: str
    proxy: str  # host:port
    user: str
    password: str
    database: str | None = None  # schema of the drill tables (default rwproxy_drill)
    admin: str | None = None  # admin HTTP host:port (detection time, proxy's view, switchover)
    admin_token: str | None = None  # bearer token for POST /switchover
    trigger: str | None = None  # operator's fault command (replaces the built-in fault)
    restore_trigger: str | None = None
    duration: float = 6.0
    fault_after: float = 2.0
    writers: int = 4
    readers: int = 4
    node: str | None = None  # target replica (replica-loss, lag) or switchover candidate
    lag_delay: int = 3  # MASTER_DELAY seconds
    lag_hold: float | None = None  # how long the lag lasts (default: 60 % of the time after the fault)
    lag_method: str = "delay"  # or "stop-sql"
    restore: bool | None = None  # restart a killed node at the end (default: replica-loss only)
    verify_dsn: str | None = None  # mysql://user:pass@host:port/ (default: through the proxy)
    statement_timeout: float = 15.0
    pause: float = 0.005
    quiet: bool = False
    also_admin: tuple[str, ...] = ()  # other instances' admin HTTP: the report says which one led

    def validate(self) -> None:
        if self.scenario not in SCENARIOS:
            raise DrillError(f"scenario {self.scenario!r}: expected one of {', '.join(SCENARIOS)}")
        if not self.duration > 0:
            raise DrillError(f"--duration {self.duration}: must be > 0")
        if not 0 <= self.fault_after < self.duration:
            raise DrillError(
                f"--fault-after {self.fault_after}: must be >= 0 and < --duration {self.duration}"
            )
        if self.writers < 1 or self.readers < 0:
            raise DrillError("--writers must be >= 1 and --readers >= 0")
        _split_address(self.proxy, "--proxy")
        if self.admin:
            _split_address(self.admin, "--admin")
        for other in self.also_admin:
            _split_address(other, "--also-admin")


@dataclass
class DrillResult:
    report: dict[str, Any]
    writes: list[WriteEvent]
    reads: list[ReadEvent]
    samples: list[StatusSample] | None
    table: DrillTable
    inputs: ReportInputs = field(repr=False)

    @property
    def exit_code(self) -> int:
        """0: the drill ran and no acknowledged write was lost or duplicated; 1: otherwise (or the
        fault could not be injected)."""
        v = self.report["verification"]
        if self.report["fault"].get("error"):
            return 1
        if v.get("verified") and (v["lost_acknowledged"] or v["duplicates"]):
            return 1
        return 0


def _split_address(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise DrillError(f"{what} {text!r}: expected host:port")
    return host.strip("[]"), int(port)


def verify_params(dsn: str, user: str, password: str) -> dict[str, Any]:
    """``mysql://user:pass@host:port`` or ``host:port`` (then ``user``/``password``) → connect kwargs."""
    if "://" not in dsn:
        host, port = _split_address(dsn, "--verify-dsn")
        return {"host": host, "port": port, "user": user, "password": password}
    parts = urlsplit(dsn)
    if parts.scheme not in ("mysql", "mariadb") or not parts.hostname:
        raise DrillError(f"--verify-dsn {dsn!r}: expected mysql://user:password@host:port")
    return {
        "host": parts.hostname,
        "port": parts.port or 3306,
        "user": unquote(parts.username) if parts.username else user,
        "password": unquote(parts.password) if parts.password is not None else password,
    }


class _Drill:
    def __init__(self, o: DrillOptions, cluster: Cluster | None, progress: TextIO | None) -> None:
        self.o = o
        self.cluster = cluster
        self.progress = None if o.quiet else progress
        host, port = _split_address(o.proxy, "--proxy")
        self.params: dict[str, Any] = {
            "host": host,
            "port": port,
            "user": o.user,
            "password": o.password,
            "connect_timeout": 2,
            "read_timeout": o.statement_timeout,
            "write_timeout": o.statement_timeout,
            "ssl_disabled": True,
        }
        if o.database:
            self.params["database"] = o.database
        self.table = DrillTable(o.database or DEFAULT_SCHEMA, uuid.uuid4().hex[:12])
        self.notes: list[str] = []

    def connect(self, **kw: Any) -> pymysql.Connection:
        return pymysql.connect(**{**self.params, "autocommit": True, **kw})

    # --- before ---------------------------------------------------------------------------------------
    def prepare_table(self, timeout: float = 15.0) -> None:
        """Create the tables through the proxy, then wait until reads through it find them."""
        try:
            with self.connect() as conn, conn.cursor() as cur:
                for st in self.table.ddl():
                    cur.execute(st)
        except pymysql.err.MySQLError as exc:
            raise DrillError(
                f"cannot create the drill tables through the proxy {self.o.proxy}: {exc}"
            ) from exc
        deadline = time.monotonic() + timeout
        good = 0
        with self.connect() as conn, conn.cursor() as cur:
            while good < 20:
                try:
                    cur.execute(f"SELECT COUNT(*) FROM {self.table.events} WHERE 1 = 0")
                    cur.execute(f"SELECT COUNT(*) FROM {self.table.markers} WHERE 1 = 0")
                    good += 1
                except pymysql.err.MySQLError as exc:
                    good = 0
                    if time.monotonic() > deadline:
                        raise DrillError(
                            f"the drill tables are not readable through the proxy: {exc}"
                        ) from exc
                    time.sleep(0.05)

    def identify_primary(self, attempts: int = 1) -> dict[str, Any]:
        """Which server the proxy's write path reaches (autocommit off keeps a session on the primary)."""
        last: BaseException | None = None
        for i in range(attempts):
            try:
                with self.connect(autocommit=False) as conn, conn.cursor() as cur:
                    cur.execute("SELECT @@server_id, @@hostname, @@port")
                    server_id, hostname, port = cur.fetchone()
                    conn.rollback()
                node = self._node_by_server_id(int(server_id))
                return {
                    "server_id": int(server_id),
                    "hostname": hostname,
                    "port": int(port),
                    "node": node.name if node else None,
                }
            except Exception as exc:
                last = exc
                if i + 1 < attempts:
                    time.sleep(0.2)
        code, msg = error_code(last) if last else (None, "")
        return {"error": f"{code} {msg}".strip()}

    def _node_by_server_id(self, server_id: int) -> ClusterNode | None:
        if self.cluster is None:
            return None
        return next((n for n in self.cluster.nodes if n.server_id == server_id), None)

    def build_fault(self, primary: dict[str, Any]) -> Fault:
        o, c = self.o, self.cluster
        if o.trigger:
            t = Trigger(o.trigger, o.restore_trigger)
            t.target = o.node
            return t
        if o.scenario == "switchover":
            if not o.admin:
                raise DrillError("switchover needs --admin host:port (POST /switchover) or --trigger COMMAND")
            probe_switchover(o.admin)
            return Switchover(o.admin, o.node, token=o.admin_token)
        if c is None:
            raise DrillError(
                f"{o.scenario} needs a cluster to act on: --cluster-state FILE (rwproxy demo prints it) "
                "or --trigger COMMAND"
            )
        if o.scenario == "failover":
            node = self._node_by_server_id(primary["server_id"]) if "server_id" in primary else None
            node = node or c.primary
            return KillNode(c, node, "primary", restart=bool(o.restore))
        replica = self._pick_replica(primary)
        if o.scenario == "replica-loss":
            return KillNode(c, replica, "replica", restart=o.restore is not False)
        hold = o.lag_hold if o.lag_hold is not None else max(0.5, 0.6 * (o.duration - o.fault_after))
        return DelayReplica(c, replica, o.lag_delay, hold, o.lag_method)

    def _pick_replica(self, primary: dict[str, Any]) -> ClusterNode:
        assert self.cluster is not None
        c = self.cluster
        primary_id = primary.get("server_id", c.primary.server_id)
        if self.o.node:
            try:
                node = c.node(self.o.node)
            except KeyError:
                raise DrillError(
                    f"--node {self.o.node}: no such node ({[n.name for n in c.nodes]})"
                ) from None
            if node.server_id == primary_id:
                raise DrillError(f"--node {self.o.node} is the primary, not a replica")
            return node
        for n in c.nodes:
            if n.server_id != primary_id and c.is_running(n):
                return n
        raise DrillError("no running replica to act on")

    # --- during ---------------------------------------------------------------------------------------
    def say(self, text: str, final: bool = False) -> None:
        if self.progress is None:
            return
        tty = getattr(self.progress, "isatty", lambda: False)()
        if tty:
            self.progress.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.progress.write(text + "\n")
        self.progress.flush()

    def status_line(self, w: Workload, watcher: StatusWatcher | None, fault_note: str) -> str:
        c = w.counts()
        line = (
            f"[drill {self.o.scenario}] t={w.now():5.1f}s  "
            f"writes {c['acked']} ok/{c['write_errors']} failed  "
            f"reads {c['reads_ok']} ok/{c['read_errors']} failed/{c['stale']} stale  {fault_note}"
        )
        if watcher is not None and watcher.samples:
            s = watcher.samples[-1]
            line += f"  proxy: primary {s.primary() or '-'}" if s.ok else "  proxy admin: no answer"
        return line

    def run(self) -> DrillResult:
        o = self.o
        self.prepare_table()
        primary_before = self.identify_primary(attempts=3)
        fault = self.build_fault(primary_before)
        started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        workload = Workload(self.connect, self.table, o.writers, o.readers, o.pause)
        watcher = StatusWatcher(o.admin, workload.t0) if o.admin else None
        admins = [a for a in (o.admin, *o.also_admin) if a]
        instances_before = instances.snapshot(admins)
        if watcher is not None:
            watcher.start()
        workload.start()
        fault_info: dict[str, Any] = {"description": fault.describe(), "target": fault.target}
        fault_at: float | None = None
        fault_end: float | None = None
        restored = False
        note = "fault pending"
        tty = self.progress is not None and getattr(self.progress, "isatty", lambda: False)()
        next_line = 0.0
        try:
            while (now := workload.now()) < o.duration:
                if fault_at is None and now >= o.fault_after:
                    fault_at = workload.now()
                    try:
                        fault.inject()
                        fault_info["injected_in_seconds"] = round(workload.now() - fault_at, 3)
                        note = f"fault at t={fault_at:.1f}s"
                    except Unsupported:
                        raise
                    except FaultError as exc:
                        fault_info["error"] = str(exc)
                        note = "FAULT FAILED"
                        restored = True  # nothing to undo
                if (
                    fault_at is not None
                    and not restored
                    and fault.restore_after is not None
                    and now >= fault_at + fault.restore_after
                ):
                    restored = True
                    fault_end = workload.now()
                    self._restore(fault, fault_info)
                    note = f"fault at t={fault_at:.1f}s, undone at t={fault_end:.1f}s"
                if now >= next_line:
                    self.say(self.status_line(workload, watcher, note))
                    next_line = now + (0.25 if tty else 1.0)
                time.sleep(0.01)
        finally:
            workload_end = workload.stop(timeout=o.statement_timeout)
            samples = watcher.stop() if watcher is not None else None
        self.say(self.status_line(workload, watcher, note), final=True)
        primary_after = self.identify_primary(attempts=5)
        if fault_at is not None and not restored:  # e.g. restart a killed node, then verify
            self._restore(fault, fault_info)
            if fault_info.get("restored"):
                fault_end = workload.now()
        rows, source, verify_error = self.read_rows(attempts=25 if fault_info.get("restored") else 5)
        if workload.marker_failures:
            self.notes.append(
                f"{workload.marker_failures} read-your-writes marker inserts failed "
                "(those rounds had no read)"
            )
        writes, reads = list(workload.writes), list(workload.reads)
        inputs = ReportInputs(
            scenario=o.scenario,
            started_at=started_at,
            workload_start=0.0,
            workload_end=workload_end,
            writes=writes,
            reads=reads,
            fault_at=fault_at,
            fault_end=fault_end,
            fault=fault_info,
            samples=samples,
            rows=rows,
            verify_source=source,
            verify_error=verify_error,
            primary_before=primary_before,
            primary_after=primary_after,
            settings=self.settings(),
            notes=self.notes,
            semi_sync=_semi_sync(watcher.first_doc if watcher is not None else None),
            semi_sync_after=_semi_sync(watcher.last_doc if watcher is not None else None),
        )
        report = build_report(inputs)
        led = instances.summarize(instances_before, instances.snapshot(admins))
        if led is not None:
            report["coordination"] = led
        d = report["detection"]
        if o.scenario in ("failover", "switchover") and d is not None and not d.get("new_primary"):
            self.notes.append(
                f"no new primary appeared in the proxy's view within {o.duration - (fault_at or 0):.1f} s "
                "after the fault"
            )
            report["notes"] = list(self.notes)
        if o.admin and o.admin_token:
            refused = post_summary(o.admin, o.admin_token, report)
            if refused:
                self.notes.append(refused)
                report["notes"] = list(self.notes)
        return DrillResult(report, writes, reads, samples, self.table, inputs)

    def _restore(self, fault: Fault, info: dict[str, Any]) -> None:
        try:
            done = fault.restore()
            if done:
                info["restored"] = done
        except FaultError as exc:
            info["restore_error"] = str(exc)

    def settings(self) -> dict[str, Any]:
        o = self.o
        return {
            "proxy": o.proxy,
            "admin": o.admin,
            "writers": o.writers,
            "readers": o.readers,
            "duration": o.duration,
            "fault_after": o.fault_after,
            "table": f"{self.table.schema}.events",
            "run_id": self.table.run_id,
        }

    # --- after ----------------------------------------------------------------------------------------
    def read_rows(self, attempts: int = 5) -> tuple[dict[int, int] | None, str | None, str | None]:
        """seq → copies in the table on the primary: directly (``verify_dsn``) or through the proxy's
        write path. (None, source, error) when no primary answers."""
        if self.o.verify_dsn:
            params = {**verify_params(self.o.verify_dsn, self.o.user, self.o.password), "connect_timeout": 5}
            return read_rows(params, self.table, f"direct {params['host']}:{params['port']}")
        params = {**self.params, "autocommit": False}
        return read_rows(params, self.table, f"through the proxy {self.o.proxy}", attempts=attempts)


def read_rows(
    params: dict[str, Any], table: DrillTable, source: str, attempts: int = 1
) -> tuple[dict[int, int] | None, str | None, str | None]:
    """(seq → copies, source, None), or (None, source, error) when the query fails."""
    error = ""
    for i in range(attempts):
        try:
            with pymysql.connect(**{"ssl_disabled": True, **params}) as conn, conn.cursor() as cur:
                sql, args = table.rows_query()
                cur.execute(sql, args)
                rows = {int(seq): int(n) for seq, n in cur.fetchall()}
                if not params.get("autocommit", True):
                    conn.rollback()
                return rows, source, None
        except Exception as exc:
            code, msg = error_code(exc)
            error = f"cannot read the drill table {source}: {code} {msg}".replace("None ", "")
            if i + 1 < attempts:
                time.sleep(0.2)
    return None, source, error


def reverify(result: DrillResult, params: dict[str, Any], source: str = "direct") -> dict[str, Any]:
    """Read the drill table again with ``params`` (pymysql connect kwargs, e.g. after restarting a
    killed primary) and return the report rebuilt with that verification."""
    rows, src, error = read_rows(params, result.table, source)
    result.inputs.rows, result.inputs.verify_source, result.inputs.verify_error = rows, src, error
    result.report = build_report(result.inputs)
    return result.report


def run_drill(
    o: DrillOptions, cluster: Cluster | None = None, progress: TextIO | None = sys.stderr
) -> DrillResult:
    """Run one drill. ``cluster``: the local cluster to inject faults in (None: ``o.trigger`` or, for
    switchover, the admin interface). Raises ``DrillError`` for bad options, ``Unsupported`` when
    the proxy lacks what the scenario needs."""
    o.validate()
    return _Drill(o, cluster, progress).run()


def _semi_sync(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    failover = doc.get("failover") if doc else None
    semi = failover.get("semi_sync") if isinstance(failover, dict) else None
    return dict(semi) if isinstance(semi, dict) and semi else None


def post_summary(admin: str, token: str, report: dict[str, Any]) -> str | None:
    """Tell the proxy how the drill went (``POST /drills``: its rwproxy_drill_* metrics); a note when
    it could not be told, None when it was."""
    verification = report.get("verification") or {}
    availability = (report.get("reads") or {}).get("availability_percent")
    summary = {
        "scenario": report["scenario"],
        "lost_acknowledged": verification.get("lost_acknowledged"),
        "duplicates": verification.get("duplicates"),
        "write_outage_seconds": (report.get("writes") or {}).get("unavailable_seconds"),
        "read_availability": None if availability is None else availability / 100.0,
        "finished_at": time.time(),
    }
    url = f"http://{admin}/drills"
    try:
        status, body = _post(url, summary, 10.0, token)
    except OSError as exc:
        return f"could not report the result to {url}: {exc}"
    return None if status < 300 else f"the proxy refused the result ({url} answered {status}: {body[:200]})"
