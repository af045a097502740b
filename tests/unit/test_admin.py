"""rwproxy.admin pieces without servers: the digest table, drain on topology snapshots, admin config."""

from __future__ import annotations

import pytest

from rwproxy.admin.drain import DrainError, set_drained
from rwproxy.app import ProxyApp
from rwproxy.config import ConfigError, parse_config
from rwproxy.observability.digests import DigestTable
from rwproxy.topology.model import NodeState
from tests.support.builders import config_text, node, primary, section, server, topology

CONFIG = config_text(
    section("monitor", enabled=False),
    servers=[
        server("db1", "127.0.0.1", port=3306, role="primary"),
        server("db2", "127.0.0.1", port=3307, role="replica"),
        server("db3", "127.0.0.1", port=3308, role="replica"),
    ],
)


def test_digest_table_groups_by_digest_and_counts() -> None:
    t = DigestTable(size=10, example_chars=20)
    for i in range(5):
        t.record(b"SELECT c FROM t WHERE id=%d" % i, 0.002, primary=False, error=False)
    t.record(b"SELECT c FROM t WHERE id=1", 0.010, primary=True, error=True)
    t.record(b"INSERT INTO t VALUES (1, 'x'), (2, 'y')", 0.001, primary=True, error=False)
    rows = t.rows()
    assert [(r["digest"], r["count"]) for r in rows] == [
        ("SELECT c FROM t WHERE id=?", 6),
        ("INSERT INTO t VALUES (...)", 1),
    ]
    top = rows[0]
    assert top["route"] == "mixed" and (top["primary_count"], top["replica_count"], top["errors"]) == (
        1,
        5,
        1,
    )
    assert (top["total_time_us"], top["max_time_us"], top["avg_time_us"]) == (20000, 10000, 3333)
    assert top["example"] == "SELECT c FROM t WHER" and len(top["digest_id"]) == 16
    assert rows[1]["route"] == "primary"


def test_digest_table_is_bounded_and_keeps_the_most_used() -> None:
    t = DigestTable(size=4)  # slack 16: trimmed back to 4 when the 21st digest arrives
    for n in range(4):
        for _ in range(100 + n):
            t.record(b"SELECT %d FROM heavy%d" % (n, n), 0.001, primary=False, error=False)
    for n in range(40):
        t.record(b"SELECT x FROM light%d" % n, 0.001, primary=False, error=False)
    assert len(t) <= 4 + t.slack and t.evicted > 0
    heavy = [r["digest"] for r in t.rows(4)]
    assert heavy == [f"SELECT ? FROM heavy{n}" for n in (3, 2, 1, 0)]
    # The exact-text map was emptied with the trim: a heavy text still counts into its kept entry.
    t.record(b"SELECT 0 FROM heavy0", 0.001, primary=False, error=False)
    assert {r["digest"]: r["count"] for r in t.rows()}["SELECT ? FROM heavy0"] == 101


def test_with_drained_leaves_the_read_choice() -> None:
    t = topology(primary(), node("db2"), node("db3"), version=7)
    assert t.with_drained(frozenset()) is t
    d = t.with_drained(frozenset({"db2"}))
    assert d.version == 7 and d.by_name["db2"].drained and not d.by_name["db3"].drained
    assert {d.choose_replica(x / 100).name for x in range(100)} == {"db3"}  # type: ignore[union-attr]
    assert d.with_drained(frozenset({"db2"})) is d
    assert d.with_drained(frozenset()).nodes == t.nodes
    none_left = t.with_drained(frozenset({"db2", "db3"}))
    assert none_left.choose_replica(0.5) is None


def test_set_drained_and_monitor_snapshots_keep_it() -> None:
    app = ProxyApp(parse_config(CONFIG))
    assert set_drained(app, "db2", True) is True
    assert set_drained(app, "db2", True) is False
    assert app.topology.by_name["db2"].drained
    with pytest.raises(DrainError, match="primary"):
        set_drained(app, "db1", True)
    with pytest.raises(DrainError, match="unknown server 'nope'"):
        set_drained(app, "nope", True)
    # A new snapshot from the monitor (db3 went offline) keeps the operator's drain.
    fresh = topology(
        primary(host="127.0.0.1", port=3306),
        node("db2", host="127.0.0.1", port=3307),
        node("db3", host="127.0.0.1", port=3308, state=NodeState.OFFLINE),
        version=5,
    )
    app.set_topology(fresh)
    assert app.topology.by_name["db2"].drained and app.topology.version == 5
    assert app.topology.choose_replica(0.3) is None
    assert set_drained(app, "db2", False) is True
    assert not app.topology.by_name["db2"].drained and app.drained == frozenset()


def test_digests_off_and_admin_config_errors() -> None:
    app = ProxyApp(parse_config(CONFIG + "[admin]\nquery_digest = false\n"))
    assert app.digests is None
    cfg = parse_config(CONFIG + '[admin]\nsql_listen = "127.0.0.1:0"\n')
    assert cfg.admin.sql_address is None  # no admin users: not served
    with pytest.raises(ConfigError, match=r"admin\.users\[0\]\.password"):
        parse_config(CONFIG + '[[admin.users]]\nname = "a"\npassword = ""\n')
    with pytest.raises(ConfigError, match=r"admin\.users\[1\]"):
        parse_config(
            CONFIG
            + '[[admin.users]]\nname = "a"\npassword = "x"\n[[admin.users]]\nname = "a"\npassword = "y"\n'
        )
    with pytest.raises(ConfigError, match=r"admin\.sql_listen"):
        parse_config(
            CONFIG + '[admin]\nsql_listen = "127.0.0.1:6033"\n[[admin.users]]\nname = "a"\npassword = "x"\n'
        )
