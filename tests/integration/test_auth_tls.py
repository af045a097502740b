"""Client authentication plugins and TLS on the frontend, with real drivers."""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Iterator
from pathlib import Path

import mysql.connector
import pymysql
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from rwproxy.dev.cluster import Cluster
from rwproxy.dev.demo import demo_config_text
from rwproxy.protocol.auth import native_password_hash
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster


def self_signed(dir: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rwproxy-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = dir / "cert.pem", dir / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def proxy_with(cluster: Cluster, extra_proxy: str = "", user_block: str | None = None) -> ProxyThread:
    text = demo_config_text(cluster, 0).replace("[proxy]", "[proxy]\n" + extra_proxy, 1)
    if user_block is not None:
        start = text.index("[[users]]")
        end = text.index("[[servers]]")
        text = text[:start] + user_block + "\n" + text[end:]
    return ProxyThread(text)


@pytest.fixture(scope="module")
def tls_proxy(cluster: Cluster, tmp_path_factory) -> Iterator[ProxyThread]:
    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
    with proxy_with(cluster, f'tls_cert = "{cert}"\ntls_key = "{key}"\n') as p:
        yield p


@pytest.fixture(scope="module")
def sha2_proxy(cluster: Cluster) -> Iterator[ProxyThread]:
    with proxy_with(cluster, 'auth_plugin = "caching_sha2_password"\n') as p:
        yield p


def test_tls_client(tls_proxy: ProxyThread, cluster: Cluster) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = pymysql.connect(
        host=tls_proxy.host,
        port=tls_proxy.port,
        user=cluster.app_user,
        password=cluster.app_password,
        ssl=ctx,
    )
    assert isinstance(conn._sock, ssl.SSLSocket)
    with conn.cursor() as cur:
        cur.execute("SELECT REPEAT('z', 100000)")
        assert cur.fetchone()[0] == "z" * 100000
    conn.close()


def test_tls_required_refuses_plaintext(cluster: Cluster, tmp_path) -> None:
    cert, key = self_signed(tmp_path)
    with proxy_with(cluster, f'tls_cert = "{cert}"\ntls_key = "{key}"\ntls_required = true\n') as p:
        with pytest.raises(pymysql.err.OperationalError) as exc:
            pymysql.connect(
                host=p.host,
                port=p.port,
                user=cluster.app_user,
                password=cluster.app_password,
                ssl_disabled=True,
            )
        assert exc.value.args[0] == 1045


def test_caching_sha2_full_auth_over_rsa_then_fast_path(sha2_proxy: ProxyThread, cluster: Cluster) -> None:
    """First login: full authentication (RSA key exchange, no TLS); second: the fast path."""
    kw = {
        "host": sha2_proxy.host,
        "port": sha2_proxy.port,
        "user": cluster.app_user,
        "password": cluster.app_password,
    }
    assert cluster.app_user not in sha2_proxy.app.sha2_cache
    for _ in range(2):
        conn = pymysql.connect(**kw)
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        conn.close()
        assert cluster.app_user in sha2_proxy.app.sha2_cache
    with pytest.raises(pymysql.err.OperationalError) as exc:
        pymysql.connect(**{**kw, "password": "wrong"})
    assert exc.value.args[0] == 1045


def test_mysql_connector_caching_sha2(sha2_proxy: ProxyThread, cluster: Cluster) -> None:
    conn = mysql.connector.connect(
        host=sha2_proxy.host,
        port=sha2_proxy.port,
        user=cluster.app_user,
        password=cluster.app_password,
        auth_plugin="caching_sha2_password",
        use_pure=True,
        ssl_disabled=True,
    )
    cur = conn.cursor()
    cur.execute("SELECT 7")
    assert cur.fetchone() == (7,)
    conn.close()


def test_hash_only_user_switched_to_native(cluster: Cluster) -> None:
    hashed = "*" + native_password_hash(cluster.app_password.encode()).hex().upper()
    block = (
        f'[[users]]\nname = "{cluster.app_user}"\npassword_hash = "{hashed}"\n'
        f'backend_password = "{cluster.app_password}"\n'
    )
    with proxy_with(cluster, 'auth_plugin = "caching_sha2_password"\n', block) as p:
        conn = pymysql.connect(host=p.host, port=p.port, user=cluster.app_user, password=cluster.app_password)
        with conn.cursor() as cur:
            cur.execute("SELECT 5")
            assert cur.fetchone() == (5,)
        conn.close()


def test_load_data_local_refused_by_default(connect, tmp_path) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("1,a\n2,b\n")
    conn = connect(local_infile=True)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS infile_t (id INT, v VARCHAR(10))")
        with pytest.raises(pymysql.MySQLError) as exc:
            cur.execute(f"LOAD DATA LOCAL INFILE '{data}' INTO TABLE infile_t FIELDS TERMINATED BY ','")
        assert "local_infile" in str(exc.value)
        cur.execute("SELECT 1")  # session goes on


def test_load_data_local_enabled(cluster: Cluster, tmp_path) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("".join(f"{i},v{i}\n" for i in range(5000)))
    with proxy_with(cluster, "local_infile = true\n") as p:
        conn = pymysql.connect(
            host=p.host,
            port=p.port,
            user=cluster.app_user,
            password=cluster.app_password,
            database="rwtest",
            local_infile=True,
            autocommit=True,
        )
        with conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS infile_ok")
            cur.execute("CREATE TABLE infile_ok (id INT, v VARCHAR(10))")
            cur.execute(f"LOAD DATA LOCAL INFILE '{data}' INTO TABLE infile_ok FIELDS TERMINATED BY ','")
            assert cur.rowcount == 5000
            cur.execute("/* rwproxy:primary */ SELECT COUNT(*), MAX(id) FROM infile_ok")
            assert cur.fetchone() == (5000, 4999)
        conn.close()


def test_client_hello_in_the_same_segment_as_ssl_request(tls_proxy: ProxyThread, cluster: Cluster) -> None:
    """Regression: TLS bytes that arrive together with the SSLRequest must reach the TLS layer."""
    import socket

    from rwproxy.protocol.connection import make_ssl_request, parse_handshake_v10
    from rwproxy.protocol.constants import Capability
    from rwproxy.protocol.framing import PacketDecoder, frame

    caps = int(
        Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH | Capability.SSL
    )
    sock = socket.create_connection((tls_proxy.host, tls_proxy.port), timeout=10)
    decoder = PacketDecoder(1 << 20)
    while (pkt := decoder.next_packet()) is None:
        decoder.feed(sock.recv(4096))
    parse_handshake_v10(pkt[1])
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    sock.sendall(frame(make_ssl_request(capabilities=caps), 1) + outgoing.read())  # one segment
    while True:
        data = sock.recv(65536)
        assert data, "the proxy closed the connection during the TLS handshake"
        incoming.write(data)
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            sock.sendall(outgoing.read())
    sock.sendall(outgoing.read())
    assert tls.version() is not None
    sock.close()
