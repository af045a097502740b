"""A client cannot write lines into rwproxy's log: what it sends is logged with control characters
escaped (rwproxy.observability.logs.TextFormatter), through ``rwproxy run`` and a real login attempt."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pymysql
import pytest

from rwproxy.dev.cluster import Cluster, free_port
from rwproxy.dev.demo import demo_config_text
from tests.support.proxy_process import ProxyProcess

pytestmark = pytest.mark.cluster

EVIL = "evil\nINFO forged line"


def _failed_login(p: ProxyProcess) -> None:
    with pytest.raises(pymysql.err.OperationalError) as exc:
        pymysql.connect(host=p.host, port=p.port, user=EVIL, password="x", connect_timeout=10)
    assert exc.value.args[0] == 1045


def _lines_with(p: ProxyProcess, needle: str, timeout: float = 10) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in p.log_text().splitlines() if needle in line]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_user_name_with_a_newline_stays_on_one_log_line(cluster: Cluster, tmp_path: Path, fmt: str) -> None:
    text = demo_config_text(cluster, free_port(), admin_port=free_port())
    text = text.replace("[proxy]\n", f'[proxy]\nlog_format = "{fmt}"\n', 1)
    with ProxyProcess(text, tmp_path) as p:
        _failed_login(p)
        lines = _lines_with(p, "forged line")
    assert len(lines) == 1, lines
    assert not any(line.startswith("INFO forged") for line in p.log_text().splitlines())
    if fmt == "text":
        assert "authentication failed" in lines[0] and "evil\\nINFO forged line" in lines[0], lines[0]
    else:
        doc = json.loads(lines[0])
        assert "authentication failed" in doc["msg"] and EVIL in doc["msg"], doc
        for line in p.log_text().splitlines():
            if line.startswith("{"):
                json.loads(line)  # every record is one valid JSON line
