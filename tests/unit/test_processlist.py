"""SHOW PROCESSLIST / information_schema.PROCESSLIST answers as data: encoding and evaluation."""

from __future__ import annotations

import pytest

from rwproxy.backend.connection import BackendError
from rwproxy.frontend.privileges import result_rows
from rwproxy.frontend.processlist import ProcessRow, encode_processlist
from rwproxy.frontend.processlist_schema import NotAnswerable, evaluate
from rwproxy.protocol.constants import Capability, ColumnType
from rwproxy.protocol.framing import PacketDecoder, frame
from rwproxy.protocol.packets import (
    make_column_count,
    make_column_definition41,
    make_eof,
    make_err,
    make_text_row,
    parse_column_count,
    parse_column_definition41,
    parse_text_row,
)

ROWS = [
    ProcessRow(3, "app", "127.0.0.1:5000", "rwtest", "Sleep", 12, None, None),
    ProcessRow(7, "ops", "127.0.0.1:5001", None, "Query", 2, "executing", "SELECT SLEEP(10) /* " + "x" * 200),
    ProcessRow(9, "app", "127.0.0.1:5002", "rwtest", "Query", 0, "executing", "SHOW PROCESSLIST"),
]


def packets(data: bytes) -> list[bytes]:
    decoder = PacketDecoder(1 << 24)
    decoder.feed(data)
    out = []
    expected_seq = 1
    while (packet := decoder.next_packet()) is not None:
        seq, payload = packet
        assert seq == expected_seq
        expected_seq += 1
        out.append(payload)
    return out


@pytest.mark.parametrize("deprecate_eof", [False, True])
@pytest.mark.parametrize("full", [False, True])
def test_show_processlist_encoding(deprecate_eof: bool, full: bool) -> None:
    caps = int(Capability.PROTOCOL_41 | (Capability.DEPRECATE_EOF if deprecate_eof else 0))
    got = packets(encode_processlist(ROWS, caps, 2, full=full, progress=True))
    assert parse_column_count(got[0]) == 9
    defs = [parse_column_definition41(p) for p in got[1:10]]
    assert [d.name for d in defs] == [
        "Id",
        "User",
        "Host",
        "db",
        "Command",
        "Time",
        "State",
        "Info",
        "Progress",
    ]
    assert defs[0].column_type == ColumnType.LONGLONG and defs[5].column_type == ColumnType.LONG
    body = got[10:] if deprecate_eof else got[11:]
    if not deprecate_eof:
        assert got[10][0] == 0xFE
    rows = [parse_text_row(p, 9) for p in body[:-1]]
    assert body[-1][0] == 0xFE
    assert [r[0] for r in rows] == [b"3", b"7", b"9"]
    assert rows[0][3] == b"rwtest" and rows[1][3] is None and rows[0][6] is None
    info = rows[1][7]
    assert info is not None and len(info) == (len(ROWS[1].info or "") if full else 100)
    assert rows[2][8] == b"0.000"


def test_mysql_flavour_has_no_progress_column() -> None:
    got = packets(encode_processlist(ROWS, int(Capability.PROTOCOL_41), 2, full=False, progress=False))
    assert parse_column_count(got[0]) == 8


@pytest.mark.parametrize(
    ("sql", "names", "values"),
    [
        (
            "SELECT ID, USER FROM information_schema.PROCESSLIST WHERE COMMAND <> 'Sleep' ORDER BY ID DESC",
            ["ID", "USER"],
            [["9", "app"], ["7", "ops"]],
        ),
        (
            "select id, `User` AS who from INFORMATION_SCHEMA.`processlist` p where p.user = 'app'",
            ["id", "who"],
            [["3", "app"], ["9", "app"]],
        ),
        ("SELECT COUNT(*) FROM information_schema.processlist", ["COUNT(*)"], [["3"]]),
        (
            "SELECT user, COUNT(*) AS n FROM information_schema.PROCESSLIST GROUP BY user ORDER BY user",
            ["user", "n"],
            [["app", "2"], ["ops", "1"]],
        ),
        (
            "SELECT id, time_ms FROM information_schema.PROCESSLIST WHERE id = 3",
            ["id", "time_ms"],
            [["3", "12000.000"]],
        ),
    ],
)
def test_information_schema_evaluation(sql: str, names: list[str], values: list[list[str]]) -> None:
    columns, rows = evaluate(sql, ROWS)
    assert [c[0] for c in columns] == names
    assert rows == values


def test_information_schema_star_and_types() -> None:
    columns, rows = evaluate("SELECT * FROM information_schema.PROCESSLIST LIMIT 1", ROWS)
    assert [c[0] for c in columns] == [
        "ID",
        "USER",
        "HOST",
        "DB",
        "COMMAND",
        "TIME",
        "STATE",
        "INFO",
        "TIME_MS",
    ]
    assert columns[0][1] == ColumnType.LONGLONG and columns[8][1] == ColumnType.NEWDECIMAL
    assert rows == [["3", "app", "127.0.0.1:5000", "rwtest", "Sleep", "12", None, None, "12000.000"]]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM information_schema.PROCESSLIST p JOIN information_schema.TABLES t ON 1",
        "SELECT nope FROM information_schema.PROCESSLIST",
        "SELECT * FROM information_schema.PROCESSLIST; SELECT 1",
        "SELECT * FROM information_schema.PROCESSLIST WHERE",
    ],
)
def test_information_schema_not_answerable(sql: str) -> None:
    with pytest.raises(NotAnswerable):
        evaluate(sql, ROWS)


def test_result_rows() -> None:
    caps = int(Capability.PROTOCOL_41)
    payloads = [make_column_count(1), make_column_definition41("PRIVILEGE_TYPE"), make_eof()]
    payloads += [make_text_row([b"SUPER"]), make_text_row([b"CONNECTION ADMIN"]), make_eof()]
    data = b"".join(frame(p, i + 1) for i, p in enumerate(payloads))
    assert result_rows(data) == [[b"SUPER"], [b"CONNECTION ADMIN"]]
    with pytest.raises(BackendError) as exc:
        result_rows(frame(make_err(1142, "denied", "42000", caps), 1))
    assert exc.value.errno == 1142


@pytest.mark.parametrize(
    ("sql", "marked"),
    [
        ("SELECT * FROM information_schema.PROCESSLIST", True),
        ("select id from INFORMATION_SCHEMA.`processlist` where user = 'x'", True),
        ("SELECT * FROM `information_schema`.`PROCESSLIST`", True),
        ("SELECT 'processlist' FROM t", False),
        ("SELECT c FROM sbtest1 WHERE id = 5", False),
    ],
)
def test_classifier_marks_processlist_reads(sql: str, marked: bool) -> None:
    from rwproxy.router.classify import Classifier
    from rwproxy.router.statement import PrimaryReason

    info = Classifier().classify(sql)
    assert (info.primary_reason is PrimaryReason.PROCESSLIST) is marked
