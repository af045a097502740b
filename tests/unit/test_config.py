"""rwproxy.config: loading, defaults, one failing case per validation rule, dump, topology."""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path
from typing import Any

import pydantic
import pytest

from rwproxy.config import (
    Config,
    ConfigError,
    RoutingConfig,
    dump_effective,
    load_config,
    parse_config,
)
from rwproxy.topology.model import Role
from tests.support.builders import server, user

EXAMPLE = Path(__file__).resolve().parents[2] / "rwproxy.example.toml"

MINIMAL = """
[[users]]
name = "app"
password = "s3cret"

[[servers]]
name = "db1"
host = "127.0.0.1"
"""

USER = user()
SERVER = server(role="primary")


def _hash(password: str) -> str:
    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


def _error(text: str, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="test.toml", **kwargs)
    message = str(info.value)
    assert message.startswith("test.toml: "), message
    return message


# --------------------------------------------------------------------------------------------------
# Loading


def test_example_file_loads() -> None:
    config = load_config(EXAMPLE)
    assert [s.name for s in config.servers] == ["db1", "db2", "db3"]
    assert [u.name for u in config.users] == ["app", "reporting"]
    reporting = config.users[1]
    assert reporting.stage2_hash == hashlib.sha1(hashlib.sha1(b"report-secret").digest()).digest()
    assert reporting.backend_user == "reporting"
    assert config.routing.rules[0].pattern is not None
    assert config.routing.rules[0].pattern.search("select * from DAILY_REPORT where d = 1")


def _model_keys(model: type[pydantic.BaseModel]) -> set[str]:
    keys = set(model.model_fields)
    for field in model.model_fields.values():
        for sub in _sub_models(field.annotation):
            keys |= _model_keys(sub)
    return keys


def _sub_models(annotation: Any) -> list[type[pydantic.BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _sub_models(arg)]


def test_example_documents_every_key() -> None:
    text = EXAMPLE.read_text()
    lines = text.splitlines()
    sections = {"proxy", "users", "backend", "servers", "routing", "monitor", "admin", "rules", "failover"}
    sections |= {"topology_source", "aws", "logging"}  # [topology] (field topology_source), [aws]
    sections |= {"coordination"}
    for key in _model_keys(Config) - sections:
        pattern = re.compile(rf"^#?\s*{key}\s*=")
        where = [i for i, line in enumerate(lines) if pattern.match(line)]
        assert where, f"{key} is missing from the example"
        # The first occurrence is preceded by a comment line explaining it.
        assert lines[where[0] - 1].startswith("#"), f"{key} has no comment above it"


def test_minimal_config_gets_defaults() -> None:
    config = parse_config(MINIMAL)
    assert config.proxy.listen == ("127.0.0.1:6033",)
    assert config.proxy.listen_addresses == (("127.0.0.1", 6033),)
    assert config.proxy.server_version is None
    assert config.proxy.max_connections == 2048
    assert config.proxy.max_packet_size == 64 * 1024 * 1024
    assert config.proxy.shutdown_grace_seconds == 10.0
    assert config.proxy.client_idle_timeout_seconds == 28800.0
    assert config.proxy.local_infile is False
    assert config.proxy.tls_cert is None and config.proxy.tls_key is None
    assert config.proxy.tls_required is False
    assert config.proxy.uvloop is True
    assert (config.proxy.log_level, config.proxy.log_format) == ("info", "text")

    (user,) = config.users
    assert (user.backend_user, user.backend_password) == ("app", "s3cret")
    assert user.default_database is None and user.max_connections is None

    assert config.backend.connect_timeout_seconds == 5.0
    assert config.backend.pool_max_per_server == 256
    assert config.backend.pool_idle_seconds == 300.0
    assert (config.backend.tls, config.backend.tls_ca, config.backend.tls_verify) == (False, None, True)

    (server,) = config.servers
    assert (server.port, server.weight, server.role) == (3306, 1, "auto")

    assert config.routing == RoutingConfig()
    assert config.routing.on_no_replica == "primary"
    assert config.routing.classifier_cache_size == 10000
    assert config.routing.reads_to_primary is False
    assert config.routing.rules == ()

    assert config.monitor.user is None and config.monitor.password is None
    assert (config.monitor.interval_seconds, config.monitor.connect_timeout_seconds) == (1.0, 2.0)

    assert config.admin.http_listen == "127.0.0.1:9306"
    assert config.admin.http_address == ("127.0.0.1", 9306)
    assert config.admin.bearer_token is None
    assert config.monitor.check_timeout_seconds == 1.0
    assert (config.monitor.failures_to_offline, config.monitor.successes_to_online) == (3, 2)
    assert config.monitor.max_replication_lag_seconds == 10.0


def test_config_is_frozen() -> None:
    config = parse_config(MINIMAL)
    with pytest.raises(pydantic.ValidationError):
        config.proxy.max_connections = 1  # type: ignore[misc]


def test_passwords_stay_out_of_repr() -> None:
    config = parse_config(MINIMAL)
    assert "s3cret" not in repr(config)


def test_load_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read the config file"):
        load_config(path)


def test_load_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rw.toml"
    path.write_text(MINIMAL.replace('host = "127.0.0.1"', 'host = "127.0.0.1"\nport = 70000'))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: servers[0].port: must be between 1 and 65535, got 70000"


# --------------------------------------------------------------------------------------------------
# One failing case per rule: the message names the key path and the reason.


def test_toml_syntax_error_has_line_and_column() -> None:
    message = _error(USER + SERVER + "[proxy]\nlisten = \n")
    assert "TOML syntax error" in message
    assert "line 9, column 10" in message


def test_toml_syntax_error_at_end_of_file_has_line() -> None:
    message = _error('[proxy]\nlisten = ["a:1",\n')
    assert "TOML syntax error" in message and "line 3" in message


def test_bad_port() -> None:
    text = USER + SERVER + '[[servers]]\nname = "db2"\nhost = "h2"\nport = 70000\n'
    assert _error(text).endswith("servers[1].port: must be between 1 and 65535, got 70000")


def test_wrong_type_is_not_coerced() -> None:
    message = _error(USER + SERVER.replace('host = "h1"', 'host = "h1"\nport = "3306"'))
    assert 'servers[0].port: must be an integer, got "3306"' in message


def test_several_problems_reported_together() -> None:
    text = USER + SERVER + '[proxy]\nmax_connections = 0\nlog_level = "verbose"\n'
    message = _error(text)
    assert "2 problems" in message
    assert "proxy.max_connections: must be at least 1, got 0" in message
    assert 'proxy.log_level: must be "debug", "info", "warning" or "error", got "verbose"' in message


def test_duplicate_server_names() -> None:
    text = USER + SERVER + SERVER.replace('"h1"', '"h2"').replace("primary", "replica")
    assert _error(text).endswith('servers[1].name: duplicate server name "db1" (also servers[0])')


def test_duplicate_server_addresses() -> None:
    text = USER + SERVER + SERVER.replace('"db1"', '"db2"').replace("primary", "replica")
    assert 'servers[1]: address "h1:3306" is already used by servers[0] ("db1")' in _error(text)


def test_bad_server_name() -> None:
    message = _error(USER + SERVER.replace('"db1"', '"db 1"'))
    assert "servers[0].name: may only contain letters, digits" in message


def test_duplicate_user_names() -> None:
    assert _error(USER + USER + SERVER).endswith('users[1].name: duplicate user name "app" (also users[0])')


def test_password_and_hash_both_given() -> None:
    text = USER + f'password_hash = "{_hash("pw")}"\n' + SERVER
    assert "users[0].password_hash: set either password or password_hash, not both" in _error(text)


def test_neither_password_nor_hash() -> None:
    text = '[[users]]\nname = "app"\n' + SERVER
    assert "users[0].password: is required (or password_hash)" in _error(text)


def test_bad_hash() -> None:
    text = '[[users]]\nname = "app"\npassword_hash = "*1234"\nbackend_password = "x"\n' + SERVER
    message = _error(text)
    assert "users[0].password_hash: must be a mysql_native_password hash" in message
    assert "40 hex digits" in message


def test_hash_without_backend_password() -> None:
    text = f'[[users]]\nname = "app"\npassword_hash = "{_hash("pw")}"\n' + SERVER
    message = _error(text)
    assert "users[0].backend_password: is required when only password_hash is given" in message


def test_hash_with_backend_password_loads_and_normalizes() -> None:
    lower = _hash("pw").lower()
    text = f'[[users]]\nname = "app"\npassword_hash = "{lower}"\nbackend_password = "pw"\n' + SERVER
    user = parse_config(text).users[0]
    assert user.password_hash == _hash("pw")
    assert user.stage2_hash == parse_config(USER + SERVER).users[0].stage2_hash


def test_unknown_key_with_suggestion() -> None:
    text = USER + SERVER + '[proxy]\nlistn = ["0.0.0.0:3306"]\n'
    assert _error(text).endswith("proxy.listn: unknown key 'listn' (did you mean 'listen'?)")


def test_unknown_key_in_table_array_and_top_level() -> None:
    text = USER.replace("password", "pasword") + SERVER + "[rooting]\n"
    message = _error(text)
    assert "users[0].pasword: unknown key 'pasword' (did you mean 'password'?)" in message
    assert "rooting: unknown key 'rooting' (did you mean 'routing'?)" in message


def test_unknown_key_without_suggestion_lists_allowed() -> None:
    message = _error(USER + SERVER + "[backend]\nzzz = 1\n")
    assert "backend.zzz: unknown key 'zzz' (allowed: connect_timeout_seconds, " in message


def test_table_instead_of_table_array() -> None:
    text = USER + '[servers]\nname = "db1"\nhost = "h1"\n'
    assert "servers: must be an array of tables ([[servers]]), not a single table ([servers])" in _error(text)


def test_missing_users_and_servers() -> None:
    message = _error("[proxy]\n")
    assert "users: at least one [[users]] table is required" in message
    assert "servers: at least one [[servers]] table is required" in message


def test_invalid_regex() -> None:
    text = USER + SERVER + '[[routing.rules]]\nmatch_regex = "SELECT [a-"\nroute = "replica"\n'
    message = _error(text)
    assert "routing.rules[0].match_regex: invalid regular expression: " in message
    assert "position" in message


def test_rule_needs_exactly_one_matcher() -> None:
    both = '[[routing.rules]]\nmatch_regex = "x"\nmatch_digest = "y"\nroute = "primary"\n'
    assert "routing.rules[0].match_digest: set either match_regex or match_digest" in _error(
        USER + SERVER + both
    )
    neither = '[[routing.rules]]\nroute = "primary"\n'
    assert "routing.rules[0].match_regex: is required (or match_digest)" in _error(USER + SERVER + neither)


def test_rule_bad_route() -> None:
    text = USER + SERVER + '[[routing.rules]]\nmatch_digest = "x"\nroute = "any"\n'
    assert 'routing.rules[0].route: must be "primary" or "replica", got "any"' in _error(text)


def test_tls_cert_without_key(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("x")
    text = USER + SERVER + '[proxy]\ntls_cert = "cert.pem"\n'
    message = _error(text, base_dir=tmp_path)
    assert "proxy.tls_key: is required when tls_cert is set (give both or neither)" in message


def test_tls_files_resolved_relative_to_config_file(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("x")
    (tmp_path / "key.pem").write_text("x")
    path = tmp_path / "rw.toml"
    path.write_text(
        USER + SERVER + '[proxy]\ntls_cert = "cert.pem"\ntls_key = "key.pem"\ntls_required = true\n'
    )
    config = load_config(path)
    assert config.proxy.tls_cert == tmp_path / "cert.pem"
    assert config.proxy.tls_key == tmp_path / "key.pem"


def test_tls_file_must_exist(tmp_path: Path) -> None:
    text = USER + SERVER + '[backend]\ntls = true\ntls_ca = "missing.pem"\n'
    message = _error(text, base_dir=tmp_path)
    assert f"backend.tls_ca: file not found: {tmp_path / 'missing.pem'}" in message


def test_tls_required_without_cert() -> None:
    message = _error(USER + SERVER + "[proxy]\ntls_required = true\n")
    assert "proxy.tls_required: tls_required = true needs tls_cert and tls_key" in message


def test_bad_listen_address() -> None:
    message = _error(USER + SERVER + '[proxy]\nlisten = ["127.0.0.1:6033", "localhost"]\n')
    assert 'proxy.listen[1]: must be "host:port", got "localhost"' in message


def test_listen_ipv6_and_port_zero() -> None:
    config = parse_config(USER + SERVER + '[proxy]\nlisten = ["[::1]:0", "0.0.0.0:6033"]\n')
    assert config.proxy.listen_addresses == (("::1", 0), ("0.0.0.0", 6033))


def test_max_packet_size_minimum() -> None:
    message = _error(USER + SERVER + "[proxy]\nmax_packet_size = 512\n")
    assert "proxy.max_packet_size: must be between 1024 and 1073741824, got 512" in message


def test_preauth_limits() -> None:
    config = parse_config(MINIMAL)
    assert config.proxy.max_unauthenticated_connections == 256
    assert config.proxy.auth_timeout_seconds == 10.0
    bad = "[proxy]\nmax_unauthenticated_connections = 0\nauth_timeout_seconds = 0\n"
    message = _error(USER + SERVER + bad)
    assert "proxy.max_unauthenticated_connections: must be at least 1, got 0" in message
    assert "proxy.auth_timeout_seconds" in message


def test_negative_timeout() -> None:
    message = _error(USER + SERVER + "[backend]\nconnect_timeout_seconds = -1\n")
    assert "backend.connect_timeout_seconds: must be greater than 0, got -1" in message


def test_bad_server_version() -> None:
    message = _error(USER + SERVER + '[proxy]\nserver_version = "rwproxy"\n')
    assert "proxy.server_version: must start with a MySQL version number" in message


def test_no_primary() -> None:
    replica = SERVER.replace("primary", "replica")
    text = USER + replica + replica.replace("db1", "db2").replace("h1", "h2")
    message = _error(text)
    assert "servers: no server can be the primary" in message
    # A single server is only promoted when its role is "auto".
    assert "servers: no server can be the primary" in _error(USER + replica)


def test_all_auto_needs_the_monitor() -> None:
    auto = SERVER.replace('"primary"', '"auto"')
    text = USER + auto + auto.replace("db1", "db2").replace("h1", "h2")
    assert parse_config(text).topology().primary is None  # the monitor decides
    message = _error(text + "\n[monitor]\nenabled = false\n")
    assert "monitor.enabled" in message and 'role = "primary"' in message


def test_two_primaries() -> None:
    text = USER + SERVER + SERVER.replace("db1", "db2").replace("h1", "h2")
    message = _error(text)
    assert 'servers: exactly one server may have role = "primary", found 2: db1, db2' in message


def test_monitor_password_without_user() -> None:
    message = _error(USER + SERVER + '[monitor]\npassword = "x"\n')
    assert "monitor.user: is required when monitor.password is set" in message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("failures_to_offline = 0", "monitor.failures_to_offline: must be between 1 and 100, got 0"),
        ("successes_to_online = 101", "monitor.successes_to_online: must be between 1 and 100, got 101"),
        ("failures_to_offline = 2.5", "monitor.failures_to_offline: must be an integer, got 2.5"),
        ("check_timeout_seconds = 0", "monitor.check_timeout_seconds: must be greater than 0, got 0"),
        ("max_replication_lag_seconds = -1", "monitor.max_replication_lag_seconds: must be greater than 0"),
        (
            'max_replication_lag_seconds = "10"',
            'monitor.max_replication_lag_seconds: must be a number, got "10"',
        ),
        ("max_replication_lag = 10", "did you mean 'max_replication_lag_seconds'?"),
    ],
)
def test_monitor_thresholds(line: str, expected: str) -> None:
    assert expected in _error(USER + SERVER + f"[monitor]\n{line}\n")


def test_monitor_thresholds_accepted() -> None:
    text = (
        USER
        + SERVER
        + "[monitor]\ninterval_seconds = 0.2\ncheck_timeout_seconds = 0.5\nfailures_to_offline = 5\n"
        + "successes_to_online = 1\nmax_replication_lag_seconds = 2.5\n"
    )
    m = parse_config(text).monitor
    assert (m.interval_seconds, m.check_timeout_seconds) == (0.2, 0.5)
    assert (m.failures_to_offline, m.successes_to_online, m.max_replication_lag_seconds) == (5, 1, 2.5)


def test_admin_http_listen_empty_disables() -> None:
    config = parse_config(USER + SERVER + '[admin]\nhttp_listen = ""\n')
    assert config.admin.http_address is None


def test_admin_http_listen_ipv6_and_port_zero() -> None:
    config = parse_config(USER + SERVER + '[admin]\nhttp_listen = "[::1]:0"\n')
    assert config.admin.http_address == ("::1", 0)


def test_admin_bad_http_listen() -> None:
    message = _error(USER + SERVER + '[admin]\nhttp_listen = "localhost"\n')
    assert 'admin.http_listen: must be "host:port", got "localhost"' in message


def test_admin_http_listen_must_not_be_a_client_port() -> None:
    text = (
        '[proxy]\nlisten = ["127.0.0.1:6033"]\n' + USER + SERVER + '[admin]\nhttp_listen = "127.0.0.1:6033"\n'
    )
    assert 'admin.http_listen: "127.0.0.1:6033" is also in proxy.listen' in _error(text)


@pytest.mark.parametrize("token", ["", "two words", "tab\\there"])
def test_admin_bad_bearer_token(token: str) -> None:
    message = _error(USER + SERVER + f'[admin]\nbearer_token = "{token}"\n')
    assert "admin.bearer_token: must be a non-empty string without spaces or control characters" in message


def test_admin_bearer_token_is_masked() -> None:
    config = parse_config(USER + SERVER + '[admin]\nbearer_token = "s3cret-token"\n')
    assert config.admin.bearer_token == "s3cret-token"
    assert "s3cret-token" not in repr(config)
    dumped = dump_effective(config)
    assert "s3cret-token" not in dumped and 'bearer_token = "***"' in dumped


# --------------------------------------------------------------------------------------------------
# Dump


def test_dump_effective_masks_passwords() -> None:
    text = (
        USER.replace('"pw"', '"client-pw"')
        + 'backend_password = "backend-pw"\n'
        + f'[[users]]\nname = "ro"\npassword_hash = "{_hash("x")}"\nbackend_password = "ro-pw"\n'
        + SERVER
        + '[monitor]\nuser = "mon"\npassword = "mon-pw"\n'
    )
    dumped = dump_effective(parse_config(text))
    for secret in ("client-pw", "backend-pw", "ro-pw", "mon-pw", _hash("x")[1:]):
        assert secret not in dumped
    # password, backend_password (x2), password_hash, monitor.password
    assert dumped.count('= "***"') == 5
    assert "max_connections = 2048" in dumped  # defaults filled in
    assert "# server_version is not set" in dumped


def test_dump_effective_round_trips() -> None:
    config = load_config(EXAMPLE)
    dumped = dump_effective(config)
    tomllib.loads(dumped)  # valid TOML
    # "***" is a valid plaintext password but not a valid hash: put a real hash back.
    again = parse_config(dumped.replace('password_hash = "***"', f'password_hash = "{_hash("x")}"'))
    assert again.routing == config.routing
    assert again.servers == config.servers
    assert again.proxy == config.proxy
    assert again.users[0].password == "***"


def test_to_toml_dict_leaves_out_unset_keys() -> None:
    data = parse_config(MINIMAL).to_toml_dict()
    assert "server_version" not in data["proxy"]
    assert data["users"] == [
        {"name": "app", "password": "***", "backend_user": "app", "backend_password": "***"}
    ]
    assert data["servers"][0] == {
        "name": "db1",
        "host": "127.0.0.1",
        "port": 3306,
        "weight": 1,
        "role": "auto",
        "priority": 0,
    }
    assert parse_config(MINIMAL).to_toml_dict(mask_secrets=False)["users"][0]["password"] == "s3cret"


# --------------------------------------------------------------------------------------------------
# Topology


def test_topology_from_example() -> None:
    topology = load_config(EXAMPLE).topology()
    assert topology.primary is not None
    assert (topology.primary.name, topology.primary.address, topology.primary.role) == (
        "db1",
        ("10.0.0.11", 3306),
        Role.PRIMARY,
    )
    assert [(n.name, n.role, n.weight) for n in topology.replicas] == [
        ("db2", Role.REPLICA, 2),
        ("db3", Role.REPLICA, 1),
    ]
    assert set(topology.by_name) == {"db1", "db2", "db3"}


def test_topology_single_auto_server_is_primary() -> None:
    topology = parse_config(MINIMAL).topology()
    assert topology.primary is not None and topology.primary.name == "db1"
    assert topology.replicas == ()


def test_topology_auto_next_to_primary_is_replica() -> None:
    text = USER + SERVER + '[[servers]]\nname = "db2"\nhost = "h2"\nport = 3307\n'
    topology = parse_config(text).topology()
    assert [n.name for n in topology.replicas] == ["db2"]
    assert topology.replicas[0].port == 3307
