"""rwproxy's log: text or JSON lines on stderr, configured by ``[logging]`` and changed on reload.

    setup_logging("info", "json")      # at start (``rwproxy run``); again on reload to apply changes
    log.info("monitor: %s: %s", name, what, extra={"server": name})

JSON lines carry ``ts`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``, ``msg`` (the
formatted message) and every ``extra={...}`` field the call passed; ``exc`` holds a traceback when
one is logged. Extra values that JSON cannot hold are written as ``str(value)``.

What is logged (the rule every module follows): one line per state change (a server's state, a drain,
a reload), per failover step and per error; nothing per statement at INFO or above. No line ever holds
a password or a token: configs are logged only as key names and server/user names
(``rwproxy.reload``); a failed client login logs the user name, never the scramble.

A logged value may come from a client (user and database names, SQL, error texts): in text lines
every control character of the message (newline, CR, ESC, C1, U+2028/2029 ...) is written escaped
(``\\n``, ``\\x1b``), so a user name ``"evil\\nINFO forged"`` cannot start a line of its own; a
traceback's lines are indented, so only a record's first line starts at column 0. JSON lines escape
them by JSON's own rules (each record stays one valid line) and keep the exact text.

rwproxy installs exactly one handler on the root logger (``StreamHandler`` to stderr, marked as
ours); calling ``setup_logging`` again swaps its formatter and level instead of adding another.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, TextIO

__all__ = [
    "TEXT_FORMAT",
    "JsonFormatter",
    "TextFormatter",
    "escape_controls",
    "make_formatter",
    "setup_logging",
    "update_logging",
]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
    | {"message", "asctime", "taskName"}
)
_OURS = "_rwproxy_handler"


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with every control character written as an escape (``\\n``, ``\\x1b``, ``\\u2028``)."""
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(_escape_one, text)


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT`` lines: one line per record (control characters escaped), tracebacks indented."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # logging calls it after getMessage
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return _indent(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indent(super().formatStack(stack_info))


def _indent(text: str) -> str:
    return "\n".join("    " + escape_controls(line) for line in text.split("\n"))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": _utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in doc and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


def _utc(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def make_formatter(fmt: str) -> logging.Formatter:
    """The formatter for ``[logging] format``: "json" or "text"."""
    if fmt == "json":
        return JsonFormatter()
    if fmt == "text":
        return TextFormatter()
    raise ValueError(f'log format must be "text" or "json", got {fmt!r}')


def setup_logging(level: str, fmt: str, *, stream: TextIO | None = None) -> logging.Handler:
    """Install (or update) rwproxy's handler on the root logger; returns it."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, _OURS, False)), None)
    if handler is None:
        handler = logging.StreamHandler(stream or sys.stderr)
        setattr(handler, _OURS, True)
        root.addHandler(handler)
    handler.setFormatter(make_formatter(fmt))
    root.setLevel(level.upper())
    return handler


def update_logging(level: str, fmt: str) -> bool:
    """Apply a reloaded ``[logging]``: only when rwproxy's handler is installed (``rwproxy run``); an
    embedding program (tests, ProxyThread) keeps its own logging. Returns whether it applied."""
    root = logging.getLogger()
    if not any(getattr(h, _OURS, False) for h in root.handlers):
        return False
    setup_logging(level, fmt)
    logging.getLogger(__name__).info("log level %s, format %s", level, fmt)
    return True
