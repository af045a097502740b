"""Run a real rwproxy in a background thread with its own event loop, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from rwproxy.app import ProxyApp
from rwproxy.config import Config, parse_config

__all__ = ["ProxyThread"]

T = TypeVar("T")


class ProxyThread:
    """``with ProxyThread(config_text) as p:`` → ``p.host``, ``p.port``, ``p.app``, ``p.run(coro)``."""

    def __init__(
        self, config: str | Config, *, use_uvloop: bool = True, config_path: str | Path | None = None
    ) -> None:
        self.config = parse_config(config, "<test>") if isinstance(config, str) else config
        self.config_path = config_path  # what app.reload_config() re-reads
        self.use_uvloop = use_uvloop
        self.loop: asyncio.AbstractEventLoop | None = None
        self.app: ProxyApp | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> ProxyThread:
        self._thread = threading.Thread(target=self._main, name="rwproxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("rwproxy did not start within 30 s")
        if self._error is not None:
            raise RuntimeError(f"rwproxy failed to start: {self._error!r}") from self._error
        return self

    def _main(self) -> None:
        if self.use_uvloop:
            try:
                import uvloop

                self.loop = uvloop.new_event_loop()
            except ImportError:
                self.loop = asyncio.new_event_loop()
        else:
            self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.app = ProxyApp(self.config, config_path=self.config_path)
            bound = self.loop.run_until_complete(self.app.start())
            self.host, self.port = bound[0]
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Any, *args: Any) -> Any:
        """Run a plain function on the proxy's loop thread and return its result."""

        async def wrapper() -> Any:
            return fn(*args)

        return self.run(wrapper())

    def stop(self) -> None:
        if self.loop is None or self.app is None or self._thread is None:
            return
        try:
            self.run(self.app.stop(grace=1.0), timeout=15)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(15)
            self._thread = None

    def __enter__(self) -> ProxyThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
