"""A real ``python -m rwproxy run`` subprocess (so a test can SIGKILL it or measure it from outside).

p = ProxyProcess(config_text, tmp_path / "a").start()   # or: with ProxyProcess(...) as p:
p.port, p.admin_port, p.status(), p.metrics(), p.log_text(), p.rss_bytes()
p.kill()     # SIGKILL
p.stop()     # SIGTERM, then SIGKILL after a timeout

The config either holds ``{listen}`` and ``{admin}`` placeholders (filled with free loopback ports;
start() waits for the admin HTTP API) or listens on one fixed loopback port itself (start() waits
for that port; give ``[admin] http_listen`` a free port too: the default admin port is shared).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from rwproxy.dev.cluster.net import free_ports

__all__ = ["ProxyProcess", "rss_bytes"]

REPO = Path(__file__).resolve().parents[2]


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (VmRSS from /proc)."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    if match is None:
        raise RuntimeError(f"no VmRSS for pid {pid}")
    return int(match.group(1)) * 1024


class ProxyProcess:
    def __init__(self, config: str, directory: Path, *, start_timeout: float = 30.0) -> None:
        self.host = "127.0.0.1"
        self.admin_port: int | None = None
        if "{listen}" in config:
            self.port, self.admin_port = free_ports(2)
            config = config.replace("{listen}", f"127.0.0.1:{self.port}").replace(
                "{admin}", f"127.0.0.1:{self.admin_port}"
            )
        else:
            match = re.search(r'^listen = \["([\d.]+):(\d+)"\]', config, re.M)
            if match is None or match.group(2) == "0":
                raise ValueError("the config must listen on one fixed loopback port, or on {listen}")
            self.host, self.port = match.group(1), int(match.group(2))
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.config_path = directory / "rwproxy.toml"
        self.config_path.write_text(config)
        self.log_path = directory / "rwproxy.log"
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def start(self, timeout: float | None = None) -> ProxyProcess:
        timeout = self.start_timeout if timeout is None else timeout
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rwproxy", "run", "--config", str(self.config_path)],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rwproxy exited with {self.proc.returncode}:\n{self.log_text()}")
            if self._ready():
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"rwproxy did not start within {timeout} s:\n{self.log_text()}")
            time.sleep(0.05)

    def _ready(self) -> bool:
        try:
            if self.admin_port is not None:
                self.status()
            else:
                socket.create_connection((self.host, self.port), timeout=1.0).close()
        except OSError:
            return False
        return True

    def _get(self, path: str) -> bytes:
        url = f"http://127.0.0.1:{self.admin_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return bytes(resp.read())

    def status(self) -> dict[str, Any]:
        doc = json.loads(self._get("/status"))
        assert isinstance(doc, dict)
        return doc

    def metrics(self) -> str:
        return self._get("/metrics").decode()

    def metric(self, name: str) -> float | None:
        for line in self.metrics().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> ProxyProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
