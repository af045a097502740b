"""The effective configuration as TOML text, secrets masked (``rwproxy check-config``)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rwproxy.config.fields import _SECRET_KEYS, MASK

__all__ = ["dump_effective"]


def _plain(model: BaseModel, *, keep_none: bool, mask: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr, field in type(model).model_fields.items():
        value = getattr(model, attr)
        name = field.alias or attr  # Config.topology_source is [topology] in TOML
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


def _toml_key(key: str) -> str:
    """A bare key when TOML allows one, else a quoted one (address_map keys hold ':' and '.')."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


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
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    lines.append("")
    name = header.strip("[]")
    for key, value in nested:
        if isinstance(value, dict):
            _toml_table(f"[{name}.{key}]", value, lines)
        else:
            for item in value:
                _toml_table(f"[[{name}.{key}]]", item, lines)


def dump_effective(config: BaseModel) -> str:
    """The effective configuration (a ``rwproxy.config.Config``) as TOML text, defaults filled in,
    secrets shown as "***"."""
    lines = ["# rwproxy effective configuration (defaults filled in, secrets masked)", ""]
    for section, value in _plain(config, keep_none=True, mask=True).items():
        if isinstance(value, list):
            for item in value:
                _toml_table(f"[[{section}]]", item, lines)
        else:
            _toml_table(f"[{section}]", value, lines)
    return "\n".join(lines).rstrip("\n") + "\n"
