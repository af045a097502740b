"""Tests of rwproxy.frontend.session_sets.readback_values: the read-back row of a captured SET."""

from __future__ import annotations

import pytest

from rwproxy.frontend.session_sets import readback_values
from rwproxy.protocol.constants import Capability
from rwproxy.protocol.framing import frame
from rwproxy.protocol.packets import make_err, make_ok, make_resultset

VAR_STRING = 253


def _framed(payloads: list[bytes]) -> bytes:
    return b"".join(frame(p, i + 1) for i, p in enumerate(payloads))


@pytest.mark.parametrize("caps", [0, int(Capability.DEPRECATE_EOF)], ids=["eof", "deprecate-eof"])
def test_one_row(caps: int) -> None:
    data = _framed(make_resultset(caps, ["a", "b"], [["ANSI", None]]))
    assert readback_values(data, caps, 2) == [(VAR_STRING, b"ANSI"), (VAR_STRING, None)]


def test_wrong_column_count_is_refused() -> None:
    data = _framed(make_resultset(0, ["a"], [["x"]]))
    assert readback_values(data, 0, 2) is None


@pytest.mark.parametrize("payload", [make_ok(0), make_err(1193, "Unknown system variable 'x'")])
def test_ok_or_error_is_refused(payload: bytes) -> None:
    assert readback_values(_framed([payload]), 0, 1) is None


def test_no_row_is_refused() -> None:
    data = _framed(make_resultset(0, ["a"], []))
    assert readback_values(data, 0, 1) is None
