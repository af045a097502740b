"""The accounts rwproxy logs in with for its own work, on the real cluster
(``rwproxy.backend.own_account``).

* ``[backend] credentials = "env"`` and no ``[failover] user``: the failover account is the first
  user's backend account *with the environment's password*, as for the monitor (before, failover
  logged in with the client password from the config and was refused);
* a replica read past ``routing.replica_read_timeout_seconds`` is stopped with ``KILL QUERY`` from the
  session's own backend account, as ``KILL QUERY`` is (before: the first user's account, which may not
  kill another account's threads, so the statement kept running on the replica).
"""

from __future__ import annotations

import threading
import time

import pymysql
import pytest

from rwproxy.dev.cluster import Cluster
from rwproxy.dev.demo import user_table
from tests.support.builders import cluster_config, user
from tests.support.cluster import wait_until
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster


def test_failover_account_takes_the_backend_credentials_password(
    healthy_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = healthy_cluster
    monkeypatch.setenv("RWPROXY_TEST_OWN_PW", c.app_password)
    config = cluster_config(
        c,
        "[backend]",
        'credentials = "env"',
        'password_env = "RWPROXY_TEST_OWN_PW"',
        "[failover]",
        'mode = "observe"',
        # not the server's password: only the environment's is
        users=[user(c.app_user, "client-password")],
        roles=True,
    )
    with ProxyThread(config) as p:
        assert p.app is not None and p.app.failover is not None
        wait_until(lambda: all(n.online for n in p.app.topology.nodes), what="monitor logged in")
        primary = c.primary
        flavor = p.run(p.app.failover.admin.flavor(primary.host, primary.port))
        assert flavor is not None  # logged in (an ActionError "access denied" before)


def _sleeps_on(c: Cluster, marker: str) -> list[str]:
    """Replicas where a statement carrying ``marker`` still runs."""
    found = []
    for r in c.replicas:
        rows = c.admin_sql(r, "SELECT INFO FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query'")
        if any(row[0] and marker in str(row[0]) and "PROCESSLIST" not in str(row[0]) for row in rows):
            found.append(r.name)
    return found


def test_replica_read_timeout_kills_with_the_sessions_own_account(healthy_cluster: Cluster) -> None:
    c = healthy_cluster
    config = cluster_config(
        c,
        "[routing]",
        "replica_read_timeout_seconds = 0.5",
        # The first [[users]] entry: an account without CONNECTION ADMIN (the monitor's).
        users=[user(c.monitor_user, c.monitor_password), *user_table(c)],
        roles=True,
    )
    marker = f"own_account_{time.monotonic_ns()}"
    with ProxyThread(config) as p:
        assert p.app is not None
        conn = pymysql.connect(
            host=p.host,
            port=p.port,
            user=c.app_user,
            password=c.app_password,
            autocommit=True,
            read_timeout=60,
        )
        done = threading.Event()

        def read() -> None:
            try:
                with conn.cursor() as cur:  # each replica stops it at 0.5 s, then the primary runs it
                    cur.execute(f"SELECT SLEEP(6) AS {marker}")
                    cur.fetchall()
            except pymysql.MySQLError:
                pass
            finally:
                done.set()

        t = threading.Thread(target=read, daemon=True)
        t.start()
        try:
            wait_until(lambda: p.app.stats.read_timeouts >= 1, timeout=15, what="a replica read timeout")
            # The side KILL QUERY stops it on the replica at once (its round trip, a loaded machine);
            # the statement may run once more elsewhere (its retry), and is stopped there too.
            wait_until(lambda: not _sleeps_on(c, marker), timeout=3.0, what="stopped on the replicas")
        except AssertionError:
            raise AssertionError(f"the statement still runs on {_sleeps_on(c, marker)}") from None
        finally:
            t.join(20)
            conn.close()
