"""TLS for a client connection that switches mid-stream (after the MySQL SSLRequest packet).

asyncio's ``loop.start_tls`` cannot take bytes that were already read: a client that sends its TLS
ClientHello right behind the SSLRequest (the usual case; nothing answers an SSLRequest) would have
it swallowed into the plaintext buffer, and the handshake would hang. So the TLS layer is a
``ssl.MemoryBIO`` pair driven here: every byte received after the SSLRequest, including any already
buffered, goes through it. It wraps the real transport, so the session keeps calling ``write``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

__all__ = ["TlsTransport"]

_CHUNK = 256 * 1024


class TlsTransport(asyncio.Transport):
    """Encrypts writes to, and decrypts reads from, a plaintext transport."""

    def __init__(self, transport: asyncio.Transport, context: ssl.SSLContext) -> None:
        super().__init__()
        self._transport = transport
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.handshake_done = False

    def receive(self, data: bytes) -> bytes:
        """Ciphertext in, plaintext out (b"" while the handshake runs). Raises ssl.SSLError."""
        self._incoming.write(data)
        if not self.handshake_done:
            try:
                self._ssl.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
                return b""
            self.handshake_done = True
            self._flush()
        out = []
        while True:
            try:
                chunk = self._ssl.read(_CHUNK)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break
            if not chunk:
                break
            out.append(chunk)
        self._flush()  # renegotiation/key update records, if any
        return b"".join(out)

    def _flush(self) -> None:
        pending = self._outgoing.read()
        if pending and not self._transport.is_closing():
            self._transport.write(pending)

    # -- asyncio.Transport -------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._transport.is_closing():
            return
        self._ssl.write(bytes(data))
        self._flush()

    def close(self) -> None:
        if not self._transport.is_closing():
            with contextlib.suppress(ssl.SSLError):
                self._ssl.unwrap()
            self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self._ssl
        if name == "cipher":
            return self._ssl.cipher()
        return self._transport.get_extra_info(name, default)
