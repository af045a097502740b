"""The drill workload: writer and reader clients (PyMySQL, one thread each) through the proxy.

Writers insert unique sequence numbers into ``events`` and record each outcome: acknowledged (OK
received), error (with its code), or in doubt (the connection was lost while the statement ran).
Readers alternate two checks: read-your-writes (insert a marker, read it back in the same
autocommit session: a replica that has not applied it yet answers "stale") and a plain read of
the newest sequence number any writer had acknowledged when the read started (stale if missing).
Any error closes the connection; the client reconnects after a short, growing backoff.

Threads, not asyncio: each client blocks in its own socket, so a stall in one never delays the
timestamps of another (the GIL is released while waiting on the network).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pymysql

from rwproxy.drill.events import ERROR, IN_DOUBT, IN_DOUBT_CODES, OK, STALE, ReadEvent, WriteEvent

__all__ = ["DrillTable", "Workload", "error_code"]

_BACKOFF_MIN, _BACKOFF_MAX = 0.02, 0.5


def error_code(exc: BaseException) -> tuple[int | None, str]:
    """(MySQL error code or None, message) of a client exception."""
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], int):
        return args[0], str(args[1]) if len(args) > 1 else ""
    return None, f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class DrillTable:
    """Where the drill writes: ``schema.events`` and ``schema.markers``, rows tagged by ``run_id``.

    ``events`` has no unique key on ``seq`` on purpose: a write applied twice (a replay) shows up as
    a duplicate instead of an error."""

    schema: str
    run_id: str

    @property
    def events(self) -> str:
        return f"`{self.schema}`.`events`"

    @property
    def markers(self) -> str:
        return f"`{self.schema}`.`markers`"

    def ddl(self) -> list[str]:
        return [
            f"CREATE DATABASE IF NOT EXISTS `{self.schema}`",
            f"CREATE TABLE IF NOT EXISTS {self.events} (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
            "run_id VARCHAR(32) NOT NULL, seq BIGINT NOT NULL, writer INT NOT NULL, at DOUBLE NOT NULL, "
            "KEY run_seq (run_id, seq))",
            f"CREATE TABLE IF NOT EXISTS {self.markers} (run_id VARCHAR(32) NOT NULL, reader INT NOT NULL, "
            "n BIGINT NOT NULL, PRIMARY KEY (run_id, reader, n))",
        ]

    def rows_query(self) -> tuple[str, tuple[str]]:
        return f"SELECT seq, COUNT(*) FROM {self.events} WHERE run_id = %s GROUP BY seq", (self.run_id,)


@dataclass
class _Client:
    ident: int
    thread: threading.Thread | None = None
    in_flight: tuple[int, float] | None = None  # (seq, start) of a write not yet answered


@dataclass
class Workload:
    """``start()``, then ``stop()``; ``writes``/``reads`` hold the events (times relative to ``t0``)."""

    connect: Callable[[], pymysql.Connection]
    table: DrillTable
    writers: int = 4
    readers: int = 4
    pause: float = 0.005  # between one client's operations
    t0: float = field(default_factory=time.monotonic)
    writes: list[WriteEvent] = field(default_factory=list)
    reads: list[ReadEvent] = field(default_factory=list)
    marker_failures: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._seq = itertools.count(1)
        self._seq_lock = threading.Lock()
        self._last_acked: int | None = None
        self._clients: list[_Client] = []

    def now(self) -> float:
        return time.monotonic() - self.t0

    def start(self) -> None:
        for i in range(self.writers):
            self._spawn(f"drill-writer-{i}", self._writer, i)
        for i in range(self.readers):
            self._spawn(f"drill-reader-{i}", self._reader, i)

    def _spawn(self, name: str, target: Callable[[_Client], None], ident: int) -> None:
        client = _Client(ident)
        client.thread = threading.Thread(target=target, args=(client,), name=name, daemon=True)
        self._clients.append(client)
        client.thread.start()

    def stop(self, timeout: float = 10.0) -> float:
        """Stop the clients; a write still unanswered after ``timeout`` is recorded in doubt.
        Returns the end time of the workload (when the stop was asked)."""
        end = self.now()
        self._stop.set()
        deadline = time.monotonic() + timeout
        for c in self._clients:
            assert c.thread is not None
            c.thread.join(max(0.0, deadline - time.monotonic()))
            if c.thread.is_alive() and c.in_flight is not None:
                seq, start = c.in_flight
                self.writes.append(
                    WriteEvent(
                        seq, c.ident, start, self.now(), IN_DOUBT, None, "no answer when the drill ended"
                    )
                )
        return end

    def counts(self) -> dict[str, int]:
        """Running totals for the progress line (reads list/append are safe under the GIL)."""
        w, r = list(self.writes), list(self.reads)
        return {
            "acked": sum(1 for e in w if e.outcome == OK),
            "write_errors": sum(1 for e in w if e.outcome != OK),
            "reads_ok": sum(1 for e in r if e.outcome != ERROR),
            "read_errors": sum(1 for e in r if e.outcome == ERROR),
            "stale": sum(1 for e in r if e.outcome == STALE),
        }

    # --- clients ------------------------------------------------------------------------------------
    def _open(self) -> tuple[pymysql.Connection | None, BaseException | None]:
        try:
            return self.connect(), None
        except Exception as exc:  # any driver or socket error: recorded, then retried
            return None, exc

    def _backoff(self, delay: float) -> float:
        self._stop.wait(delay)
        return min(_BACKOFF_MAX, delay * 2)

    def _writer(self, me: _Client) -> None:
        conn: pymysql.Connection | None = None
        delay = _BACKOFF_MIN
        sql = f"INSERT INTO {self.table.events} (run_id, seq, writer, at) VALUES (%s, %s, %s, %s)"
        while not self._stop.is_set():
            if conn is None:
                start = self.now()
                conn, exc = self._open()
                if conn is None:
                    assert exc is not None
                    code, msg = error_code(exc)
                    self.writes.append(WriteEvent(None, me.ident, start, self.now(), ERROR, code, msg))
                    delay = self._backoff(delay)
                    continue
            with self._seq_lock:
                seq = next(self._seq)
            start = self.now()
            me.in_flight = (seq, start)
            try:
                with conn.cursor() as cur:
                    cur.execute(sql, (self.table.run_id, seq, me.ident, time.time()))
            except Exception as exc:
                code, msg = error_code(exc)
                connection_lost = not isinstance(exc, pymysql.err.MySQLError) or code in IN_DOUBT_CODES
                outcome = IN_DOUBT if connection_lost else ERROR
                self.writes.append(WriteEvent(seq, me.ident, start, self.now(), outcome, code, msg))
                me.in_flight = None
                _close(conn)
                conn = None
                delay = self._backoff(delay)
                continue
            self.writes.append(WriteEvent(seq, me.ident, start, self.now(), OK))
            me.in_flight = None
            with self._seq_lock:
                if self._last_acked is None or seq > self._last_acked:
                    self._last_acked = seq
            delay = _BACKOFF_MIN
            if self.pause:
                self._stop.wait(self.pause)
        _close(conn)

    def _reader(self, me: _Client) -> None:
        conn: pymysql.Connection | None = None
        delay = _BACKOFF_MIN
        marker = itertools.count(1)
        ryw = True
        while not self._stop.is_set():
            kind = "ryw" if ryw else "plain"
            ryw = not ryw
            start = self.now()
            if conn is None:
                conn, exc = self._open()
                if conn is None:
                    assert exc is not None
                    self._read_failed(me, kind, start, exc)
                    delay = self._backoff(delay)
                    continue
            try:
                if kind == "ryw":
                    fresh = self._read_own_write(conn, me.ident, next(marker))
                    if fresh is None:  # the marker write failed: no read-your-writes check this round
                        _close(conn)
                        conn = None
                        delay = self._backoff(delay)
                        continue
                else:
                    start = self.now()
                    fresh = self._read_acked(conn)
            except Exception as exc:
                self._read_failed(me, kind, start, exc)
                _close(conn)
                conn = None
                delay = self._backoff(delay)
                continue
            self.reads.append(ReadEvent(me.ident, kind, start, self.now(), OK if fresh else STALE))
            delay = _BACKOFF_MIN
            if self.pause:
                self._stop.wait(self.pause)
        _close(conn)

    def _read_failed(self, me: _Client, kind: str, start: float, exc: BaseException) -> None:
        code, msg = error_code(exc)
        self.reads.append(ReadEvent(me.ident, kind, start, self.now(), ERROR, code, msg))

    def _read_own_write(self, conn: pymysql.Connection, reader: int, n: int) -> bool | None:
        """Insert marker ``n``, then read it back in the same session. None: the insert failed."""
        try:
            with conn.cursor() as cur:
                cur.execute(
                    f"INSERT INTO {self.table.markers} (run_id, reader, n) VALUES (%s, %s, %s)",
                    (self.table.run_id, reader, n),
                )
        except Exception:
            self.marker_failures += 1
            return None
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT COUNT(*) FROM {self.table.markers} WHERE run_id = %s AND reader = %s AND n = %s",
                (self.table.run_id, reader, n),
            )
            row = cur.fetchone()
        return bool(row and row[0])

    def _read_acked(self, conn: pymysql.Connection) -> bool:
        """Read the newest acknowledged sequence number (as of now); True when it is visible."""
        with self._seq_lock:
            seq = self._last_acked
        with conn.cursor() as cur:
            if seq is None:
                cur.execute("SELECT 1")
                cur.fetchall()
                return True
            cur.execute(
                f"SELECT COUNT(*) FROM {self.table.events} WHERE run_id = %s AND seq = %s",
                (self.table.run_id, seq),
            )
            row = cur.fetchone()
        return bool(row and row[0])


def _close(conn: Any) -> None:
    if conn is None:
        return
    with contextlib.suppress(Exception):  # already broken: nothing to tell the server
        conn.close()
