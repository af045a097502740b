"""ResultScanner.err_sequence: where an ERR packet may end a response that the backend abandoned."""

from __future__ import annotations

import pytest

from rwproxy.protocol.results import ResponseKind, ResultScanner
from tests.unit.protocol.test_results import CLASSIC, DEPRECATE, packets, resultset


@pytest.mark.parametrize("caps", [CLASSIC, DEPRECATE])
def test_between_rows_only(caps: int) -> None:
    payloads = resultset(caps, 20)
    data = packets(*payloads)
    header_packets = 4 if caps == CLASSIC else 3  # column count, 2 definitions (, EOF)
    offsets = [0]
    for p in payloads:
        offsets.append(offsets[-1] + 4 + len(p))
    allowed = 0
    for cut in range(1, len(data) - 1):
        s = ResultScanner(caps)
        s.start(ResponseKind.QUERY)
        # Two feeds, as from two reads: the fast whole-response path cannot finish it.
        s.feed(data[: cut // 2])
        s.feed(data[cut // 2 : cut])
        got = s.err_sequence()
        whole = max(i for i, o in enumerate(offsets) if o <= cut)  # packets received whole
        partial = cut - offsets[whole]  # bytes of the next one
        if whole < header_packets or partial >= 4:
            assert got is None, (cut, got)  # in the column definitions, or inside a packet
        else:
            # Between packets, or only part of the next header arrived (the relay holds it back):
            # the ERR follows the last whole packet, whose sequence id is `whole`.
            assert got == whole + 1, (cut, got)
            allowed += 1
    assert allowed >= 15


def test_nothing_scanned_or_done() -> None:
    s = ResultScanner(CLASSIC)
    s.start(ResponseKind.QUERY)
    assert s.err_sequence() is None
    s.feed(packets(*resultset(CLASSIC, 3)))
    assert s.done and s.err_sequence() is None
