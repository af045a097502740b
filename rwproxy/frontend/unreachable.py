"""Connect failures that sessions meet on their way to a backend (issue: a dead replica that the
monitor has not marked OFFLINE yet made every read routed there log one INFO line).

``connect_failed`` is called by the send path (``ClientSession.connect_routed``) when opening a
connection fails with a connect error (``rwproxy.router.fallback.CONNECT_ERRORS``). It:

* hands the failure to the monitor as evidence (``Monitor.report_unreachable``: checked at once,
  not at the next interval; write buffering treats the primary as not ready until then);
* logs it once per server per episode (until the monitor marked the server not ONLINE and then
  ONLINE again; the monitor logs those transitions itself); the others are counted
  (``rwproxy_backend_connect_failures_total{server}``).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING

from rwproxy.backend.connection import BackendError
from rwproxy.topology.model import Topology

if TYPE_CHECKING:
    from rwproxy.frontend.host import SessionHost

__all__ = ["ConnectFailures", "connect_failed"]

log = logging.getLogger(__name__)


class ConnectFailures:
    """Per server: connect failures seen by sessions, and whether the current episode was logged."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._logged: set[str] = set()
        self._down: set[str] = set()  # logged servers since seen not ONLINE

    def note(self, server: str) -> bool:
        """Count one failure; True when it is the first of its episode (log it)."""
        self.counts[server] += 1
        if server in self._logged:
            return False
        self._logged.add(server)
        return True

    def on_topology(self, topology: Topology) -> None:
        """A new snapshot: a logged server seen not ONLINE and then ONLINE again ends its episode
        (its next failure is logged again). Failures of statements routed there just before the
        monitor marked it are counted, not logged."""
        if not self._logged:
            return
        by_name = topology.by_name
        for name in list(self._logged):
            node = by_name.get(name)
            if node is None or not node.online:
                self._down.add(name)
            elif name in self._down:
                self._down.discard(name)
                self._logged.discard(name)


def connect_failed(app: SessionHost, server: str, exc: BackendError) -> None:
    if app.monitor is not None:
        app.monitor.report_unreachable(server)
    if app.connect_failures.note(server):
        log.info(
            "cannot connect to %s: %s (logged once until the monitor marks it; the rest are counted "
            "in rwproxy_backend_connect_failures_total)",
            server,
            exc,
        )
