"""Turn pydantic's validation errors into messages that name the key path and the reason."""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from rwproxy.config.fields import _show
from rwproxy.config.model import Config

__all__ = ["explain_errors", "key_path"]


def key_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith("["):
            out += part
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def explain_errors(exc: ValidationError) -> Iterator[tuple[list[int | str], str]]:
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
                yield loc, f"at least one [[{key_path(loc)}]] table is required"
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
                name = key_path(loc)
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


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    """A model's fields by the key written in TOML (the alias when there is one)."""
    return {(f.alias or name): f for name, f in model.model_fields.items()}


def _model_at(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class that validates the value at ``loc`` (None if it is not a table)."""
    model: type[BaseModel] | None = Config
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in _fields(model):
            return None
        model = _model_in(_fields(model)[part].annotation)
    return model


def _unknown_key(loc: Sequence[int | str]) -> str:
    key = str(loc[-1])
    model = _model_at(loc[:-1])
    if model is None:
        return f"unknown key {key!r}"
    allowed = list(_fields(model))
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if not close:
        close = [a for a in allowed if a.lower() == key.lower()]
    if close:
        return f"unknown key {key!r} (did you mean {close[0]!r}?)"
    return f"unknown key {key!r} (allowed: {', '.join(allowed)})"


# --------------------------------------------------------------------------------------------------
# Dumping
