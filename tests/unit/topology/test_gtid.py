"""GTID positions: MariaDB domain-server-seq lists and MySQL uuid interval sets."""

from __future__ import annotations

import pytest

from rwproxy.topology.gtid import parse_position, wait_statement

UUID = "3e11fa47-71ca-11e1-9e33-c80aa9429562"


@pytest.mark.parametrize(
    ("position", "gtid", "covered"),
    [
        ("0-1-100", "0-1-100", True),
        ("0-1-100", "0-1-99", True),
        ("0-1-100", "0-1-101", False),
        ("0-1-100", "0-2-50", True),  # another server id in the same domain: sequence order holds
        ("0-1-100,1-2-5", "1-3-5", True),
        ("0-1-100,1-2-5", "1-3-6", False),
        ("0-1-100", "2-1-1", False),  # unknown domain
        ("", "0-1-1", False),
        ("0-1-100,1-2-5", "0-1-50,1-2-5", True),  # a GTID list: all of it
        ("0-1-100,1-2-5", "0-1-50,1-2-6", False),
        (f"{UUID}:1-100", f"{UUID}:100", True),
        (f"{UUID}:1-100", f"{UUID}:101", False),
        (f"{UUID}:1-10:12-20", f"{UUID}:11", False),
        (f"{UUID}:1-10:12-20", f"{UUID}:12-15", True),
        (f"{UUID}:1-10,\n{UUID.upper()[:-1]}1:1-3", f"{UUID[:-1]}1:3", True),
        (f"{UUID}:1-10", f"{UUID.upper()}:5", True),
        (f"{UUID}:1-10", "aaaaaaaa-71ca-11e1-9e33-c80aa9429562:1", False),
        (f"{UUID}:1-10", f"{UUID}:5:7", True),
    ],
)
def test_covers(position: str, gtid: str, covered: bool) -> None:
    pos = parse_position(position)
    assert pos is not None
    assert pos.covers(gtid) is covered


def test_parse_none_and_hash() -> None:
    assert parse_position(None) is None
    a, b = parse_position("0-1-5"), parse_position("0-1-5")
    assert a == b and hash(a) == hash(b)
    assert parse_position("0-1-5") != parse_position("0-1-6")


def test_bad_gtid_raises_value_error() -> None:
    with pytest.raises(ValueError):
        parse_position("garbage")
    pos = parse_position("0-1-5")
    assert pos is not None
    with pytest.raises(ValueError):
        pos.covers("1-2")


def test_wait_statement() -> None:
    assert wait_statement("0-1-5", 0.25) == b"SELECT MASTER_GTID_WAIT('0-1-5', 0.250)"
    assert wait_statement(f"{UUID}:7", 1) == f"SELECT WAIT_FOR_EXECUTED_GTID_SET('{UUID}:7', 1.000)".encode()
    # Quotes cannot break out of the literal (GTIDs come from the server, but never trust bytes).
    assert wait_statement("0-1-5'); DROP TABLE t; --", 1).count(b"'") == 2
