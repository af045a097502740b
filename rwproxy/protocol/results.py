"""Find the end of a backend response in a stream of bytes, without copying or decoding rows.

The relay copies backend bytes to the client unchanged. This scanner walks only the 4-byte packet
headers and the first payload byte of each packet to know where the response ends, and keeps the
small terminal packets (OK/EOF/ERR, prepare-OK) to read their status flags. No per-row allocation.

Response shapes (https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_query_response.html):

- QUERY (COM_QUERY, COM_STMT_EXECUTE): OK | ERR | LOCAL INFILE request | result set; after a result
  set's terminator or an OK with SERVER_MORE_RESULTS_EXISTS another result follows.
- PREPARE (COM_STMT_PREPARE): ERR | prepare-OK + param defs [+EOF] + column defs [+EOF].
- ROWS (COM_STMT_FETCH): rows until EOF/OK-terminator or ERR.
- FIELDS (COM_FIELD_LIST): column definitions until EOF or ERR.
- SIMPLE (COM_PING, COM_INIT_DB, COM_RESET_CONNECTION, ...): one OK or ERR.
- ONE_PACKET (COM_STATISTICS): any single packet.
"""

from __future__ import annotations

import enum

from rwproxy.protocol.constants import Capability, ServerStatus
from rwproxy.protocol.whole_response import WholeResponse, scan_whole_query

__all__ = ["ResponseKind", "ResultScanner", "ScanError"]

_MAX_FRAME = 0xFFFFFF
_MORE = int(ServerStatus.MORE_RESULTS_EXISTS)
_CURSOR = int(ServerStatus.CURSOR_EXISTS)
# Keep at most this much of a terminal packet (OK/ERR/EOF/prepare-OK); longer ones are truncated
# for inspection (the relay still forwards all bytes).
_KEEP_LIMIT = 64 * 1024
# A row split across reads is held back by the relay (see ``tail``) only when smaller than this.
_HOLD_LIMIT = 1 << 20


class ScanError(Exception):
    """The backend sent bytes that do not form a valid response: the connection must be discarded."""


class ResponseKind(enum.Enum):
    QUERY = 1
    PREPARE = 2
    ROWS = 3
    FIELDS = 4
    SIMPLE = 5
    ONE_PACKET = 6


_QUERY = ResponseKind.QUERY  # read per response: cheaper than the Enum.MEMBER lookup

# Scanner phases: what the next packet's first byte means.
_FIRST = 0  # first packet of a (possibly further) response
_COLDEFS = 1  # counting column definitions
_COLDEFS_EOF = 2  # the EOF after column definitions (classic protocol)
_ROWS = 3  # rows until a terminator
_PREP_PARAMS = 4  # prepare: param definitions
_PREP_PARAMS_EOF = 5
_PREP_COLS = 6
_PREP_COLS_EOF = 7
_INFILE = 8  # LOCAL INFILE request answered; waiting for the final OK/ERR
_DONE = 9


def _read_lenenc(buf: bytes, pos: int) -> tuple[int, int]:
    b = buf[pos]
    if b < 0xFB:
        return b, pos + 1
    if b == 0xFC:
        return buf[pos + 1] | buf[pos + 2] << 8, pos + 3
    if b == 0xFD:
        return buf[pos + 1] | buf[pos + 2] << 8 | buf[pos + 3] << 16, pos + 4
    if b == 0xFE:
        return int.from_bytes(buf[pos + 1 : pos + 9], "little"), pos + 9
    raise ScanError(f"invalid length-encoded integer prefix 0x{b:02x}")


def _last_sequence(data: bytes, pos: int) -> int:
    """The sequence id of the last whole packet header in ``data`` walking from ``pos`` (-1: none)."""
    n = len(data)
    last = -1
    while pos + 4 <= n:
        last = data[pos + 3]
        pos += 4 + (data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16)
    return last


class ResultScanner:
    """Incremental scanner for one response. Reuse with ``start()`` for the next command.

    ``feed(data)`` returns how many bytes of ``data`` belong to this response; when that is less
    than ``len(data)`` or ``done`` is True, the response ended there. After ``done``:
    ``status_flags`` (of the last OK/EOF, or None after ERR), ``error_code`` (ERR packets),
    ``terminal`` (the payload of the last OK/EOF/ERR, for callers that want affected rows etc.),
    ``prepare_ok`` (the prepare-OK payload for PREPARE) and ``local_infile`` (the server asked
    for a LOCAL INFILE upload: the caller relays the client's file packets, then calls
    ``expect_infile_result()`` and keeps feeding).
    """

    __slots__ = (
        "_capabilities",
        "_chunk",
        "_chunk_start",
        "_cols_pending",
        "_deprecate_eof",
        "_fresh",
        "_header",
        "_keep",
        "_keeping",
        "_left",
        "_need_first",
        "_phase",
        "_prev_chunk",
        "_prev_start",
        "_remaining_defs",
        "_skip_frame_continuation",
        "done",
        "error_code",
        "kind",
        "local_infile",
        "prepare_ok",
        "result_sets",
        "status_flags",
        "tail",
        "terminal",
    )

    def __init__(self, capabilities: int) -> None:
        self._capabilities = capabilities
        self._deprecate_eof = bool(capabilities & Capability.DEPRECATE_EOF)
        self.kind = ResponseKind.SIMPLE
        self._chunk = b""  # the last chunk fed to the incremental scanner ...
        self._chunk_start = 0  # ... and where its first whole packet starts (see err_sequence)
        self._prev_chunk = b""  # the same for the chunk before
        self._prev_start = 0
        # Bytes at the end of the last chunk that start a row not yet whole (0: none; -1: the
        # whole chunk continues a row begun in an earlier chunk): the relay may hold them back so
        # that the client only ever has whole rows, and an ERR packet can still end the result if
        # the backend dies (see BackendConnection.data_received).
        self.tail = 0
        self.start(ResponseKind.SIMPLE)

    def start(self, kind: ResponseKind) -> None:
        self.kind = kind
        self.done = False
        self.status_flags: int | None = None
        self.error_code: int | None = None
        self.terminal: bytes | None = None
        self.prepare_ok: bytes | None = None
        self.local_infile = False
        self.result_sets = 0
        # The incremental state is set up on the first feed that the one-chunk fast path cannot
        # finish (``_begin``), so that starting a response costs almost nothing.
        self._fresh = True

    def _begin(self) -> None:
        self._fresh = False
        self._header = b""  # partial packet header carried between feeds
        self._left = 0  # payload bytes of the current frame still to skip
        self._need_first = False  # header read; the first payload byte is in the next feed
        self._keeping = False  # collecting the current packet's payload into _keep
        self._keep = bytearray()
        self._remaining_defs = 0
        self._cols_pending = 0
        self._skip_frame_continuation = False
        kind = self.kind
        if kind is ResponseKind.ROWS:
            self._phase = _ROWS
        elif kind is ResponseKind.FIELDS:
            self._phase = _COLDEFS
            self._remaining_defs = -1  # unknown count: until terminator
        else:
            self._phase = _FIRST

    @property
    def ok(self) -> bool:
        return self.error_code is None

    def expect_infile_result(self) -> None:
        """After the client's file upload was relayed: the server now answers OK or ERR."""
        if self._fresh:
            self._begin()
        self.local_infile = False
        self.done = False
        self._phase = _INFILE

    def feed(self, data: bytes) -> int:
        """Consume bytes of this response; return the number consumed (the rest is not ours)."""
        if self.done:
            return 0
        if self._fresh:
            if self.kind is _QUERY:
                whole = scan_whole_query(data, self._deprecate_eof)
                if whole is not None:
                    return self._fast_done(whole)
            self._begin()
        n = len(data)
        pos = 0
        self.tail = 0
        # Finish a packet started in an earlier chunk.
        if self._left or self._need_first or self._header:
            pos = self._resume(data)
            if self.done or pos >= n:
                if self._phase == _ROWS and (self._left or self._need_first or self._header):
                    self.tail = -1  # all of it continues a row begun before
                return pos
        self._prev_chunk = self._chunk
        self._prev_start = self._chunk_start
        self._chunk = data
        self._chunk_start = pos
        deprecate_eof = self._deprecate_eof
        while pos + 4 <= n:
            length = data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16
            body = pos + 4
            if self._skip_frame_continuation:
                # Continuation frame of a packet > 16 MiB: its first byte means nothing.
                self._skip_frame_continuation = length == _MAX_FRAME
                if self._keeping:
                    end = min(n, body + length)
                    self._append_keep(data[body:end])
                    if end < body + length:
                        self._left = body + length - end
                        return n
                    if not self._skip_frame_continuation:
                        self._packet_complete()
                        if self.done:
                            return body + length
                    pos = body + length
                    continue
                if body + length > n:
                    self._left = body + length - n
                    return n
                pos = body + length
                continue
            if length == 0:
                first = -1
            elif body >= n:
                self._need_first = True
                self._left = length
                self._skip_frame_continuation = length == _MAX_FRAME
                if self._phase == _ROWS and length < _HOLD_LIMIT:
                    self.tail = n - pos
                return n
            else:
                first = data[body]
            phase = self._phase
            # Hot path: a row in a result set, not a terminator.
            if (
                phase == _ROWS
                and first != 0xFF
                and not (first == 0xFE and (length < 9 or (deprecate_eof and length < _MAX_FRAME)))
            ):
                self._skip_frame_continuation = length == _MAX_FRAME
                end = body + length
                if end > n:
                    self._left = end - n
                    if length < _HOLD_LIMIT:
                        self.tail = n - pos
                    return n
                pos = end
                continue
            self._skip_frame_continuation = length == _MAX_FRAME
            self._on_first_byte(first, length)
            end = body + length
            if self._keeping:
                stop = min(end, n)
                self._append_keep(data[body:stop])
                if stop < end:
                    self._left = end - stop
                    if self._phase == _ROWS:  # a terminator not yet whole
                        self.tail = n - pos
                    return n
                if not self._skip_frame_continuation:
                    self._packet_complete()
            elif end > n:
                self._left = end - n
                return n
            pos = end
            if self.done:
                return pos
        if pos < n:
            self._header = bytes(data[pos:n])
            if self._phase == _ROWS:
                self.tail = n - pos
            return n
        return pos

    @property
    def in_rows(self) -> bool:
        """Between the column definitions and the end of a result set (text or binary rows)."""
        return self._phase == _ROWS and not self.done

    def err_sequence(self) -> int | None:
        """The sequence id of an ERR packet that would end this response validly now, else None.

        Only between two packets of the rows of a result set (text or binary): an ERR packet is a
        valid terminator there (also when only part of the next packet's header arrived: the relay
        held it back, see ``tail``). Inside a packet, in column definitions or before anything was
        scanned it is not. Costs nothing while scanning: the last chunks' headers are walked here,
        once, when the backend is gone."""
        if (
            self.done
            or self._fresh
            or self._phase != _ROWS
            or self._left
            or self._need_first
            or self._skip_frame_continuation
        ):
            return None
        return self.next_sequence()

    def next_sequence(self) -> int | None:
        """The sequence id after the last packet header seen whole (None: not in the last two chunks)."""
        last = _last_sequence(self._chunk, self._chunk_start)
        if last < 0:
            last = _last_sequence(self._prev_chunk, self._prev_start)
        return None if last < 0 else (last + 1) & 0xFF

    # -- internals ---------------------------------------------------------------------------

    def _fast_done(self, whole: WholeResponse) -> int:
        end, flags, terminal, sets = whole
        self.terminal = terminal
        if flags is None:
            self.error_code = terminal[1] | terminal[2] << 8 if len(terminal) >= 3 else 0
        else:
            self.status_flags = flags
        self.result_sets = sets
        self.done = True
        return end

    def _append_keep(self, chunk: bytes) -> None:
        room = _KEEP_LIMIT - len(self._keep)
        if room > 0:
            self._keep += chunk[:room]

    def _resume(self, data: bytes) -> int:
        """Continue a packet whose header or payload straddles the previous chunk."""
        pos = 0
        n = len(data)
        if self._header:
            need = 4 - len(self._header)
            if n < need:
                self._header += data
                return n
            hdr = self._header + data[:need]
            self._header = b""
            pos = need
            length = hdr[0] | hdr[1] << 8 | hdr[2] << 16
            if self._skip_frame_continuation:
                self._skip_frame_continuation = length == _MAX_FRAME
                self._left = length
                if not self._keeping and length == 0:
                    return pos
            else:
                if length == 0:
                    self._skip_frame_continuation = False
                    self._on_first_byte(-1, 0)
                    if self._keeping:
                        self._packet_complete()
                    return pos
                self._need_first = True
                self._left = length
                self._skip_frame_continuation = length == _MAX_FRAME
        if self._need_first:
            if pos >= n:
                return pos
            self._need_first = False
            self._on_first_byte(data[pos], self._left)
        if self._left:
            stop = min(n, pos + self._left)
            if self._keeping:
                self._append_keep(data[pos:stop])
            self._left -= stop - pos
            pos = stop
            if self._left:
                return pos
        if self._keeping and not self._skip_frame_continuation:
            self._packet_complete()
        return pos

    def _on_first_byte(self, first: int, length: int) -> None:
        """Classify a packet by its first byte; set _keeping if its payload is needed."""
        phase = self._phase
        deprecate_eof = self._deprecate_eof
        self._keeping = False
        if phase in (_FIRST, _INFILE):
            if first == 0xFF or first == 0x00 or (phase == _INFILE and first >= 0):
                self._start_keep()
                return
            if first == 0xFB and self.kind is ResponseKind.QUERY:
                self._start_keep()  # LOCAL INFILE request: filename follows
                return
            if self.kind is ResponseKind.ONE_PACKET or self.kind is ResponseKind.SIMPLE:
                self._start_keep()
                return
            if self.kind is ResponseKind.QUERY and first >= 0:
                self._start_keep()  # column count (lenenc): tiny
                return
            raise ScanError(f"unexpected first byte 0x{first & 0xFF:02x} for {self.kind.name}")
        if phase == _COLDEFS:
            if self._remaining_defs == -1:  # FIELDS: until terminator
                if first == 0xFF or (first == 0xFE and (length < 9 or deprecate_eof)):
                    self._start_keep()
                return
            self._remaining_defs -= 1
            if self._remaining_defs == 0:
                self._phase = _ROWS if deprecate_eof else _COLDEFS_EOF
            return
        if phase in (_COLDEFS_EOF, _PREP_PARAMS_EOF, _PREP_COLS_EOF):
            self._start_keep()
            return
        if phase == _ROWS:
            # Only reached for terminators (the hot loop skips rows) or packets split across feeds.
            if first == 0xFF or (first == 0xFE and (length < 9 or (deprecate_eof and length < _MAX_FRAME))):
                self._start_keep()
            return
        if phase in (_PREP_PARAMS, _PREP_COLS):
            self._remaining_defs -= 1
            if self._remaining_defs == 0:
                if not deprecate_eof:
                    self._phase = _PREP_PARAMS_EOF if phase == _PREP_PARAMS else _PREP_COLS_EOF
                elif phase == _PREP_PARAMS and self._cols_pending:
                    self._phase = _PREP_COLS
                    self._remaining_defs = self._cols_pending
                else:
                    # Last definition ends the response: keep it so the end is acted on only
                    # once the whole packet has been consumed.
                    self._start_keep()
            return
        raise ScanError("data after the end of the response")

    def _start_keep(self) -> None:
        self._keeping = True
        self._keep = bytearray()

    def _packet_complete(self) -> None:
        """A kept packet is whole: act on it. Also advances definition counters."""
        self._keeping = False
        p = bytes(self._keep)
        phase = self._phase
        if phase in (_FIRST, _INFILE):
            if self.kind is ResponseKind.ONE_PACKET:
                self._finish(p, None)
                return
            first = p[0] if p else -1
            if first == 0xFF:
                self._error(p)
                return
            if first == 0x00 and phase == _FIRST and self.kind is ResponseKind.PREPARE:
                self.prepare_ok = p
                if len(p) < 12:
                    raise ScanError("short COM_STMT_PREPARE_OK")
                cols = p[5] | p[6] << 8
                params = p[7] | p[8] << 8
                self._cols_pending = cols
                if params:
                    self._phase = _PREP_PARAMS
                    self._remaining_defs = params
                elif cols:
                    self._phase = _PREP_COLS
                    self._remaining_defs = cols
                else:
                    self._finish(p, None)
                return
            if first == 0x00 or phase == _INFILE:
                self._ok(p)
                return
            if self.kind is ResponseKind.SIMPLE:
                if first != 0xFE:
                    raise ScanError(f"unexpected first byte 0x{first & 0xFF:02x} for a simple response")
                self._eof_or_ok(p)  # COM_SET_OPTION answers with EOF
                return
            if first == 0xFB:
                self.local_infile = True
                self.terminal = p
                self.done = True
                return
            # Column count of a result set.
            count, _ = _read_lenenc(p, 0)
            if count == 0:
                raise ScanError("result set with zero columns")
            self._phase = _COLDEFS
            self._remaining_defs = count
            return
        if phase == _COLDEFS and self._remaining_defs == -1:
            if p[:1] == b"\xff":
                self._error(p)
            else:
                self._eof_or_ok(p)
            return
        if phase in (_COLDEFS_EOF, _PREP_PARAMS_EOF, _PREP_COLS_EOF):
            if p[:1] == b"\xff":
                self._error(p)
                return
            if p[:1] != b"\xfe":
                raise ScanError("expected EOF after definitions")
            if phase == _COLDEFS_EOF:
                flags = p[3] | p[4] << 8 if len(p) >= 5 else 0
                if flags & _CURSOR:
                    self._finish(p, flags)
                else:
                    self._phase = _ROWS
            elif phase == _PREP_PARAMS_EOF:
                self._after_params()
            else:
                self._finish(self.prepare_ok or p, None)
            return
        if phase == _ROWS:
            if p[:1] == b"\xff":
                self._error(p)
            else:
                self._eof_or_ok(p)
            return
        if phase in (_PREP_PARAMS, _PREP_COLS):
            self._finish(self.prepare_ok or p, None)
            return

    def _after_params(self) -> None:
        if self._cols_pending:
            self._phase = _PREP_COLS
            self._remaining_defs = self._cols_pending
        else:
            self._finish(self.prepare_ok or b"", None)

    def _error(self, p: bytes) -> None:
        self.error_code = p[1] | p[2] << 8 if len(p) >= 3 else 0
        self.status_flags = None
        self._finish(p, None)

    def _ok(self, p: bytes) -> None:
        try:
            _, pos = _read_lenenc(p, 1)
            _, pos = _read_lenenc(p, pos)
            flags = p[pos] | p[pos + 1] << 8
        except IndexError:
            raise ScanError("truncated OK packet") from None
        self._end_of_result(p, flags)

    def _eof_or_ok(self, p: bytes) -> None:
        # A classic EOF is 5 bytes; an OK-as-EOF (CLIENT_DEPRECATE_EOF) is at least 7.
        if len(p) < 7 or not self._deprecate_eof:
            flags = p[3] | p[4] << 8 if len(p) >= 5 else 0
            self._end_of_result(p, flags)
        else:
            self._ok(p)

    def _end_of_result(self, p: bytes, flags: int) -> None:
        self.result_sets += 1
        if flags & _MORE and self.kind is ResponseKind.QUERY:
            self._phase = _FIRST
            self.status_flags = flags
            return
        self._finish(p, flags)

    def _finish(self, p: bytes, flags: int | None) -> None:
        self.terminal = p
        if flags is not None:
            self.status_flags = flags
        self._phase = _DONE
        self.done = True
