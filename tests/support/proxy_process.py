"""A real ``python -m proxy run`` subprocess (so a test can SIGKILL it), with its admin HTTP API.

p = ProxyProcess(config_text, tmp_path / "a").start()   # config: listen/http_listen filled in
p.port, p.admin_port, p.status(), p.metrics(), p.log_text()
p.kill()     # SIGKILL
p.stop()     # SIGTERM, then SIGKILL after a timeout
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from proxy.devcluster.net import free_ports

__all__ = ["ProxyProcess"]

REPO = Path(__file__).resolve().parents[2]


class ProxyProcess:
    """``config`` holds ``{listen}`` and ``{admin}`` placeholders for the two addresses."""

    def __init__(self, config: str, directory: Path) -> None:
        self.port, self.admin_port = free_ports(2)
        self.host = "127.0.0.1"
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.config_path = directory / "rwproxy.toml"
        self.config_path.write_text(
            config.replace("{listen}", f"127.0.0.1:{self.port}").replace(
                "{admin}", f"127.0.0.1:{self.admin_port}"
            )
        )
        self.log_path = directory / "rwproxy.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> ProxyProcess:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "proxy", "run", "--config", str(self.config_path)],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rwproxy exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                self.status()
                return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"rwproxy did not start within {timeout} s:\n{self.log_text()}")
            time.sleep(0.1)

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
