"""``rwproxy.backend.own_account``: which account rwproxy logs in with for its own jobs, as a table."""

from __future__ import annotations

import pytest

from rwproxy.backend.own_account import OwnAccount, own_account, own_credentials
from rwproxy.backend.pool import BackendCredentials
from rwproxy.config import parse_config
from tests.support.builders import section, server, user

_USERS = user(backend_user="app_be") + user("other", "opw")
_SERVER = server(role="primary")
_ENV = section("backend", credentials="env", password_env="RWPROXY_TEST_PW")


@pytest.mark.parametrize(
    ("extra", "job", "expected"),
    [
        # 3. unset: the first [[users]] entry's backend account
        ("", "monitor", OwnAccount("app_be", "pw", via_source=False)),
        ("", "failover", OwnAccount("app_be", "pw", via_source=False)),
        ("", "side", OwnAccount("app_be", "pw", via_source=False)),
        (_ENV, "monitor", OwnAccount("app_be", "pw", via_source=True)),
        (_ENV, "failover", OwnAccount("app_be", "pw", via_source=True)),
        (_ENV, "side", OwnAccount("app_be", "pw", via_source=True)),
        # 1. user and password set: exactly those
        ('[monitor]\nuser = "mon"\npassword = "mpw"\n', "monitor", OwnAccount("mon", "mpw", False)),
        (_ENV + '[monitor]\nuser = "mon"\npassword = "mpw"\n', "monitor", OwnAccount("mon", "mpw", False)),
        (_ENV + '[failover]\nuser = "fo"\npassword = "fpw"\n', "failover", OwnAccount("fo", "fpw", False)),
        # 2. user without password: the [backend] credentials password, else empty
        ('[monitor]\nuser = "mon"\n', "monitor", OwnAccount("mon", "", via_source=False)),
        ('[failover]\nuser = "fo"\n', "failover", OwnAccount("fo", "", via_source=False)),
        (_ENV + '[monitor]\nuser = "mon"\n', "monitor", OwnAccount("mon", "", via_source=True)),
        (_ENV + '[failover]\nuser = "fo"\n', "failover", OwnAccount("fo", "", via_source=True)),
        # one job's section never decides another's
        ('[monitor]\nuser = "mon"\npassword = "mpw"\n', "failover", OwnAccount("app_be", "pw", False)),
        ('[failover]\nuser = "fo"\npassword = "fpw"\n', "monitor", OwnAccount("app_be", "pw", False)),
        ('[monitor]\nuser = "mon"\npassword = "mpw"\n', "side", OwnAccount("app_be", "pw", False)),
    ],
)
def test_own_account_rule(extra: str, job: str, expected: OwnAccount) -> None:
    config = parse_config(_USERS + extra + _SERVER)
    assert own_account(config, job) == expected  # type: ignore[arg-type]


def test_own_credentials_asks_the_source_only_for_its_passwords() -> None:
    asked: list[tuple[str, str]] = []

    def source(user: str, password: str) -> BackendCredentials:
        asked.append((user, password))
        return BackendCredentials(user, "from-source")

    fixed = own_credentials(OwnAccount("mon", "mpw", via_source=False), source)
    assert fixed == BackendCredentials("mon", "mpw") and asked == []
    sourced = own_credentials(OwnAccount("app_be", "pw", via_source=True), source)
    assert sourced == BackendCredentials("app_be", "from-source") and asked == [("app_be", "pw")]
