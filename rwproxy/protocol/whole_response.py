"""Fast path of the relay: a whole COM_QUERY/COM_STMT_EXECUTE response in one chunk.

OLTP responses (an OK, an ERR, or a small result set) nearly always arrive in one read. This pure
function walks their packet headers in one tight loop; anything unusual or incomplete returns None
and ``ResultScanner``'s incremental path takes over from the start of the chunk.
"""

from __future__ import annotations

from rwproxy.protocol.constants import ServerStatus

__all__ = ["WholeResponse", "scan_whole_query"]

_MAX_FRAME = 0xFFFFFF
_MORE = int(ServerStatus.MORE_RESULTS_EXISTS)
_CURSOR = int(ServerStatus.CURSOR_EXISTS)


# (end, status_flags, terminal, result_sets): the offset just past the response; the final OK/EOF's
# status flags (None when the response ended with ERR); that final packet's payload; the number of
# result sets. A plain tuple: built once per statement on the hot path (a NamedTuple costs more).
WholeResponse = tuple[int, int | None, bytes, int]


def scan_whole_query(data: bytes, deprecate_eof: bool) -> WholeResponse | None:
    """The response at the start of ``data`` if all of it is there and it is ordinary, else None.

    Ordinary: OK/ERR packets and text or binary result sets with fewer than 251 columns, no packet
    of 16 MiB or more, no LOCAL INFILE request, no cursor; multi-results are followed.
    """
    n = len(data)
    pos = 0
    sets = 0
    while True:
        if pos + 5 > n:
            return None
        length = data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16
        body = pos + 4
        end = body + length
        if end > n or length == _MAX_FRAME or length == 0:
            return None
        first = data[body]
        if first == 0x00 or first == 0xFF:
            flags = _terminal_flags(data, body, end, first, True, deprecate_eof)
            if flags < 0:
                return None
            sets += 1
            if first == 0x00 and flags & _MORE:
                pos = end
                continue
            return end, flags if first == 0x00 else None, data[body:end], sets
        if first >= 0xFB:
            return None  # LOCAL INFILE request, or >250 columns: incremental path
        pos = end
        for _ in range(first):  # column definitions
            if pos + 4 > n:
                return None
            length = data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16
            if length == _MAX_FRAME:
                return None
            pos += 4 + length
        if not deprecate_eof:  # the EOF after the column definitions
            if pos + 9 > n:
                return None
            length = data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16
            if data[pos + 4] != 0xFE or length >= 9:
                return None
            if (data[pos + 7] | data[pos + 8] << 8) & _CURSOR:
                return None  # cursor opened: let the incremental path decide
            pos += 4 + length
        while True:  # rows until a terminator
            if pos + 5 > n:
                return None
            length = data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16
            body = pos + 4
            end = body + length
            if end > n or length == _MAX_FRAME:
                return None
            first = data[body]
            if first == 0xFF or (first == 0xFE and (length < 9 or (deprecate_eof and length < _MAX_FRAME))):
                break
            pos = end
        flags = _terminal_flags(data, body, end, first, False, deprecate_eof)
        if flags < 0:
            return None
        sets += 1
        if first == 0xFE and flags & _MORE:
            pos = end
            continue
        return end, flags if first == 0xFE else None, data[body:end], sets


def _terminal_flags(data: bytes, body: int, end: int, first: int, ok_form: bool, deprecate_eof: bool) -> int:
    """Status flags of an OK/EOF at data[body:end] (0 for ERR); -1 when it does not parse."""
    if first == 0xFF:
        return 0
    if not ok_form and (end - body < 7 or not deprecate_eof):
        return data[body + 3] | data[body + 4] << 8 if end - body >= 5 else -1
    pos = body + 1
    for _ in range(2):  # affected rows, last insert id
        if pos >= end:
            return -1
        b = data[pos]
        pos += 1 if b < 0xFB else 3 if b == 0xFC else 4 if b == 0xFD else 9 if b == 0xFE else end
    if pos + 2 > end:
        return -1
    return data[pos] | data[pos + 1] << 8
