"""Proxy CPU per query on the hot path, without sockets: the Python work rwproxy adds per statement.

A ClientSession and a BackendConnection are wired to in-memory transports; each iteration feeds a
COM_QUERY from the "client", lets the session route it to the "backend", and feeds the backend's
recorded response (a point select's result set) back. Reports µs per query (best of N runs). This
isolates rwproxy's own per-query work from syscalls and scheduling, which the sysbench comparison
includes.

    python bench/hotpath_bench.py [--queries 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from rwproxy.app import ProxyApp
from rwproxy.backend.connection import BackendConnection
from rwproxy.config import parse_config
from rwproxy.frontend.multiplex import multiplexer_for
from rwproxy.frontend.session import _COMMAND, ClientSession
from rwproxy.protocol.constants import Capability
from rwproxy.protocol.framing import frame

CONFIG = """
[[users]]
name = "app"
password = "pw"
[[servers]]
name = "p"
host = "127.0.0.1"
port = 3306
role = "primary"
[[servers]]
name = "r"
host = "127.0.0.1"
port = 3307
role = "replica"
"""

CAPS = int(
    Capability.PROTOCOL_41
    | Capability.SECURE_CONNECTION
    | Capability.TRANSACTIONS
    | Capability.MULTI_RESULTS
    | Capability.PLUGIN_AUTH
)
# A real point-select response (MariaDB 10.11, classic EOFs): column count, one column def, EOF,
# one row, EOF.
RESPONSE = (
    frame(b"\x01", 1)
    + frame(
        b"\x03def\x06rwtest\x07sbtest1\x07sbtest1\x01c\x01c\x0c\x08\x00\xe0\x01\x00\x00\xfe\x01\x10\x00\x00\x00",
        2,
    )
    + frame(b"\xfe\x00\x00\x02\x00", 3)
    + frame(b"\x77" + b"8" * 119, 4)
    + frame(b"\xfe\x00\x00\x02\x00", 5)
)


class _NullTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:  # type: ignore[override]
        self.written += len(data)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 1) if name == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def run(
    queries: int, sql: bytes | None, digests: bool = True, latency: bool = True, prefix: bytes | None = None
) -> float:
    """µs per query; ``sql`` None: a new literal in every query (``id=<n>``). ``latency``: the query
    latency histogram ([admin] latency_histogram). ``prefix``: a client that negotiated
    CLIENT_QUERY_ATTRIBUTES, sending this attribute prefix before the SQL text."""
    admin = f"[admin]\nquery_digest = {str(digests).lower()}\nlatency_histogram = {str(latency).lower()}\n"
    app = ProxyApp(parse_config(CONFIG + admin))
    session = ClientSession(app)
    session.transport = _NullTransport()
    session.phase = _COMMAND
    session.user = "app"
    session.client_flags = CAPS if prefix is None else CAPS | int(Capability.QUERY_ATTRIBUTES)
    replica = BackendConnection(
        node_name="r",
        pool_key=(),
        client_flags=CAPS,
        server_capabilities=CAPS,
        server_version="10.11",
        thread_id=1,
        status_flags=2,
    )
    replica.transport = _NullTransport()
    session.conns["r"] = replica
    session.mux = multiplexer_for(session)  # as after a real login (multiplexing on by default)
    per_run = queries // 5
    if sql is None:
        packets = [frame(b"\x03SELECT c FROM sbtest1 WHERE id=%d" % i, 0) for i in range(per_run)]
    else:
        packets = [frame(b"\x03" + (prefix or b"") + sql, 0)] * per_run
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for packet in packets:
            session.data_received(packet)
            replica.data_received(RESPONSE)
        best = min(best, (time.perf_counter() - start) / per_run)
    assert not session.busy
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200_000)
    args = parser.parse_args()
    for label, sql in [
        ("point select", b"SELECT c FROM sbtest1 WHERE id=4242"),
        ("point select, new literal each time", None),
    ]:
        for digests, latency in ((False, False), (False, True), (True, False), (True, True)):
            us = asyncio.run(run(args.queries, sql, digests, latency))
            name = f"{label}, digest {'on' if digests else 'off'}, latency {'on' if latency else 'off'}"
            print(f"{name:56s} {us:6.2f} µs of proxy CPU per query (Python hot path, no syscalls)")
    # A MySQL 8 client that negotiated query attributes: the prefix on every COM_QUERY (digest and
    # latency on, as the last "point select" line above).
    route_replica = b"\x01\x01\x00\x01\xfe\x00\x0drwproxy_route\x07replica"
    for name, prefix in (("no attributes (00 01)", b"\x00\x01"), ("rwproxy_route=replica", route_replica)):
        us = asyncio.run(run(args.queries, b"SELECT c FROM sbtest1 WHERE id=4242", prefix=prefix))
        name = f"point select, query attributes: {name}"
        print(f"{name:56s} {us:6.2f} µs of proxy CPU per query (Python hot path, no syscalls)")


if __name__ == "__main__":
    main()
