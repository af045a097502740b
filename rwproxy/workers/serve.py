"""``rwproxy run`` with ``[proxy] workers`` > 1: the supervisor's ``WorkerPool`` until a signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from rwproxy.workers.supervisor import WorkerPool

__all__ = ["serve_with_workers"]

log = logging.getLogger("rwproxy.workers")


async def serve_with_workers(app: Any, config_path: str, count: int) -> None:
    """``rwproxy run`` with ``[proxy] workers`` > 1: the supervisor (``app``, a ProxyApp built by
    ``rwproxy.cli``) until SIGINT/SIGTERM."""
    import signal

    from rwproxy.reload import install_sighup

    config = app.config
    pool = WorkerPool(app, config_path, count)
    await pool.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    install_sighup(app)  # reloads here, then in every worker (ProxyApp.reload_config)
    await stop.wait()
    log.info("shutting down %d workers (grace %.1f s)", count, config.proxy.shutdown_grace_seconds)
    with contextlib.suppress(Exception):
        await pool.stop()
