"""Bad input gets a clear error and hurts nobody else: raw sockets, dead clients, dead backends."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

import pymysql
import pytest

from rwproxy.dev.cluster import Cluster
from rwproxy.protocol.auth import scramble_native_password
from rwproxy.protocol.connection import make_handshake_response, parse_handshake_v10
from rwproxy.protocol.constants import Capability
from rwproxy.protocol.framing import PacketDecoder, frame
from rwproxy.protocol.packets import parse_err
from tests.support.proxy import ProxyThread

pytestmark = pytest.mark.cluster

CAPS = int(
    Capability.PROTOCOL_41
    | Capability.SECURE_CONNECTION
    | Capability.PLUGIN_AUTH
    | Capability.LONG_PASSWORD
    | Capability.TRANSACTIONS
    | Capability.MULTI_RESULTS
)


class RawClient:
    """A hand-driven MySQL client on a plain socket."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.decoder = PacketDecoder(1 << 26)

    def read(self) -> tuple[int, bytes] | None:
        """Next packet, or None when the server closed the connection."""
        while True:
            pkt = self.decoder.next_packet()
            if pkt is not None:
                return pkt
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                return None
            if not data:
                return None
            self.decoder.feed(data)

    def send(self, payload: bytes, seq: int) -> None:
        self.sock.sendall(frame(payload, seq))

    def login(self, user: str, password: str) -> tuple[int, bytes] | None:
        seq, greeting = self.read()  # type: ignore[misc]
        hs = parse_handshake_v10(greeting)
        response = make_handshake_response(
            capabilities=CAPS,
            username=user,
            auth_response=scramble_native_password(password.encode(), hs.auth_plugin_data),
            auth_plugin_name="mysql_native_password",
        )
        self.send(response, seq + 1)
        return self.read()

    def close(self) -> None:
        self.sock.close()


def still_serving(connect) -> None:
    with connect().cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)


def test_auth_bypass_raw_socket_gets_nothing(proxy, cluster: Cluster, connect) -> None:
    """A client that ignores ERR 1045 and sends a query must get no answer: the connection is closed."""
    c = RawClient(proxy.host, proxy.port)
    _seq, reply = c.login(cluster.app_user, "wrong-password")  # type: ignore[misc]
    assert reply[0] == 0xFF and parse_err(reply).code == 1045
    with contextlib.suppress(OSError):  # already closed: fine
        c.send(b"\x03SELECT 'leaked'", 0)
    assert c.read() is None
    c.close()
    still_serving(connect)


def test_unknown_user_raw(proxy) -> None:
    c = RawClient(proxy.host, proxy.port)
    _seq, reply = c.login("nobody", "x")  # type: ignore[misc]
    assert parse_err(reply).code == 1045
    assert c.read() is None


def test_unknown_command_keeps_session(proxy, cluster: Cluster) -> None:
    c = RawClient(proxy.host, proxy.port)
    _seq, ok = c.login(cluster.app_user, cluster.app_password)  # type: ignore[misc]
    assert ok[0] == 0x00
    c.send(b"\x63whatever", 0)
    _seq, reply = c.read()  # type: ignore[misc]
    assert parse_err(reply).code == 1047
    c.send(b"\x03SELECT 42", 0)
    rows = []
    while True:
        _seq, p = c.read()  # type: ignore[misc]
        rows.append(p)
        if p[0] == 0xFE and len(p) < 9 and len(rows) > 3:
            break
    assert b"\x0242" in rows[3]


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("sequence id out of order", frame(b"\x03SELECT 1", 5)),
        ("empty command packet", frame(b"", 0)),
    ],
)
def test_malformed_packet_closes_only_that_session(proxy, cluster, connect, name: str, bad: bytes) -> None:
    bystander = connect()
    c = RawClient(proxy.host, proxy.port)
    c.login(cluster.app_user, cluster.app_password)
    c.sock.sendall(bad)
    pkt = c.read()
    assert pkt is not None and pkt[1][0] == 0xFF, name
    assert c.read() is None  # closed
    with bystander.cursor() as cur:
        cur.execute("SELECT 2")
        assert cur.fetchone() == (2,)


def test_oversize_packet_is_refused_before_buffering(cluster: Cluster, connect) -> None:
    from rwproxy.dev.demo import demo_config_text

    text = demo_config_text(cluster, 0).replace("[proxy]", "[proxy]\nmax_packet_size = 4096", 1)
    with ProxyThread(text) as small:
        c = RawClient(small.host, small.port)
        c.login(cluster.app_user, cluster.app_password)
        # Announce a 1 MiB packet but send only the header and a few bytes.
        c.sock.sendall(struct.pack("<I", 1 << 20)[:3] + b"\x00" + b"\x03SELECT")
        _seq, reply = c.read()  # type: ignore[misc]
        err = parse_err(reply)
        assert err.code == 1153 and "max_allowed_packet" in err.message
        assert c.read() is None


def test_garbage_instead_of_handshake(proxy, connect) -> None:
    s = socket.create_connection((proxy.host, proxy.port), timeout=10)
    s.recv(1024)  # greeting
    s.sendall(b"\x05\x00\x00\x01hello")
    s.settimeout(10)
    data = b""
    try:
        while chunk := s.recv(1024):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    s.close()
    still_serving(connect)


def test_client_killed_mid_result_releases_backend(proxy, cluster, connect) -> None:
    app = proxy.app

    def checked_out() -> dict[str, int]:
        return {n.name: app.pool.open_count(n.name) - app.pool.idle_count(n.name) for n in app.topology.nodes}

    c = RawClient(proxy.host, proxy.port)
    c.login(cluster.app_user, cluster.app_password)
    # Qualified: the session has no default database (it used to inherit a pooled connection's).
    c.send(f"\x03SELECT seq, REPEAT('x', 200) FROM {cluster.database}.seq_1_to_2000000".encode(), 0)
    c.sock.recv(1024)  # the result has started
    assert sum(checked_out().values()) >= 1
    closed_before = app.pool.stats.closed
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()  # RST mid-result
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not app.sessions and not any(checked_out().values()):
            break
        time.sleep(0.1)
    # No session left, no connection checked out, and the mid-result one was closed (not pooled).
    assert not app.sessions and not any(checked_out().values()), checked_out()
    assert app.pool.stats.closed > closed_before
    still_serving(connect)


def test_backend_killed_mid_statement_gives_error_and_session_goes_on(
    proxy, cluster, connect, direct
) -> None:
    conn = connect()
    victim_thread: list[int] = []

    def kill_soon() -> None:
        admin = direct(cluster.primary)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with admin.cursor() as cur:
                cur.execute(
                    "SELECT id FROM information_schema.processlist WHERE info LIKE 'SELECT SLEEP(5)%'"
                )
                row = cur.fetchone()
            if row:
                victim_thread.append(int(row[0]))
                with admin.cursor() as cur:
                    cur.execute(f"KILL CONNECTION {int(row[0])}")
                return
            time.sleep(0.05)

    t = threading.Thread(target=kill_soon)
    t.start()
    started = time.monotonic()
    with pytest.raises(pymysql.err.OperationalError) as exc, conn.cursor() as cur:
        cur.execute("SELECT SLEEP(5) FOR UPDATE")
    t.join()
    assert victim_thread, "the statement never reached the primary"
    assert time.monotonic() - started < 4.5
    assert exc.value.args[0] in (2013, 1927)
    with conn.cursor() as cur:  # same client connection, new backend connection
        cur.execute("SELECT 3")
        assert cur.fetchone() == (3,)


def test_user_connection_limit(cluster: Cluster) -> None:
    from rwproxy.dev.demo import demo_config_text

    text = demo_config_text(cluster, 0).replace(
        f'password = "{cluster.app_password}"', f'password = "{cluster.app_password}"\nmax_connections = 2', 1
    )
    with ProxyThread(text) as p:
        kw = {"host": p.host, "port": p.port, "user": cluster.app_user, "password": cluster.app_password}
        a, b = pymysql.connect(**kw), pymysql.connect(**kw)
        with pytest.raises(pymysql.err.OperationalError) as exc:
            pymysql.connect(**kw)
        assert exc.value.args[0] == 1226
        a.close()
        time.sleep(0.2)
        pymysql.connect(**kw).close()
        b.close()


def test_primary_connection_lost_inside_a_transaction_is_reported(connect, direct, cluster) -> None:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("SELECT @@pseudo_thread_id")  # the backend thread (CONNECTION_ID() is the session id)
        backend_thread = cur.fetchone()[0]
        with direct(cluster.primary).cursor() as admin:
            admin.execute(f"KILL CONNECTION {int(backend_thread)}")
        time.sleep(0.3)
        with pytest.raises(pymysql.err.OperationalError) as exc:
            cur.execute("SELECT 1")
        assert exc.value.args[0] == 2013 and "transaction" in exc.value.args[1]
        cur.execute("SELECT 2")  # the session goes on, outside any transaction
        assert cur.fetchone() == (2,)
        cur.execute("SELECT @@in_transaction")
        assert cur.fetchone() == (0,)


def test_default_database_that_is_not_utf8_gets_the_servers_error(proxy, cluster: Cluster, connect) -> None:
    """Found by the fuzzer: a HandshakeResponse whose database is not valid UTF-8 crashed the login
    (UnicodeEncodeError, connection closed without a word); its bytes now go to the server as sent."""
    c = RawClient(proxy.host, proxy.port)
    seq, greeting = c.read()  # type: ignore[misc]
    hs = parse_handshake_v10(greeting)
    response = make_handshake_response(
        capabilities=CAPS | Capability.CONNECT_WITH_DB,
        username=cluster.app_user,
        auth_response=scramble_native_password(cluster.app_password.encode(), hs.auth_plugin_data),
        database="rw\udcf3test",  # the byte 0xF3 alone, as the parser keeps it (surrogateescape)
        auth_plugin_name="mysql_native_password",
    )
    assert b"rw\xf3test\x00" in response
    c.send(response, seq + 1)
    _seq, reply = c.read()  # type: ignore[misc]
    # MariaDB: 1300 "Invalid utf8mb4 character string"; an unknown or bad name elsewhere: 1049 / 1102.
    assert reply[0] == 0xFF and parse_err(reply).code in (1300, 1049, 1102), reply
    c.close()
    still_serving(connect)
