"""The one-chunk fast path agrees with the incremental scanner on every response shape."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rwproxy.protocol.constants import Capability, ServerStatus
from rwproxy.protocol.framing import frame
from rwproxy.protocol.packets import make_eof, make_err, make_ok
from rwproxy.protocol.results import ResponseKind, ResultScanner
from rwproxy.protocol.whole_response import scan_whole_query

MORE = int(ServerStatus.MORE_RESULTS_EXISTS)
COLDEF = b"\x03def\x00\x00\x00\x01c\x01c\x0c\x08\x00\x0b\x00\x00\x00\x03\x00\x00\x00\x00"

row_value = st.one_of(st.none(), st.binary(max_size=300))


@st.composite
def result_parts(draw: st.DrawFn, deprecate: bool, last: bool) -> list[bytes]:
    caps = int(Capability.PROTOCOL_41 | (Capability.DEPRECATE_EOF if deprecate else 0))
    flags = int(ServerStatus.AUTOCOMMIT) | (0 if last else MORE) | draw(st.sampled_from([0, 1]))
    kind = draw(st.sampled_from(["ok", "err", "rows"]))
    if kind == "ok":
        return [
            make_ok(
                caps,
                affected_rows=draw(st.integers(0, 2**40)),
                status_flags=flags,
                info=b"x" * draw(st.integers(0, 3)),
            )
        ]
    if kind == "err":
        return [make_err(1146, "no such table", "42S02")]
    cols = draw(st.integers(1, 5))
    out = [bytes([cols])] + [COLDEF] * cols
    if not deprecate:
        out.append(make_eof(status_flags=flags))
    for _ in range(draw(st.integers(0, 20))):
        vals = [draw(row_value) for _ in range(cols)]
        out.append(
            b"".join(
                b"\xfb"
                if v is None
                else bytes([len(v)]) + v
                if len(v) < 251
                else b"\xfc" + len(v).to_bytes(2, "little") + v
                for v in vals
            )
        )
    if draw(st.booleans()) and not last:
        out.append(make_err(1317, "interrupted", "70100"))
    else:
        out.append(
            make_ok(caps, status_flags=flags, header=0xFE) if deprecate else make_eof(status_flags=flags)
        )
    return out


@st.composite
def responses(draw: st.DrawFn) -> tuple[bool, bytes]:
    deprecate = draw(st.booleans())
    count = draw(st.integers(1, 3))
    payloads: list[bytes] = []
    for i in range(count):
        part = draw(result_parts(deprecate, i == count - 1))
        payloads += part
        if part[-1][:1] == b"\xff":
            break  # an error ends the whole response
    data = b"".join(frame(p, (i + 1) & 0xFF) for i, p in enumerate(payloads))
    return deprecate, data


@settings(max_examples=300, deadline=None)
@given(responses(), st.binary(max_size=8))
def test_fast_path_matches_incremental_scanner(resp: tuple[bool, bytes], trailing: bytes) -> None:
    deprecate, data = resp
    caps = int(Capability.PROTOCOL_41 | (Capability.DEPRECATE_EOF if deprecate else 0))
    slow = ResultScanner(caps)
    slow.start(ResponseKind.QUERY)
    slow._begin()  # force the incremental path
    used = 0
    for i in range(len(data)):
        used += slow.feed(data[i : i + 1])
        if slow.done:
            break
    assert slow.done and used == len(data)
    fast = scan_whole_query(data + trailing, deprecate)
    assert fast is not None
    end, flags, _terminal, sets = fast
    assert end == len(data)
    assert flags == slow.status_flags
    assert (flags is None) == (slow.error_code is not None)
    assert sets == slow.result_sets or slow.error_code is not None
    # Any incomplete prefix is refused by the fast path (the incremental path takes over).
    for cut in range(0, len(data), max(1, len(data) // 7)):
        assert scan_whole_query(data[:cut], deprecate) is None
