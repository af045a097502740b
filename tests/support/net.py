"""Port helpers for tests: the package's (the demo needs them too) plus an asyncio variant."""

from __future__ import annotations

import asyncio
import time

from rwproxy.dev.cluster.net import free_port, free_ports, wait_for_port

__all__ = ["free_port", "free_ports", "wait_for_port", "wait_for_port_async"]


async def wait_for_port_async(host: str, port: int, timeout: float = 10.0) -> None:
    """``wait_for_port`` without blocking the event loop (for a proxy started in the same loop)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
            writer.close()
            await writer.wait_closed()
            return
        except (OSError, TimeoutError) as exc:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{host}:{port} did not accept connections within {timeout}s") from exc
        await asyncio.sleep(0.05)
