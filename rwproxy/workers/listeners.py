"""Client listeners shared by the worker processes: one SO_REUSEPORT socket per worker and address.

The supervisor binds them all (port 0 is resolved by the first, the others take the same port) and
keeps them open; worker ``k`` inherits its own sockets. The kernel spreads new connections over
the sockets of a port by a hash of the client's address and port, so each worker gets about 1/N
of the connections, and connections hashed to a worker that is being restarted wait in its
socket's backlog (nothing is refused) until the new process accepts them.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

__all__ = ["bind_listeners"]


def bind_listeners(addresses: Sequence[tuple[str, int]], count: int) -> list[list[socket.socket]]:
    """``count`` lists (one per worker) of listening sockets, one per address, all with SO_REUSEPORT."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise OSError("proxy.workers > 1 needs SO_REUSEPORT (Linux, BSD, macOS)")
    per_worker: list[list[socket.socket]] = [[] for _ in range(count)]
    try:
        for host, port in addresses:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            for k in range(count):
                sock = socket.create_server((host, port), family=family, backlog=1024, reuse_port=True)
                port = sock.getsockname()[1]  # port 0: the others join the port the first got
                sock.set_inheritable(True)
                per_worker[k].append(sock)
    except BaseException:
        for socks in per_worker:
            for sock in socks:
                sock.close()
        raise
    return per_worker
