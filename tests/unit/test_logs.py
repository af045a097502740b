"""The JSON log formatter and rwproxy's single root handler (rwproxy.observability.logs)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from rwproxy.observability.logs import JsonFormatter, setup_logging, update_logging


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("proxy.monitor", logging.WARNING, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_json_line_has_the_fields_and_extras() -> None:
    line = JsonFormatter().format(_record("db2: %s -> %s", "ONLINE", "SHUNNED", server="db2", lag=12.5))
    doc = json.loads(line)
    assert doc["level"] == "warning" and doc["logger"] == "proxy.monitor"
    assert doc["msg"] == "db2: ONLINE -> SHUNNED"
    assert doc["server"] == "db2" and doc["lag"] == 12.5
    assert doc["ts"].endswith("Z") and doc["ts"][10] == "T" and len(doc["ts"]) == 24
    assert "\n" not in line
    assert not {"args", "msg_args", "levelno", "pathname", "created"} & doc.keys()


def test_json_exception_and_unserialisable_extra() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = _record("failed", thing=object())
        record.exc_info = sys.exc_info()
    doc = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in doc["exc"]
    assert doc["thing"].startswith("<object object")


@pytest.fixture
def root_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_setup_twice_keeps_one_handler_and_switches_format(root_restored: None) -> None:
    stream = io.StringIO()
    first = setup_logging("info", "text", stream=stream)
    logging.getLogger("proxy.test").info("hello %d", 1)
    assert update_logging("debug", "json")
    assert setup_logging("debug", "json") is first
    logging.getLogger("proxy.test").debug("now json", extra={"k": "v"})
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("INFO proxy.test: hello 1")
    docs = [json.loads(x) for x in lines[1:]]
    assert docs[-1]["msg"] == "now json" and docs[-1]["k"] == "v"
    assert sum(1 for h in logging.getLogger().handlers if h is first) == 1


def test_update_does_nothing_without_our_handler(root_restored: None) -> None:
    logging.getLogger().handlers[:] = [
        h for h in logging.getLogger().handlers if not hasattr(h, "_rwproxy_handler")
    ]
    assert not update_logging("debug", "json")


def test_text_line_escapes_control_characters_of_the_message() -> None:
    from rwproxy.observability.logs import TextFormatter, escape_controls

    assert escape_controls("plain 'text' \\ é") == "plain 'text' \\ é"
    assert (
        escape_controls("a\nb\rc\td\x1b[31m\x00\x7f\x85\u2028")
        == "a\\nb\\rc\\td\\x1b[31m\\x00\\x7f\\x85\\u2028"
    )
    line = TextFormatter().format(_record("login failed for %s (%r)", "evil\nINFO forged line", "x\ny"))
    assert "\n" not in line
    assert line.endswith("WARNING proxy.monitor: login failed for evil\\nINFO forged line ('x\\ny')")


def test_text_traceback_lines_are_indented() -> None:
    import sys

    from rwproxy.observability.logs import TextFormatter

    try:
        raise ValueError("from a client\nERROR forged")
    except ValueError:
        record = _record("failed %s", "q")
        record.exc_info = sys.exc_info()
    first, *rest = TextFormatter().format(record).split("\n")
    assert first.endswith("proxy.monitor: failed q")
    assert rest and all(line.startswith("    ") for line in rest), rest
    assert "    ERROR forged" in rest


def test_json_line_stays_one_valid_line_with_control_characters() -> None:
    line = JsonFormatter().format(_record("user %s", "evil\nINFO forged\u2028\x1b"))
    assert "\n" not in line
    assert json.loads(line)["msg"] == "user evil\nINFO forged\u2028\x1b"
