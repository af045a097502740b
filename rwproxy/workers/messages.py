"""What the supervisor and its worker processes say to each other over their socketpair, sans-I/O.

    data = encode(State(...))          # one frame: 4-byte big-endian length + pickled message
    decoder = Decoder()
    for message in decoder.feed(chunk):  # any split of the byte stream; whole messages out
        ...

The channel is private to one instance (a socketpair the supervisor made for the worker it started),
so messages are pickled; only the classes below and what they carry (topology nodes, strings,
numbers) travel. A topology goes as its nodes and version and is rebuilt (``Topology`` derives its
primary, replicas and read choice in ``__post_init__``); a node goes as the tuple of its fields
(the compiled build's frozen ``Node`` cannot be unpickled field by field).
"""

from __future__ import annotations

import dataclasses
import pickle
import struct
from dataclasses import dataclass, field
from typing import Any

from rwproxy.topology.model import Node, Topology

__all__ = [
    "MAX_FRAME",
    "Decoder",
    "Drain",
    "Drained",
    "FrameError",
    "Hello",
    "Kill",
    "Killed",
    "Message",
    "MetricsReply",
    "MetricsRequest",
    "ProcessList",
    "ProcessListReply",
    "Reload",
    "Reloaded",
    "RowsReply",
    "RowsRequest",
    "Signal",
    "State",
    "Stop",
    "encode",
]

MAX_FRAME = 64 * 1024 * 1024  # a metrics reply of a big digest table stays far below this
_HEADER = struct.Struct(">I")


class FrameError(Exception):
    """The byte stream is not a sequence of frames (a bug, or a process writing garbage)."""


# -- supervisor -> worker ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class State:
    """What a worker's sessions need from the monitor and failover controller: the topology
    snapshot and the write-buffering state, published whenever any of it changes."""

    nodes: tuple[Node, ...]
    version: int
    buffer_active: bool = False  # write buffering on (a failover or switchover moves the primary)
    buffer_reason: str = ""
    primary_ready: bool = False  # the failover controller's view: ONLINE and its last check good
    suspected: frozenset[str] = frozenset()  # connect failures reported, not checked since
    flavors: tuple[tuple[str, str], ...] = ()  # server name -> "mariadb" / "mysql" (probe.Flavor)

    @classmethod
    def of(cls, topology: Topology, **kwargs: Any) -> State:
        return cls(nodes=topology.nodes, version=topology.version, **kwargs)

    def topology(self) -> Topology:
        return Topology(nodes=self.nodes, version=self.version)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        rows = tuple(tuple(getattr(n, f) for f in _NODE_FIELDS) for n in self.nodes)
        rest = (self.buffer_active, self.buffer_reason, self.primary_ready, self.suspected, self.flavors)
        return _state, (rows, self.version, *rest)


_NODE_FIELDS = tuple(f.name for f in dataclasses.fields(Node))


def _state(rows: tuple[tuple[Any, ...], ...], version: int, *rest: Any) -> State:
    nodes = tuple(Node(**dict(zip(_NODE_FIELDS, row, strict=True))) for row in rows)
    return State(nodes, version, *rest)


@dataclass(frozen=True, slots=True)
class Reload:
    """The supervisor reloaded the config file: re-read it and apply what can change live."""

    seq: int


@dataclass(frozen=True, slots=True)
class MetricsRequest:
    seq: int


@dataclass(frozen=True, slots=True)
class RowsRequest:
    """The admin interface reads an instance-wide view: the worker's rows of ``view`` (``sessions``:
    the admin ``sessions`` table's rows; ``digests``: its digest table's rows), answered by
    ``RowsReply`` (rwproxy.workers.views merges them)."""

    seq: int
    view: str


@dataclass(frozen=True, slots=True)
class Drain:
    """A switchover: with writes already buffered (the State before this one said so), wait until
    no session holds a transaction or runs a statement on ``primary``, at most ``timeout`` s."""

    seq: int
    primary: str
    timeout: float


@dataclass(frozen=True, slots=True)
class Kill:
    """``KILL [QUERY] session`` asked in one worker for a session of another (worker -> supervisor
    -> the session's worker); answered by ``Killed`` on the same way back."""

    seq: int
    session: int
    query_only: bool
    user: str
    privileged: bool


@dataclass(frozen=True, slots=True)
class Killed:
    seq: int
    answer: str  # "ok", "unknown", "other_user" (rwproxy.workers.kill_forward)


@dataclass(frozen=True, slots=True)
class Stop:
    """Drain: stop accepting, let running statements finish up to ``grace`` seconds, exit."""

    grace: float


# -- worker -> supervisor ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """The worker listens and serves (sent once, after its start)."""

    index: int
    pid: int


@dataclass(frozen=True, slots=True)
class Signal:
    """A session's evidence for the monitor: ``probe`` (ERROR 1290: check the server now) or
    ``unreachable`` (a connect failed: check now, suspect it until then)."""

    kind: str
    server: str


@dataclass(frozen=True, slots=True)
class Drained:
    seq: int
    left: int  # sessions still holding the old primary when the timeout came


@dataclass(frozen=True, slots=True)
class Reloaded:
    seq: int
    ok: bool
    text: str


@dataclass(frozen=True, slots=True)
class RowsReply:
    seq: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    evicted: int = 0  # digests: entries the worker's bounded table dropped


@dataclass(frozen=True, slots=True)
class ProcessList:
    """``SHOW PROCESSLIST`` (or information_schema.PROCESSLIST) in a worker: the other workers'
    sessions, please (worker -> supervisor, which asks them with ``RowsRequest("processlist")``);
    answered by ``ProcessListReply`` with their rows (``ProcessRow`` fields as dicts)."""

    seq: int


@dataclass(frozen=True, slots=True)
class ProcessListReply:
    seq: int
    rows: list[dict[str, Any]] = field(default_factory=list)


# One family: (name, type, help, samples); one sample: (sample name, labels, value).
Family = tuple[str, str, str, list[tuple[str, dict[str, str], float]]]


@dataclass(frozen=True, slots=True)
class MetricsReply:
    seq: int
    sessions: int
    cpu_seconds: float  # the worker's own user + system CPU time
    families: list[Family] = field(default_factory=list)


Message = (
    State
    | Reload
    | MetricsRequest
    | Drain
    | Kill
    | Killed
    | Stop
    | Hello
    | Signal
    | Reloaded
    | Drained
    | MetricsReply
    | RowsRequest
    | RowsReply
    | ProcessList
    | ProcessListReply
)
_TYPES = (
    State,
    Reload,
    MetricsRequest,
    Drain,
    Kill,
    Killed,
    Stop,
    Hello,
    Signal,
    Reloaded,
    Drained,
    MetricsReply,
    RowsRequest,
    RowsReply,
    ProcessList,
    ProcessListReply,
)


def encode(message: Message) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    if len(body) > MAX_FRAME:
        raise FrameError(f"message of {len(body)} bytes is over the {MAX_FRAME} byte limit")
    return _HEADER.pack(len(body)) + body


class Decoder:
    """Bytes in (any split), messages out."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        buf = self._buf
        buf += data
        out: list[Message] = []
        pos = 0
        while len(buf) - pos >= _HEADER.size:
            (length,) = _HEADER.unpack_from(buf, pos)
            if length > MAX_FRAME:
                raise FrameError(f"frame of {length} bytes is over the {MAX_FRAME} byte limit")
            end = pos + _HEADER.size + length
            if len(buf) < end:
                break
            message = pickle.loads(bytes(buf[pos + _HEADER.size : end]))
            if not isinstance(message, _TYPES):
                raise FrameError(f"unexpected message type {type(message).__name__}")
            out.append(message)
            pos = end
        del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buf)
