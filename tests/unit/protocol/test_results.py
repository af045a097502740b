"""ResultScanner: finds the end of every response shape, fed whole, byte by byte, and with trailing data."""

from __future__ import annotations

import pytest

from rwproxy.protocol.constants import Capability, ServerStatus
from rwproxy.protocol.framing import frame
from rwproxy.protocol.packets import make_eof, make_err, make_ok
from rwproxy.protocol.results import ResponseKind, ResultScanner, ScanError

CLASSIC = int(Capability.PROTOCOL_41)
DEPRECATE = int(Capability.PROTOCOL_41 | Capability.DEPRECATE_EOF)
AC = int(ServerStatus.AUTOCOMMIT)
MORE = int(ServerStatus.MORE_RESULTS_EXISTS)
TRAILER = frame(b"\x00\x00\x00\x02\x00\x00\x00", 9)  # bytes of the next response


def packets(*payloads: bytes) -> bytes:
    return b"".join(frame(p, i + 1) for i, p in enumerate(payloads))


def coldef(name: bytes) -> bytes:
    def s(x: bytes) -> bytes:
        return bytes([len(x)]) + x

    return (
        s(b"def")
        + s(b"db")
        + s(b"t")
        + s(b"t")
        + s(name)
        + s(name)
        + b"\x0c\x2d\x00\x0b\x00\x00\x00\x03\x00\x00\x00\x00"
    )


def row(*vals: bytes) -> bytes:
    return b"".join(bytes([len(v)]) + v for v in vals)


def end_ok(caps: int, flags: int = AC) -> bytes:
    return make_ok(caps, status_flags=flags, header=0xFE)


def resultset(caps: int, nrows: int, flags: int = AC) -> list[bytes]:
    out = [b"\x02", coldef(b"a"), coldef(b"b")]
    if not caps & Capability.DEPRECATE_EOF:
        out.append(make_eof(status_flags=flags))
    out += [row(b"%d" % i, b"x" * (i % 7)) for i in range(nrows)]
    out.append(end_ok(caps, flags) if caps & Capability.DEPRECATE_EOF else make_eof(status_flags=flags))
    return out


def scan(kind: ResponseKind, caps: int, data: bytes, mode: str) -> tuple[ResultScanner, int]:
    s = ResultScanner(caps)
    s.start(kind)
    stream = data + TRAILER if mode == "trailing" else data
    if mode == "bytewise":
        used = 0
        for i in range(len(stream)):
            n = s.feed(stream[i : i + 1])
            used += n
            if s.done:
                break
        return s, used
    return s, s.feed(stream)


MODES = ["whole", "bytewise", "trailing"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("caps", [CLASSIC, DEPRECATE])
def test_ok(mode: str, caps: int) -> None:
    data = packets(make_ok(caps, affected_rows=3, status_flags=AC | 1))
    s, used = scan(ResponseKind.QUERY, caps, data, mode)
    assert s.done and used == len(data)
    assert s.status_flags == AC | 1 and s.error_code is None


@pytest.mark.parametrize("mode", MODES)
def test_err(mode: str) -> None:
    data = packets(make_err(1146, "Table 'x.y' doesn't exist", "42S02"))
    s, used = scan(ResponseKind.QUERY, CLASSIC, data, mode)
    assert s.done and used == len(data) and s.error_code == 1146 and s.status_flags is None


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("caps", [CLASSIC, DEPRECATE])
def test_resultset(mode: str, caps: int) -> None:
    data = packets(*resultset(caps, 50, AC | 1))
    s, used = scan(ResponseKind.QUERY, caps, data, mode)
    assert s.done and used == len(data)
    assert s.status_flags == AC | 1
    assert s.result_sets == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("caps", [CLASSIC, DEPRECATE])
def test_multi_results(mode: str, caps: int) -> None:
    data = packets(
        *resultset(caps, 3, AC | MORE), *resultset(caps, 2, AC | MORE), make_ok(caps, status_flags=AC)
    )
    s, used = scan(ResponseKind.QUERY, caps, data, mode)
    assert s.done and used == len(data)
    assert s.result_sets == 3 and s.status_flags == AC


@pytest.mark.parametrize("mode", MODES)
def test_error_mid_rows(mode: str) -> None:
    rs = [*resultset(CLASSIC, 5)[:-1], make_err(1317, "Query execution was interrupted", "70100")]
    data = packets(*rs)
    s, used = scan(ResponseKind.QUERY, CLASSIC, data, mode)
    assert s.done and used == len(data) and s.error_code == 1317


@pytest.mark.parametrize("mode", MODES)
def test_classic_row_starting_with_fe_is_not_eof(mode: str) -> None:
    # A row whose first byte is 0xFE but 9+ bytes long is data, not EOF (classic protocol).
    rs = resultset(CLASSIC, 1)
    rs.insert(-1, b"\xfe" + b"\x01" * 9)
    data = packets(*rs)
    s, used = scan(ResponseKind.QUERY, CLASSIC, data, mode)
    assert s.done and used == len(data)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("caps", [CLASSIC, DEPRECATE])
@pytest.mark.parametrize(("params", "cols"), [(0, 0), (2, 0), (0, 3), (2, 3)])
def test_prepare(mode: str, caps: int, params: int, cols: int) -> None:
    ok = (
        b"\x00"
        + (7).to_bytes(4, "little")
        + cols.to_bytes(2, "little")
        + params.to_bytes(2, "little")
        + b"\x00\x00\x00"
    )
    ps = [ok]
    eof = not caps & Capability.DEPRECATE_EOF
    if params:
        ps += [coldef(b"?")] * params + ([make_eof()] if eof else [])
    if cols:
        ps += [coldef(b"c")] * cols + ([make_eof()] if eof else [])
    data = packets(*ps)
    s, used = scan(ResponseKind.PREPARE, caps, data, mode)
    assert s.done and used == len(data)
    assert s.prepare_ok == ok


@pytest.mark.parametrize("mode", MODES)
def test_local_infile_then_ok(mode: str) -> None:
    s = ResultScanner(CLASSIC)
    s.start(ResponseKind.QUERY)
    req = packets(b"\xfb/tmp/data.csv")
    assert s.feed(req) == len(req) and s.done and s.local_infile
    s.expect_infile_result()
    ok = frame(make_ok(CLASSIC, affected_rows=10), 4)
    assert s.feed(ok + TRAILER) == len(ok) and s.done and not s.local_infile


@pytest.mark.parametrize("caps", [CLASSIC, DEPRECATE])
def test_simple_eof_reply(caps: int) -> None:
    data = packets(make_eof(status_flags=AC))
    s, used = scan(ResponseKind.SIMPLE, caps, data, "trailing")
    assert s.done and used == len(data) and s.status_flags == AC


def test_large_row_split_over_frames() -> None:
    big = row(b"a", b"")[:0] + b"\xfe" + (0x1000010).to_bytes(8, "little") + b"z" * 0x1000010
    rs = resultset(DEPRECATE, 1)
    rs.insert(-1, big)
    data = packets(*rs)  # frame() splits the big row into 0xFFFFFF frames
    s = ResultScanner(DEPRECATE)
    s.start(ResponseKind.QUERY)
    used = 0
    for i in range(0, len(data), 1 << 20):
        used += s.feed(data[i : i + (1 << 20)])
    assert s.done and used == len(data)


def test_statistics_one_packet() -> None:
    data = packets(b"Uptime: 10  Threads: 1")
    s, used = scan(ResponseKind.ONE_PACKET, CLASSIC, data, "trailing")
    assert s.done and used == len(data)


def test_garbage_raises_scan_error() -> None:
    s = ResultScanner(CLASSIC)
    s.start(ResponseKind.PREPARE)
    with pytest.raises(ScanError):
        s.feed(packets(b"\x05abc"))
