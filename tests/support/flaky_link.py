"""A loopback TCP forwarder that can be cut and restored: a network path that flaps.

with FlakyLink(("127.0.0.1", server_port)) as link:
    link.port          # connect here instead of the server
    link.down()        # existing connections reset, new ones refused (accepted, then reset)
    link.up()
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from types import TracebackType


class FlakyLink:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._up = True
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> FlakyLink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self._closed = True
        self._listener.close()
        self._reset_all()

    def down(self) -> None:
        with self._lock:
            self._up = False
        self._reset_all()

    def up(self) -> None:
        with self._lock:
            self._up = True

    def _reset_all(self) -> None:
        with self._lock:
            socks, self._open = self._open, set()
        for s in socks:
            _reset(s)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                up = self._up
            if not up:
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=2)
            except OSError:
                _reset(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._open.update((client, server))
            threading.Thread(target=self._pipe, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


def _reset(s: socket.socket) -> None:
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    except OSError:
        pass
