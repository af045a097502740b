"""caching_sha2_password clients against rwproxy's default greeting (mysql_native_password).

MariaDB answers a client that picked a plugin it did not offer with an AuthSwitchRequest to the
account's plugin; rwproxy switches to mysql_native_password the same way (it was ERR 1045).

Both mysql-connector-python variants: pure Python here; the C extension (libmysqlclient) in a fresh
interpreter, because its bundled OpenSSL cannot load once the system ``ssl`` module is (pytest's
asyncio plugin imports it first). The C extension is run without ``ssl_disabled=True``: with it and
``auth_plugin`` set it never opens the TCP connection (errno 2002, empty message; 26.10.0 and 9.4.0,
against MariaDB directly too). rwproxy offers no TLS here, so the session is plaintext all the same.
"""

from __future__ import annotations

import json
import subprocess
import sys

import mysql.connector
import pytest

from rwproxy.dev.cluster import Cluster
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster


_C_EXTENSION_LOGIN = """
import _mysql_connector  # first: its bundled OpenSSL must load before the system one
import json, sys
import mysql.connector
args = json.loads(sys.argv[1])
try:
    conn = mysql.connector.connect(use_pure=False, **args)
except mysql.connector.Error as exc:
    print(json.dumps({"errno": exc.errno}))
    sys.exit(0)
assert type(conn).__name__ == "CMySQLConnection", type(conn)
cur = conn.cursor()
cur.execute("SELECT 6 * 7")
print(json.dumps({"row": list(cur.fetchone())}))
conn.close()
"""


def _c_extension_login(args: dict[str, object]) -> dict[str, object]:
    args = {k: v for k, v in args.items() if k != "ssl_disabled"}
    done = subprocess.run(
        [sys.executable, "-c", _C_EXTENSION_LOGIN, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _login_args(proxy: ProxyThread, cluster: Cluster, password: str | None = None) -> dict[str, object]:
    return {
        "host": proxy.host,
        "port": proxy.port,
        "user": cluster.app_user,
        "password": cluster.app_password if password is None else password,
        "auth_plugin": "caching_sha2_password",
        "ssl_disabled": True,
        "connection_timeout": 20,
    }


def test_connector_pure_caching_sha2_against_default_greeting(proxy: ProxyThread, cluster: Cluster) -> None:
    assert proxy.app.config.proxy.auth_plugin == "mysql_native_password"
    proxy.app.sha2_cache.clear()  # no fast path to lean on
    conn = mysql.connector.connect(use_pure=True, **_login_args(proxy, cluster))
    cur = conn.cursor()
    cur.execute("SELECT 6 * 7")
    assert cur.fetchone() == (42,)
    cur.close()
    # COM_CHANGE_USER answers with the same plugin: switched too.
    conn.cmd_change_user(username=cluster.app_user, password=cluster.app_password)
    cur = conn.cursor()
    cur.execute("SELECT 7")
    assert cur.fetchone() == (7,)
    conn.close()
    with pytest.raises(mysql.connector.Error) as exc:
        mysql.connector.connect(use_pure=True, **_login_args(proxy, cluster, "wrong"))
    assert exc.value.errno == 1045


def test_connector_c_extension_caching_sha2_against_default_greeting(
    proxy: ProxyThread, cluster: Cluster
) -> None:
    assert proxy.app.tls_context is None  # plaintext, as with ssl_disabled
    proxy.app.sha2_cache.clear()
    assert _c_extension_login(_login_args(proxy, cluster)) == {"row": [42]}
    assert _c_extension_login(_login_args(proxy, cluster, "wrong")) == {"errno": 1045}
