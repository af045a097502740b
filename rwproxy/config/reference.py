"""The configuration reference (docs/config-reference.md), generated from the config models.

    rwproxy config-reference --output docs/config-reference.md     # regenerate after adding a key
    rwproxy config-reference --check docs/config-reference.md      # exit 1 when it is stale

Keys, types, allowed values, ranges and defaults come from the pydantic models (``rwproxy.config``:
the source of truth, so a new key shows up here by itself). Descriptions come from the comments
above each key in ``rwproxy.example.toml`` (the annotated example the README points to), and a
section's introduction from its model's docstring. A key the example does not show is listed with
"(not in rwproxy.example.toml)". ``tests/unit/test_config_reference.py`` fails when the committed
file differs from what this module generates.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import AfterValidator, BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from rwproxy.config.model import Config

__all__ = ["EXAMPLE", "REGENERATE", "example_comments", "render"]

EXAMPLE = Path(__file__).resolve().parents[2] / "rwproxy.example.toml"
REGENERATE = ".venv/bin/rwproxy config-reference --output docs/config-reference.md"

_HEADER = re.compile(r"^\s*#?\s*(\[\[?)\s*([A-Za-z0-9_.]+)\s*\]\]?\s*$")
_KEY = re.compile(r"^\s*(#\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*=")


def example_comments(text: str) -> dict[tuple[str, str], str]:
    """(section, key) -> the comment block right above the key's first appearance in the example
    (commented-out keys count: they are the unset-by-default ones). A key written right under
    another without a comment of its own shares that one's (``tls_cert`` / ``tls_key``)."""
    out: dict[tuple[str, str], str] = {}
    section = ""
    block: list[str] = []
    last: str | None = None  # description of the key on the previous line
    for line in text.splitlines():
        stripped = line.strip()
        header = _HEADER.match(line)
        if header:
            section, block, last = header.group(2), [], None
            continue
        key = _KEY.match(line)
        if key:
            desc = " ".join(block) if block else (last or "")
            out.setdefault((section, key.group(2)), desc)
            block, last = [], desc
            continue
        if stripped.startswith("#"):
            body = stripped.lstrip("#").strip()
            if body:
                block.append(body)
            last = None
        elif not stripped:
            block, last = [], None
    return out


def _constraint(meta: object) -> str | None:
    if not isinstance(meta, AfterValidator):
        return None
    func: Any = meta.func
    names = func.__code__.co_freevars
    cells = dict(zip(names, (c.cell_contents for c in func.__closure__ or ()), strict=False))
    if "lo" in cells and "hi" in cells:
        return f"{cells['lo']} .. {cells['hi']}"
    if "lo" in cells:
        return f">= {cells['lo']:g}" if isinstance(cells["lo"], float) else f">= {cells['lo']}"
    name = getattr(func, "__name__", "")
    if name == "_check_positive":
        return "> 0"
    if name == "_check_non_empty":
        return "not empty"
    if name in ("_check_listen", "_address"):
        return '"host:port"'
    return None


def _type(annotation: Any, metadata: list[Any] = ()) -> str:  # type: ignore[assignment]
    """A field's type in TOML words: ``integer (1 .. 20)``, ``"a" | "b"``, ``list of strings``."""
    constraints = [c for c in (_constraint(m) for m in metadata) if c]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        inner, *extra = args
        return _type(inner, [*metadata, *extra])
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return " or ".join(_type(a, metadata) for a in rest)
    if origin is Literal:
        words = " | ".join(json.dumps(a) for a in args)
    elif origin in (tuple, list):
        item = args[0] if args else Any
        if isinstance(item, type) and issubclass(item, BaseModel):
            return "array of tables"
        words = f"list of {_type(item)}" if item is not Any else "list"
    elif origin is dict:
        words = "table of strings"
    elif annotation is bool:
        words = "boolean"
    elif annotation is int:
        words = "integer"
    elif annotation is float:
        words = "number"
    elif annotation is str:
        words = "string"
    elif isinstance(annotation, type) and issubclass(annotation, Path):
        words = "file path"
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        words = "table"
    else:
        words = str(annotation)
    return f"{words} ({', '.join(constraints)})" if constraints else words


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Path):
        return json.dumps(str(value))
    return str(value)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
    if value is None or value is PydanticUndefined:
        return "unset"
    if isinstance(value, str) and not value:
        return '`""`'
    return f"`{_toml(value)}`"


def _model_in(annotation: Any) -> tuple[type[BaseModel], bool] | None:
    """(model, is an array of tables) for a field holding tables."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_in(typing.get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    if origin in (tuple, list):
        args = typing.get_args(annotation)
        if args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            return args[0], True
    return None


def _sections(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, bool, type[BaseModel]]]:
    for name, field in model.model_fields.items():
        key = field.alias or name
        found = _model_in(field.annotation)
        if found is None:
            continue
        sub, is_array = found
        path = f"{prefix}.{key}" if prefix else key
        yield path, is_array, sub
        yield from _sections(sub, path)


def _intro(model: type[BaseModel]) -> str:
    doc = (model.__doc__ or "").strip()
    first = doc.split("\n\n")[0]
    first = re.sub(r"^``\[\[?[\w.]+\]\]?``[:.]?\s*", "", " ".join(first.split()))
    first = first.replace("``", "`")
    return first[:1].upper() + first[1:]


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render(example: str | None = None) -> str:
    """The whole reference as Markdown. ``example``: the example config's text (default: the
    repository's rwproxy.example.toml when it is there)."""
    if example is None:
        example = EXAMPLE.read_text() if EXAMPLE.is_file() else ""
    comments = example_comments(example)
    out = [
        "# rwproxy configuration reference",
        "",
        "<!-- Generated from the config models (rwproxy/config) and the comments in rwproxy.example.toml.",
        f"     Do not edit: run `{REGENERATE}`. -->",
        "",
        "Every key rwproxy accepts, with its type, allowed values and default. Unknown keys are errors;",
        "`rwproxy check-config FILE` validates a file and prints the effective configuration. The",
        "annotated [rwproxy.example.toml](../rwproxy.example.toml) shows them in context.",
        "",
    ]
    top = [(name, f) for name, f in Config.model_fields.items() if _model_in(f.annotation) is None]
    assert not top, f"top-level keys outside a section: {top}"
    for path, is_array, model in _sections(Config):
        header = f"[[{path}]]" if is_array else f"[{path}]"
        out += [f"## `{header}`", ""]
        intro = _intro(model)
        if intro:
            out += [_cell(intro), ""]
        rows = []
        for name, field in model.model_fields.items():
            key = field.alias or name
            nested = _model_in(field.annotation)
            if nested is not None:
                sub = f"{path}.{key}"
                heading = f"[[{sub}]]" if nested[1] else f"[{sub}]"
                kind = "array of tables" if nested[1] else "table"
                rows.append(f"| `{key}` | {kind} | | see [`{heading}`](#{_anchor(heading)}) |")
                continue
            desc = comments.get((path, key)) or field.description or "(not in rwproxy.example.toml)"
            kind = _cell(_type(field.annotation, list(field.metadata)))
            rows.append(f"| `{key}` | {kind} | {_default(field)} | {_cell(desc)} |")
        out += ["| key | type | default | description |", "|---|---|---|---|", *rows, ""]
    return "\n".join(out).rstrip() + "\n"


def _anchor(heading: str) -> str:
    """GitHub's anchor for the heading ``## `[[admin.users]]` ``: ``adminusers``."""
    return re.sub(r"[^a-z0-9_-]", "", heading.lower().replace(" ", "-"))
