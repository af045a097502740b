"""``[coordination]``: absent means off; endpoints, names and the timeout/TTL rule are checked."""

from __future__ import annotations

import pytest

from rwproxy.config import ConfigError, parse_config
from rwproxy.coordination.election import Published
from rwproxy.coordination.etcd import Compare, KeyValue
from tests.support.builders import config_text, server

BASE = config_text(servers=[server()])


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + text, source="test.toml")
    return str(info.value)


def test_absent_section_is_off() -> None:
    config = parse_config(BASE)
    assert not config.coordination.enabled
    assert config.coordination.etcd == ()


def test_endpoints_and_defaults() -> None:
    config = parse_config(BASE + '[coordination]\netcd = ["10.0.0.1:2379", "https://e2:2379/"]\n')
    c = config.coordination
    assert c.enabled and c.etcd == ("10.0.0.1:2379", "https://e2:2379/")
    assert (c.cluster, c.prefix, c.instance, c.lease_ttl_seconds) == ("default", "/rwproxy", None, 15)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('etcd = ["10.0.0.1"]', 'coordination.etcd[0]: must be "host:port", got "10.0.0.1"'),
        ('etcd = ["ftp://h:1"]', "coordination.etcd[0]: must be"),
        ('etcd = ["h:1"]\ncluster = "a/b"', "coordination.cluster: must be letters"),
        ('prefix = "rwproxy/"', 'coordination.prefix: must start with "/"'),
        ("lease_ttl_seconds = 1", "coordination.lease_ttl_seconds: must be between 2 and 300"),
        (
            'etcd = ["h:1"]\nlease_ttl_seconds = 3\nrequest_timeout_seconds = 2.0',
            "coordination.request_timeout_seconds: must be at most a third of lease_ttl_seconds",
        ),
        ('etcd = ["h:1"]\nleader_ttl = 3', "coordination.leader_ttl"),
    ],
)
def test_bad_values_name_the_key(text: str, expected: str) -> None:
    assert expected in _error("[coordination]\n" + text + "\n")


def test_coordination_without_a_failover_controller_is_refused() -> None:
    text = '[failover]\nmode = "off"\n[coordination]\netcd = ["h:1"]\n'
    assert "coordination.etcd: coordinates failover: it needs monitor.enabled = true" in _error(text)


def test_compare_json_uses_etcd_field_names() -> None:
    assert Compare("/k", "CREATE", 0).to_json() == {
        "key": "L2s=",
        "target": "CREATE",
        "result": "EQUAL",
        "create_revision": "0",
    }
    assert Compare("/k", "LEASE", 7).to_json()["lease"] == "7"


def test_published_round_trip_and_garbage() -> None:
    p = Published("db2", 3, "db1", "0-1-9", "a")
    kv = KeyValue("/rwproxy/x/primary", p.to_json().encode(), 5, 9, 0)
    back = Published.from_kv(kv)
    assert back is not None and back.as_dict() == p.as_dict() and back.mod_revision == 9
    assert Published.from_kv(KeyValue("/k", b"not json", 1, 1, 0)) is None
    assert Published.from_kv(KeyValue("/k", b'{"epoch": 1}', 1, 1, 0)) is None
