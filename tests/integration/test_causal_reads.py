"""Read-your-writes on a real cluster: one replica 1 s behind (MASTER_DELAY), one up to date.

In read_your_writes, 5,000 write -> read pairs see every write (0 stale reads); in eventual mode
the same workload does show stale reads (so the check can fail); sessions that never wrote never
wait. The GTID of each write comes from the OK packet (MariaDB last_gtid session tracking).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pymysql
import pytest

from rwproxy.dev.cluster import Cluster, start_cluster
from rwproxy.router.policy import RouteReason
from tests.support.builders import cluster_config
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster

PAIRS = 5000
THREADS = 4


@pytest.fixture(scope="module")
def delayed_cluster() -> Iterator[Cluster]:
    c = start_cluster("auto", replicas=2)
    try:
        c.sql(c.primary, "CREATE TABLE rwtest.causal (id INT PRIMARY KEY, v INT NOT NULL)")
        c.wait_replicas_caught_up()
        c.set_delay(c.replicas[0], 1)
        yield c
    finally:
        c.stop()


def _config(c: Cluster, consistency: str, **routing: str) -> str:
    return cluster_config(
        c,
        "[monitor]",
        "interval_seconds = 0.2",
        "[routing]",
        f'consistency = "{consistency}"',
        *(f"{k} = {v}" for k, v in routing.items()),
    )


def _connect(p: ProxyThread, c: Cluster) -> pymysql.Connection:
    return pymysql.connect(
        host=p.host, port=p.port, user=c.app_user, password=c.app_password, autocommit=True, ssl_disabled=True
    )


def _wait_lagging(p: ProxyThread, c: Cluster) -> None:
    """Until the monitor saw the delayed replica behind (so 'least lagged' means the other one)."""
    deadline = time.monotonic() + 10
    conn = c.connect(c.primary)
    with conn.cursor() as cur:
        while time.monotonic() < deadline:
            cur.execute(
                "REPLACE INTO rwtest.causal VALUES (-1, %s)", (int(time.monotonic() * 1000) % 1000000,)
            )
            lag = p.app.topology.by_name[c.replicas[0].name].lag_seconds
            if lag is not None and lag >= 0.5:
                break
            time.sleep(0.1)
    conn.close()


def _pairs(
    p: ProxyThread, c: Cluster, start: int, count: int, stale: list[int], consistency: str | None
) -> None:
    conn = _connect(p, c)
    with conn.cursor() as cur:
        if consistency is not None:
            cur.execute(f"SET @rwproxy_consistency = '{consistency}'")
        for i in range(start, start + count):
            cur.execute("INSERT INTO rwtest.causal VALUES (%s, %s)", (i, i))
            cur.execute("SELECT v FROM rwtest.causal WHERE id = %s", (i,))
            if cur.fetchone() is None:
                stale.append(i)
    conn.close()


def run_in_threads(work: Callable[[int, int, list[int]], None], base: int, total: int) -> list[int]:
    """``work(start, count, stale)`` in THREADS threads, each over its share of the ids
    ``base .. base + total``; returns the ids they found stale."""
    stale: list[int] = []
    per = total // THREADS
    threads = [threading.Thread(target=work, args=(base + k * per, per, stale)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return stale


def _run_pairs(
    p: ProxyThread, c: Cluster, base: int, total: int, consistency: str | None = None
) -> list[int]:
    return run_in_threads(lambda start, n, stale: _pairs(p, c, start, n, stale, consistency), base, total)


def test_read_your_writes_has_no_stale_reads(delayed_cluster: Cluster) -> None:
    c = delayed_cluster
    with ProxyThread(_config(c, "read_your_writes")) as p:
        _wait_lagging(p, c)
        stale = _run_pairs(p, c, 1_000_000, PAIRS)
        stats = p.app.stats
        assert stale == []
        # The reads really went to replicas (waiting there) rather than all to the primary.
        replica_reads = sum(
            n
            for (node, reason), n in stats.routes.items()
            if reason in (RouteReason.CAUSAL_WAIT, RouteReason.CAUSAL_APPLIED) and node != c.primary.name
        )
        assert replica_reads > PAIRS // 2, stats.routes
        assert stats.causal_waits["applied"] > 0, stats.causal_waits


def test_eventual_mode_shows_stale_reads(delayed_cluster: Cluster) -> None:
    """The same workload without read_your_writes: reads on the delayed replica miss the write."""
    c = delayed_cluster
    with ProxyThread(_config(c, "eventual")) as p:
        _wait_lagging(p, c)
        stale = _run_pairs(p, c, 2_000_000, 1000)
        assert len(stale) > 50, len(stale)
        # ... and a session that switches with SET @rwproxy_consistency sees its writes.
        assert _run_pairs(p, c, 3_000_000, 400, "read_your_writes") == []


def test_sessions_that_never_wrote_never_wait(delayed_cluster: Cluster) -> None:
    c = delayed_cluster
    with ProxyThread(_config(c, "read_your_writes")) as p:
        conn = _connect(p, c)
        with conn.cursor() as cur:
            for _ in range(300):
                cur.execute("SELECT COUNT(*) FROM rwtest.causal")
        conn.close()
        stats = p.app.stats
        assert sum(stats.causal_waits.values()) == 0
        reasons = {reason for (_node, reason) in stats.routes}
        assert reasons <= {RouteReason.READ, RouteReason.STATEMENT}, reasons
        assert sum(n for (_node, reason), n in stats.routes.items() if reason is RouteReason.READ) >= 300


def test_bad_consistency_value_is_refused(delayed_cluster: Cluster) -> None:
    c = delayed_cluster
    with ProxyThread(_config(c, "eventual")) as p:
        conn = _connect(p, c)
        with conn.cursor() as cur:
            with pytest.raises(pymysql.err.OperationalError) as err:
                cur.execute("SET @rwproxy_consistency = 'sometimes'")
            assert err.value.args[0] == 1231
            with pytest.raises(pymysql.err.ProgrammingError) as err2:
                cur.execute("SET @rwproxy_consistency = 'primary', @x = 1")
            assert err2.value.args[0] == 1064
            cur.execute("SET @rwproxy_consistency = 'primary'")
            cur.execute("SELECT @@server_id")
            primary_id = int(c.sql(c.primary, "SELECT @@server_id")[0][0])
            assert cur.fetchone()[0] == primary_id
        conn.close()
