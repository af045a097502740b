"""Shared vocabulary of the MySQL client/server protocol: flags, command codes, error codes.

Pure constants, no behaviour. Numbers are pinned by ``tests/unit/protocol/test_constants.py``.

- Capabilities: https://dev.mysql.com/doc/dev/mysql-server/latest/group__group__cs__capabilities__flags.html
- Status flags: https://dev.mysql.com/doc/dev/mysql-server/latest/mysql__com_8h.html
- Commands: https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_command_phase.html
- Column types: https://dev.mysql.com/doc/dev/mysql-server/latest/field__types_8h.html
- Server errors: https://dev.mysql.com/doc/mysql-errors/8.0/en/server-error-reference.html
"""

from __future__ import annotations

import enum

__all__ = [
    "BINARY_CHARSET",
    "DEFAULT_CLIENT_CAPABILITIES",
    "MAX_FRAME_PAYLOAD",
    "SQLSTATE",
    "UTF8MB4_GENERAL_CI",
    "Capability",
    "ColumnFlag",
    "ColumnType",
    "Command",
    "CursorType",
    "ErrorCode",
    "ServerStatus",
    "sqlstate_for",
]

#: Largest payload one frame can carry; a payload of this size or more is split.
#: https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_packets.html
MAX_FRAME_PAYLOAD = 0xFFFFFF

#: Collation id of ``utf8mb4_general_ci`` (the one-byte "character set" of the handshake).
#: https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_character_set.html
UTF8MB4_GENERAL_CI = 45
#: Collation id of ``binary``.
BINARY_CHARSET = 63


class Capability(enum.IntFlag):
    """``CLIENT_*`` capability flags, named without the ``CLIENT_`` prefix.

    https://dev.mysql.com/doc/dev/mysql-server/latest/group__group__cs__capabilities__flags.html
    """

    LONG_PASSWORD = 1
    FOUND_ROWS = 1 << 1
    LONG_FLAG = 1 << 2
    CONNECT_WITH_DB = 1 << 3
    NO_SCHEMA = 1 << 4
    COMPRESS = 1 << 5
    ODBC = 1 << 6
    LOCAL_FILES = 1 << 7
    IGNORE_SPACE = 1 << 8
    PROTOCOL_41 = 1 << 9
    INTERACTIVE = 1 << 10
    SSL = 1 << 11
    IGNORE_SIGPIPE = 1 << 12
    TRANSACTIONS = 1 << 13
    RESERVED = 1 << 14
    SECURE_CONNECTION = 1 << 15
    MULTI_STATEMENTS = 1 << 16
    MULTI_RESULTS = 1 << 17
    PS_MULTI_RESULTS = 1 << 18
    PLUGIN_AUTH = 1 << 19
    CONNECT_ATTRS = 1 << 20
    PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21
    CAN_HANDLE_EXPIRED_PASSWORDS = 1 << 22
    SESSION_TRACK = 1 << 23
    DEPRECATE_EOF = 1 << 24
    OPTIONAL_RESULTSET_METADATA = 1 << 25
    ZSTD_COMPRESSION_ALGORITHM = 1 << 26
    QUERY_ATTRIBUTES = 1 << 27
    MULTI_FACTOR_AUTHENTICATION = 1 << 28
    CAPABILITY_EXTENSION = 1 << 29
    SSL_VERIFY_SERVER_CERT = 1 << 30
    REMEMBER_OPTIONS = 1 << 31


#: What a modern 4.1+ client announces at least; handy for tests and for local replies.
DEFAULT_CLIENT_CAPABILITIES = (
    Capability.LONG_PASSWORD
    | Capability.LONG_FLAG
    | Capability.PROTOCOL_41
    | Capability.TRANSACTIONS
    | Capability.SECURE_CONNECTION
    | Capability.MULTI_RESULTS
    | Capability.PLUGIN_AUTH
    | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
)


class ServerStatus(enum.IntFlag):
    """``SERVER_STATUS_*`` / ``SERVER_*`` flags carried by OK and EOF packets.

    https://dev.mysql.com/doc/dev/mysql-server/latest/mysql__com_8h.html
    """

    IN_TRANS = 1
    AUTOCOMMIT = 2
    MORE_RESULTS_EXISTS = 8
    NO_GOOD_INDEX_USED = 16
    NO_INDEX_USED = 32
    CURSOR_EXISTS = 64
    LAST_ROW_SENT = 128
    DB_DROPPED = 256
    NO_BACKSLASH_ESCAPES = 512
    METADATA_CHANGED = 1024
    QUERY_WAS_SLOW = 2048
    PS_OUT_PARAMS = 4096
    IN_TRANS_READONLY = 8192
    SESSION_STATE_CHANGED = 16384


class Command(enum.IntEnum):
    """``COM_*`` command bytes, named without the ``COM_`` prefix.

    https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_command_phase.html
    """

    SLEEP = 0
    QUIT = 1
    INIT_DB = 2
    QUERY = 3
    FIELD_LIST = 4
    CREATE_DB = 5
    DROP_DB = 6
    REFRESH = 7
    SHUTDOWN = 8
    STATISTICS = 9
    PROCESS_INFO = 10
    CONNECT = 11
    PROCESS_KILL = 12
    DEBUG = 13
    PING = 14
    TIME = 15
    DELAYED_INSERT = 16
    CHANGE_USER = 17
    BINLOG_DUMP = 18
    TABLE_DUMP = 19
    CONNECT_OUT = 20
    REGISTER_SLAVE = 21
    STMT_PREPARE = 22
    STMT_EXECUTE = 23
    STMT_SEND_LONG_DATA = 24
    STMT_CLOSE = 25
    STMT_RESET = 26
    SET_OPTION = 27
    STMT_FETCH = 28
    DAEMON = 29
    BINLOG_DUMP_GTID = 30
    RESET_CONNECTION = 31
    CLONE = 32
    SUBSCRIBE_GROUP_REPLICATION_STREAM = 33
    #: MariaDB only: array binding (``MARIADB_CLIENT_STMT_BULK_OPERATIONS``).
    STMT_BULK_EXECUTE = 0xFA


class CursorType(enum.IntFlag):
    """``flags`` byte of COM_STMT_EXECUTE (``enum_cursor_type``).

    https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_stmt_execute.html
    """

    NO_CURSOR = 0
    READ_ONLY = 1
    FOR_UPDATE = 2
    SCROLLABLE = 4
    PARAMETER_COUNT_AVAILABLE = 8


class ColumnType(enum.IntEnum):
    """``enum_field_types``: the type byte of a column definition or a bound parameter.

    https://dev.mysql.com/doc/dev/mysql-server/latest/field__types_8h.html
    """

    DECIMAL = 0
    TINY = 1
    SHORT = 2
    LONG = 3
    FLOAT = 4
    DOUBLE = 5
    NULL = 6
    TIMESTAMP = 7
    LONGLONG = 8
    INT24 = 9
    DATE = 10
    TIME = 11
    DATETIME = 12
    YEAR = 13
    NEWDATE = 14
    VARCHAR = 15
    BIT = 16
    TIMESTAMP2 = 17
    DATETIME2 = 18
    TIME2 = 19
    TYPED_ARRAY = 20
    VECTOR = 242
    INVALID = 243
    BOOL = 244
    JSON = 245
    NEWDECIMAL = 246
    ENUM = 247
    SET = 248
    TINY_BLOB = 249
    MEDIUM_BLOB = 250
    LONG_BLOB = 251
    BLOB = 252
    VAR_STRING = 253
    STRING = 254
    GEOMETRY = 255


class ColumnFlag(enum.IntFlag):
    """Column definition flags (``*_FLAG`` in ``mysql_com.h``), low 16 bits as sent on the wire.

    https://dev.mysql.com/doc/dev/mysql-server/latest/group__group__cs__column__definition__flags.html
    """

    NOT_NULL = 1
    PRI_KEY = 2
    UNIQUE_KEY = 4
    MULTIPLE_KEY = 8
    BLOB = 16
    UNSIGNED = 32
    ZEROFILL = 64
    BINARY = 128
    ENUM = 256
    AUTO_INCREMENT = 512
    TIMESTAMP = 1024
    SET = 2048
    NO_DEFAULT_VALUE = 4096
    ON_UPDATE_NOW = 8192
    NUM = 32768


class ErrorCode(enum.IntEnum):
    """Server (``ER_*``) and client (``CR_*``) error numbers the proxy sends or inspects.

    https://dev.mysql.com/doc/mysql-errors/8.0/en/server-error-reference.html
    """

    ER_CON_COUNT_ERROR = 1040
    ER_HANDSHAKE_ERROR = 1043
    ER_DBACCESS_DENIED_ERROR = 1044
    ER_ACCESS_DENIED_ERROR = 1045
    ER_NO_DB_ERROR = 1046
    ER_UNKNOWN_COM_ERROR = 1047
    ER_BAD_DB_ERROR = 1049
    ER_SERVER_SHUTDOWN = 1053
    ER_NO_SUCH_THREAD = 1094
    ER_KILL_DENIED_ERROR = 1095
    ER_UNKNOWN_ERROR = 1105
    ER_PARSE_ERROR = 1064
    ER_NET_PACKET_TOO_LARGE = 1153
    ER_NET_PACKETS_OUT_OF_ORDER = 1156
    ER_NET_READ_ERROR = 1158
    ER_LOCK_WAIT_TIMEOUT = 1205
    ER_WRONG_VALUE_FOR_VAR = 1231
    ER_NOT_SUPPORTED_YET = 1235
    ER_UNKNOWN_STMT_HANDLER = 1243
    ER_OPTION_PREVENTS_STATEMENT = 1290
    ER_QUERY_INTERRUPTED = 1317
    ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION = 1792
    ER_MALFORMED_PACKET = 1835
    ER_READ_ONLY_MODE = 1836
    #: MySQL 8.0 number; MySQL calls it ER_CLIENT_LOCAL_FILES_DISABLED (alias below).
    #: MariaDB uses 4166 under this name (``MARIADB_ER_LOAD_INFILE_CAPABILITY_DISABLED``).
    ER_LOAD_INFILE_CAPABILITY_DISABLED = 3948
    ER_CLIENT_LOCAL_FILES_DISABLED = 3948
    ER_CLIENT_INTERACTION_TIMEOUT = 4031
    MARIADB_ER_LOAD_INFILE_CAPABILITY_DISABLED = 4166
    CR_SERVER_GONE_ERROR = 2006
    CR_SERVER_LOST = 2013


#: SQLSTATE sent with each error number; :func:`sqlstate_for` falls back to ``HY000``.
SQLSTATE: dict[int, str] = {
    ErrorCode.ER_CON_COUNT_ERROR: "08004",
    ErrorCode.ER_HANDSHAKE_ERROR: "08S01",
    ErrorCode.ER_DBACCESS_DENIED_ERROR: "42000",
    ErrorCode.ER_ACCESS_DENIED_ERROR: "28000",
    ErrorCode.ER_NO_DB_ERROR: "3D000",
    ErrorCode.ER_UNKNOWN_COM_ERROR: "08S01",
    ErrorCode.ER_BAD_DB_ERROR: "42000",
    ErrorCode.ER_SERVER_SHUTDOWN: "08S01",
    ErrorCode.ER_NO_SUCH_THREAD: "HY000",
    ErrorCode.ER_KILL_DENIED_ERROR: "HY000",
    ErrorCode.ER_UNKNOWN_ERROR: "HY000",
    ErrorCode.ER_NET_PACKET_TOO_LARGE: "08S01",
    ErrorCode.ER_NET_PACKETS_OUT_OF_ORDER: "08S01",
    ErrorCode.ER_NET_READ_ERROR: "08S01",
    ErrorCode.ER_LOCK_WAIT_TIMEOUT: "HY000",
    ErrorCode.ER_NOT_SUPPORTED_YET: "42000",
    ErrorCode.ER_UNKNOWN_STMT_HANDLER: "HY000",
    ErrorCode.ER_OPTION_PREVENTS_STATEMENT: "HY000",
    ErrorCode.ER_QUERY_INTERRUPTED: "70100",
    ErrorCode.ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION: "25006",
    ErrorCode.ER_MALFORMED_PACKET: "HY000",
    ErrorCode.ER_READ_ONLY_MODE: "HY000",
    ErrorCode.ER_LOAD_INFILE_CAPABILITY_DISABLED: "42000",
    ErrorCode.ER_CLIENT_INTERACTION_TIMEOUT: "HY000",
    ErrorCode.MARIADB_ER_LOAD_INFILE_CAPABILITY_DISABLED: "HY000",
    ErrorCode.CR_SERVER_GONE_ERROR: "HY000",
    ErrorCode.CR_SERVER_LOST: "HY000",
}


def sqlstate_for(errno: int) -> str:
    """The SQLSTATE MySQL pairs with ``errno``; ``HY000`` (general error) when not in :data:`SQLSTATE`."""
    return SQLSTATE.get(errno, "HY000")
