"""Clients that never authenticate cost the proxy almost nothing (rwproxy.frontend.preauth): a too big
packet is refused from its header, the unauthenticated are capped and timed out, memory comes back.

The proxy runs as its own process so that its RSS is what is measured."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from rwproxy.dev.cluster import Cluster, free_port
from rwproxy.dev.demo import demo_config_text
from rwproxy.protocol.auth import scramble_native_password
from rwproxy.protocol.connection import make_com_change_user, make_handshake_response, parse_handshake_v10
from rwproxy.protocol.constants import Capability
from rwproxy.protocol.framing import PacketDecoder, frame, frame_header
from rwproxy.protocol.packets import parse_err
from tests.support.proxy import ProxyThread
from tests.support.proxy_process import ProxyProcess

pytestmark = pytest.mark.cluster

MiB = 1 << 20
CLIENTS = 50
# Growth of the proxy's RSS allowed while CLIENTS hostile clients are connected: each may hold 32 KiB
# of buffer plus its session objects; the rest is slack for a busy allocator. Without the limits the
# same clients make the proxy hold 3 MiB for each third of them (and more for each one that keeps sending).
RSS_BOUND = 16 * MiB


def _config(cluster: Cluster, extra: str = "") -> str:
    text = demo_config_text(cluster, free_port(), admin_port=free_port())
    return text.replace("[proxy]\n", f"[proxy]\n{extra}", 1)


@contextlib.contextmanager
def _healthy_client(p: ProxyProcess, cluster: Cluster) -> Iterator[list[BaseException]]:
    """A client that logs in first and runs statements all along; yields the errors it met."""
    errors: list[BaseException] = []
    stop = threading.Event()
    conn = pymysql.connect(
        host=p.host,
        port=p.port,
        user=cluster.app_user,
        password=cluster.app_password,
        autocommit=True,
        connect_timeout=10,
        read_timeout=20,
    )
    done = [0]

    def work() -> None:
        try:
            while not stop.is_set():
                with conn.cursor() as cur:
                    cur.execute("SELECT 1 + 1")
                    assert cur.fetchone() == (2,)
                done[0] += 1
                time.sleep(0.01)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    try:
        yield errors
    finally:
        stop.set()
        t.join(30)
        conn.close()
    assert done[0] > 0, "the healthy client ran nothing"


def _greeted(p: ProxyProcess) -> socket.socket:
    s = socket.create_connection((p.host, p.port), timeout=10)
    s.recv(4096)  # the greeting (one small packet)
    return s


def _reply(s: socket.socket, timeout: float) -> tuple[int, bytes] | None:
    """The proxy's next packet on ``s``, or None when it closed (or said nothing) first."""
    s.settimeout(timeout)
    decoder = PacketDecoder(MiB)
    while True:
        packet = decoder.next_packet()
        if packet is not None:
            return packet
        try:
            data = s.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return None
        if not data:
            return None
        decoder.feed(data)


def _closed(s: socket.socket, timeout: float) -> bool:
    s.settimeout(timeout)
    try:
        while s.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


def _send(s: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the proxy may have closed already: that is the point
        s.sendall(data)


def _login(p: ProxyProcess, cluster: Cluster) -> None:
    pymysql.connect(
        host=p.host, port=p.port, user=cluster.app_user, password=cluster.app_password, connect_timeout=10
    ).close()


def test_oversized_preauth_packets_are_refused_from_the_header(cluster: Cluster, tmp_path: Path) -> None:
    """50 clients announce 16 MiB packets before logging in (some send 3 MiB of it, some many small
    packets): each gets a clear error at once, the proxy's RSS stays within RSS_BOUND, and a healthy
    client beside them never notices."""
    with ProxyProcess(_config(cluster), tmp_path) as p, _healthy_client(p, cluster) as errors:
        for _ in range(3):
            _login(p, cluster)  # warm up the login path before the baseline
        before = p.rss_bytes()
        hostile = []
        for i in range(CLIENTS):
            s = _greeted(p)
            kind = i % 3
            if kind == 0:  # only the header of a 16 MiB packet
                _send(s, frame_header(0xFFFFFF, 1))
            elif kind == 1:  # the header and the first 3 MiB of its body
                _send(s, frame_header(0xFFFFFF, 1) + b"\x00" * (3 * MiB))
            else:  # small packets, 1 MiB of them, without waiting for an answer
                _send(s, (frame_header(60, 1) + b"\x01" * 60) * (MiB // 64))
            hostile.append((kind, s))
        during = p.rss_bytes()
        print(f"proxy RSS {before / MiB:.1f} MiB, with {CLIENTS} hostile clients {during / MiB:.1f} MiB")
        assert during - before < RSS_BOUND, f"RSS grew by {(during - before) / MiB:.1f} MiB"
        for kind, s in hostile:
            reply = _reply(s, timeout=10)
            assert reply is not None and reply[1][:1] == b"\xff", f"kind {kind}: no error, got {reply!r}"
            err = parse_err(reply[1])
            if kind == 2:
                assert err.code == 1043 and "before authentication" in err.message, err
            else:
                assert err.code == 1153 and "16777215 bytes before authentication" in err.message, err
            assert _closed(s, timeout=10), f"kind {kind}: still open"
            s.close()
        _login(p, cluster)
        after = p.rss_bytes()
    assert not errors, errors
    assert after - before < RSS_BOUND, f"RSS stayed {(after - before) / MiB:.1f} MiB above the start"
    log = p.log_text()
    assert "bytes before authentication" in log
    assert log.count("refused a client:") <= 2, "the refusals must not flood the log"


def test_unauthenticated_connections_are_capped_and_timed_out(cluster: Cluster, tmp_path: Path) -> None:
    """At max_unauthenticated_connections stalled logins the next client gets ERR 1040; a logged-in
    client goes on; once auth_timeout_seconds closes the stalled ones, logins work again."""
    timeout = 5.0
    extra = f"max_unauthenticated_connections = {CLIENTS}\nauth_timeout_seconds = {timeout}\n"
    with ProxyProcess(_config(cluster, extra), tmp_path) as p, _healthy_client(p, cluster) as errors:
        before = p.rss_bytes()
        stalled = []
        started = time.monotonic()
        for _ in range(CLIENTS):
            s = _greeted(p)
            _send(s, frame_header(200, 1) + b"\x8d\xa2")  # 2 bytes of a 200-byte HandshakeResponse
            stalled.append(s)
        refused = socket.create_connection((p.host, p.port), timeout=10)
        reply = _reply(refused, timeout=10)
        assert reply is not None and reply[1][:1] == b"\xff", reply
        err = parse_err(reply[1])
        assert err.code == 1040 and "still authenticating" in err.message, err
        assert _closed(refused, timeout=10)
        refused.close()
        assert p.rss_bytes() - before < RSS_BOUND
        for s in stalled:  # the authentication timeout ends them all
            assert _closed(s, timeout=timeout + 15), "a stalled login outlived auth_timeout_seconds"
            s.close()
        assert time.monotonic() - started >= timeout - 0.5
        _login(p, cluster)
    assert not errors, errors
    log = p.log_text()
    assert log.count("refusing new ones") == 1 and "below the limit again; 1 refused" in log


def test_change_user_dialogue_has_the_same_packet_limit(proxy, cluster: Cluster, connect) -> None:
    """COM_CHANGE_USER runs the auth dialogue again: a 16 MiB header in it is refused from the header
    (ERR 1153) like before the first login, and other clients go on."""
    s = socket.create_connection((proxy.host, proxy.port), timeout=10)
    seq, greeting = _reply(s, 10)  # type: ignore[misc]
    salt = parse_handshake_v10(greeting).auth_plugin_data
    caps = int(Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH)
    s.sendall(
        frame(
            make_handshake_response(
                capabilities=caps,
                username=cluster.app_user,
                auth_response=scramble_native_password(cluster.app_password.encode(), salt),
                auth_plugin_name="mysql_native_password",
            ),
            seq + 1,
        )
    )
    assert _reply(s, 10)[1][:1] == b"\x00"  # type: ignore[index]
    # A plugin the proxy does not speak: it answers with an AuthSwitchRequest and waits for the reply.
    s.sendall(frame(make_com_change_user(caps, username=cluster.app_user, auth_plugin_name="dialog"), 0))
    switch = _reply(s, 10)
    assert switch is not None and switch[1][:1] == b"\xfe", switch
    s.sendall(frame_header(0xFFFFFF, switch[0] + 1) + b"\x00" * 1000)
    reply = _reply(s, 10)
    assert reply is not None and reply[1][:1] == b"\xff", reply
    err = parse_err(reply[1])
    assert err.code == 1153 and "during COM_CHANGE_USER" in err.message, err
    assert _closed(s, 10)
    s.close()
    with connect().cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)


def test_a_smaller_max_packet_size_also_bounds_the_login(cluster: Cluster) -> None:
    text = demo_config_text(cluster, 0).replace("[proxy]", "[proxy]\nmax_packet_size = 4096", 1)
    with ProxyThread(text) as small:
        s = socket.create_connection((small.host, small.port), timeout=10)
        _reply(s, 10)  # greeting
        s.sendall(frame_header(5000, 1) + b"\x00" * 100)
        reply = _reply(s, 10)
        assert reply is not None and reply[1][:1] == b"\xff", reply
        err = parse_err(reply[1])
        assert err.code == 1153 and "5000 bytes before authentication, the limit is 4096" in err.message
        assert _closed(s, 10)
        s.close()
