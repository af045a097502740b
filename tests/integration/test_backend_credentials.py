"""Backend credentials: RDS IAM tokens over TLS only (protocol level, against a scripted server that
asks for mysql_clear_password the way RDS's IAM plugin does), environment passwords, and Secrets
Manager rotation against moto in server mode and the real cluster.

moto signs nothing and checks nothing: the IAM token's format is boto3's own SigV4 presigned URL,
and that RDS accepts it is something only a real account can show.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from rwproxy.backend.clear_password import CLEAR_PASSWORD_REFUSED
from rwproxy.backend.connection import BackendError
from rwproxy.backend.credentials import IAM_TOKEN_REUSE_SECONDS, CredentialsError, CredentialSource
from rwproxy.backend.pool import BackendCredentials, Pool
from rwproxy.config.aws_sections import AwsConfig
from rwproxy.config.sections import BackendConfig
from rwproxy.dev.cluster import Cluster
from rwproxy.dev.demo import server_tables
from rwproxy.discovery.aws import AwsClients
from rwproxy.protocol.connection import (
    SslRequest,
    make_auth_switch_request,
    make_handshake_v10,
    parse_handshake_response,
)
from rwproxy.protocol.constants import UTF8MB4_GENERAL_CI, Capability
from rwproxy.protocol.framing import frame
from rwproxy.protocol.packets import make_ok
from tests.integration.test_auth_tls import self_signed
from tests.support.aws import MotoEndpoint, rds_address
from tests.support.proxy import ProxyThread

ENDPOINT = rds_address("orders-db")


class ClearPasswordServer:
    """A scripted MySQL server: greets (offering TLS when it has a context), upgrades to TLS when
    asked, then answers the login with AuthSwitchRequest(mysql_clear_password) and OK.

    Blocking sockets in a thread: reading exact byte counts keeps the client's TLS hello out of any
    buffer before the upgrade (an asyncio StreamReader would swallow it)."""

    def __init__(self, tls: ssl.SSLContext | None) -> None:
        self.tls = tls
        self.saw_ssl_request = False
        self.first_response: Any = None
        self.clear_passwords: list[bytes] = []
        self.raw: list[bytes] = []  # every packet payload received
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(10)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def capabilities(self) -> int:
        caps = (
            Capability.LONG_PASSWORD
            | Capability.PROTOCOL_41
            | Capability.SECURE_CONNECTION
            | Capability.PLUGIN_AUTH
            | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
            | Capability.TRANSACTIONS
        )
        return int(caps | (Capability.SSL if self.tls else 0))

    async def __aenter__(self) -> ClearPasswordServer:
        self._thread.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._listener.close()
        await asyncio.to_thread(self._thread.join, 10)

    def _recv_exact(self, sock: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def _read(self, sock: socket.socket) -> tuple[int, bytes]:
        header = self._recv_exact(sock, 4)
        payload = self._recv_exact(sock, int.from_bytes(header[:3], "little"))
        self.raw.append(payload)
        return header[3], payload

    def _serve(self) -> None:
        try:
            sock, _ = self._listener.accept()
        except OSError:
            return
        sock.settimeout(10)
        with contextlib.suppress(ConnectionError, OSError, ssl.SSLError):
            greeting = make_handshake_v10(
                server_version="8.0.36-fake-rds",
                connection_id=7,
                auth_plugin_data=bytes(range(1, 21)),
                capabilities=self.capabilities,
            )
            sock.sendall(frame(greeting, 0))
            seq, payload = self._read(sock)
            parsed = parse_handshake_response(payload)
            if isinstance(parsed, SslRequest):
                assert self.tls is not None
                self.saw_ssl_request = True
                sock = self.tls.wrap_socket(sock, server_side=True)
                seq, payload = self._read(sock)
                parsed = parse_handshake_response(payload)
            self.first_response = parsed
            sock.sendall(frame(make_auth_switch_request("mysql_clear_password", b""), seq + 1))
            seq, payload = self._read(sock)
            self.clear_passwords.append(payload)
            sock.sendall(frame(make_ok(self.capabilities), seq + 1))
            while True:  # until COM_QUIT / close
                self._read(sock)
        sock.close()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("fake-rds-tls"))


def server_tls(files: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(files[0]), str(files[1]))
    return ctx


def client_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def iam_source(moto: MotoEndpoint, clock: Any = time.monotonic) -> CredentialSource:
    backend = BackendConfig(credentials="iam", tls=True, tls_verify=False)
    clients = AwsClients(AwsConfig(region="us-east-1", endpoint_url=moto.url))
    return CredentialSource(backend, clients, endpoints=lambda: {"db1": (ENDPOINT, 3306)}, clock=clock)


async def acquire(pool: Pool, port: int, creds: BackendCredentials) -> Any:
    return await pool.acquire(
        node_name="db1",
        host="127.0.0.1",
        port=port,
        creds=creds,
        client_flags=0,
        collation_id=UTF8MB4_GENERAL_CI,
    )


def test_iam_token_sent_in_clear_text_only_inside_tls(
    moto: MotoEndpoint, tls_files: tuple[Path, Path]
) -> None:
    async def run() -> None:
        source = iam_source(moto)
        creds = source.credentials("iam_app", "ignored")
        assert creds.require_tls and creds.password == ""
        async with ClearPasswordServer(server_tls(tls_files)) as server:
            pool = Pool(max_per_server=4, connect_timeout=5, idle_seconds=60, ssl_context=client_tls())
            conn = await acquire(pool, server.port, creds)
            token = await source.iam_token("db1", "127.0.0.1", server.port, "iam_app")
            # Signed for the RDS endpoint (not the address connected to), for this user.
            assert token.startswith(f"{ENDPOINT}:3306/?Action=connect&DBUser=iam_app&")
            assert "X-Amz-Signature=" in token and "X-Amz-Expires=900" in token
            assert server.saw_ssl_request  # TLS first
            assert server.clear_passwords == [token.encode() + b"\0"]
            assert server.first_response.username == "iam_app"
            assert token.encode() not in server.first_response.auth_response  # only the scramble
            conn.close()
            await pool.close()

    asyncio.run(run())


def test_iam_token_reused_then_renewed_before_expiry(moto: MotoEndpoint) -> None:
    now = [1000.0]
    source = iam_source(moto, clock=lambda: now[0])

    async def run() -> None:
        first = await source.iam_token("db1", "127.0.0.1", 1, "u")
        made = source._tokens[(ENDPOINT, 3306, "u")][1]
        now[0] += IAM_TOKEN_REUSE_SECONDS - 1
        assert await source.iam_token("db1", "127.0.0.1", 1, "u") == first
        assert source._tokens[(ENDPOINT, 3306, "u")][1] == made
        now[0] += 2  # 10 minutes old: renewed well before the 15-minute expiry
        await source.iam_token("db1", "127.0.0.1", 1, "u")
        assert source._tokens[(ENDPOINT, 3306, "u")][1] == now[0]
        # An undiscovered node: signed for the address it is reached at.
        other = await source.iam_token("db9", "db9.example.com", 3307, "u")
        assert other.startswith("db9.example.com:3307/?Action=connect&DBUser=u&")

    asyncio.run(run())


@pytest.mark.parametrize("case", ["no_tls_configured", "server_offers_no_tls"])
def test_iam_refused_without_tls(moto: MotoEndpoint, tls_files: tuple[Path, Path], case: str) -> None:
    async def run() -> None:
        creds = iam_source(moto).credentials("iam_app", "")
        server_ctx = None if case == "server_offers_no_tls" else server_tls(tls_files)
        client_ctx = None if case == "no_tls_configured" else client_tls()
        async with ClearPasswordServer(server_ctx) as server:
            pool = Pool(max_per_server=4, connect_timeout=5, idle_seconds=60, ssl_context=client_ctx)
            with pytest.raises(BackendError) as err:
                await acquire(pool, server.port, creds)
            assert err.value.errno == CLEAR_PASSWORD_REFUSED
            assert "refuses to send" in str(err.value)
            await asyncio.sleep(0.05)
            assert server.raw == []  # nothing was sent: no handshake response, no token
            await pool.close()

    asyncio.run(run())


def test_plain_password_never_sent_in_clear_without_tls() -> None:
    """Any login: a server asking for mysql_clear_password on a plain connection gets nothing."""

    async def run() -> None:
        async with ClearPasswordServer(None) as server:
            pool = Pool(max_per_server=4, connect_timeout=5, idle_seconds=60)
            with pytest.raises(BackendError) as err:
                await acquire(pool, server.port, BackendCredentials("app", "do-not-leak"))
            assert err.value.errno == CLEAR_PASSWORD_REFUSED and "do-not-leak" not in str(err.value)
            await asyncio.sleep(0.05)
            assert server.clear_passwords == []
            assert all(b"do-not-leak" not in p for p in server.raw)
            await pool.close()

    asyncio.run(run())


def test_env_password(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = BackendConfig(credentials="env", password_env="RWPROXY_TEST_DB_PASSWORD")
    monkeypatch.delenv("RWPROXY_TEST_DB_PASSWORD", raising=False)
    with pytest.raises(CredentialsError, match="RWPROXY_TEST_DB_PASSWORD is not set"):
        asyncio.run(CredentialSource(backend).start())
    monkeypatch.setenv("RWPROXY_TEST_DB_PASSWORD", "from-env")
    source = CredentialSource(backend)
    asyncio.run(source.start())
    assert source.credentials("app", "from-config") == BackendCredentials("app", "from-env")


# --------------------------------------------------------------------------------------------------
# Secrets Manager rotation with the real cluster


@pytest.fixture
def secret_user(healthy_cluster: Cluster) -> Iterator[str]:
    name = "rwsecret"
    cluster = healthy_cluster
    statements = []
    for host in cluster.user_hosts:
        statements += [
            f"DROP USER IF EXISTS '{name}'@'{host}'",
            f"CREATE USER '{name}'@'{host}' IDENTIFIED BY 'first-password'",
            f"GRANT ALL ON rwtest.* TO '{name}'@'{host}'",
        ]
    for st in statements:
        cluster.admin_sql(cluster.primary, st)
    cluster.wait_replicas_caught_up()
    yield name
    for host in cluster.user_hosts:
        cluster.admin_sql(cluster.primary, f"DROP USER IF EXISTS '{name}'@'{host}'")


def test_secret_rotation_new_connections_use_the_new_password(
    healthy_cluster: Cluster, moto: MotoEndpoint, secret_user: str
) -> None:
    cluster = healthy_cluster
    sm = moto.client("secretsmanager")
    arn = sm.create_secret(
        Name=f"rwproxy-test-{uuid.uuid4().hex[:8]}",
        SecretString=json.dumps({"username": secret_user, "password": "first-password"}),
    )["ARN"]
    servers = "\n".join(server_tables(cluster, roles=True))
    config = f"""
[proxy]
listen = ["127.0.0.1:0"]
[admin]
http_listen = ""
[[users]]
name = "app"
password = "client-password"
[backend]
credentials = "secretsmanager"
secret_arn = "{arn}"
secret_refresh_seconds = 3600.0
[monitor]
user = "{cluster.monitor_user}"
password = "{cluster.monitor_password}"
{servers}
{moto.aws_toml()}
"""

    def connect(p: ProxyThread) -> pymysql.Connection:
        return pymysql.connect(
            host=p.host,
            port=p.port,
            user="app",
            password="client-password",
            database="rwtest",
            autocommit=True,
        )

    def whoami(conn: pymysql.Connection) -> str:
        with conn.cursor() as cur:
            cur.execute("/* rwproxy:primary */ SELECT CURRENT_USER()")
            return str(cur.fetchone()[0])

    with ProxyThread(config) as p:
        first = connect(p)
        assert whoami(first).startswith(f"{secret_user}@")  # the secret's username and password
        source = p.app.aws.credential_source
        reads = source.refreshes

        # Rotate: the real account's password, then the secret (as a rotation function does).
        for host in cluster.user_hosts:
            cluster.admin_sql(
                cluster.primary, f"ALTER USER '{secret_user}'@'{host}' IDENTIFIED BY 'second-password'"
            )
        cluster.wait_replicas_caught_up()
        sm.put_secret_value(
            SecretId=arn, SecretString=json.dumps({"username": secret_user, "password": "second-password"})
        )

        # A new session needs a new backend connection (the first session holds the pooled one): the
        # old password gets ERROR 1045, rwproxy re-reads the secret and retries with the new one.
        opened = p.app.pool.stats.opened
        second = connect(p)
        assert whoami(second).startswith(f"{secret_user}@")
        assert p.app.pool.stats.opened > opened
        assert source.refreshes == reads + 1
        assert whoami(first).startswith(f"{secret_user}@")  # open connections are not disturbed
        first.close()
        second.close()
