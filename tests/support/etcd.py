"""A real etcd cluster on loopback for tests: ``etcd`` processes (Debian's etcd-server, 3.4), each
with its own free client and peer ports and data directory.

    with EtcdCluster(tmp_dir, size=3) as etcd:
        etcd.endpoints          # ["127.0.0.1:p1", ...] for [coordination] etcd
        etcd.get("/key")        # the value (bytes) or None, read through the v3 JSON gateway
        etcd.pause(0); etcd.resume(0)   # SIGSTOP / SIGCONT one member
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from rwproxy.dev.cluster.net import free_ports

__all__ = ["ETCD", "EtcdCluster", "etcd_available"]

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def etcd_available() -> bool:
    return os.access(ETCD, os.X_OK)


@dataclass
class _Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"


class EtcdCluster:
    def __init__(self, base: Path, size: int = 3) -> None:
        self.base = base
        ports = free_ports(2 * size)
        self.members = [_Member(f"m{i}", ports[2 * i], ports[2 * i + 1], base / f"m{i}") for i in range(size)]

    @property
    def endpoints(self) -> list[str]:
        return [f"127.0.0.1:{m.client_port}" for m in self.members]

    def start(self, timeout: float = 30.0) -> EtcdCluster:
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for m in self.members:
            m.data_dir.mkdir(parents=True, exist_ok=True)
            with open(self.base / f"{m.name}.log", "wb") as log:
                m.proc = subprocess.Popen(
                    self._command(m, initial),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        deadline = time.monotonic() + timeout
        for m in self.members:
            while not self._healthy(m):
                if m.proc is not None and m.proc.poll() is not None:
                    raise RuntimeError(f"etcd {m.name} exited: {self.log(m.name)[-2000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"etcd {m.name} not healthy within {timeout} s")
                time.sleep(0.1)
        return self

    def _command(self, m: _Member, initial: str) -> list[str]:
        flags = {
            "name": m.name,
            "data-dir": str(m.data_dir),
            "listen-client-urls": m.client_url,
            "advertise-client-urls": m.client_url,
            "listen-peer-urls": m.peer_url,
            "initial-advertise-peer-urls": m.peer_url,
            "initial-cluster": initial,
            "initial-cluster-state": "new",
            "initial-cluster-token": f"rwproxy-test-{os.getpid()}",
            "log-level": "warn",
        }
        return [ETCD, *(f"--{k}={v}" for k, v in flags.items())]

    def _healthy(self, m: _Member) -> bool:
        try:
            with urllib.request.urlopen(m.client_url + "/health", timeout=1) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")
        except (OSError, ValueError):
            return False

    def log(self, name: str) -> str:
        return (self.base / f"{name}.log").read_text(errors="replace")

    def _post(self, path: str, body: dict[str, object]) -> dict[str, object]:
        last: Exception | None = None
        for m in self.members:
            req = urllib.request.Request(m.client_url + path, data=json.dumps(body).encode(), method="POST")
            try:
                with urllib.request.urlopen(req, timeout=2) as resp:
                    doc = json.loads(resp.read())
                    assert isinstance(doc, dict)
                    return doc
            except OSError as exc:
                last = exc
        raise RuntimeError(f"no etcd member answered: {last}")

    def get(self, key: str) -> bytes | None:
        doc = self._post("/v3/kv/range", {"key": base64.b64encode(key.encode()).decode()})
        kvs = doc.get("kvs")
        if not isinstance(kvs, list) or not kvs:
            return None
        return base64.b64decode(kvs[0].get("value", ""))

    def get_json(self, key: str) -> dict[str, object] | None:
        raw = self.get(key)
        return None if raw is None else json.loads(raw)

    def pause(self, index: int) -> None:
        proc = self.members[index].proc
        assert proc is not None
        proc.send_signal(signal.SIGSTOP)

    def resume(self, index: int) -> None:
        proc = self.members[index].proc
        assert proc is not None
        proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        for m in self.members:
            if m.proc is not None and m.proc.poll() is None:
                with contextlib.suppress(OSError):
                    m.proc.send_signal(signal.SIGCONT)
                m.proc.terminate()
        for m in self.members:
            if m.proc is not None:
                try:
                    m.proc.wait(10)
                except subprocess.TimeoutExpired:
                    m.proc.kill()
                    m.proc.wait(10)
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> EtcdCluster:
        return self.start()

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.stop()
