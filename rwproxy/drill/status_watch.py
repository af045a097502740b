"""Watch a running proxy's view of the servers: poll its admin ``/status`` every ~50 ms in a thread
and keep a ``StatusSample`` each time the (role, state) view changes or the interface stops / starts
answering. Each sample keeps the largest lag seen per server while its view lasted.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from rwproxy.drill.events import StatusSample

__all__ = ["StatusWatcher", "fetch_status"]


def fetch_status(admin: str, timeout: float = 1.0) -> dict[str, Any]:
    """GET http://ADMIN/status as a dict; ``OSError``/``ValueError`` when it does not answer JSON."""
    with urllib.request.urlopen(f"http://{admin}/status", timeout=timeout) as response:
        doc = json.load(response)
    if not isinstance(doc, dict):
        raise ValueError("/status did not answer a JSON object")
    return doc


def sample_of(doc: dict[str, Any], t: float) -> StatusSample:
    nodes = tuple((str(n.get("name")), str(n.get("role")), str(n.get("state"))) for n in doc.get("nodes", []))
    lags = {str(n.get("name")): n.get("lag_seconds") for n in doc.get("nodes", [])}
    return StatusSample(t, True, nodes, lags)


class StatusWatcher:
    """``start()``; ``samples`` (changes only); ``stop()``. ``t0``: the drill's time origin."""

    def __init__(self, admin: str, t0: float, interval: float = 0.05) -> None:
        self.admin = admin
        self.t0 = t0
        self.interval = interval
        self.samples: list[StatusSample] = []
        self.polls = 0
        self.last_doc: dict[str, Any] | None = None
        self.first_doc: dict[str, Any] | None = None  # the proxy's view when the drill started
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drill-status", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[StatusSample]:
        self._stop.set()
        self._thread.join(5)
        return list(self.samples)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic() - self.t0
            try:
                doc = fetch_status(self.admin, timeout=max(0.5, self.interval * 10))
                sample = sample_of(doc, t)
                self.last_doc = doc
                if self.first_doc is None:
                    self.first_doc = doc
            except (OSError, ValueError):
                sample = StatusSample(t, False)
            self.polls += 1
            prev = self.samples[-1] if self.samples else None
            if prev is None or prev.ok != sample.ok or prev.nodes != sample.nodes:
                self.samples.append(sample)
            else:  # same view: keep the largest lag seen while it lasted
                for name, lag in sample.lags.items():
                    old = prev.lags.get(name)
                    if lag is not None and (old is None or lag > old):
                        prev.lags[name] = lag
            self._stop.wait(self.interval)
