"""One frozen pydantic model per config section: [proxy], [[users]], [backend], [[servers]],
[routing], [monitor], [admin]."""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, Strict, field_validator, model_validator

from rwproxy.config.fields import (
    _NATIVE_HASH,
    _SERVER_NAME,
    _VERSION,
    _at_least,
    _between,
    _ExistingFile,
    _fail,
    _ListenAddress,
    _Model,
    _NonEmptyStr,
    _PositiveSeconds,
    _show,
    _split_host_port,
)
from rwproxy.topology.heartbeat import parse_table

__all__ = [
    "AdminConfig",
    "AdminUserConfig",
    "BackendConfig",
    "LoggingConfig",
    "MonitorConfig",
    "ProxyConfig",
    "RoutingConfig",
    "RoutingRule",
    "ServerConfig",
    "UserConfig",
]


class ProxyConfig(_Model):
    """``[proxy]``: the client-facing side."""

    listen: Annotated[tuple[_ListenAddress, ...], Strict(False)] = ("127.0.0.1:6033",)
    server_version: str | None = None
    max_connections: Annotated[int, _at_least(1)] = 2048
    max_packet_size: Annotated[int, _between(1024, 1 << 30)] = 64 * 1024 * 1024
    shutdown_grace_seconds: Annotated[float, _at_least(0)] = 10.0
    client_idle_timeout_seconds: _PositiveSeconds = 28800.0
    local_infile: bool = False
    tls_cert: _ExistingFile | None = None
    tls_key: _ExistingFile | None = None
    tls_required: bool = False
    auth_plugin: Literal["mysql_native_password", "caching_sha2_password"] = "mysql_native_password"
    uvloop: bool = True
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    # Before authentication (rwproxy.frontend.preauth): at most this many clients at once (past it: 1040),
    # each done with its whole login within auth_timeout_seconds (as MySQL's connect_timeout).
    max_unauthenticated_connections: Annotated[int, _at_least(1)] = 256
    auth_timeout_seconds: _PositiveSeconds = 10.0
    # Offer CLIENT_QUERY_ATTRIBUTES to clients (rwproxy.frontend.query_attributes: hints, stripped).
    query_attributes: bool = True
    # Worker processes (rwproxy.workers): N processes serve clients on the same listeners, one
    # supervisor runs the monitor, failover and admin for all of them. "auto": one per CPU core.
    workers: Annotated[int, _at_least(1)] | Literal["auto"] = 1

    @property
    def worker_count(self) -> int:
        """``workers`` as a number (``"auto"``: ``os.cpu_count()``)."""
        if self.workers == "auto":
            import os

            return os.cpu_count() or 1
        return self.workers

    @field_validator("listen")
    @classmethod
    def _listen_list(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            _fail('must list at least one "host:port" address')
        seen: set[tuple[str, int]] = set()
        for i, text in enumerate(value):
            host, port = _split_host_port(text, min_port=0)
            if (host.lower(), port) in seen and port != 0:
                _fail(f"duplicate address {_show(text)}", f"[{i}]")
            seen.add((host.lower(), port))
        return value

    @field_validator("server_version")
    @classmethod
    def _version_shape(cls, value: str | None) -> str | None:
        if value is not None and not _VERSION.match(value):
            _fail(f'must start with a MySQL version number such as "8.0.36", got {_show(value)}')
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> ProxyConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            missing = "tls_key" if self.tls_key is None else "tls_cert"
            other = "tls_cert" if missing == "tls_key" else "tls_key"
            _fail(f"is required when {other} is set (give both or neither)", missing)
        if self.tls_required and self.tls_cert is None:
            _fail("tls_required = true needs tls_cert and tls_key", "tls_required")
        return self

    @property
    def listen_addresses(self) -> tuple[tuple[str, int], ...]:
        """``listen`` parsed into (host, port) pairs; IPv6 hosts without brackets."""
        return tuple(_split_host_port(text, min_port=0) for text in self.listen)


class UserConfig(_Model):
    """``[[users]]``: one client account. Exactly one of ``password`` / ``password_hash``.

    After validation ``backend_user`` and ``backend_password`` are always filled: they default to
    ``name`` and the plaintext ``password``.
    """

    name: _NonEmptyStr
    password: str | None = Field(default=None, repr=False)
    password_hash: str | None = Field(default=None, repr=False)
    backend_user: _NonEmptyStr = ""
    backend_password: str = Field(default="", repr=False)
    default_database: str | None = None
    max_connections: Annotated[int, _at_least(1)] | None = None
    consistency: Literal["eventual", "read_your_writes", "primary", "universal"] | None = (
        None  # else routing's
    )
    # Multiplexing (rwproxy.frontend.multiplex): between transactions, a session that holds nothing
    # binding it to its backend connections lends them to other sessions.
    multiplex: bool | None = None  # None: on

    @model_validator(mode="before")
    @classmethod
    def _fill_backend_credentials(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if "backend_user" not in data and isinstance(data.get("name"), str):
                data["backend_user"] = data["name"]
            if "backend_password" not in data and isinstance(data.get("password"), str):
                data["backend_password"] = data["password"]
        return data

    @field_validator("password_hash")
    @classmethod
    def _hash_shape(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _NATIVE_HASH.fullmatch(value):
            _fail(
                'must be a mysql_native_password hash: "*" followed by 40 hex digits '
                "(as in mysql.user.authentication_string)"
            )
        return value.upper()

    @model_validator(mode="after")
    def _one_password(self) -> UserConfig:
        if self.password is not None and self.password_hash is not None:
            _fail("set either password or password_hash, not both", "password_hash")
        if self.password is None and self.password_hash is None:
            _fail("is required (or password_hash)", "password")
        if "backend_password" not in self.model_fields_set:
            _fail(
                "is required when only password_hash is given: the proxy needs the plaintext "
                "password to log in to the servers",
                "backend_password",
            )
        return self

    @property
    def stage2_hash(self) -> bytes:
        """SHA1(SHA1(password)): what mysql_native_password verifies a client's scramble against."""
        if self.password_hash is not None:
            return bytes.fromhex(self.password_hash[1:])
        assert self.password is not None
        return hashlib.sha1(hashlib.sha1(self.password.encode()).digest()).digest()


class BackendConfig(_Model):
    """``[backend]``: how the proxy connects to the MySQL servers."""

    connect_timeout_seconds: _PositiveSeconds = 5.0
    pool_max_per_server: Annotated[int, _at_least(1)] = 256
    pool_idle_seconds: _PositiveSeconds = 300.0
    tls: bool = False
    tls_ca: _ExistingFile | None = None
    tls_verify: bool = True
    # Where the backend password comes from (backend.credentials): "config" = users[].backend_password;
    # "env" = the variable password_env; "secretsmanager" = secret_arn; "iam" = RDS IAM auth tokens.
    credentials: Literal["config", "env", "secretsmanager", "iam"] = "config"
    password_env: str | None = None
    secret_arn: str | None = None
    secret_refresh_seconds: _PositiveSeconds = 300.0
    # More sessions than pool_max_per_server wait this long for a free connection, then ERROR 1040.
    pool_wait_timeout_seconds: _PositiveSeconds = 10.0

    @model_validator(mode="after")
    def _ca_needs_tls(self) -> BackendConfig:
        if self.tls_ca is not None and not self.tls:
            _fail("is set but tls = false; set tls = true or remove tls_ca", "tls_ca")
        return self

    @model_validator(mode="after")
    def _credentials_source(self) -> BackendConfig:
        needs = {"env": "password_env", "secretsmanager": "secret_arn"}
        for source, key in needs.items():
            if self.credentials == source and not getattr(self, key):
                _fail(f'is required with credentials = "{source}"', key)
            if self.credentials != source and getattr(self, key) is not None:
                _fail(f'is only used with credentials = "{source}"', key)
        if self.secret_arn is not None and not self.secret_arn.startswith("arn:"):
            _fail(
                f'must be a secret ARN ("arn:aws:secretsmanager:..."), got {_show(self.secret_arn)}',
                "secret_arn",
            )
        if self.credentials == "iam" and not self.tls:
            _fail(
                'credentials = "iam" sends the token in clear text (mysql_clear_password): it needs '
                "tls = true",
                "tls",
            )
        return self


class ServerConfig(_Model):
    """``[[servers]]``: one MySQL server."""

    name: str
    host: _NonEmptyStr
    port: Annotated[int, _between(1, 65535)] = 3306
    weight: Annotated[int, _at_least(0)] = 1
    role: Literal["primary", "replica", "auto"] = "auto"
    # Failover: among equally advanced replicas the highest priority is promoted; < 0: never.
    priority: int = 0

    @field_validator("name")
    @classmethod
    def _name_shape(cls, value: str) -> str:
        if not _SERVER_NAME.fullmatch(value):
            _fail(f"may only contain letters, digits, '_', '.' and '-', got {_show(value)}")
        return value

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)


class RoutingRule(_Model):
    """``[[routing.rules]]``: send statements that match to ``route``. First match wins.

    ``match_regex`` is searched (``re.search``, case-insensitive) in the statement text;
    ``match_digest`` is compared with the statement's normalized digest text.
    """

    name: str | None = None
    match_regex: str | None = None
    match_digest: str | None = None
    route: Literal["primary", "replica"]
    _pattern: re.Pattern[str] | None = PrivateAttr(default=None)

    @field_validator("match_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value:
            _fail("must not be empty")
        try:
            re.compile(value, re.IGNORECASE)
        except (re.error, OverflowError, RecursionError) as exc:
            _fail(f"invalid regular expression: {exc}")
        return value

    @field_validator("match_digest")
    @classmethod
    def _digest_not_empty(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            _fail("must not be empty")
        return value

    @model_validator(mode="after")
    def _one_matcher(self) -> RoutingRule:
        if self.match_regex is not None and self.match_digest is not None:
            _fail("set either match_regex or match_digest, not both", "match_digest")
        if self.match_regex is None and self.match_digest is None:
            _fail("is required (or match_digest)", "match_regex")
        return self

    def model_post_init(self, context: Any, /) -> None:
        if self.match_regex is not None:
            self._pattern = re.compile(self.match_regex, re.IGNORECASE)

    @property
    def pattern(self) -> re.Pattern[str] | None:
        """``match_regex`` compiled with ``re.IGNORECASE`` (None for digest rules)."""
        return self._pattern


class RoutingConfig(_Model):
    """``[routing]``."""

    on_no_replica: Literal["primary", "error"] = "primary"
    classifier_cache_size: Annotated[int, _at_least(0)] = 10000
    reads_to_primary: bool = False
    strategy: Literal["weighted", "least_lag", "least_outstanding"] = "weighted"
    # Causal reads (see README "Consistency modes"): the default for every user and session.
    consistency: Literal["eventual", "read_your_writes", "primary", "universal"] = "eventual"
    causal_wait_timeout_seconds: _PositiveSeconds = 0.25
    gtid_tracking: bool = True
    rules: Annotated[tuple[RoutingRule, ...], Strict(False)] = ()
    # A session's plain reads stay on one replica while it is usable (rwproxy.router.sticky).
    sticky_replica: bool = False
    # A replica read not finished after this long is stopped (KILL QUERY) and run again on another
    # replica or the primary when nothing was sent yet, else fails with ERROR 3024. None: no limit.
    replica_read_timeout_seconds: _PositiveSeconds | None = None

    @field_validator("rules")
    @classmethod
    def _unique_rule_names(cls, rules: tuple[RoutingRule, ...]) -> tuple[RoutingRule, ...]:
        seen: dict[str, int] = {}
        for i, rule in enumerate(rules):
            if rule.name is None:
                continue
            if rule.name in seen:
                _fail(
                    f"duplicate rule name {_show(rule.name)} (also rules[{seen[rule.name]}])", f"[{i}].name"
                )
            seen[rule.name] = i
        return rules


class MonitorConfig(_Model):
    """``[monitor]``: credentials, pacing and thresholds of the backend health monitor
    (``rwproxy.topology.monitor``; states and hysteresis in ``rwproxy.topology.health``).

    ``user``/``password`` unset: the monitor logs in with the first user's backend credentials.
    """

    enabled: bool = True
    user: str | None = None
    password: str | None = Field(default=None, repr=False)
    interval_seconds: _PositiveSeconds = 1.0
    connect_timeout_seconds: _PositiveSeconds = 2.0
    check_timeout_seconds: _PositiveSeconds = 1.0
    failures_to_offline: Annotated[int, _between(1, 100)] = 3
    successes_to_online: Annotated[int, _between(1, 100)] = 2
    max_replication_lag_seconds: _PositiveSeconds = 10.0
    # Lag-cascade guard: replicas over the soft threshold stop serving reads, except that the
    # min_replicas least-lagged ones keep serving (never one over max_replication_lag_seconds).
    soft_replication_lag_seconds: _PositiveSeconds | None = None
    min_replicas: Annotated[int, _at_least(0)] = 1
    # Heartbeat lag (pt-heartbeat's table, "db.table"; unset: off): rwproxy.topology.heartbeat.
    heartbeat_table: str | None = None
    heartbeat_write: bool = True  # rwproxy REPLACEs the primary's row itself
    heartbeat_interval_seconds: _PositiveSeconds = 0.25
    # Connect timeout while a server is failing its checks (a hung server accepts TCP connections
    # but never answers): detected in about this times failures_to_offline. None: check_timeout_seconds.
    failing_connect_timeout_seconds: _PositiveSeconds | None = None

    @field_validator("heartbeat_table")
    @classmethod
    def _heartbeat_table_name(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_table(value)
            except ValueError as exc:
                _fail(str(exc))
        return value

    @model_validator(mode="after")
    def _password_needs_user(self) -> MonitorConfig:
        if self.password is not None and self.user is None:
            _fail("is required when monitor.password is set", "user")
        soft = self.soft_replication_lag_seconds
        if soft is not None and soft >= self.max_replication_lag_seconds:
            _fail(
                f"must be below max_replication_lag_seconds ({self.max_replication_lag_seconds:g})",
                "soft_replication_lag_seconds",
            )
        return self


class AdminUserConfig(_Model):
    """``[[admin.users]]``: an account of the admin SQL interface (not a client account)."""

    name: _NonEmptyStr
    password: str | None = Field(default=None, repr=False)
    password_hash: str | None = Field(default=None, repr=False)

    @field_validator("password")
    @classmethod
    def _password_not_empty(cls, value: str | None) -> str | None:
        if value is not None and not value:
            _fail("must not be empty (an empty admin password would let anyone in)")
        return value

    @field_validator("password_hash")
    @classmethod
    def _hash_shape(cls, value: str | None) -> str | None:
        if value is not None and not _NATIVE_HASH.fullmatch(value):
            _fail(
                'must be a mysql_native_password hash: "*" followed by 40 hex digits '
                "(SELECT PASSWORD('...') in MariaDB)"
            )
        return value

    @model_validator(mode="after")
    def _one_password(self) -> AdminUserConfig:
        if self.password is not None and self.password_hash is not None:
            _fail("set either password or password_hash, not both", "password_hash")
        if self.password is None and self.password_hash is None:
            _fail("is required (or password_hash)", "password")
        return self

    @property
    def native_stage2_hex(self) -> str:
        """SHA1(SHA1(password)) in hex: what mysql_native_password checks a scramble against."""
        if self.password_hash is not None:
            return self.password_hash[1:].lower()
        assert self.password is not None
        return hashlib.sha1(hashlib.sha1(self.password.encode()).digest()).hexdigest()


class AdminConfig(_Model):
    """``[admin]``: the admin HTTP interface (``rwproxy.admin.http``: /metrics, /healthz, /readyz, /status).

    ``http_listen = ""`` disables it. ``bearer_token`` is required by the mutating endpoints (POST
    /servers/{name}/drain, /undrain, /switchover; without a token they answer 403); the read-only
    endpoints are not authenticated, so keep ``http_listen`` on loopback or a private network.
    ``sql_listen``: the admin SQL interface (``rwproxy.admin.sql``), served when ``[[admin.users]]``
    exist. ``query_digest*``: the per-digest statistics table (``rwproxy.observability.digests``).
    """

    http_listen: str = "127.0.0.1:9306"
    bearer_token: str | None = Field(default=None, repr=False)
    # Admin SQL interface (rwproxy.admin.sql): served only when users are configured.
    sql_listen: str = "127.0.0.1:6032"
    users: Annotated[tuple[AdminUserConfig, ...], Strict(False)] = ()
    # Query digest table (rwproxy.observability.digests): on/off, entries kept, characters of example text.
    query_digest: bool = True
    query_digest_size: Annotated[int, _between(1, 1_000_000)] = 1000
    query_digest_example_chars: Annotated[int, _between(16, 65536)] = 256
    # Query latency histogram (rwproxy_query_duration_seconds, by route): on/off.
    latency_histogram: bool = True

    @field_validator("http_listen", "sql_listen")
    @classmethod
    def _address(cls, value: str) -> str:
        if value:
            _split_host_port(value, min_port=0)
        return value

    @field_validator("users")
    @classmethod
    def _unique_users(cls, users: tuple[AdminUserConfig, ...]) -> tuple[AdminUserConfig, ...]:
        seen: dict[str, int] = {}
        for i, user in enumerate(users):
            if user.name in seen:
                _fail(f"duplicate admin user {_show(user.name)} (also users[{seen[user.name]}])", f"[{i}]")
            seen[user.name] = i
        return users

    @field_validator("bearer_token")
    @classmethod
    def _token_shape(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(c.isspace() or not c.isprintable() for c in value)):
            _fail("must be a non-empty string without spaces or control characters")
        return value

    @property
    def http_address(self) -> tuple[str, int] | None:
        """``http_listen`` parsed into (host, port); None when disabled."""
        return _split_host_port(self.http_listen, min_port=0) if self.http_listen else None

    @property
    def sql_address(self) -> tuple[str, int] | None:
        """``sql_listen`` parsed into (host, port); None when disabled or no admin user exists."""
        if not self.sql_listen or not self.users:
            return None
        return _split_host_port(self.sql_listen, min_port=0)


class LoggingConfig(_Model):
    """``[logging]``: level and line format of rwproxy's log (``observability.logs``); both change on reload.

    Unset keys fall back to the older ``[proxy] log_level`` / ``log_format`` (and their defaults).
    """

    level: Literal["debug", "info", "warning", "error"] | None = None
    format: Literal["text", "json"] | None = None
