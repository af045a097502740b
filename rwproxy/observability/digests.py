"""The query digest table: per normalised statement, how often it ran, how long it took, where it went.

    table = DigestTable(size=1000, example_chars=256)
    table.record(sql_bytes, seconds, primary=True, error=False)   # once per answered statement
    table.rows()                                                   # snapshot, most used first

Keys are :func:`rwproxy.router.digest.digest_text` - the literal-stripped text the classifier's cache and
the routing rules use (``SELECT c FROM t WHERE id=?``; IN-lists collapsed). The classifier's fast path
(plain SELECTs) never computes a digest, so the table keeps its own map from the exact statement text
(bytes, as the client sent it) to its entry: a repeated text - every prepared statement, any repeated
query - costs one dict lookup; a new text costs one ``digest_text`` (about 1.5 us for a point select).
Texts longer than ``TEXT_CACHE_MAX_BYTES`` are digested every time and never cached.

Bounded: at most ``size`` entries are kept. New digests may push the table up to ``size + slack``
(``slack = max(16, size // 4)``); it is then trimmed back to the ``size`` most used digests (by count,
then total time) and the dropped ones are counted in ``evicted``. New digests thus get a window to
prove themselves before they compete. ``clear()`` empties it.

Called on the proxy's event-loop thread only (no locks); readers on that thread see a consistent table.
"""

from __future__ import annotations

import re
import time
from typing import Any

from rwproxy.router.digest import digest_hash, digest_text

__all__ = ["TEXT_CACHE_MAX_BYTES", "DigestStats", "DigestTable"]

#: Statement texts up to this size are remembered (text -> entry); longer ones are digested per call.
TEXT_CACHE_MAX_BYTES = 2048
#: How many exact texts (and numeric shapes) are remembered; a map is emptied when it grows past
#: this. Large enough for an OLTP id range of tens of thousands (a few MB at most).
TEXT_CACHE_SIZE = 32768
# A new text's "numeric shape": standalone numbers replaced. Texts with the same shape have the same
# digest (digest_text strips those numbers too), so a new literal costs this substitution (~0.5 us)
# instead of a full digest (~1.8 us). The pattern starts with the digit and looks behind it (the
# digit is not preceded by a name character, "$" or "."): sre then skips to digits by its
# first-character set instead of trying the look-behind at every position (2.5x faster).
# Known blur: a number standing alone inside a backquoted name (`t 1` vs `t 2`) or an rwproxy hint
# value (max_lag=2 vs 3) may share the first text's digest.
_NUMBER = re.compile(rb"\d(?<![\w$.]\d)\d*")
#: Digest texts longer than this are cut (different statements with the same first part then merge).
MAX_DIGEST_CHARS = 4096


class DigestStats:
    """One digest's counters. ``total``/``max`` in seconds; ``primary`` counts primary-routed runs."""

    __slots__ = ("count", "digest", "digest_id", "errors", "example", "first_seen", "max", "primary", "total")

    def __init__(self, digest: str, example: str) -> None:
        self.digest = digest
        self.digest_id = f"{digest_hash(digest):016x}"
        self.example = example
        self.count = 0
        self.total = 0.0
        self.max = 0.0
        self.primary = 0
        self.errors = 0
        self.first_seen = time.time()

    @property
    def route(self) -> str:
        """``primary``, ``replica`` or ``mixed`` (both happened: e.g. in and outside transactions)."""
        if self.primary == self.count:
            return "primary"
        return "replica" if self.primary == 0 else "mixed"

    def as_row(self) -> dict[str, Any]:
        count = self.count
        return {
            "digest": self.digest,
            "digest_id": self.digest_id,
            "example": self.example,
            "count": count,
            "total_time_us": round(self.total * 1e6),
            "avg_time_us": round(self.total * 1e6 / count) if count else 0,
            "max_time_us": round(self.max * 1e6),
            "route": self.route,
            "primary_count": self.primary,
            "replica_count": count - self.primary,
            "errors": self.errors,
            "first_seen": round(self.first_seen, 3),
        }


class DigestTable:
    def __init__(self, size: int = 1000, example_chars: int = 256) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self.size = size
        self.slack = max(16, size // 4)
        self.example_chars = example_chars
        self.evicted = 0
        self._entries: dict[str, DigestStats] = {}
        self._by_text: dict[bytes, DigestStats] = {}
        self._by_shape: dict[bytes, DigestStats] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, text: bytes, seconds: float, primary: bool, error: bool) -> None:
        """Count one statement (``text`` as sent by the client) that took ``seconds``."""
        entry = self._by_text.get(text)
        if entry is None:
            entry = self._lookup(text)
        entry.count += 1
        entry.total += seconds
        if seconds > entry.max:
            entry.max = seconds
        if primary:
            entry.primary += 1
        if error:
            entry.errors += 1

    def _lookup(self, text: bytes) -> DigestStats:
        shape = None
        if len(text) <= TEXT_CACHE_MAX_BYTES:
            shape = _NUMBER.sub(b"?", text)
            found = self._by_shape.get(shape)
            if found is not None:
                self._remember(text, found)
                return found
        entry = self._digest(text)
        if shape is not None:
            by_shape = self._by_shape
            if len(by_shape) >= TEXT_CACHE_SIZE:
                by_shape.clear()
            by_shape[shape] = entry
        return entry

    def _remember(self, text: bytes, entry: DigestStats) -> None:
        by_text = self._by_text
        if len(by_text) >= TEXT_CACHE_SIZE:
            by_text.clear()
        by_text[text] = entry

    def _digest(self, text: bytes) -> DigestStats:
        sql = text.decode("utf-8", "surrogateescape")
        key = digest_text(sql)[:MAX_DIGEST_CHARS]
        entries = self._entries
        entry = entries.get(key)
        if entry is None:
            if len(entries) >= self.size + self.slack:
                self._trim()  # before adding: the newcomer (count 0) must not be the one dropped
                entries = self._entries
            example = sql[: self.example_chars].encode("utf-8", "replace").decode("utf-8")
            entry = entries[key] = DigestStats(key, example)
        if len(text) <= TEXT_CACHE_MAX_BYTES:
            self._remember(text, entry)
        return entry

    def _trim(self) -> None:
        ranked = sorted(self._entries.values(), key=lambda e: (e.count, e.total), reverse=True)
        self.evicted += len(ranked) - self.size
        self._entries = {e.digest: e for e in ranked[: self.size]}
        self._by_text.clear()  # they may point at dropped entries
        self._by_shape.clear()

    def clear(self) -> None:
        self._entries.clear()
        self._by_text.clear()
        self._by_shape.clear()

    def entries(self) -> list[DigestStats]:
        """The entries, most used first (count, then total time)."""
        return sorted(self._entries.values(), key=lambda e: (e.count, e.total), reverse=True)

    def rows(self, limit: int | None = None) -> list[dict[str, Any]]:
        entries = self.entries()
        return [e.as_row() for e in (entries if limit is None else entries[:limit])]
