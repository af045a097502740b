"""caching_sha2_password clients against rwproxy's default greeting (mysql_native_password).

MariaDB answers a client that picked a plugin it did not offer with an AuthSwitchRequest to the
account's plugin; rwproxy switches to mysql_native_password the same way (it was ERR 1045).

mysql-connector-python's C extension cannot be run here with ``auth_plugin`` set: with any
``auth_plugin`` (26.10.0 and 9.4.0 tried, against MariaDB directly too) libmysqlclient never opens the
TCP connection (errno 2002, empty message). Without ``auth_plugin`` it answers with the greeting's
plugin, so it never takes this path. The dialogue itself is covered by tests/unit/protocol/test_auth.py.
"""

from __future__ import annotations

import mysql.connector
import pytest

from proxy.devcluster import Cluster
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster


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
