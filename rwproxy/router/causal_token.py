"""Causal reads across connections: the GTID token (``@rwproxy_last_gtid`` / ``@rwproxy_wait_gtid``).

After a write, a client reads its session's last GTID with ``SELECT @rwproxy_last_gtid`` and hands it
to any other connection, on any rwproxy instance in front of the same cluster, with
``SET @rwproxy_wait_gtid = '<gtid>'``. That session's reads then go only to a server that has applied
it (the same CAUSAL_APPLIED / CAUSAL_WAIT / CAUSAL_FALLBACK routes as read_your_writes), in every
consistency mode, until the token is replaced, cleared (``SET @rwproxy_wait_gtid = NULL`` or ``''``,
COM_RESET_CONNECTION), or the session commits a write of its own (whose GTID, later on the same
primary, then orders its reads in read_your_writes).

Pure: parsing of the two statements and the GTID a read must see (``read_gtid``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rwproxy.router.session_state import Consistency, SessionState

__all__ = [
    "LAST_GTID_COLUMN",
    "TokenError",
    "WaitGtid",
    "is_last_gtid_query",
    "merge_gtids",
    "parse_wait_gtid",
    "read_gtid",
    "valid_gtid",
]

LAST_GTID_COLUMN = "@rwproxy_last_gtid"
MAX_TOKEN_CHARS = 8192

_SELECT_LAST = re.compile(r"\s*SELECT\s+@rwproxy_last_gtid\s*;?\s*", re.IGNORECASE)
_SET_WAIT = re.compile(
    r"\s*SET\s+@rwproxy_wait_gtid\s*:?=\s*(?:(NULL)|'([^'\\]*)'|\"([^\"\\]*)\")\s*;?\s*", re.IGNORECASE
)
# MariaDB: domain-server-sequence, comma separated. MySQL: uuid:interval[:interval...], comma separated.
_MARIADB = r"\d{1,10}-\d{1,10}-\d{1,20}"
_UUID = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
_MYSQL = _UUID + r"(?::\d{1,20}(?:-\d{1,20})?)+"
_MARIADB_LIST = re.compile(rf"{_MARIADB}(?:\s*,\s*{_MARIADB})*")
_MYSQL_SET = re.compile(rf"{_MYSQL}(?:\s*,\s*{_MYSQL})*")


@dataclass(frozen=True, slots=True)
class WaitGtid:
    """A parsed ``SET @rwproxy_wait_gtid``: ``gtid`` None clears the token."""

    gtid: str | None


@dataclass(frozen=True, slots=True)
class TokenError:
    """Why a ``SET @rwproxy_wait_gtid`` is refused: MySQL error number and message."""

    errno: int
    message: str


def is_last_gtid_query(sql: str) -> bool:
    """``SELECT @rwproxy_last_gtid`` alone (rwproxy answers it)."""
    return _SELECT_LAST.fullmatch(sql) is not None


def valid_gtid(text: str) -> bool:
    """A MariaDB GTID list (``0-1-42,1-2-7``) or a MySQL GTID set (``uuid:1-5:7``)."""
    if len(text) > MAX_TOKEN_CHARS:
        return False
    return _MARIADB_LIST.fullmatch(text) is not None or _MYSQL_SET.fullmatch(text) is not None


def parse_wait_gtid(sql: str) -> WaitGtid | TokenError:
    """``SET @rwproxy_wait_gtid = '<gtid>' | NULL | ''`` alone; anything else is refused."""
    m = _SET_WAIT.fullmatch(sql)
    if m is None:
        return TokenError(
            1064,
            "rwproxy: set the token alone, as SET @rwproxy_wait_gtid = '<gtid>' (from SELECT "
            "@rwproxy_last_gtid) or SET @rwproxy_wait_gtid = NULL",
        )
    if m.group(1) is not None:
        return WaitGtid(None)
    text = (m.group(2) if m.group(2) is not None else m.group(3)).strip()
    if not text:
        return WaitGtid(None)
    if not valid_gtid(text):
        shown = text if len(text) <= 64 else text[:64] + "..."
        return TokenError(
            1231,
            f"Variable 'rwproxy_wait_gtid' can't be set to the value of '{shown}' (a GTID as "
            "SELECT @rwproxy_last_gtid returns it: MariaDB 'domain-server-seq', MySQL 'uuid:n')",
        )
    return WaitGtid(text.replace(" ", ""))


def merge_gtids(a: str, b: str) -> str:
    """One GTID list that covers both ``a`` and ``b``. MariaDB: per domain the higher sequence
    (``MASTER_GTID_WAIT`` refuses a domain listed twice); MySQL GTID sets simply join."""
    if ":" in a or ":" in b:
        return a if a == b else f"{a},{b}"
    best: dict[str, tuple[int, str]] = {}
    for item in (*a.split(","), *b.split(",")):
        item = item.strip()
        if not item:
            continue
        domain, _, rest = item.partition("-")
        seq = int(rest.rpartition("-")[2])
        if domain not in best or best[domain][0] < seq:
            best[domain] = (seq, item)
    return ",".join(item for _seq, item in best.values())


def read_gtid(state: SessionState) -> str | None:
    """The GTID a read of this session must see, or None: its own last commit (read_your_writes),
    the token (``@rwproxy_wait_gtid``, any mode), or both merged."""
    own = state.causal_gtid if state.consistency is Consistency.READ_YOUR_WRITES else None
    token = state.wait_gtid
    if token is None:
        return own
    if own is None or own == token:
        return token
    return merge_gtids(own, token)
