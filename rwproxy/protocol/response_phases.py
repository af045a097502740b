"""What each packet of a backend response means: the per-packet state machine of the result scanner.

:class:`ResponsePhases` holds where a response is (its phase: first packet, column definitions,
rows, prepare definitions, LOCAL INFILE) and acts on each packet by its first byte, and on the few
packets kept whole (OK/EOF/ERR, a column count, prepare-OK): status flags, error code, the end of a
result set or of the response. :class:`rwproxy.protocol.results.ResultScanner` walks the frames of
the byte stream and calls it; both are one object per backend connection.
"""

from __future__ import annotations

import enum
from typing import Final

from rwproxy.protocol.constants import Capability, ServerStatus

__all__ = ["ResponseKind", "ResponsePhases", "ScanError"]

_MAX_FRAME: Final = 0xFFFFFF
_MORE: Final = int(ServerStatus.MORE_RESULTS_EXISTS)
_CURSOR: Final = int(ServerStatus.CURSOR_EXISTS)


class ScanError(Exception):
    """The backend sent bytes that do not form a valid response: the connection must be discarded."""


class ResponseKind(enum.Enum):
    QUERY = 1
    PREPARE = 2
    ROWS = 3
    FIELDS = 4
    SIMPLE = 5
    ONE_PACKET = 6


# Scanner phases: what the next packet's first byte means (results.py reads _ROWS and _INFILE).
_FIRST: Final = 0  # first packet of a (possibly further) response
_COLDEFS: Final = 1  # counting column definitions
_COLDEFS_EOF: Final = 2  # the EOF after column definitions (classic protocol)
_ROWS: Final = 3  # rows until a terminator
_PREP_PARAMS: Final = 4  # prepare: param definitions
_PREP_PARAMS_EOF: Final = 5
_PREP_COLS: Final = 6
_PREP_COLS_EOF: Final = 7
_INFILE: Final = 8  # LOCAL INFILE request answered; waiting for the final OK/ERR
_DONE: Final = 9


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


class ResponsePhases:
    """The phase of one response and what its packets mean (see the module docstring).

    After ``done``: ``status_flags`` (of the last OK/EOF, or None after ERR), ``error_code`` (ERR
    packets), ``terminal`` (the payload of the last OK/EOF/ERR), ``prepare_ok`` (PREPARE) and
    ``local_infile`` (the server asked for a LOCAL INFILE upload).
    """

    __slots__ = (
        "_capabilities",
        "_cols_pending",
        "_deprecate_eof",
        "_fresh",
        "_keep",
        "_keeping",
        "_phase",
        "_remaining_defs",
        "done",
        "error_code",
        "kind",
        "local_infile",
        "prepare_ok",
        "result_sets",
        "status_flags",
        "terminal",
    )

    def __init__(self, capabilities: int) -> None:
        self._capabilities = capabilities
        self._deprecate_eof = bool(capabilities & Capability.DEPRECATE_EOF)
        self.kind = ResponseKind.SIMPLE

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

    def _begin_phase(self) -> None:
        """The phase state at the first packet of a response of ``kind``."""
        self._keeping = False  # collecting the current packet's payload into _keep
        self._keep = bytearray()
        self._remaining_defs = 0
        self._cols_pending = 0
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
