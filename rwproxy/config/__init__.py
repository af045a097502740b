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

import tomllib
from pathlib import Path

from pydantic import ValidationError

from rwproxy.config.dump import dump_effective
from rwproxy.config.explain import explain_errors, key_path
from rwproxy.config.failover import FailoverConfig
from rwproxy.config.fields import ConfigError
from rwproxy.config.model import Config
from rwproxy.config.sections import (
    AdminConfig,
    AdminUserConfig,
    BackendConfig,
    LoggingConfig,
    MonitorConfig,
    ProxyConfig,
    RoutingConfig,
    RoutingRule,
    ServerConfig,
    UserConfig,
)

__all__ = [
    "AdminConfig",
    "AdminUserConfig",
    "BackendConfig",
    "Config",
    "ConfigError",
    "FailoverConfig",
    "LoggingConfig",
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
        problems = [f"{key_path(loc)}: {reason}" for loc, reason in explain_errors(exc)]
        if len(problems) == 1:
            message = f"{source}: {problems[0]}"
        else:
            message = f"{source}: {len(problems)} problems:\n" + "\n".join(f"  {p}" for p in problems)
        raise ConfigError(message, problems) from None
