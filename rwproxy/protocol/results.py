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

from typing import Final

from rwproxy.protocol.response_phases import (
    _INFILE,
    _MAX_FRAME,
    _ROWS,
    ResponseKind,
    ResponsePhases,
    ScanError,
)
from rwproxy.protocol.whole_response import WholeResponse, scan_whole_query

__all__ = ["ResponseKind", "ResultScanner", "ScanError"]

# Keep at most this much of a terminal packet (OK/ERR/EOF/prepare-OK); longer ones are truncated
# for inspection (the relay still forwards all bytes).
_KEEP_LIMIT: Final = 64 * 1024
# A row split across reads is held back by the relay (see ``tail``) only when smaller than this.
_HOLD_LIMIT: Final = 1 << 20

_QUERY = ResponseKind.QUERY  # read per response: cheaper than the Enum.MEMBER lookup


def _last_sequence(data: bytes, pos: int) -> int:
    """The sequence id of the last whole packet header in ``data`` walking from ``pos`` (-1: none)."""
    n = len(data)
    last = -1
    while pos + 4 <= n:
        last = data[pos + 3]
        pos += 4 + (data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16)
    return last


class ResultScanner(ResponsePhases):
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
        "_chunk",
        "_chunk_start",
        "_header",
        "_left",
        "_need_first",
        "_prev_chunk",
        "_prev_start",
        "_skip_frame_continuation",
        "tail",
    )

    def __init__(self, capabilities: int) -> None:
        super().__init__(capabilities)
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

    def _begin(self) -> None:
        self._fresh = False
        self._header = b""  # partial packet header carried between feeds
        self._left = 0  # payload bytes of the current frame still to skip
        self._need_first = False  # header read; the first payload byte is in the next feed
        self._skip_frame_continuation = False
        self._begin_phase()

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
