"""Causal reads across connections and rwproxy instances (the GTID token) on a real cluster: one
replica 1 s behind (MASTER_DELAY), one up to date.

Connection A writes and reads ``SELECT @rwproxy_last_gtid``; connection B (same or another rwproxy
instance) runs ``SET @rwproxy_wait_gtid = '<gtid>'`` and reads the row: 0 stale reads. The same
workload without the token does show stale reads (so the check can fail).
"""

from __future__ import annotations

from collections.abc import Iterator

import pymysql
import pytest
from prometheus_client import generate_latest

from rwproxy.dev.cluster import Cluster, start_cluster
from rwproxy.observability.metrics import build_registry
from rwproxy.router.policy import RouteReason
from tests.integration.test_causal_reads import _config, _connect, _wait_lagging, run_in_threads
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster

PAIRS = 2000


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


def _pairs(
    writer: ProxyThread,
    reader: ProxyThread,
    c: Cluster,
    start: int,
    count: int,
    stale: list[int],
    token: bool,
) -> None:
    a, b = _connect(writer, c), _connect(reader, c)
    with a.cursor() as wa, b.cursor() as rb:
        for i in range(start, start + count):
            wa.execute("INSERT INTO rwtest.causal VALUES (%s, %s)", (i, i))
            if token:
                wa.execute("SELECT @rwproxy_last_gtid")
                gtid = wa.fetchone()[0]
                assert gtid, "no GTID after a committed write"
                rb.execute("SET @rwproxy_wait_gtid = %s", (gtid,))
            rb.execute("SELECT v FROM rwtest.causal WHERE id = %s", (i,))
            if rb.fetchone() is None:
                stale.append(i)
    a.close()
    b.close()


def _run(
    writer: ProxyThread, reader: ProxyThread, c: Cluster, base: int, total: int, token: bool
) -> list[int]:
    return run_in_threads(
        lambda start, n, stale: _pairs(writer, reader, c, start, n, stale, token), base, total
    )


def _token_reads_on_replicas(p: ProxyThread, c: Cluster) -> int:
    return sum(
        n
        for (node, reason), n in p.app.stats.routes.items()
        if reason in (RouteReason.CAUSAL_WAIT, RouteReason.CAUSAL_APPLIED) and node != c.primary.name
    )


def _causal_routes(p: ProxyThread) -> int:
    causal = (RouteReason.CAUSAL_APPLIED, RouteReason.CAUSAL_WAIT, RouteReason.CAUSAL_FALLBACK)
    return sum(n for (_node, reason), n in p.app.stats.routes.items() if reason in causal)


def test_token_across_connections_has_no_stale_reads(delayed_cluster: Cluster) -> None:
    c = delayed_cluster
    with ProxyThread(_config(c, "eventual")) as p:
        _wait_lagging(p, c)
        stale = _run(p, p, c, 1_000_000, PAIRS, token=True)
        assert stale == []
        # The reads really went to replicas (waiting there) rather than all to the primary.
        assert _token_reads_on_replicas(p, c) > PAIRS // 2, p.app.stats.routes
        assert p.app.stats.causal_waits["applied"] > 0, p.app.stats.causal_waits


def test_without_the_token_reads_are_stale(delayed_cluster: Cluster) -> None:
    """The same two-connection workload without the token: reads on the delayed replica miss it."""
    c = delayed_cluster
    with ProxyThread(_config(c, "read_your_writes")) as p:
        _wait_lagging(p, c)
        stale = _run(p, p, c, 2_000_000, 1000, token=False)
        assert len(stale) > 50, len(stale)


def test_token_across_two_rwproxy_instances(delayed_cluster: Cluster) -> None:
    c = delayed_cluster
    with ProxyThread(_config(c, "eventual")) as p1, ProxyThread(_config(c, "eventual")) as p2:
        _wait_lagging(p2, c)
        stale = _run(p1, p2, c, 3_000_000, PAIRS, token=True)
        assert stale == []
        assert _token_reads_on_replicas(p2, c) > PAIRS // 2, p2.app.stats.routes
        # ... and without the token, the second instance serves stale reads.
        assert len(_run(p1, p2, c, 4_000_000, 1000, token=False)) > 50


def test_token_statements(delayed_cluster: Cluster) -> None:
    c = delayed_cluster
    with ProxyThread(_config(c, "eventual")) as p:
        _wait_lagging(p, c)
        conn = _connect(p, c)
        with conn.cursor() as cur:
            cur.execute("SELECT @rwproxy_last_gtid")
            assert [d[0] for d in cur.description] == ["@rwproxy_last_gtid"]
            assert cur.fetchall() == ((None,),)
            cur.execute("INSERT INTO rwtest.causal VALUES (5000000, 1)")
            cur.execute("select @RWPROXY_LAST_GTID;")
            gtid = cur.fetchone()[0]
            primary_pos = c.sql(c.primary, "SELECT @@gtid_binlog_pos")[0][0]
            assert gtid and gtid in primary_pos.split(","), (gtid, primary_pos)
            with pytest.raises(pymysql.err.ProgrammingError) as err:
                cur.execute("SELECT @rwproxy_last_gtid, 1")
            assert err.value.args[0] == 1064
            with pytest.raises(pymysql.err.OperationalError) as err2:
                cur.execute("SET @rwproxy_wait_gtid = 'not a gtid'")
            assert err2.value.args[0] == 1231
            with pytest.raises(pymysql.err.ProgrammingError) as err3:
                cur.execute("SET @rwproxy_wait_gtid = '0-1-1', @x = 1")
            assert err3.value.args[0] == 1064
            # The token stays for every read until cleared ...
            routes = p.app.stats.routes
            cur.execute("SET @rwproxy_wait_gtid = %s", (gtid,))
            before = _causal_routes(p)
            for _ in range(5):
                cur.execute("SELECT v FROM rwtest.causal WHERE id = 5000000")
                assert cur.fetchone() == (1,)
            assert _causal_routes(p) - before >= 5, routes
            # ... then plain reads again.
            cur.execute("SET @rwproxy_wait_gtid = NULL")
            reads = sum(n for (_n, r), n in routes.items() if r is RouteReason.READ)
            cur.execute("SELECT COUNT(*) FROM rwtest.causal")
            cur.fetchall()
            assert sum(n for (_n, r), n in routes.items() if r is RouteReason.READ) == reads + 1
        conn.close()


def _direct_pairs(
    p: ProxyThread, c: Cluster, start: int, count: int, stale: list[int], consistency: str | None
) -> None:
    """Writes straight to the primary (not through rwproxy at all), reads through rwproxy."""
    writer, reader = c.connect(c.primary, autocommit=True), _connect(p, c)
    with writer.cursor() as w, reader.cursor() as r:
        if consistency is not None:
            r.execute(f"SET @rwproxy_consistency = '{consistency}'")
        for i in range(start, start + count):
            w.execute("INSERT INTO rwtest.causal VALUES (%s, %s)", (i, i))
            r.execute("SELECT v FROM rwtest.causal WHERE id = %s", (i,))
            if r.fetchone() is None:
                stale.append(i)
    writer.close()
    reader.close()


def _run_direct(
    p: ProxyThread, c: Cluster, base: int, total: int, consistency: str | None = None
) -> list[int]:
    return run_in_threads(
        lambda start, n, stale: _direct_pairs(p, c, start, n, stale, consistency), base, total
    )


UNIVERSAL_PAIRS = 1000


def test_universal_sees_every_write_committed_before_the_read(delayed_cluster: Cluster) -> None:
    from rwproxy.frontend.universal import batch_for

    c = delayed_cluster
    with ProxyThread(_config(c, "universal")) as p:
        _wait_lagging(p, c)
        stale = _run_direct(p, c, 6_000_000, UNIVERSAL_PAIRS)
        assert stale == []
        batch = batch_for(p.app)
        routed = batch.routed
        # One position query per batch of reads (never more than one per read) ...
        assert 0 < batch.queries <= sum(routed.values()) <= UNIVERSAL_PAIRS + 10, (batch.queries, routed)
        # ... and the reads were served by replicas (after a wait), not all by the primary.
        assert routed[RouteReason.CAUSAL_APPLIED] + routed[RouteReason.CAUSAL_WAIT] > UNIVERSAL_PAIRS // 2, (
            routed
        )
        assert p.app.stats.causal_waits["applied"] > 0, p.app.stats.causal_waits
        # The same counts, as the metrics export them: every read waited for a position, each
        # query sent is counted once.
        st = p.app.stats
        assert st.universal_reads == sum(routed.values()), (st.universal_reads, routed)
        assert st.universal_position_queries == batch.queries
        assert st.universal_position_failures == routed[RouteReason.CAUSAL_FALLBACK]
        text = generate_latest(build_registry(p.app, process=False)).decode()
        assert f"rwproxy_universal_reads_total {float(st.universal_reads)}" in text
        assert f"rwproxy_universal_position_queries_total {float(batch.queries)}" in text


def test_eventual_misses_direct_writes_and_set_universal_fixes_it(delayed_cluster: Cluster) -> None:
    c = delayed_cluster
    with ProxyThread(_config(c, "eventual")) as p:
        _wait_lagging(p, c)
        assert len(_run_direct(p, c, 7_000_000, 1000)) > 50
        assert _run_direct(p, c, 8_000_000, 400, "universal") == []
