"""A local dev cluster described in a JSON state file, so that another process can find its servers
again: ``rwproxy demo`` writes one, ``rwproxy drill --cluster-state FILE`` attaches to it to kill,
delay and restart nodes.

    write_state(cluster, path, proxy="127.0.0.1:6033", admin="127.0.0.1:9306")
    attached = attach(path)          # an AttachedCluster: kill_node, start_node, set_delay, ...

The file (version 1)::

    {"version": 1, "kind": "local", "flavor": "mariadb", "server_version": "...",
     "owner_pid": 1234, "database": "rwtest", "app_user": "rwapp", "app_password": "...",
     "admin_user": "root",                       # all privileges over each node's unix socket
     "proxy": "127.0.0.1:6033", "admin": "127.0.0.1:9306",   # optional, what the writer adds
     "nodes": [{"name": "node1", "host": "127.0.0.1", "port": 40001, "server_id": 1,
                "pid": 4242, "datadir": "...", "socket": "...", "role": "primary",
                "restart": {"argv": ["/usr/sbin/mariadbd", "--defaults-file=.../my.cnf"],
                            "cwd": "...", "output": "...", "pid_file": "...", "error_log": "...",
                            "cnf": "..."}}, ...]}

An attached cluster never stops the cluster as a whole (its owner does); it only acts on the nodes
it is asked to. Only the ``local`` kind (mariadbd processes) can be attached.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from typing import Any

import pymysql

from rwproxy.dev.cluster.base import Cluster, ClusterError, ClusterNode
from rwproxy.dev.cluster.flavor import MARIADB, MYSQL
from rwproxy.dev.cluster.local import LocalCluster, _cmdline, _pid_alive, _read_pid

__all__ = ["STATE_VERSION", "AttachedCluster", "attach", "default_state_path", "read_state", "write_state"]

STATE_VERSION = 1


def default_state_path() -> str:
    """Where ``rwproxy demo`` writes its state file: ``$TMPDIR/rwproxy-demo-cluster.json``."""
    return os.path.join(tempfile.gettempdir(), "rwproxy-demo-cluster.json")


def cluster_state(cluster: Cluster, **extra: Any) -> dict[str, Any]:
    """The state document of a running local cluster; ``extra`` keys are added at the top level."""
    if not isinstance(cluster, LocalCluster):
        raise ClusterError(
            f"only a local cluster can be described in a state file (this one is {cluster.kind})"
        )
    nodes = []
    for n in cluster.nodes:
        nodes.append(
            {
                "name": n.name,
                "host": n.host,
                "port": n.port,
                "server_id": n.server_id,
                "pid": n.pid,
                "datadir": n.datadir,
                "socket": n.socket,
                "role": cluster.role(n),
                "restart": cluster.restart_command(n),
            }
        )
    return {
        "version": STATE_VERSION,
        "kind": cluster.kind,
        "flavor": cluster.flavor,
        "server_version": cluster.version,
        "owner_pid": os.getpid(),
        "database": cluster.database,
        "app_user": cluster.app_user,
        "app_password": cluster.app_password,
        "admin_user": cluster.admin_user,
        **extra,
        "nodes": nodes,
    }


def write_state(cluster: Cluster, path: str, **extra: Any) -> dict[str, Any]:
    """Write the state file atomically (mode 0600: it holds the app password); return the document."""
    doc = cluster_state(cluster, **extra)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".rwproxy-state-", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return doc


def read_state(path: str) -> dict[str, Any]:
    """Load and check a state file; ``ClusterError`` naming the file and what is wrong."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except OSError as exc:
        raise ClusterError(f"cannot read the cluster state file {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ClusterError(f"{path}: not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION:
        raise ClusterError(f"{path}: not a version-{STATE_VERSION} rwproxy cluster state file")
    if doc.get("kind") != "local":
        raise ClusterError(f"{path}: kind {doc.get('kind')!r}: only 'local' clusters can be attached")
    nodes = doc.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        raise ClusterError(f"{path}: 'nodes' must be a non-empty list")
    for i, n in enumerate(nodes):
        for key in ("name", "host", "port", "server_id", "socket", "restart"):
            if not isinstance(n, dict) or key not in n:
                raise ClusterError(f"{path}: nodes[{i}].{key} is missing")
    return doc


def attach(path_or_doc: str | dict[str, Any]) -> AttachedCluster:
    """An ``AttachedCluster`` for a state file (or an already loaded document)."""
    doc = read_state(path_or_doc) if isinstance(path_or_doc, str) else path_or_doc
    return AttachedCluster(doc)


class AttachedCluster(Cluster):
    """A local cluster another process started, driven through its state file. ``primary`` starts as
    the node the file calls primary; ``refresh_primary()`` looks for the writable node instead."""

    kind = "local"

    def __init__(self, doc: dict[str, Any]) -> None:
        super().__init__(MYSQL if doc.get("flavor") == "mysql" else MARIADB)
        self.state = doc
        self.version = str(doc.get("server_version", ""))
        self.database = str(doc.get("database", self.database))
        self.app_user = str(doc.get("app_user", self.app_user))
        self.app_password = str(doc.get("app_password", self.app_password))
        self._admin_user = str(doc.get("admin_user", "root"))
        self._restart: dict[str, dict[str, Any]] = {}
        self._children: list[subprocess.Popen[bytes]] = []  # servers this process restarted
        for n in doc["nodes"]:
            node = ClusterNode(
                str(n["name"]),
                str(n["host"]),
                int(n["port"]),
                int(n["server_id"]),
                pid=n.get("pid"),
                datadir=n.get("datadir"),
                socket=str(n["socket"]),
            )
            self.nodes.append(node)
            self._restart[node.name] = dict(n["restart"])
            if n.get("role") == "primary":
                self._primary = node
            elif n.get("role") == "detached":
                self._detached.add(node.name)
        self._stopped = True  # stop() must never shut down a cluster this process does not own

    def refresh_primary(self) -> ClusterNode | None:
        """Make the running node with ``read_only = 0`` the primary (if exactly one); return it."""
        writable = []
        for n in self.nodes:
            if not self.is_running(n):
                continue
            try:
                if int(self.admin_sql(n, "SELECT @@read_only")[0][0]) == 0:
                    writable.append(n)
            except pymysql.err.MySQLError:
                continue
        if len(writable) == 1:
            self.primary = writable[0]
            return writable[0]
        return None

    # --- Cluster hooks ------------------------------------------------------------------------------
    def _start(self) -> None:
        raise ClusterError("an attached cluster cannot be started; start it with its owner (rwproxy demo)")

    def _shutdown(self) -> None:
        """Nothing: the owner stops the cluster."""

    def _admin_connect(self, node: ClusterNode, **kw: Any) -> pymysql.Connection:
        params: dict[str, Any] = {"unix_socket": node.socket, "user": self._admin_user, "autocommit": True}
        params.setdefault("connect_timeout", 5)
        return pymysql.connect(**{**params, **kw})

    def _source_address(self, node: ClusterNode) -> tuple[str, int]:
        return (node.host, node.port)

    def pid(self, node: ClusterNode) -> int | None:
        """The running server's pid (from its pid file, checked against its command line), else None."""
        r = self._restart[node.name]
        pid = _read_pid(str(r["pid_file"]))
        if pid is None or not _pid_alive(pid):
            return None
        return pid if f"--defaults-file={r['cnf']}" in (_cmdline(pid) or "") else None

    def is_running(self, node: ClusterNode) -> bool:
        return self.pid(node) is not None

    def kill_node(self, node: ClusterNode, sig: int = signal.SIGKILL) -> None:
        pid = self.pid(node)
        if pid is None:
            raise ClusterError(f"{node.name} is not running")
        os.kill(pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            self._wait_gone(node, pid, 60)

    def _wait_gone(self, node: ClusterNode, pid: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while _pid_alive(pid):
            if time.monotonic() > deadline:
                raise ClusterError(f"{node.name} (pid {pid}) still running {timeout:.0f} s after the signal")
            time.sleep(0.01)

    def stop_node(self, node: ClusterNode) -> None:
        pid = self.pid(node)
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        try:
            self._wait_gone(node, pid, 60)
        except ClusterError:
            os.kill(pid, signal.SIGKILL)
            self._wait_gone(node, pid, 30)

    def start_node(self, node: ClusterNode, timeout: float = 60) -> None:
        """Start a stopped node on its datadir and port, as its owner would; return once it answers."""
        if self.is_running(node):
            return
        r = self._restart[node.name]
        with open(str(r["output"]), "ab") as out:
            proc = subprocess.Popen(
                [str(a) for a in r["argv"]],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=str(r["cwd"]),
                start_new_session=True,
            )
        self._children.append(proc)
        node.pid = proc.pid
        deadline = time.monotonic() + timeout
        while True:
            rc = proc.poll()
            if rc is not None:
                raise ClusterError(f"{node.name}: the server exited with {rc}; see {r.get('error_log')}")
            try:
                self._admin_connect(node, connect_timeout=1).close()
                return
            except pymysql.err.OperationalError:
                pass
            if time.monotonic() > deadline:
                raise ClusterError(f"{node.name}: no answer within {timeout:.0f} s; see {r.get('error_log')}")
            time.sleep(0.05)
