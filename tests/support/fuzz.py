"""A seeded, bounded protocol fuzzer for a running rwproxy: mutated packets before and after login.

    stats = run_fuzz(FuzzTarget(host, port, user, password), seconds=30, seed=1234, workers=3)

Each case opens one client connection and does one of:

- pre-auth: after the greeting, a HandshakeResponse (built for this salt, or one captured in
  ``tests/fixtures/packets``) truncated, bit-flipped, with a wrong sequence id or an oversized length,
  random bytes, the valid response byte by byte, or followed by garbage;
- post-auth: a real login, a COM_PING that must be answered, then 1-6 packets from a corpus of real
  commands (queries, prepare/execute, init db, field list, reset, ...) each possibly mutated
  (bit flips, truncation, oversized length header, bad sequence id, random bytes, empty packet, sent
  in small chunks or pipelined), sometimes ending with a reset (RST) instead of a close.

What the proxy answers is read but not judged, beyond: a valid login succeeds and the first ping of
a session is answered; the caller checks the rest (the proxy is alive, a healthy client beside it
never failed, its RSS and the primary's connection count come back). The same seed gives the same
sequence of cases per worker; ``seconds`` bounds the run (a slower machine runs fewer cases).
"""

from __future__ import annotations

import contextlib
import itertools
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rwproxy.protocol.auth import scramble_native_password
from rwproxy.protocol.connection import make_handshake_response, parse_handshake_v10
from rwproxy.protocol.constants import Capability
from rwproxy.protocol.framing import PacketDecoder, frame, frame_header

__all__ = ["FuzzStats", "FuzzTarget", "run_fuzz"]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "packets"
CAPS = int(
    Capability.PROTOCOL_41
    | Capability.SECURE_CONNECTION
    | Capability.PLUGIN_AUTH
    | Capability.LONG_PASSWORD
    | Capability.TRANSACTIONS
    | Capability.MULTI_RESULTS
    | Capability.CONNECT_WITH_DB
)
QUIET = 0.15  # seconds without a byte from the proxy after which a case moves on


def _fixture_payloads(name: str) -> list[bytes]:
    return [bytes.fromhex(line)[4:] for line in (FIXTURES / f"{name}.hex").read_text().split()]


# Real commands (no KILL, no writes outside the session); the captured COM_STMT_EXECUTE is one.
COMMANDS: tuple[bytes, ...] = (
    b"\x03SELECT 1",
    b"\x03SELECT @@server_id, CONNECTION_ID(), DATABASE()",
    b"\x03SELECT seq, REPEAT('x', 100) FROM seq_1_to_2000",
    b"\x03BEGIN",
    b"\x03COMMIT",
    b"\x03SELECT 1 FOR UPDATE",
    b"\x03SET @fuzz = 'x', autocommit = 1",
    b"\x03USE rwtest",
    b"\x03SELECT * FROM no_such_table",
    b"\x03/* rwproxy:primary */ SELECT 2",
    b"\x0e",  # COM_PING
    b"\x02rwtest",  # COM_INIT_DB
    b"\x09",  # COM_STATISTICS
    b"\x04no_such_table\x00",  # COM_FIELD_LIST
    b"\x1b\x00\x00",  # COM_SET_OPTION multi statements on
    b"\x1f",  # COM_RESET_CONNECTION
    b"\x16SELECT ? + 1",  # COM_STMT_PREPARE
    b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x02\x00\x00\x00\x00\x00\x00\x00",  # EXECUTE 1
    b"\x1a\x01\x00\x00\x00",  # COM_STMT_RESET 1
    b"\x19\x01\x00\x00\x00",  # COM_STMT_CLOSE 1
    b"\x18\x01\x00\x00\x00\x00\x00abc",  # COM_STMT_SEND_LONG_DATA
    *_fixture_payloads("client_stmt_execute"),
)
CAPTURED_RESPONSES: tuple[bytes, ...] = (
    *_fixture_payloads("pymysql_handshake_response"),
    *_fixture_payloads("mariadb_cli_handshake_response"),
)


@dataclass(frozen=True)
class FuzzTarget:
    host: str
    port: int
    user: str
    password: str
    database: str = "rwtest"
    max_packet_size: int = 1 << 20  # the proxy's proxy.max_packet_size (for oversized headers)


@dataclass
class FuzzStats:
    cases: Counter[str] = field(default_factory=Counter)  # by kind
    outcomes: Counter[str] = field(default_factory=Counter)  # err / closed / reply / silent
    failures: list[str] = field(default_factory=list)  # broken invariants (with the case's seed)

    def merge(self, other: FuzzStats) -> None:
        self.cases.update(other.cases)
        self.outcomes.update(other.outcomes)
        self.failures.extend(other.failures)

    @property
    def total(self) -> int:
        return sum(self.cases.values())


@dataclass(frozen=True)
class Drained:
    """What the proxy sent after one step: its first packet, how many, and whether it closed."""

    first: bytes | None
    packets: int
    closed: bool

    @property
    def outcome(self) -> str:
        if self.first is not None and self.first[:1] == b"\xff":
            return "err+closed" if self.closed else "err"
        if self.packets:
            return "reply+closed" if self.closed else "reply"
        return "closed" if self.closed else "silent"

    def error_code(self) -> int | None:
        if self.first is None or self.first[:1] != b"\xff" or len(self.first) < 3:
            return None
        return int.from_bytes(self.first[1:3], "little")


class _Client:
    def __init__(self, target: FuzzTarget) -> None:
        self.sock = socket.create_connection((target.host, target.port), timeout=10)
        self.decoder = PacketDecoder(1 << 26)
        self.closed = False

    def read_packet(self, timeout: float) -> tuple[int, bytes] | None:
        """The next packet, or None on timeout/close (``closed`` tells which)."""
        self.sock.settimeout(timeout)
        while True:
            packet = self.decoder.next_packet()
            if packet is not None:
                return packet
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return None
            except OSError:
                self.closed = True
                return None
            if not data:
                self.closed = True
                return None
            self.decoder.feed(data)

    def drain(self, first_timeout: float = QUIET) -> Drained:
        """Read until QUIET seconds pass without a packet (the first may take ``first_timeout``)."""
        first: bytes | None = None
        packets = 0
        timeout = first_timeout
        while True:
            try:
                packet = self.read_packet(timeout)
            except Exception:  # a reply the test client cannot frame (it fuzzes too): stop reading
                return Drained(first, packets + 1, self.closed)
            if packet is None:
                return Drained(first, packets, self.closed)
            if first is None:
                first = packet[1]
            packets += 1
            timeout = QUIET

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reset(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


def _response(target: FuzzTarget, salt: bytes, *, database: bool = True) -> bytes:
    return make_handshake_response(
        capabilities=CAPS if database else CAPS & ~Capability.CONNECT_WITH_DB,
        username=target.user,
        auth_response=scramble_native_password(target.password.encode(), salt),
        database=target.database if database else None,
        auth_plugin_name="mysql_native_password",
        connect_attrs=None,
    )


def _flip(rng: random.Random, data: bytes, max_flips: int = 4) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    for _ in range(rng.randint(1, max_flips)):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def _random_bytes(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(n)


# -- pre-auth cases ---------------------------------------------------------------------------------

_PREAUTH_KINDS = (
    "truncated",
    "bitflip",
    "captured_bitflip",
    "bad_seq",
    "oversized",
    "random",
    "bytewise",
    "trailing",
)


def _greeting(c: _Client) -> bytes:
    packet = c.read_packet(10)
    if packet is None:
        raise AssertionError("no greeting from the proxy")
    return parse_handshake_v10(packet[1]).auth_plugin_data


def _preauth(rng: random.Random, target: FuzzTarget, stats: FuzzStats) -> None:
    c = _Client(target)
    try:
        salt = _greeting(c)
        valid = _response(target, salt)
        kind = rng.choice(_PREAUTH_KINDS)
        stats.cases[f"pre:{kind}"] += 1
        if kind == "truncated":
            cut = rng.randrange(len(valid))
            c.send(frame_header(len(valid), 1) + valid[:cut])
        elif kind == "bitflip":
            c.send(frame(_flip(rng, valid), 1))
        elif kind == "captured_bitflip":
            c.send(frame(_flip(rng, rng.choice(CAPTURED_RESPONSES)), 1))
        elif kind == "bad_seq":
            c.send(frame(valid, rng.choice([0, 2, 3, 7, 255])))
        elif kind == "oversized":  # refused from the header alone: ERR 1153, then closed
            length = rng.randint(16 * 1024 + 1, 0xFFFFFF)
            with contextlib.suppress(OSError):
                c.send(frame_header(length, 1) + _random_bytes(rng, rng.randint(0, 64 * 1024)))
            got = c.drain(first_timeout=10)
            stats.outcomes[got.outcome] += 1
            if got.error_code() != 1153 or not got.closed:
                stats.failures.append(f"a {length}-byte header before login got {got}")
            return
        elif kind == "random":
            c.send(_random_bytes(rng, rng.randint(1, 4096)))
        elif kind == "bytewise":
            data = frame(valid, 1)
            for i in range(len(data)):
                c.send(data[i : i + 1])
            packet = c.read_packet(10)
            if packet is None or packet[1][:1] != b"\x00":
                stats.failures.append(f"a valid login sent byte by byte got {packet!r}")
        else:  # trailing: a valid response followed by garbage in the same write
            c.send(frame(valid, 1) + _random_bytes(rng, rng.randint(1, 512)))
        stats.outcomes[c.drain().outcome] += 1
    except OSError:
        stats.outcomes["closed"] += 1
    finally:
        c.close()


# -- post-auth cases --------------------------------------------------------------------------------

_POSTAUTH_KINDS = (
    *("valid", "valid", "bitflip", "bitflip"),
    *("truncated", "oversized", "bad_seq", "random", "empty", "chunks"),
)


def _login(c: _Client, target: FuzzTarget, stats: FuzzStats) -> bool:
    salt = _greeting(c)
    c.send(frame(_response(target, salt), 1))
    packet = c.read_packet(10)
    if packet is None or packet[1][:1] != b"\x00":
        stats.failures.append(f"a valid login got {packet!r}")
        return False
    c.send(frame(b"\x0e", 0))  # COM_PING: every session must answer its first command
    packet = c.read_packet(10)
    if packet is None or packet[1][:1] != b"\x00":
        stats.failures.append(f"the first COM_PING got {packet!r}")
        return False
    return True


def _mutated(rng: random.Random, target: FuzzTarget, payload: bytes) -> tuple[str, list[bytes]]:
    """(kind, the writes to make) for one command packet."""
    kind = rng.choice(_POSTAUTH_KINDS)
    if kind == "valid":
        return kind, [frame(payload, 0)]
    if kind == "bitflip":
        return kind, [frame(_flip(rng, payload), 0)]
    if kind == "truncated":
        return kind, [frame_header(len(payload) + rng.randint(1, 100), 0) + payload]
    if kind == "oversized":
        length = rng.randint(target.max_packet_size + 1, 0xFFFFFF)
        return kind, [frame_header(length, 0) + payload]
    if kind == "bad_seq":
        return kind, [frame(payload, rng.randint(1, 255))]
    if kind == "random":
        return kind, [_random_bytes(rng, rng.randint(1, 2048))]
    if kind == "empty":
        return kind, [frame(b"", 0)]
    data = frame(payload, 0)
    cuts = sorted(rng.sample(range(1, len(data)), min(3, len(data) - 1))) if len(data) > 1 else []
    bounds = [0, *cuts, len(data)]
    return kind, [data[a:b] for a, b in itertools.pairwise(bounds)]


def _refused(code: int) -> Callable[[Drained], bool]:
    return lambda got: got.error_code() == code and got.closed


# What a session in sync must answer: a valid command a reply (COM_STMT_CLOSE and SEND_LONG_DATA
# have none), an oversized header ERR 1153, a wrong sequence id ERR 1156, an empty packet an ERR;
# the last three then close the session.
_EXPECTED: dict[str, Callable[[Drained], bool]] = {
    "valid": lambda got: got.packets > 0,
    "chunks": lambda got: got.packets > 0,
    "oversized": _refused(1153),
    "bad_seq": _refused(1156),
    "empty": lambda got: got.error_code() is not None and got.closed,
}
_NO_REPLY = (b"\x18", b"\x19")


def _postauth(rng: random.Random, target: FuzzTarget, stats: FuzzStats) -> None:
    c = _Client(target)
    try:
        if not _login(c, target, stats):
            return
        pipelined = rng.random() < 0.2
        in_sync = True  # no earlier packet of this session left the framing in doubt
        for _ in range(rng.randint(1, 6)):
            payload = rng.choice(COMMANDS)
            kind, writes = _mutated(rng, target, payload)
            stats.cases[f"post:{kind}"] += 1
            for w in writes:
                c.send(w)
                if kind == "chunks":
                    time.sleep(0.005)
            if pipelined:
                continue
            expected = _EXPECTED.get(kind) if in_sync else None
            if kind in ("valid", "chunks") and payload[:1] in _NO_REPLY:
                expected = None
            got = c.drain(first_timeout=10 if expected else QUIET)
            stats.outcomes[got.outcome] += 1
            if expected is not None and not expected(got):
                stats.failures.append(f"{kind} {payload[:40]!r} got {got}")
            if got.closed:
                return
            if kind in ("truncated", "random"):
                in_sync = False
        if pipelined:
            stats.outcomes[c.drain().outcome] += 1
        if rng.random() < 0.3:
            stats.cases["post:reset"] += 1
            c.send(frame(b"\x03SELECT seq FROM seq_1_to_100000", 0))
            c.reset()
    except OSError:
        stats.outcomes["closed"] += 1
    finally:
        c.close()


def _worker(target: FuzzTarget, seed: str, deadline: float, stats: FuzzStats) -> None:
    rng = random.Random(seed)
    case = 0
    while time.monotonic() < deadline:
        case += 1
        run: Callable[[random.Random, FuzzTarget, FuzzStats], None] = rng.choice([_preauth, _postauth])
        case_rng = random.Random(f"{seed}/{case}")
        try:
            run(case_rng, target, stats)
        except AssertionError as exc:
            stats.failures.append(f"seed {seed} case {case}: {exc}")
        except OSError as exc:  # could not even connect: the proxy is in trouble
            stats.failures.append(f"seed {seed} case {case}: {exc!r}")


def run_fuzz(target: FuzzTarget, *, seconds: float, seed: int, workers: int = 3) -> FuzzStats:
    """Fuzz ``target`` from ``workers`` threads for ``seconds``; the stats of all cases."""
    deadline = time.monotonic() + seconds
    results = [FuzzStats() for _ in range(workers)]
    threads = [
        threading.Thread(target=_worker, args=(target, f"{seed}-{i}", deadline, results[i]), daemon=True)
        for i in range(workers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    total = FuzzStats()
    for r in results:
        total.merge(r)
    return total
