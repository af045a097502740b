"""GTID positions and "has this server applied that transaction?", for MariaDB and MySQL.

MariaDB GTIDs are ``domain-server-seq``; a position (``@@gtid_slave_pos``, ``@@gtid_current_pos``) is
a comma-separated list with one GTID per replication domain. Within a domain sequence numbers only
grow, so a position covers ``d-s-n`` when its entry for domain ``d`` has a sequence >= ``n``.

MySQL GTIDs are ``source_uuid:n``; a GTID set (``@@gtid_executed``) is ``uuid:1-5:7-9,uuid2:1-3``.
It covers ``uuid:n`` when ``n`` lies in one of ``uuid``'s intervals.

Pure functions over strings; positions are parsed once (by the monitor) into ``GtidPosition``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GtidPosition", "parse_position", "wait_statement"]


@dataclass(frozen=True, slots=True)
class GtidPosition:
    """A parsed position. ``mariadb``: domain -> highest sequence; ``mysql``: uuid -> intervals."""

    mariadb: dict[int, int]
    mysql: dict[str, tuple[tuple[int, int], ...]]
    text: str = ""

    def __hash__(self) -> int:  # the dicts are never mutated after parsing
        return hash(self.text)

    def covers(self, gtid: str) -> bool:
        """True when the server at this position has applied ``gtid`` (one GTID or a GTID list)."""
        return all(self._covers_one(g) for g in _split(gtid))

    def size(self) -> int:
        """How far the position has got: the sum of MariaDB sequence numbers plus the number of MySQL
        transactions. Only meaningful between positions of one replication topology."""
        return sum(self.mariadb.values()) + sum(hi - lo + 1 for iv in self.mysql.values() for lo, hi in iv)

    def contained_in(self, other: GtidPosition) -> bool:
        """Everything at this position is also at ``other`` (MariaDB: per domain by sequence)."""
        for domain, seq in self.mariadb.items():
            if other.mariadb.get(domain, -1) < seq:
                return False
        for uuid, intervals in self.mysql.items():
            theirs = other.mysql.get(uuid, ())
            for lo, hi in intervals:
                if not any(a <= lo and hi <= b for a, b in theirs):
                    return False
        return True

    def _covers_one(self, gtid: str) -> bool:
        if ":" in gtid:
            uuid, _, rest = gtid.partition(":")
            intervals = self.mysql.get(uuid.strip().lower())
            if intervals is None:
                return False
            for part in rest.split(":"):
                lo, hi = _interval(part)
                if not any(a <= lo and hi <= b for a, b in intervals):
                    return False
            return True
        domain, seq = _mariadb(gtid)
        have = self.mariadb.get(domain)
        return have is not None and have >= seq


def parse_position(text: str | None) -> GtidPosition | None:
    """Parse a MariaDB position or a MySQL GTID set; None for None, "" stays an empty position."""
    if text is None:
        return None
    mariadb: dict[int, int] = {}
    mysql: dict[str, tuple[tuple[int, int], ...]] = {}
    for item in _split(text):
        if ":" in item:
            uuid, _, rest = item.partition(":")
            intervals = tuple(_interval(p) for p in rest.split(":") if p)
            key = uuid.strip().lower()
            mysql[key] = mysql.get(key, ()) + intervals
        else:
            domain, seq = _mariadb(item)
            mariadb[domain] = max(seq, mariadb.get(domain, 0))
    return GtidPosition(mariadb, mysql, text)


def wait_statement(gtid: str, timeout: float) -> bytes:
    """The statement that waits on a replica until ``gtid`` is applied, answering one row: 0 when it
    was applied within ``timeout`` seconds (MariaDB ``MASTER_GTID_WAIT``: -1 on timeout; MySQL
    ``WAIT_FOR_EXECUTED_GTID_SET``: 1 on timeout)."""
    quoted = gtid.replace("\\", "").replace("'", "")
    if ":" in gtid:
        return f"SELECT WAIT_FOR_EXECUTED_GTID_SET('{quoted}', {timeout:.3f})".encode()
    return f"SELECT MASTER_GTID_WAIT('{quoted}', {timeout:.3f})".encode()


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.replace("\n", "").split(",") if p.strip()]


def _mariadb(gtid: str) -> tuple[int, int]:
    parts = gtid.split("-")
    if len(parts) != 3:
        raise ValueError(f"not a MariaDB GTID: {gtid!r}")
    return int(parts[0]), int(parts[2])


def _interval(part: str) -> tuple[int, int]:
    lo, _, hi = part.partition("-")
    return int(lo), int(hi or lo)
