"""No read lands on a lagging replica or one whose lag is unknown (the issue's 2,000-read check)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import pymysql
import pytest

from rwproxy.dev.cluster import Cluster, start_cluster
from tests.support.builders import cluster_config
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def three_replicas() -> Iterator[Cluster]:
    c = start_cluster("auto", replicas=3)
    try:
        yield c
    finally:
        c.stop()


def heartbeat(cluster: Cluster, stop: threading.Event) -> None:
    """Writes on the primary every 0.2 s, so a delayed replica really falls behind."""
    conn = cluster.connect(cluster.primary)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS rwtest.beat (id INT PRIMARY KEY, ts DOUBLE)")
        while not stop.is_set():
            cur.execute("REPLACE INTO rwtest.beat VALUES (1, %s)", (time.time(),))
            stop.wait(0.2)
    conn.close()


def test_2000_reads_avoid_delayed_and_null_lag_replicas(three_replicas: Cluster) -> None:
    c = three_replicas
    delayed, stopped, good = c.replicas
    ids = {n.name: int(c.sql(n, "SELECT @@server_id")[0][0]) for n in c.nodes}
    stop = threading.Event()
    beat = threading.Thread(target=heartbeat, args=(c, stop), daemon=True)
    beat.start()
    text = cluster_config(
        c,
        "[monitor]",
        "interval_seconds = 0.2",
        "check_timeout_seconds = 0.5",
        "max_replication_lag_seconds = 2",
    )
    try:
        c.set_delay(delayed, 6)  # 6 s behind with writes every 0.2 s: over the 2 s limit
        c.stop_sql_thread(stopped)  # Seconds_Behind_Master NULL: unusable, never 0
        with ProxyThread(text) as p:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                t = p.app.topology
                if not t.by_name[delayed.name].online and not t.by_name[stopped.name].online:
                    break
                time.sleep(0.1)
            t = p.app.topology
            assert not t.by_name[delayed.name].online, t.by_name[delayed.name]
            assert not t.by_name[stopped.name].online, t.by_name[stopped.name]
            conn = pymysql.connect(
                host=p.host, port=p.port, user=c.app_user, password=c.app_password, autocommit=True
            )
            seen: Counter[int] = Counter()
            with conn.cursor() as cur:
                for _ in range(2000):
                    cur.execute("SELECT @@server_id")
                    seen[int(cur.fetchone()[0])] += 1
            conn.close()
            assert seen[ids[delayed.name]] == 0 and seen[ids[stopped.name]] == 0, seen
            assert seen[ids[good.name]] == 2000, seen
    finally:
        stop.set()
        beat.join(5)
        c.set_delay(delayed, 0)
        c.start_replication(stopped)
