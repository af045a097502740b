"""Binary prepared statements of one client session, mapped onto backend statements.

The client sees rwproxy's own statement ids. Each backend connection where the statement was
prepared has its own id; executing on a connection that has not prepared it prepares it there first.
COM_STMT_EXECUTE may omit parameter types ("new params bound" = 0) after the first execution; a
backend that never saw the types gets them re-inserted from the last execution that carried them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

from rwproxy.backend.connection import BackendConnection, BackendError
from rwproxy.protocol.constants import Command
from rwproxy.protocol.results import ResponseKind
from rwproxy.protocol.statements import replace_stmt_id
from rwproxy.router.statement import StatementInfo

__all__ = [
    "BackendStatement",
    "PreparedStatement",
    "PreparedStatements",
    "backend_payload",
    "prepare_on",
    "rewrite_execute",
    "statement_id",
]

_ID = struct.Struct("<I")
_STMT_EXECUTE: Final = int(Command.STMT_EXECUTE)
LAST_PREPARED = 0xFFFFFFFF  # MariaDB: "the statement prepared last" in a pipelined prepare+execute


@dataclass(slots=True)
class BackendStatement:
    backend_id: int
    types_sent: bool = False


@dataclass(slots=True)
class PreparedStatement:
    client_id: int
    sql: bytes
    info: StatementInfo
    num_params: int
    num_columns: int
    on: dict[BackendConnection, BackendStatement] = field(default_factory=dict)
    last_types: bytes | None = None
    long_data_conn: BackendConnection | None = None
    cursor_conn: BackendConnection | None = None


class PreparedStatements:
    def __init__(self) -> None:
        self._by_id: dict[int, PreparedStatement] = {}
        self._next_id = 1
        self.last_id = 0

    def add(self, sql: bytes, info: StatementInfo, num_params: int, num_columns: int) -> PreparedStatement:
        stmt = PreparedStatement(self._next_id, sql, info, num_params, num_columns)
        self._by_id[stmt.client_id] = stmt
        self.last_id = stmt.client_id
        self._next_id += 1
        return stmt

    def get(self, client_id: int) -> PreparedStatement | None:
        if client_id == LAST_PREPARED:
            client_id = self.last_id
        return self._by_id.get(client_id)

    def remove(self, client_id: int) -> PreparedStatement | None:
        return self._by_id.pop(client_id, None)

    def forget_connection(self, conn: BackendConnection) -> None:
        for stmt in self._by_id.values():
            stmt.on.pop(conn, None)
            if stmt.long_data_conn is conn:
                stmt.long_data_conn = None
            if stmt.cursor_conn is conn:
                stmt.cursor_conn = None

    def all(self) -> list[PreparedStatement]:
        return list(self._by_id.values())

    def bound_to_connection(self) -> bool:
        """A statement has an open cursor or long data on its connection (multiplexing waits)."""
        return any(s.cursor_conn is not None or s.long_data_conn is not None for s in self._by_id.values())

    def clear(self) -> None:
        self._by_id.clear()

    def __len__(self) -> int:
        return len(self._by_id)


def statement_id(payload: bytes) -> int:
    """The statement id of a COM_STMT_* payload (command byte first)."""
    return int(_ID.unpack_from(payload, 1)[0])


async def prepare_on(conn: BackendConnection, stmt: PreparedStatement) -> None:
    """Prepare ``stmt`` on ``conn`` (a server where it was not prepared yet); BackendError with the
    server's error code when it refuses."""
    outcome, _ = await conn.call_keep(Command.STMT_PREPARE, stmt.sql, ResponseKind.PREPARE)
    if not outcome.ok or outcome.prepare_ok is None:
        raise BackendError(
            f"rwproxy could not prepare the statement on {conn.node_name}", outcome.error_code or 1105
        )
    stmt.on[conn] = BackendStatement(int(_ID.unpack_from(outcome.prepare_ok, 1)[0]))


def backend_payload(stmt: PreparedStatement, conn: BackendConnection, payload: bytes) -> bytes:
    """A client's COM_STMT_* payload for ``conn``: its statement id there (and the parameter types
    of COM_STMT_EXECUTE when that server has not seen them)."""
    target = stmt.on[conn]
    if payload[0] == _STMT_EXECUTE:
        return rewrite_execute(payload, stmt, target)
    return replace_stmt_id(payload, target.backend_id)


def rewrite_execute(payload: bytes, stmt: PreparedStatement, target: BackendStatement) -> bytes:
    """COM_STMT_EXECUTE for ``target``: its id, and parameter types when it has never seen them.

    Records the types carried by the packet as the statement's ``last_types``.
    """
    n = stmt.num_params
    if n == 0:
        return replace_stmt_id(payload, target.backend_id)
    bitmap_end = 10 + (n + 7) // 8
    if len(payload) <= bitmap_end:
        return replace_stmt_id(payload, target.backend_id)  # malformed: let the server answer
    bound = payload[bitmap_end]
    if bound == 1:
        stmt.last_types = payload[bitmap_end + 1 : bitmap_end + 1 + 2 * n]
        target.types_sent = True
        return replace_stmt_id(payload, target.backend_id)
    if target.types_sent or stmt.last_types is None:
        return replace_stmt_id(payload, target.backend_id)
    target.types_sent = True
    return (
        payload[:1]
        + _ID.pack(target.backend_id)
        + payload[5:bitmap_end]
        + b"\x01"
        + stmt.last_types
        + payload[bitmap_end + 1 :]
    )
