"""``python -m proxy run`` as a child process, for tests that measure the proxy from outside (RSS, log).

    with ProxyProcess(config_text, tmp_path) as p:   # config_text listens on p.port
        p.rss_bytes(), p.log_text(), p.host, p.port

The config must listen on a fixed port (``free_port()``) and set ``[admin] http_listen`` to a free one
(``demo_config_text(cluster, port, admin_port=free_port())``): the default admin port is shared.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

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
    """rwproxy in its own process, stopped (SIGTERM, then SIGKILL) when the ``with`` block ends."""

    def __init__(self, config_text: str, workdir: Path, *, start_timeout: float = 30.0) -> None:
        match = re.search(r'^listen = \["([\d.]+):(\d+)"\]', config_text, re.M)
        if match is None or match.group(2) == "0":
            raise ValueError("the config must listen on one fixed loopback port")
        self.host, self.port = match.group(1), int(match.group(2))
        self.config_path = workdir / "rwproxy.toml"
        self.log_path = workdir / "rwproxy.log"
        self.config_path.write_text(config_text)
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def start(self) -> ProxyProcess:
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
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rwproxy exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"rwproxy did not listen on {self.port}:\n{self.log_text()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> ProxyProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
