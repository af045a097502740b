"""Fault injection for drills: kill or delay a node of a local cluster we can reach
(``rwproxy.dev.cluster``: in-process, or attached through ``rwproxy demo``'s state file), ask the proxy
for a switchover (``POST /switchover`` on its admin HTTP), or run the operator's own command
(``--trigger``, e.g. an AWS CLI call) for real environments.

Every fault has ``inject()`` and ``restore()`` (a no-op where there is nothing to undo) and a
``describe()`` for the report. ``FaultError``: the fault could not be injected; ``Unsupported``:
the proxy does not offer what the scenario needs.
"""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from rwproxy.dev.cluster.base import Cluster, ClusterNode

__all__ = [
    "DelayReplica",
    "Fault",
    "FaultError",
    "KillNode",
    "Switchover",
    "Trigger",
    "Unsupported",
    "probe_switchover",
]


class FaultError(RuntimeError):
    """The fault could not be injected (or undone); the message says why."""


class Unsupported(FaultError):
    """The proxy does not support what the scenario needs (e.g. no switchover endpoint)."""


class Fault:
    restore_after: float | None = None  # seconds after inject() to call restore(); None: at the end
    target: str | None = None

    def inject(self) -> None:
        raise NotImplementedError

    def restore(self) -> str | None:
        """Undo the fault; a sentence for the report, or None when there was nothing to do."""
        return None

    def describe(self) -> str:
        raise NotImplementedError


@dataclass
class KillNode(Fault):
    """SIGKILL one server. ``restart``: start it again in ``restore()`` (same datadir and port)."""

    cluster: Cluster
    node: ClusterNode
    what: str  # "primary" / "replica", for the report
    restart: bool = False

    def __post_init__(self) -> None:
        self.target = self.node.name

    def inject(self) -> None:
        try:
            self.cluster.kill_node(self.node, signal.SIGKILL)
        except Exception as exc:
            raise FaultError(f"cannot kill {self.node.name}: {exc}") from exc

    def restore(self) -> str | None:
        if not self.restart:
            return None
        try:
            self.cluster.start_node(self.node)
        except Exception as exc:
            raise FaultError(f"cannot restart {self.node.name}: {exc}") from exc
        return f"restarted {self.node.name}"

    def describe(self) -> str:
        return f"SIGKILL {self.what} {self.node.name} ({self.node.host}:{self.node.port})"


@dataclass
class DelayReplica(Fault):
    """Make a replica fall behind for ``hold`` seconds: ``MASTER_DELAY = delay`` (method "delay",
    it keeps answering, with old data) or ``STOP REPLICA SQL_THREAD`` (method "stop-sql", lag
    unknown); then undo it."""

    cluster: Cluster
    node: ClusterNode
    delay: int = 3
    hold: float = 3.0
    method: str = "delay"

    def __post_init__(self) -> None:
        if self.method not in ("delay", "stop-sql"):
            raise ValueError(f"lag method {self.method!r}: expected 'delay' or 'stop-sql'")
        self.target = self.node.name
        self.restore_after = self.hold

    def inject(self) -> None:
        try:
            if self.method == "delay":
                self.cluster.set_delay(self.node, self.delay)
            else:
                self.cluster.stop_sql_thread(self.node)
        except Exception as exc:
            raise FaultError(f"cannot delay {self.node.name}: {exc}") from exc

    def restore(self) -> str | None:
        try:
            if self.method == "delay":
                self.cluster.set_delay(self.node, 0)
            else:
                self.cluster.start_replication(self.node)
        except Exception as exc:
            raise FaultError(f"cannot undo the delay on {self.node.name}: {exc}") from exc
        return f"{self.node.name} replicating without delay again"

    def describe(self) -> str:
        how = f"MASTER_DELAY={self.delay}" if self.method == "delay" else "STOP REPLICA SQL_THREAD"
        return f"lag on replica {self.node.name}: {how} for {self.hold:g} s"


def _post(url: str, body: dict[str, Any], timeout: float, token: str | None = None) -> tuple[int, str]:
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def probe_switchover(admin: str, timeout: float = 5.0) -> None:
    """Raise ``Unsupported`` when the proxy at ``admin`` has no ``/switchover`` endpoint, without
    triggering one (a GET: 404 when the route does not exist, 405 when it is POST-only)."""
    url = f"http://{admin}/switchover"
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 501):
            raise Unsupported(
                f"switchover is not supported by this proxy (GET {url} answered {exc.code})"
            ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise FaultError(f"cannot reach the admin interface at {url}: {exc}") from None


@dataclass
class Switchover(Fault):
    """A planned switchover through the admin HTTP: ``POST /switchover`` (body ``{"to": NAME}``)."""

    admin: str
    to: str | None = None
    timeout: float = 60.0
    token: str | None = None  # the proxy's [admin] bearer_token
    answer: str = field(default="", init=False)

    def inject(self) -> None:
        url = f"http://{self.admin}/switchover"
        try:
            status, body = _post(url, {"to": self.to} if self.to else {}, self.timeout, self.token)
        except (urllib.error.URLError, OSError) as exc:
            raise FaultError(f"POST {url} failed: {exc}") from exc
        self.answer = body.strip()[:500]
        if status in (404, 501):
            raise Unsupported(f"switchover is not supported by this proxy (POST {url} answered {status})")
        if status >= 300:
            raise FaultError(f"POST {url} answered {status}: {self.answer}")

    def describe(self) -> str:
        return f"switchover via POST http://{self.admin}/switchover" + (f" to {self.to}" if self.to else "")


@dataclass
class Trigger(Fault):
    """The operator's own shell command at fault time (``restore_command`` at restore time)."""

    command: str
    restore_command: str | None = None
    timeout: float = 300.0
    output: str = field(default="", init=False)

    def inject(self) -> None:
        self.output = _shell(self.command, self.timeout)

    def restore(self) -> str | None:
        if not self.restore_command:
            return None
        _shell(self.restore_command, self.timeout)
        return f"ran {self.restore_command!r}"

    def describe(self) -> str:
        return f"trigger command {self.command!r}"


def _shell(command: str, timeout: float) -> str:
    try:
        done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FaultError(f"{command!r} did not finish within {timeout:.0f} s") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-500:]
        raise FaultError(f"{command!r} exited with {done.returncode}: {tail}")
    return done.stdout.strip()[-500:]
