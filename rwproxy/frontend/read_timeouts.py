"""``routing.replica_read_timeout_seconds``: replica reads that do not finish in time are stopped.

A hung (not dead) replica (SIGSTOP, a stuck disk, a network black hole) keeps its TCP connections
open and answers nothing: every read routed there would wait for as long as the hang lasts, while
the monitor needs a few checks to mark it OFFLINE. A sweep over the sessions, a few times per
timeout, finds replica reads in flight for longer than the timeout
(``send_path.check_read_timeout``): rwproxy sends KILL QUERY for it where the server still
answers, drops the connection, and runs the read again on another replica or the primary when it
was a plain autocommit read and nothing was sent to the client yet (else the client gets ERROR
3024). Nothing runs per statement: no timer is armed on the hot path.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from rwproxy.frontend import send_path

if TYPE_CHECKING:
    from rwproxy.frontend.host import SessionHost

__all__ = ["sweep", "sweep_step"]

_IDLE_STEP = 1.0  # how often to look at the config while the timeout is off (a reload may set it)


def sweep_step(timeout: float) -> float:
    """Seconds between two sweeps: a read is stopped between ``timeout`` and ``timeout + step``."""
    return min(max(timeout / 4, 0.05), 1.0)


async def sweep(app: SessionHost) -> None:
    """Run until cancelled (started with the listeners, see ``rwproxy.app.ProxyApp.start``)."""
    while True:
        timeout = app.config.routing.replica_read_timeout_seconds
        if timeout is None:
            await asyncio.sleep(_IDLE_STEP)
            continue
        await asyncio.sleep(sweep_step(timeout))
        now = time.monotonic()
        for session in list(app.sessions.values()):
            send_path.check_read_timeout(session, now, timeout)
