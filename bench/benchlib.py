"""Shared plumbing for the end-to-end benchmarks (``run_sysbench.py``, ``relay_bench.py``).

A ``Bench`` owns everything a run starts: a local replication cluster (``rwproxy.dev.cluster``),
HAProxy (``mode tcp``, ``nbthread 1``, in front of the primary) and rwproxy (``python -m rwproxy run``,
config from ``rwproxy.dev.demo.demo_config_text``), all on loopback ports picked free, plus a temporary
directory for their configs and logs. Leaving the ``with`` block -- normally, on an exception, on
Ctrl-C or on SIGTERM/SIGHUP (turned into ``KeyboardInterrupt`` by ``install_signal_handlers``) --
stops all of them. HAProxy and rwproxy also get PR_SET_PDEATHSIG, so a SIGKILLed harness does not
leave them behind either (the cluster's servers are reaped by the next ``start_cluster``).

CPU accounting reads utime+stime of a whole process from /proc/PID/stat (10 ms ticks): take a
``cpu_seconds`` before and after a run and divide the delta by the work done.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import pymysql  # noqa: E402

from rwproxy.dev.cluster import Cluster, free_port, start_cluster, wait_for_port  # noqa: E402
from rwproxy.dev.demo import demo_config_text  # noqa: E402

__all__ = [
    "REPO",
    "RESULTS_DIR",
    "TARGETS",
    "Bench",
    "Child",
    "cpu_seconds",
    "install_signal_handlers",
    "loadavg",
    "median",
    "require_tools",
    "run_bounded",
    "timestamp",
]

TARGETS = ("direct", "haproxy", "rwproxy")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- small helpers ----------------------------------------------------------------------------------
def _raise_interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so every ``finally``/``with`` cleanup runs."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)


def require_tools(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise SystemExit(f"missing tools: {', '.join(missing)} (apt-get install -y {' '.join(missing)})")


def cpu_seconds(pid: int | None) -> float | None:
    """utime+stime of the whole process (all threads), in seconds; None when it is gone."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # fields 14 and 15 of proc(5)


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def median(values: list[float]) -> float | None:
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2


def timestamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"? ({exc})"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "?"


def _set_pdeathsig() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def run_bounded(argv: list[str], timeout: float) -> tuple[int | None, str]:
    """Run a short-lived command (sysbench, the mariadb CLI), capturing stdout+stderr; ``(None, output)``
    when it outlived ``timeout`` (then it is killed). Unlike ``subprocess.run`` on Ctrl-C, it always
    kills *and reaps* the child before returning or raising."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out.decode(errors="replace")
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return None, out.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            with contextlib.suppress(Exception):
                proc.wait(timeout=10)


# --- child processes --------------------------------------------------------------------------------
class Child:
    """A long-running child (HAProxy, rwproxy): own session (Ctrl-C does not reach it; we stop it),
    stdout+stderr to a log file, SIGTERM when the harness dies."""

    def __init__(self, name: str, argv: list[str], log_path: Path, cwd: Path | None = None) -> None:
        self.name, self.argv, self.log_path, self.cwd = name, argv, log_path, cwd
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            log.write(f"--- start #{self.starts + 1}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_set_pdeathsig,
            )
        self.starts += 1

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def returncode(self) -> int | None:
        return self.popen.poll() if self.popen else None

    def cpu(self) -> float | None:
        return cpu_seconds(self.pid) if self.alive() else None

    def tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError as exc:
            return f"({exc})"

    def stop(self, timeout: float = 15.0) -> None:
        p = self.popen
        if p is None or p.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait(timeout=10)


# --- the bench --------------------------------------------------------------------------------------
@dataclass
class Endpoint:
    host: str
    port: int


def finish_report(
    events: list[str], out: object, saved: list[str], *, interrupted: bool, failure: str | None
) -> int:
    """The common tail of every report; the exit code (130 interrupted, 1 on failures, else 0)."""
    for e in events:
        print(f"event: {e}")
    print(f"raw results: {out}")
    for s in saved:
        print(f"log kept: {s}")
    if interrupted:
        return 130
    if failure:
        print(failure, file=sys.stderr)
        return 1
    return 0


@dataclass
class Bench:
    """Context manager owning the cluster, HAProxy, rwproxy and a temp dir. ``start_*`` in order."""

    replicas: int = 1
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rwproxy-bench-")))
    cluster: Cluster | None = None
    haproxy: Child | None = None
    proxy: Child | None = None
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)  # anomalies (proxy deaths, restarts), for the report
    notes: list[str] = field(default_factory=list)  # informational (start-up times)

    def __enter__(self) -> Bench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        # Each step on its own: a failure (or a second Ctrl-C) in one must not skip the others.
        for step in (
            lambda: self.proxy and self.proxy.stop(),
            lambda: self.haproxy and self.haproxy.stop(),
            lambda: self.cluster and self.cluster.stop(),
        ):
            try:
                step()
            except BaseException as exc:
                print(f"bench: cleanup step failed: {exc!r}", file=sys.stderr)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- cluster ------------------------------------------------------------------------------------
    def start_cluster(self) -> Cluster:
        self.cluster = c = start_cluster("local", replicas=self.replicas)
        self.endpoints["direct"] = Endpoint(c.primary.host, c.primary.port)
        for n in c.nodes:  # a table each node fills with its own name, outside replication
            c._admin_run(
                n,
                [
                    "SET SESSION sql_log_bin = 0",
                    f"CREATE TABLE `{c.database}`.bench_whoami (name VARCHAR(64) NOT NULL)",
                    (f"INSERT INTO `{c.database}`.bench_whoami VALUES (%s)", (n.name,)),
                ],
            )
        return c

    def node_cpu(self) -> dict[str, float | None]:
        assert self.cluster is not None
        return {n.name: cpu_seconds(n.pid) for n in self.cluster.nodes}

    def node_questions(self) -> dict[str, int | None]:
        """Global ``Questions`` per node (statements, COM_STMT_EXECUTE included): a before/after delta
        shows which server a run's traffic really went to."""
        assert self.cluster is not None
        out: dict[str, int | None] = {}
        for n in self.cluster.nodes:
            try:
                out[n.name] = int(self.cluster.admin_sql(n, "SHOW GLOBAL STATUS LIKE 'Questions'")[0][1])
            except Exception:
                out[n.name] = None
        return out

    def answered_by(self, target: str) -> str:
        """Which node answers a plain read through ``target`` ("node2 (replica)"). Not ``SELECT
        @@server_id``: rwproxy sends statements reading system variables to the primary."""
        assert self.cluster is not None
        ep = self.endpoints[target]
        conn = pymysql.connect(
            host=ep.host,
            port=ep.port,
            user=self.cluster.app_user,
            password=self.cluster.app_password,
            database=self.cluster.database,
            autocommit=True,  # PyMySQL's default (False) makes every SELECT a transaction: the primary
            connect_timeout=3,
            read_timeout=10,
        )
        with conn, conn.cursor() as cur:
            cur.execute("SELECT name FROM bench_whoami")
            name = str(cur.fetchone()[0])
        return f"{name} ({self.cluster.role(self.cluster.node(name))})"

    # --- HAProxy ------------------------------------------------------------------------------------
    def start_haproxy(self) -> None:
        self.haproxy = self.start_l4_hop("haproxy", nbthread=1)

    def start_l4_hop(self, name: str, *, nbthread: int) -> Child:
        """HAProxy in TCP mode in front of the primary (endpoint ``name``), checked with a login."""
        assert self.cluster is not None
        p = self.cluster.primary
        port = free_port()
        cfg = self.tmp / f"{name}.cfg"
        cfg.write_text(
            "\n".join(
                [
                    "global",
                    f"    nbthread {nbthread}",
                    "    maxconn 4096",
                    "defaults",
                    "    mode tcp",
                    "    timeout connect 5s",
                    "    timeout client 1h",
                    "    timeout server 1h",
                    "frontend mysql_in",
                    f"    bind 127.0.0.1:{port}",
                    "    default_backend mysql_primary",
                    "backend mysql_primary",
                    f"    server {p.name} {p.host}:{p.port}",
                    "",
                ]
            )
        )
        child = Child(name, ["haproxy", "-db", "-f", str(cfg)], self.tmp / f"{name}.log")
        child.start()
        self.endpoints[name] = Endpoint("127.0.0.1", port)
        try:
            wait_for_port("127.0.0.1", port, timeout=10)
        except TimeoutError:
            raise RuntimeError(f"haproxy did not come up:\n{child.tail()}") from None
        self.answered_by(name)  # a full login and query through it
        return child

    # --- rwproxy ------------------------------------------------------------------------------------
    def start_proxy(self) -> None:
        assert self.cluster is not None
        for attempt in range(3):  # the free port may be taken between picking and binding it
            port = free_port()
            cfg = self.tmp / "rwproxy.toml"
            cfg.write_text(demo_config_text(self.cluster, port))
            if self.proxy is None:
                self.proxy = Child(
                    "rwproxy",
                    [sys.executable, "-m", "rwproxy", "run", "--config", str(cfg)],
                    self.tmp / "rwproxy.log",
                    cwd=REPO,
                )
            self.proxy.start()
            self.endpoints["rwproxy"] = Endpoint("127.0.0.1", port)
            if self._wait_proxy_ready(timeout=30):
                return
            if "Address already in use" not in self.proxy.tail() or attempt == 2:
                break
        raise RuntimeError(f"rwproxy did not come up:\n{self.proxy.tail() if self.proxy else ''}")

    def _wait_proxy_ready(self, timeout: float) -> bool:
        """Serving, and (with replicas) sending plain reads to a replica: right after start the
        proxy may not have seen a replica healthy yet and reads go to the primary meanwhile."""
        assert self.proxy is not None and self.cluster is not None
        t0 = time.monotonic()
        deadline = t0 + timeout
        who = ""
        while time.monotonic() < deadline:
            if not self.proxy.alive():
                return False
            try:
                who = self.answered_by("rwproxy")
                if not self.cluster.replicas or "(replica)" in who:
                    self.notes.append(f"rwproxy ready after {time.monotonic() - t0:.1f} s (reads: {who})")
                    self.notes.append(self.proxy_hot_path())
                    return True
            except pymysql.err.MySQLError:
                pass
            time.sleep(0.1)
        if who:  # serving, but reads still go to the primary: go on, the report shows it
            self.events.append(f"rwproxy still sends reads to {who} after {timeout:.0f} s")
            return True
        self.proxy.stop()
        return False

    def proxy_hot_path(self) -> str:
        """The proxy's start-up line saying whether it runs the compiled hot path (rwproxy.native)."""
        assert self.proxy is not None
        for line in self.proxy.tail(200).splitlines():
            if "hot path:" in line:
                return "rwproxy " + line[line.index("hot path:") :]
        return "rwproxy hot path: unknown (no 'hot path:' line in its log)"

    def restart_proxy(self, why: str) -> None:
        """After a death or a hang: keep the log, stop whatever is left, start again."""
        assert self.proxy is not None
        self.events.append(f"rwproxy restarted: {why}")
        self.proxy.stop(timeout=5)
        self.start_proxy()

    def save_logs(self, prefix: Path) -> list[Path]:
        """Copy the children's logs next to the results (the temp dir goes away at the end)."""
        saved = []
        for child in (self.proxy, self.haproxy):
            if child is not None and child.log_path.exists():
                dest = prefix.with_name(f"{prefix.name}.{child.name}.log")
                shutil.copyfile(child.log_path, dest)
                saved.append(dest)
        return saved

    # --- report header ------------------------------------------------------------------------------
    def versions(self) -> dict[str, str]:
        assert self.cluster is not None
        git = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "rwproxy"], capture_output=True, text=True
        ).stdout.strip()
        try:
            import uvloop

            uv = uvloop.__version__
        except ImportError:
            uv = "not installed"
        return {
            "python": f"{platform.python_version()} ({sys.executable})",
            "uvloop": uv,
            "rwproxy": (git or "?") + (" + uncommitted changes in rwproxy/" if dirty else ""),
            "mariadb_server": self.cluster.version,
            "haproxy": _first_line(["haproxy", "-v"]),
            "sysbench": _first_line(["sysbench", "--version"]),
            "kernel": platform.release(),
            "nproc": str(os.cpu_count()),
        }
