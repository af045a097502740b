"""A replication cluster of local MariaDB server processes (no Docker): one datadir per node under a
temporary base dir, loopback TCP on free ports, root access over each node's unix socket.
"""

from __future__ import annotations

import contextlib
import getpass
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import IO, Any

import pymysql

from rwproxy.dev.cluster.base import Cluster, ClusterError, ClusterNode, ClusterUnavailable
from rwproxy.dev.cluster.flavor import MARIADB
from rwproxy.dev.cluster.net import free_ports

__all__ = ["LocalCluster", "find_server_binaries", "reap_orphans"]

INSTALL_HINT = (
    "apt-get install mariadb-server (Debian/Ubuntu), or run with Docker (RWPROXY_TEST_CLUSTER=docker)"
)
BASE_PREFIX = "rwproxy-cluster-"
_SEARCH_DIRS = (
    "/usr/sbin",
    "/usr/bin",
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/libexec",
    "/usr/local/mysql/bin",
)
# kill_node waits for the server to exit, except after these (SIGSTOP freezes it...).
_NON_FATAL = {signal.SIGSTOP, signal.SIGCONT, signal.SIGTSTP, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2}


def _which(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or next(
            (p for d in _SEARCH_DIRS if os.access(p := os.path.join(d, name), os.X_OK)), None
        )
        if found:
            return found
    return None


def find_server_binaries() -> tuple[str, str]:
    """(server, install-db) paths; ``ClusterUnavailable`` (saying what to install) when missing or
    when the server is Oracle MySQL, which this local cluster does not drive."""
    server = _which("mariadbd", "mysqld")
    install_db = _which("mariadb-install-db", "mysql_install_db")
    if server is None or install_db is None:
        raise ClusterUnavailable(
            f"no MariaDB server binaries (mariadbd, mariadb-install-db) found: {INSTALL_HINT}"
        )
    out = subprocess.run([server, "--version"], capture_output=True, text=True, timeout=30).stdout
    if "mariadb" not in out.lower():
        raise ClusterUnavailable(
            f"{server} is not MariaDB ({out.strip()!r}); the local cluster needs it: {INSTALL_HINT}"
        )
    return server, install_db


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (dead, not yet reaped by its parent) is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _cmdline(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def _read_pid(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def reap_orphans(tmp: str | None = None) -> list[str]:
    """Kill servers and remove base dirs left by runs whose owner process died without cleaning up
    (SIGKILLed pytest, CI timeout). Only touches ``rwproxy-cluster-*`` dirs whose owner is gone, and
    only processes whose command line names that dir's my.cnf."""
    reaped = []
    for base in glob.glob(os.path.join(tmp or tempfile.gettempdir(), BASE_PREFIX + "*")):
        owner = _read_pid(os.path.join(base, "owner.pid"))
        if owner is None or _pid_alive(owner):
            continue
        for cnf in glob.glob(os.path.join(base, "*", "my.cnf")):
            pid = _read_pid(os.path.join(os.path.dirname(cnf), "mysqld.pid"))
            if pid and f"--defaults-file={cnf}" in (_cmdline(pid) or ""):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)
        reaped.append(base)
    return reaped


@dataclass
class _Proc:
    dir: str
    cnf: str
    error_log: str
    pid_file: str
    read_only: bool
    popen: subprocess.Popen[bytes] | None = None
    out: IO[bytes] | None = None


class LocalCluster(Cluster):
    kind = "local"

    def __init__(self, replicas: int = 2, base_dir: str | None = None, durable: bool = False) -> None:
        self.server_bin, self.install_db_bin = find_server_binaries()
        super().__init__(MARIADB)
        self.durable = durable
        self.replica_count = replicas
        self.as_root = os.geteuid() == 0
        self._admin_user = "root" if self.as_root else getpass.getuser()
        self._own_base = base_dir is None
        self.base_dir = "" if base_dir is None else os.path.abspath(base_dir)  # made by _start
        self._socket_dir: str | None = None  # only when base_dir is too long for unix socket paths
        self._procs: dict[str, _Proc] = {}

    # --- start --------------------------------------------------------------------------------------
    def _start(self) -> None:
        reap_orphans()
        if self._own_base:
            self.base_dir = tempfile.mkdtemp(prefix=BASE_PREFIX)
        os.makedirs(self.base_dir, exist_ok=True)
        with open(os.path.join(self.base_dir, "owner.pid"), "w") as f:
            f.write(str(os.getpid()))
        if len(os.path.join(self.base_dir, "node00", "mysqld.sock")) > 100:
            self._socket_dir = tempfile.mkdtemp(prefix="rwpx-", dir="/tmp")
        count = self.replica_count + 1
        for i, port in enumerate(free_ports(count), start=1):
            name = f"node{i}"
            d = os.path.join(self.base_dir, name)
            if os.path.exists(d):
                raise ClusterError(f"{d} already exists; give an empty base_dir")
            os.makedirs(os.path.join(d, "tmp"))
            sock = os.path.join(self._socket_dir or d, f"{name}.sock" if self._socket_dir else "mysqld.sock")
            node = ClusterNode(name, "127.0.0.1", port, i, datadir=os.path.join(d, "data"), socket=sock)
            self._procs[name] = _Proc(
                d,
                os.path.join(d, "my.cnf"),
                os.path.join(d, "error.log"),
                os.path.join(d, "mysqld.pid"),
                i > 1,
            )
            self.nodes.append(node)
            self._write_cnf(node)
        self.primary = self.nodes[0]
        self._init_datadirs()
        for node in self.nodes:
            self._spawn(node)
        for node in self.nodes:
            self._wait_ready(node, retry_port=True)

    def _write_cnf(self, node: ClusterNode) -> None:
        p = self._procs[node.name]
        flush, sync = (1, 1) if self.durable else (2, 0)
        lines = [
            "[mariadbd]",
            f"datadir={node.datadir}",
            f"tmpdir={os.path.join(p.dir, 'tmp')}",
            f"socket={node.socket}",
            f"pid-file={p.pid_file}",
            f"log-error={p.error_log}",
            f"port={node.port}",
            "bind-address=127.0.0.1",
            "skip-name-resolve",
            f"server_id={node.server_id}",
            "log_bin=mysql-bin",
            "relay_log=relay-bin",
            "log_slave_updates=1",
            "binlog_format=ROW",
            "gtid_domain_id=0",
            "gtid_strict_mode=1",
            f"read_only={int(p.read_only)}",
            "performance_schema=0",
            "innodb_buffer_pool_size=64M",
            "innodb_log_file_size=16M",
            "max_allowed_packet=64M",
            f"innodb_flush_log_at_trx_commit={flush}",
            f"sync_binlog={sync}",
            "max_connections=500",
        ]
        if self.as_root:
            lines.append("user=root")
        with open(p.cnf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _persist_read_only(self, node: ClusterNode, on: bool) -> None:
        self._procs[node.name].read_only = on
        self._write_cnf(node)

    def _init_datadirs(self) -> None:
        extra = [f"--user={self._admin_user}"] if self.as_root else []
        jobs = []
        for node in self.nodes:
            p = self._procs[node.name]
            out = open(os.path.join(p.dir, "install-db.log"), "wb")  # noqa: SIM115 (closed below)
            cmd = [
                self.install_db_bin,
                f"--defaults-file={p.cnf}",
                *extra,
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ]
            jobs.append((node, out, subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=p.dir)))
        failed = []
        for node, out, proc in jobs:
            rc = proc.wait(timeout=300)
            out.close()
            if rc != 0:
                failed.append(f"{node.name} (exit {rc}): {self._tail(out.name)}")
        if failed:
            raise ClusterError("mariadb-install-db failed: " + "; ".join(failed))

    def _spawn(self, node: ClusterNode) -> None:
        p = self._procs[node.name]
        if p.out is None:
            p.out = open(os.path.join(p.dir, "mariadbd.out"), "ab")  # noqa: SIM115 (closed at stop)
        # A new session: a Ctrl-C meant for the test run does not hit the servers; stop() ends them.
        p.popen = subprocess.Popen(
            [self.server_bin, f"--defaults-file={p.cnf}"],
            stdin=subprocess.DEVNULL,
            stdout=p.out,
            stderr=subprocess.STDOUT,
            cwd=p.dir,
            start_new_session=True,
        )
        node.pid = p.popen.pid

    def _wait_ready(self, node: ClusterNode, timeout: float = 60, retry_port: bool = False) -> None:
        p = self._procs[node.name]
        assert p.popen is not None
        deadline = time.monotonic() + timeout
        while True:
            rc = p.popen.poll()
            if rc is not None:
                tail = self._tail(p.error_log)
                if retry_port and "Bind on TCP/IP port" in tail:  # lost the race for the free port
                    node.port = free_ports(1)[0]
                    self._write_cnf(node)
                    self._spawn(node)
                    return self._wait_ready(node, timeout, retry_port=False)
                raise ClusterError(f"{node.name}: mariadbd exited with {rc}; {p.error_log}:\n{tail}")
            try:
                self._admin_connect(node, connect_timeout=1).close()
                return None
            except pymysql.err.OperationalError:
                pass
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"{node.name}: no answer on {node.socket} within {timeout}s; {p.error_log}:\n"
                    + self._tail(p.error_log)
                )
            time.sleep(0.05)

    @staticmethod
    def _tail(path: str, lines: int = 15) -> str:
        try:
            with open(path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError as exc:
            return f"({exc})"

    # --- access -------------------------------------------------------------------------------------
    def _admin_connect(self, node: ClusterNode, **kw: Any) -> pymysql.Connection:
        params: dict[str, Any] = {"unix_socket": node.socket, "user": self._admin_user, "autocommit": True}
        params.setdefault("connect_timeout", 5)
        return pymysql.connect(**{**params, **kw})

    def _source_address(self, node: ClusterNode) -> tuple[str, int]:
        return ("127.0.0.1", node.port)

    def error_log(self, node: ClusterNode) -> str:
        return self._procs[node.name].error_log

    # --- processes ----------------------------------------------------------------------------------
    def is_running(self, node: ClusterNode) -> bool:
        popen = self._procs[node.name].popen
        return (popen is not None and popen.poll() is None) or self._external_pid(node) is not None

    def _external_pid(self, node: ClusterNode) -> int | None:
        """A server for ``node`` that another process started on its my.cnf (``rwproxy drill``
        restarting a node it killed, see ``rwproxy.dev.cluster.state``): its pid, else None."""
        p = self._procs[node.name]
        pid = _read_pid(p.pid_file)
        if pid is None or (p.popen is not None and pid == p.popen.pid) or not _pid_alive(pid):
            return None
        return pid if f"--defaults-file={p.cnf}" in (_cmdline(pid) or "") else None

    def restart_command(self, node: ClusterNode) -> dict[str, Any]:
        """How another process restarts ``node`` (argv, cwd, output log, pid file, error log)."""
        p = self._procs[node.name]
        return {
            "argv": [self.server_bin, f"--defaults-file={p.cnf}"],
            "cwd": p.dir,
            "output": os.path.join(p.dir, "mariadbd.out"),
            "pid_file": p.pid_file,
            "error_log": p.error_log,
            "cnf": p.cnf,
        }

    @property
    def admin_user(self) -> str:
        """The account with all privileges, over each node's unix socket (socket authentication)."""
        return self._admin_user

    def _verified_pid(self, node: ClusterNode) -> int | None:
        """The server's pid from its pid file, only if that process is the mariadbd we started."""
        p = self._procs[node.name]
        if p.popen is None or p.popen.poll() is not None:
            return self._external_pid(node)
        for pid in (_read_pid(p.pid_file), p.popen.pid):
            if pid is None:
                continue
            cmd = _cmdline(pid)
            if (cmd is not None and f"--defaults-file={p.cnf}" in cmd) or (
                cmd is None and pid == p.popen.pid
            ):
                return pid
        return None

    def _wait_exit(self, node: ClusterNode, timeout: float) -> bool:
        popen = self._procs[node.name].popen
        deadline = time.monotonic() + timeout
        if popen is not None:
            try:
                popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return False
        while self._external_pid(node) is not None:  # a server another process started
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def kill_node(self, node: ClusterNode, sig: int = signal.SIGKILL) -> None:
        pid = self._verified_pid(node)
        if pid is None:
            raise ClusterError(f"{node.name} is not running")
        os.kill(pid, sig)
        if sig not in _NON_FATAL and not self._wait_exit(node, 60):
            raise ClusterError(f"{node.name} (pid {pid}) still running 60 s after signal {sig}")

    def _terminate(self, nodes: list[ClusterNode], timeout: float) -> None:
        """SIGCONT (in case it is frozen) and SIGTERM to all; SIGKILL whoever outlives ``timeout``."""
        signalled = []
        for node in nodes:
            pid = self._verified_pid(node)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
                    os.kill(pid, signal.SIGTERM)
                signalled.append((node, pid))
        deadline = time.monotonic() + timeout
        for node, pid in signalled:
            if not self._wait_exit(node, max(0.1, deadline - time.monotonic())):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                self._wait_exit(node, 30)

    def stop_node(self, node: ClusterNode) -> None:
        self._terminate([node], timeout=60)

    def start_node(self, node: ClusterNode) -> None:
        if self.is_running(node):
            return
        self._spawn(node)
        self._wait_ready(node)

    def _shutdown(self) -> None:
        self._terminate(self.nodes, timeout=30)
        for p in self._procs.values():
            if p.out is not None:
                p.out.close()
        if self._socket_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        if not self.base_dir:
            return
        if self._own_base:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        else:
            for p in self._procs.values():
                shutil.rmtree(p.dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                os.remove(os.path.join(self.base_dir, "owner.pid"))
