"""The numbers are the protocol: pin them (mysql-mimic's tests/test_types.py habit)."""

from __future__ import annotations

import pytest

from rwproxy.protocol.constants import (
    SQLSTATE,
    UTF8MB4_GENERAL_CI,
    Capability,
    ColumnType,
    Command,
    CursorType,
    ErrorCode,
    ServerStatus,
    sqlstate_for,
)


def test_capability_bits() -> None:
    assert Capability.LONG_PASSWORD == 1
    assert Capability.CONNECT_WITH_DB == 8
    assert Capability.LOCAL_FILES == 128
    assert Capability.PROTOCOL_41 == 512
    assert Capability.SSL == 2048
    assert Capability.TRANSACTIONS == 8192
    assert Capability.SECURE_CONNECTION == 1 << 15
    assert Capability.MULTI_STATEMENTS == 1 << 16
    assert Capability.PLUGIN_AUTH == 1 << 19
    assert Capability.CONNECT_ATTRS == 1 << 20
    assert Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA == 1 << 21
    assert Capability.SESSION_TRACK == 1 << 23
    assert Capability.DEPRECATE_EOF == 1 << 24
    assert Capability.QUERY_ATTRIBUTES == 1 << 27
    assert Capability.REMEMBER_OPTIONS == 1 << 31
    # 32 distinct single bits, one per position.
    assert sorted(int(c).bit_length() - 1 for c in Capability) == list(range(32))


def test_server_status_bits() -> None:
    assert ServerStatus.IN_TRANS == 1
    assert ServerStatus.AUTOCOMMIT == 2
    assert ServerStatus.MORE_RESULTS_EXISTS == 8
    assert ServerStatus.IN_TRANS_READONLY == 8192
    assert ServerStatus.SESSION_STATE_CHANGED == 16384


def test_command_codes() -> None:
    assert [c.value for c in Command][:32] == list(range(32))
    assert Command.QUERY == 3
    assert Command.CHANGE_USER == 0x11
    assert Command.STMT_EXECUTE == 0x17
    assert Command.RESET_CONNECTION == 0x1F


def test_misc_codes() -> None:
    assert UTF8MB4_GENERAL_CI == 45
    assert CursorType.PARAMETER_COUNT_AVAILABLE == 8
    assert ColumnType.VAR_STRING == 0xFD
    assert ColumnType.LONGLONG == 8


@pytest.mark.parametrize(
    ("code", "number", "state"),
    [
        ("ER_CON_COUNT_ERROR", 1040, "08004"),
        ("ER_HANDSHAKE_ERROR", 1043, "08S01"),
        ("ER_DBACCESS_DENIED_ERROR", 1044, "42000"),
        ("ER_ACCESS_DENIED_ERROR", 1045, "28000"),
        ("ER_NO_DB_ERROR", 1046, "3D000"),
        ("ER_UNKNOWN_COM_ERROR", 1047, "08S01"),
        ("ER_BAD_DB_ERROR", 1049, "42000"),
        ("ER_SERVER_SHUTDOWN", 1053, "08S01"),
        ("ER_NO_SUCH_THREAD", 1094, "HY000"),
        ("ER_KILL_DENIED_ERROR", 1095, "HY000"),
        ("ER_UNKNOWN_ERROR", 1105, "HY000"),
        ("ER_NET_PACKET_TOO_LARGE", 1153, "08S01"),
        ("ER_NET_PACKETS_OUT_OF_ORDER", 1156, "08S01"),
        ("ER_NET_READ_ERROR", 1158, "08S01"),
        ("ER_LOCK_WAIT_TIMEOUT", 1205, "HY000"),
        ("ER_NOT_SUPPORTED_YET", 1235, "42000"),
        ("ER_UNKNOWN_STMT_HANDLER", 1243, "HY000"),
        ("ER_OPTION_PREVENTS_STATEMENT", 1290, "HY000"),
        ("ER_QUERY_INTERRUPTED", 1317, "70100"),
        ("ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION", 1792, "25006"),
        ("ER_MALFORMED_PACKET", 1835, "HY000"),
        ("ER_READ_ONLY_MODE", 1836, "HY000"),
        ("ER_LOAD_INFILE_CAPABILITY_DISABLED", 3948, "42000"),
        ("ER_CLIENT_INTERACTION_TIMEOUT", 4031, "HY000"),
        ("CR_SERVER_GONE_ERROR", 2006, "HY000"),
        ("CR_SERVER_LOST", 2013, "HY000"),
    ],
)
def test_error_codes_and_sqlstates(code: str, number: int, state: str) -> None:
    assert ErrorCode[code] == number
    assert SQLSTATE[number] == state
    assert sqlstate_for(number) == state


def test_sqlstate_default() -> None:
    assert sqlstate_for(9999) == "HY000"
    assert ErrorCode.ER_CLIENT_LOCAL_FILES_DISABLED is ErrorCode.ER_LOAD_INFILE_CAPABILITY_DISABLED
