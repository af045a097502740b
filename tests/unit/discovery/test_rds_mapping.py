"""The pure RDS mapping (rwproxy.discovery.rds) on dicts shaped like boto3's answers, and the
[topology] / [aws] / [backend] credentials config."""

from __future__ import annotations

from typing import Any

import pytest

from rwproxy.backend.credentials import CredentialsError, parse_secret
from rwproxy.config import ConfigError, parse_config
from rwproxy.config.aws_sections import TopologyConfig
from rwproxy.discovery.rds import (
    from_cluster,
    from_source_instance,
    from_tagged,
    role_disagreement,
    select,
)
from rwproxy.topology.model import Role
from tests.support.builders import server, user

REGION_DNS = "aaaaaaaaaa.eu-west-1.rds.amazonaws.com"


def instance(name: str, status: str = "available", port: int = 3306, **extra: Any) -> dict[str, Any]:
    """One DBInstances[] entry as DescribeDBInstances returns it (the fields rwproxy reads)."""
    doc: dict[str, Any] = {
        "DBInstanceIdentifier": name,
        "DBInstanceClass": "db.r6g.large",
        "Engine": "mysql",
        "DBInstanceStatus": status,
        "Endpoint": {"Address": f"{name}.{REGION_DNS}", "Port": port, "HostedZoneId": "Z1"},
        "AvailabilityZone": "eu-west-1a",
        "ReadReplicaDBInstanceIdentifiers": [],
        "TagList": [],
    }
    doc.update(extra)
    return doc


def test_source_instance_and_its_replicas() -> None:
    src = instance("orders", ReadReplicaDBInstanceIdentifiers=["orders-r1", "orders-r2"])
    r1 = instance("orders-r1", ReadReplicaSourceDBInstanceIdentifier="orders", AvailabilityZone="eu-west-1b")
    r2 = instance("orders-r2", ReadReplicaSourceDBInstanceIdentifier="orders")
    stray = instance("other-r1", ReadReplicaSourceDBInstanceIdentifier="other")
    servers = from_source_instance(src, [r1, r2, stray])
    assert [(s.name, s.role) for s in servers] == [
        ("orders", Role.PRIMARY),
        ("orders-r1", Role.REPLICA),
        ("orders-r2", Role.REPLICA),
    ]
    assert servers[1].availability_zone == "eu-west-1b" and servers[1].instance_class == "db.r6g.large"
    assert (servers[0].host, servers[0].port) == (f"orders.{REGION_DNS}", 3306)


def test_address_map_rewrites_but_keeps_the_endpoint() -> None:
    topo = TopologyConfig(
        source="rds",
        instance_id="orders",
        address_map={
            f"orders.{REGION_DNS}:3306": "127.0.0.1:13306",
            f"orders-r1.{REGION_DNS}": "10.1.1.1:3307",
        },
    )
    src = instance("orders", ReadReplicaDBInstanceIdentifiers=["orders-r1", "orders-r2"])
    servers = from_source_instance(src, [instance("orders-r1"), instance("orders-r2")], topo.map_address)
    assert [(s.host, s.port) for s in servers] == [
        ("127.0.0.1", 13306),
        ("10.1.1.1", 3307),
        (f"orders-r2.{REGION_DNS}", 3306),  # unmapped: as RDS reports it
    ]
    assert (servers[0].endpoint, servers[0].endpoint_port) == (f"orders.{REGION_DNS}", 3306)


def test_aurora_members_writer_first_instance_endpoints() -> None:
    cluster = {
        "DBClusterIdentifier": "aur",
        "Endpoint": "aur.cluster-xyz.eu-west-1.rds.amazonaws.com",
        "DBClusterMembers": [
            {"DBInstanceIdentifier": "aur-1", "IsClusterWriter": False},
            {"DBInstanceIdentifier": "aur-2", "IsClusterWriter": True},
            {"DBInstanceIdentifier": "aur-3", "IsClusterWriter": False},
        ],
    }
    members = [instance(f"aur-{i}", DBClusterIdentifier="aur") for i in (1, 2, 3)]
    servers = from_cluster(cluster, [*members, instance("not-a-member")])
    assert [(s.name, s.role) for s in servers] == [
        ("aur-2", Role.PRIMARY),
        ("aur-1", Role.REPLICA),
        ("aur-3", Role.REPLICA),
    ]
    assert all("cluster" not in (s.host or "") for s in servers)  # never the cluster DNS name
    assert servers[0].server_config().role == "auto"  # read_only decides who takes writes


def test_tag_discovery_roles() -> None:
    tags = {"rwproxy-cluster": "orders"}
    tagged = [{"Key": "rwproxy-cluster", "Value": "orders"}, {"Key": "team", "Value": "x"}]
    instances = [
        instance("solo", TagList=tagged),
        instance("solo-r1", TagList=tagged, ReadReplicaSourceDBInstanceIdentifier="solo"),
        instance("aur-1", TagList=tagged, DBClusterIdentifier="aur"),
        instance("aur-2", TagList=tagged, DBClusterIdentifier="aur"),
        instance("untagged"),
        instance("wrong-value", TagList=[{"Key": "rwproxy-cluster", "Value": "billing"}]),
    ]
    servers = from_tagged(instances, tags, cluster_writers={"aur-2"})
    assert [(s.name, s.role) for s in servers] == [
        ("aur-2", Role.PRIMARY),
        ("solo", Role.PRIMARY),
        ("aur-1", Role.REPLICA),
        ("solo-r1", Role.REPLICA),
    ]


def test_select_statuses_endpoints_and_duplicate_addresses() -> None:
    src = instance("p", ReadReplicaDBInstanceIdentifiers=["r1", "r2", "r3", "r4"])
    r1 = instance("r1", status="backing-up")
    r2 = instance("r2", status="creating")
    del r2["Endpoint"]  # an instance being created has no endpoint yet
    r3 = instance("r3", status="modifying")
    r4 = instance("r4")
    mapper = TopologyConfig(
        source="rds", instance_id="p", address_map={f"r4.{REGION_DNS}": f"p.{REGION_DNS}:3306"}
    ).map_address
    servers = from_source_instance(src, [r1, r2, r3, r4], mapper)
    chosen = select(servers, ["available", "backing-up"])
    assert [s.name for s in chosen.servers] == ["p", "r1"]
    assert {s.name: why for s, why in chosen.skipped} == {
        "r2": "status creating",
        "r3": "status modifying",
        "r4": f"address p.{REGION_DNS}:3306 is already used by p (check address_map)",
    }
    assert chosen.writers == ("p",)
    assert [c.name for c in chosen.server_configs()] == ["p", "r1"]


def test_role_disagreement_words() -> None:
    assert role_disagreement(Role.PRIMARY, True) == (
        "RDS says writer, but the server is read_only = ON: it gets no writes"
    )
    assert role_disagreement(Role.REPLICA, False) is not None
    assert role_disagreement(Role.PRIMARY, False) is None
    assert role_disagreement(Role.REPLICA, None) is None  # not checked yet: nothing to report


def test_parse_secret() -> None:
    assert parse_secret('{"username": "app", "password": "s3cr3t", "engine": "mysql"}') == ("app", "s3cr3t")
    assert parse_secret('{"password": "x"}') == (None, "x")
    assert parse_secret("plain-password") == (None, "plain-password")
    with pytest.raises(CredentialsError, match='without a string "password"'):
        parse_secret('{"username": "app"}')
    with pytest.raises(CredentialsError, match="not valid JSON") as err:
        parse_secret('{"password": "leak-me"')
    assert "leak-me" not in str(err.value)


# --------------------------------------------------------------------------------------------------
# Config

USERS = user()
SERVER = server(host="127.0.0.1", role="primary")


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(text, "t.toml")
    return str(err.value)


def test_rds_source_without_servers() -> None:
    config = parse_config(
        USERS
        + '[topology]\nsource = "rds"\ninstance_id = "orders"\nrefresh_interval_seconds = 5.0\n'
        + 'accepted_statuses = ["available", "backing-up"]\n'
        + '[topology.address_map]\n"orders.x.rds.amazonaws.com:3306" = "127.0.0.1:3306"\n'
        + '[aws]\nregion = "eu-west-1"\nendpoint_url = "http://127.0.0.1:5000"\n'
    )
    assert config.servers == ()
    assert config.topology_source.instance_id == "orders"
    assert config.topology_source.map_address("orders.x.rds.amazonaws.com", 3306) == ("127.0.0.1", 3306)
    assert config.aws.region == "eu-west-1"
    assert config.topology().nodes == ()


def test_topology_config_errors_name_the_key() -> None:
    assert "topology.source: must be" in _error(USERS + SERVER + '[topology]\nsource = "consul"\n')
    assert 'topology.source: source = "rds" needs one of' in _error(USERS + '[topology]\nsource = "rds"\n')
    msg = _error(USERS + '[topology]\nsource = "rds"\ninstance_id = "a"\ncluster_id = "b"\n')
    assert "topology.cluster_id: set only one of" in msg
    assert "topology.instance_id: is only used with source" in _error(
        USERS + SERVER + '[topology]\ninstance_id = "a"\n'
    )
    assert "topology.instance_id: must be an RDS identifier" in _error(
        USERS + '[topology]\nsource = "rds"\ninstance_id = "9_bad"\n'
    )
    assert "topology.accepted_statuses[1]: unknown RDS instance status" in _error(
        USERS + '[topology]\nsource = "rds"\ninstance_id = "a"\naccepted_statuses = ["available", "avail"]\n'
    )
    assert 'topology.address_map."a.b": must be "host:port"' in _error(
        USERS + '[topology]\nsource = "rds"\ninstance_id = "a"\naddress_map = { "a.b" = "nowhere" }\n'
    )
    assert 'servers: must be empty with topology.source = "rds"' in _error(
        USERS + SERVER + '[topology]\nsource = "rds"\ninstance_id = "a"\n'
    )
    assert "servers: at least one [[servers]] table is required" in _error(USERS)
    assert (
        "topology.refresh_interval: unknown key 'refresh_interval' (did you mean 'refresh_interval_seconds'?)"
        in _error(USERS + SERVER + "[topology]\nrefresh_interval = 1\n")
    )
    assert "aws.endpoint_url: must be an http(s) URL" in _error(
        USERS + SERVER + '[aws]\nendpoint_url = "x"\n'
    )


def test_backend_credentials_config() -> None:
    assert "backend.password_env: is required" in _error(USERS + SERVER + '[backend]\ncredentials = "env"\n')
    assert "backend.secret_arn: is required" in _error(
        USERS + SERVER + '[backend]\ncredentials = "secretsmanager"\n'
    )
    assert "backend.secret_arn: is only used with" in _error(
        USERS + SERVER + '[backend]\nsecret_arn = "arn:aws:secretsmanager:x"\n'
    )
    assert "backend.secret_arn: must be a secret ARN" in _error(
        USERS + SERVER + '[backend]\ncredentials = "secretsmanager"\nsecret_arn = "mysecret"\n'
    )
    assert 'backend.tls: credentials = "iam" sends the token in clear text' in _error(
        USERS + SERVER + '[backend]\ncredentials = "iam"\n'
    )
    config = parse_config(USERS + SERVER + '[backend]\ncredentials = "iam"\ntls = true\ntls_verify = false\n')
    assert config.backend.credentials == "iam"


def test_effective_dump_round_trips_topology() -> None:
    from rwproxy.config import dump_effective

    config = parse_config(
        USERS
        + '[topology]\nsource = "rds"\ntag_filters = { "rwproxy-cluster" = "orders" }\n'
        + 'address_map = { "a.example.com:3306" = "127.0.0.1:3306" }\n'
    )
    text = dump_effective(config)
    assert "[topology]" in text and 'source = "rds"' in text
    again = parse_config(text.replace("# ", "#"))
    assert again.topology_source == config.topology_source


def test_deploy_examples_load() -> None:
    """deploy/examples/*.toml are valid (their RDS CA bundle path is left out: it exists only there)."""
    import re
    from pathlib import Path

    examples = sorted((Path(__file__).resolve().parents[3] / "deploy" / "examples").glob("*.toml"))
    assert len(examples) == 3
    for path in examples:
        text = re.sub(r"(?m)^tls_ca = .*$", "", path.read_text())
        config = parse_config(text, str(path))
        assert config.topology_source.source == "rds" and config.servers == ()
