"""What clients see during a promote failover: only the 2013s of statements in flight at the kill.

Before, the first ~0.2-0.6 s of every failover also gave ERROR 2003 "cannot connect to <old primary>":
new logins checked their default database on the dead primary without waiting, and a statement that
needed a new primary connection failed while the monitor still reported the dead primary ONLINE. A
failed connect to the primary is now evidence (the monitor checks it at once) and the statement or
login waits in the write buffer like any other.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pymysql
import pytest

from rwproxy.dev.cluster import Cluster
from tests.integration.test_failover import _wait, config, connect
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster

_INSERT = "INSERT INTO rwtest.fo_clients (client, seq) VALUES (%s, %s)"


class Client:
    """Inserts through the proxy until stopped; ``new_login``: one connection per statement (a login
    with default database rwtest each time), else one connection, opened again after an error."""

    def __init__(self, p: ProxyThread, c: Cluster, ident: int, *, new_login: bool) -> None:
        self.p, self.c, self.ident, self.new_login = p, c, ident, new_login
        self.acked: list[float] = []
        self.errors: list[tuple[int, str]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conn: pymysql.Connection | None = None
        seq = 0
        while not self.stop.is_set():
            seq += 1
            try:
                if conn is None:
                    conn = connect(self.p, self.c)
                with conn.cursor() as cur:
                    cur.execute(_INSERT, (self.ident, seq))
                self.acked.append(time.monotonic())
                if self.new_login:
                    conn.close()
                    conn = None
                time.sleep(0.005)
            except pymysql.MySQLError as exc:
                code = int(exc.args[0]) if exc.args and isinstance(exc.args[0], int) else -1
                self.errors.append((code, str(exc)))
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.02)
        if conn is not None:
            conn.close()

    def acked_after(self, t: float) -> bool:
        return any(at > t for at in self.acked)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(30)


def test_kill_primary_gives_only_the_in_flight_2013s(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    old = c.primary
    c.sql(c.primary, "CREATE TABLE IF NOT EXISTS rwtest.fo_clients (client INT, seq INT)")
    c.wait_replicas_caught_up()
    with ProxyThread(config(c, "promote", buffer_timeout_seconds=15)) as p:
        clients = [Client(p, c, i, new_login=i % 2 == 1) for i in range(6)]
        _wait(lambda: all(len(x.acked) > 3 for x in clients), 15, "writes flowing")
        killed = time.monotonic()
        c.kill_node(old)
        _wait(
            lambda: p.app.topology.primary is not None and p.app.topology.primary.name != old.name,
            20,
            "promoted",
        )
        _wait(lambda: all(x.acked_after(killed) for x in clients), 20, "writes after the kill")
        time.sleep(1.0)
        for x in clients:
            x.finish()
        c.primary = c.node(p.app.topology.primary.name)  # type: ignore[union-attr]
        codes = Counter(code for x in clients for code, _ in x.errors)
        messages = [m for x in clients for code, m in x.errors if code != 2013]
        print(f"\nclient errors during the failover: {dict(codes)} {messages[:5]}")
        assert set(codes) <= {2013}, f"errors other than 2013: {dict(codes)} {messages[:5]}"
        # At most one statement in flight per client at the kill.
        assert codes[2013] <= len(clients), dict(codes)
