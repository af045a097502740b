"""Shared pieces of the config models: the error type, validators and field types."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, NoReturn

from pydantic import AfterValidator, BaseModel, ConfigDict, Strict, ValidationInfo
from pydantic_core import PydanticCustomError

__all__ = ["MASK", "ConfigError"]


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
