"""rwproxy configuration: a TOML file validated into frozen pydantic models.

``load_config(path)`` / ``parse_config(text)`` return an immutable ``Config`` or raise ``ConfigError``
whose message names the file, the dotted key path (``servers[1].port``) and the reason in plain words.
Every problem found in one pass is reported, not only the first. Unknown keys are errors, with a
suggestion when the key looks like a typo.

Relative paths (``tls_cert``, ``tls_key``, ``backend.tls_ca``) are resolved against the directory of
the config file (the current directory for ``parse_config`` unless ``base_dir`` is given) and must
name existing files.

``dump_effective(config)`` prints the configuration with every default filled in and secrets masked
(``rwproxy check-config FILE``). ``Config.topology()`` builds the static ``Topology`` snapshot.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import tomllib
import types
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from proxy.topology.model import Node, Role, Topology

__all__ = [
    "AdminConfig",
    "BackendConfig",
    "Config",
    "ConfigError",
    "MonitorConfig",
    "ProxyConfig",
    "RoutingConfig",
    "RoutingRule",
    "ServerConfig",
    "UserConfig",
    "dump_effective",
    "load_config",
    "parse_config",
]

MASK = "***"
_SECRET_KEYS = frozenset({"password", "password_hash", "backend_password", "bearer_token"})


class ConfigError(Exception):
    """The configuration cannot be used. ``str(err)`` is the whole report, ready to print.

    ``problems`` holds one ``"key.path: reason"`` line per problem (empty for read/syntax errors).
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.problems = tuple(problems)


# --------------------------------------------------------------------------------------------------
# Validation helpers. Every failure goes through _fail so the message is ours, not pydantic's.


def _fail(reason: str, key: str = "") -> NoReturn:
    """Raise a validation error with a plain-words reason; ``key`` extends the error's key path."""
    raise PydanticCustomError("rwproxy", "{reason}", {"reason": reason, "key": key})


def _show(value: object) -> str:
    """A value as the user wrote it in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    return str(value)


def _between(lo: int, hi: int) -> AfterValidator:
    def check(value: int) -> int:
        if not lo <= value <= hi:
            _fail(f"must be between {lo} and {hi}, got {_show(value)}")
        return value

    return AfterValidator(check)


def _at_least(lo: float) -> AfterValidator:
    def check(value: float) -> float:
        if value < lo:
            _fail(f"must be at least {lo}, got {_show(value)}")
        return value

    return AfterValidator(check)


def _check_positive(value: float) -> float:
    if value <= 0:
        _fail(f"must be greater than 0, got {_show(value)}")
    return value


def _check_non_empty(value: str) -> str:
    if not value.strip():
        _fail("must not be empty")
    return value


def _resolve_file(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    path = value.expanduser()
    if not path.is_absolute():
        path = Path(base or Path.cwd()) / path
    if not path.exists():
        _fail(f"file not found: {path}")
    if not path.is_file():
        _fail(f"is not a regular file: {path}")
    return path


def _split_host_port(text: str, *, min_port: int) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6addr]:port"`` -> (host, port); raises a validation error otherwise."""
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
    else:
        host, sep, port_text = text.rpartition(":")
        if ":" in host:
            _fail(f'must be "host:port" (write IPv6 addresses as "[addr]:port"), got {_show(text)}')
    if not sep or not host or not port_text.isdigit():
        _fail(f'must be "host:port", got {_show(text)}')
    port = int(port_text)
    if not min_port <= port <= 65535:
        _fail(f"port must be between {min_port} and 65535, got {port} in {_show(text)}")
    return host, port


def _check_listen(value: str) -> str:
    _split_host_port(value, min_port=0)
    return value


_NATIVE_HASH = re.compile(r"\*[0-9A-Fa-f]{40}")
_SERVER_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_VERSION = re.compile(r"\d+\.\d+\.\d+")

_NonEmptyStr = Annotated[str, AfterValidator(_check_non_empty)]
_PositiveSeconds = Annotated[float, AfterValidator(_check_positive)]
_ExistingFile = Annotated[Path, Strict(False), AfterValidator(_resolve_file)]
_ListenAddress = Annotated[str, AfterValidator(_check_listen)]


class _Model(BaseModel):
    # strict: TOML already carries types, so "3306" for an int or true for a number is a mistake.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


# --------------------------------------------------------------------------------------------------
# Sections


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

    @model_validator(mode="after")
    def _ca_needs_tls(self) -> BackendConfig:
        if self.tls_ca is not None and not self.tls:
            _fail("is set but tls = false; set tls = true or remove tls_ca", "tls_ca")
        return self


class ServerConfig(_Model):
    """``[[servers]]``: one MySQL server."""

    name: str
    host: _NonEmptyStr
    port: Annotated[int, _between(1, 65535)] = 3306
    weight: Annotated[int, _at_least(0)] = 1
    role: Literal["primary", "replica", "auto"] = "auto"

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
    rules: Annotated[tuple[RoutingRule, ...], Strict(False)] = ()

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
    (``proxy.topology.monitor``; states and hysteresis in ``proxy.topology.health``).

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

    @model_validator(mode="after")
    def _password_needs_user(self) -> MonitorConfig:
        if self.password is not None and self.user is None:
            _fail("is required when monitor.password is set", "user")
        return self


class AdminConfig(_Model):
    """``[admin]``: the admin HTTP interface (``proxy.admin_http``: /metrics, /healthz, /readyz, /status).

    ``http_listen = ""`` disables it. ``bearer_token`` is for mutating endpoints (none yet); the
    read-only endpoints are not authenticated, so keep ``http_listen`` on loopback or a private network.
    """

    http_listen: str = "127.0.0.1:9306"
    bearer_token: str | None = Field(default=None, repr=False)

    @field_validator("http_listen")
    @classmethod
    def _address(cls, value: str) -> str:
        if value:
            _split_host_port(value, min_port=0)
        return value

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


def _static_topology_problem(servers: Sequence[ServerConfig]) -> str | None:
    primaries = [s.name for s in servers if s.role == "primary"]
    if len(primaries) > 1:
        return f'exactly one server may have role = "primary", found {len(primaries)}: ' + ", ".join(
            primaries
        )
    if not primaries and not any(s.role == "auto" for s in servers):
        return (
            'no server can be the primary: mark it with role = "primary", or leave servers on '
            'role = "auto" for the monitor to pick the writable one (read_only = OFF)'
        )
    return None


class Config(_Model):
    """The whole configuration: one immutable snapshot."""

    proxy: ProxyConfig = ProxyConfig()
    users: Annotated[tuple[UserConfig, ...], Strict(False)]
    backend: BackendConfig = BackendConfig()
    servers: Annotated[tuple[ServerConfig, ...], Strict(False)]
    routing: RoutingConfig = RoutingConfig()
    monitor: MonitorConfig = MonitorConfig()
    admin: AdminConfig = AdminConfig()

    @field_validator("users")
    @classmethod
    def _users(cls, users: tuple[UserConfig, ...]) -> tuple[UserConfig, ...]:
        if not users:
            _fail("at least one [[users]] table is required")
        seen: dict[str, int] = {}
        for i, user in enumerate(users):
            if user.name in seen:
                _fail(
                    f"duplicate user name {_show(user.name)} (also users[{seen[user.name]}])", f"[{i}].name"
                )
            seen[user.name] = i
        return users

    @field_validator("servers")
    @classmethod
    def _servers(cls, servers: tuple[ServerConfig, ...]) -> tuple[ServerConfig, ...]:
        if not servers:
            _fail("at least one [[servers]] table is required")
        names: dict[str, int] = {}
        addresses: dict[tuple[str, int], int] = {}
        for i, server in enumerate(servers):
            if server.name in names:
                _fail(
                    f"duplicate server name {_show(server.name)} (also servers[{names[server.name]}])",
                    f"[{i}].name",
                )
            names[server.name] = i
            address = (server.host.lower(), server.port)
            if address in addresses:
                j = addresses[address]
                _fail(
                    f'address "{server.host}:{server.port}" is already used by servers[{j}] '
                    f"({_show(servers[j].name)})",
                    f"[{i}]",
                )
            addresses[address] = i
        problem = _static_topology_problem(servers)
        if problem:
            _fail(problem)
        return servers

    @model_validator(mode="after")
    def _primary_known_without_monitor(self) -> Config:
        servers = self.servers
        explicit = any(s.role == "primary" for s in servers)
        if not self.monitor.enabled and not explicit and len(servers) != 1:
            _fail(
                "with the monitor off nothing decides which server is the primary: mark one with "
                'role = "primary" or set monitor.enabled = true',
                "monitor.enabled",
            )
        return self

    @model_validator(mode="after")
    def _admin_not_on_a_client_port(self) -> Config:
        admin = self.admin.http_address
        if admin is not None and admin[1] != 0:
            clients = {(h.lower(), p) for h, p in self.proxy.listen_addresses}
            if (admin[0].lower(), admin[1]) in clients:
                _fail(
                    f"{_show(self.admin.http_listen)} is also in proxy.listen; use another port",
                    "admin.http_listen",
                )
        return self

    def topology(self) -> Topology:
        """The static topology: the ``primary`` server (or the only server) plus replicas.

        ``role = "auto"`` servers next to an explicit primary are treated as replicas.
        """
        nodes = []
        single = len(self.servers) == 1
        for server in self.servers:
            is_primary = server.role == "primary" or (single and server.role == "auto")
            nodes.append(
                Node(
                    name=server.name,
                    host=server.host,
                    port=server.port,
                    role=Role.PRIMARY if is_primary else Role.REPLICA,
                    weight=server.weight,
                )
            )
        return Topology(nodes=tuple(nodes))

    def to_toml_dict(self, *, mask_secrets: bool = True) -> dict[str, Any]:
        """The effective configuration as plain TOML values (unset optional keys left out)."""
        return _plain(self, keep_none=False, mask=mask_secrets)


# --------------------------------------------------------------------------------------------------
# Loading


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config file. Raises ConfigError."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the config file is not valid UTF-8 ({exc.reason})") from exc
    return parse_config(text, source=str(path), base_dir=path.parent)


def parse_config(text: str, source: str = "<string>", *, base_dir: str | Path | None = None) -> Config:
    """Validate TOML text. ``source`` names it in error messages; relative paths are resolved
    against ``base_dir`` (default: the current directory). Raises ConfigError."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        detail = str(exc)
        if detail.endswith("(at end of document)"):
            detail = detail.replace(
                "(at end of document)", f"(at end of file, line {text.count(chr(10)) + 1})"
            )
        raise ConfigError(f"{source}: TOML syntax error: {detail}") from exc
    context = {"base_dir": Path(base_dir) if base_dir is not None else None}
    try:
        return Config.model_validate(data, context=context)
    except ValidationError as exc:
        problems = [f"{_key_path(loc)}: {reason}" for loc, reason in _explain(exc)]
        if len(problems) == 1:
            message = f"{source}: {problems[0]}"
        else:
            message = f"{source}: {len(problems)} problems:\n" + "\n".join(f"  {p}" for p in problems)
        raise ConfigError(message, problems) from None


def _key_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith("["):
            out += part
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def _explain(exc: ValidationError) -> Iterator[tuple[list[int | str], str]]:
    for err in exc.errors(include_url=False):
        loc: list[int | str] = list(err["loc"])
        kind = err["type"]
        ctx = err.get("ctx") or {}
        got = _show(err.get("input"))
        if kind == "rwproxy":
            for part in re.findall(r"\[\d+\]|[^.\[\]]+", ctx.get("key", "")):
                loc.append(int(part[1:-1]) if part.startswith("[") else part)
            yield loc, str(ctx["reason"])
        elif kind == "extra_forbidden":
            yield loc, _unknown_key(loc)
        elif kind == "missing":
            if _is_table_array_field(loc):
                yield loc, f"at least one [[{_key_path(loc)}]] table is required"
            else:
                yield loc, "is required"
        elif kind in ("int_type", "int_parsing", "int_from_float"):
            yield loc, f"must be an integer, got {got}"
        elif kind in ("float_type", "float_parsing"):
            yield loc, f"must be a number, got {got}"
        elif kind == "finite_number":
            yield loc, f"must be a finite number, got {got}"
        elif kind in ("bool_type", "bool_parsing"):
            yield loc, f"must be true or false, got {got}"
        elif kind == "string_type":
            yield loc, f"must be a string, got {got}"
        elif kind in ("path_type", "path_parsing"):
            yield loc, f"must be a file path string, got {got}"
        elif kind == "literal_error":
            expected = str(ctx.get("expected", "")).replace("'", '"')
            yield loc, f"must be {expected}, got {got}"
        elif kind in ("tuple_type", "list_type"):
            if isinstance(err.get("input"), dict) and _model_at(loc) is not None:
                name = _key_path(loc)
                yield loc, f"must be an array of tables ([[{name}]]), not a single table ([{name}])"
            else:
                yield loc, f"must be a list, got {got}"
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            yield loc, f"must be a table, got {got}"
        else:
            msg = err["msg"]
            yield loc, msg[:1].lower() + msg[1:]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model class inside ``Model``, ``tuple[Model, ...]`` or ``Model | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (tuple, list, typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _is_table_array_field(loc: Sequence[int | str]) -> bool:
    """True when ``loc`` names a ``[[table]]`` array field such as ``servers`` or ``routing.rules``."""
    if not loc:
        return False
    parent = _model_at(loc[:-1])
    if parent is None or str(loc[-1]) not in parent.model_fields:
        return False
    annotation = parent.model_fields[str(loc[-1])].annotation
    return typing.get_origin(annotation) is tuple and _model_in(annotation) is not None


def _model_at(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class that validates the value at ``loc`` (None if it is not a table)."""
    model: type[BaseModel] | None = Config
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        model = _model_in(model.model_fields[part].annotation)
    return model


def _unknown_key(loc: Sequence[int | str]) -> str:
    key = str(loc[-1])
    model = _model_at(loc[:-1])
    if model is None:
        return f"unknown key {key!r}"
    allowed = list(model.model_fields)
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if not close:
        close = [a for a in allowed if a.lower() == key.lower()]
    if close:
        return f"unknown key {key!r} (did you mean {close[0]!r}?)"
    return f"unknown key {key!r} (allowed: {', '.join(allowed)})"


# --------------------------------------------------------------------------------------------------
# Dumping


def _plain(model: BaseModel, *, keep_none: bool, mask: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if value is None and not keep_none:
            continue
        if mask and name in _SECRET_KEYS and value is not None:
            out[name] = MASK
        elif isinstance(value, BaseModel):
            out[name] = _plain(value, keep_none=keep_none, mask=mask)
        elif isinstance(value, tuple):
            out[name] = [
                _plain(v, keep_none=keep_none, mask=mask) if isinstance(v, BaseModel) else v for v in value
            ]
        elif isinstance(value, Path):
            out[name] = str(value)
        else:
            out[name] = value
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _toml_table(header: str, table: dict[str, Any], lines: list[str]) -> None:
    lines.append(header)
    nested: list[tuple[str, Any]] = []
    for key, value in table.items():
        if isinstance(value, dict) or _is_table_array(value):
            nested.append((key, value))
        elif value is None:
            lines.append(f"# {key} is not set")
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    lines.append("")
    name = header.strip("[]")
    for key, value in nested:
        if isinstance(value, dict):
            _toml_table(f"[{name}.{key}]", value, lines)
        else:
            for item in value:
                _toml_table(f"[[{name}.{key}]]", item, lines)


def dump_effective(config: Config) -> str:
    """The effective configuration as TOML text, defaults filled in, secrets shown as "***"."""
    lines = ["# rwproxy effective configuration (defaults filled in, secrets masked)", ""]
    for section, value in _plain(config, keep_none=True, mask=True).items():
        if isinstance(value, list):
            for item in value:
                _toml_table(f"[[{section}]]", item, lines)
        else:
            _toml_table(f"[{section}]", value, lines)
    return "\n".join(lines).rstrip("\n") + "\n"
