"""Scramble math cross-checked with PyMySQL's independent implementation, and the server-side dialogue:
as data (every branch), and against a real PyMySQL client over an in-memory socket pair."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pymysql
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymysql import _auth as pymysql_auth

from rwproxy.protocol.auth import (
    CACHING_SHA2_PLUGIN,
    NATIVE_PLUGIN,
    AuthFailed,
    AuthFailReason,
    AuthOk,
    AuthStep,
    RsaKeyPair,
    SendMore,
    ServerAuthenticator,
    UserCredential,
    decrypt_password,
    native_password_hash,
    new_salt,
    parse_native_hash,
    scramble_caching_sha2,
    scramble_native_password,
    verify_caching_sha2,
    verify_native_password,
)
from rwproxy.protocol.connection import (
    HandshakeResponse41,
    make_handshake_v10,
    parse_auth_switch_request,
    parse_handshake_response,
)
from rwproxy.protocol.constants import Capability as C
from rwproxy.protocol.errors import LocalProtocolError, MalformedPacket
from rwproxy.protocol.framing import PacketDecoder, frame
from rwproxy.protocol.packets import make_err, make_ok

from .support import fixture_payloads, fixture_text

SALT = bytes(range(0x30, 0x30 + 20))
PASSWORDS = st.binary(min_size=1, max_size=64)
SALTS = st.binary(min_size=20, max_size=20)


@pytest.fixture(scope="module")
def rsa_key() -> RsaKeyPair:
    return RsaKeyPair.generate()


# --- pure math ---------------------------------------------------------------------------------------


@given(PASSWORDS, SALTS)
def test_native_matches_pymysql(password: bytes, salt: bytes) -> None:
    response = scramble_native_password(password, salt)
    assert response == pymysql_auth.scramble_native_password(password, salt)
    assert verify_native_password(response, salt, native_password_hash(password))
    assert not verify_native_password(response, salt, native_password_hash(password + b"x"))
    assert not verify_native_password(response[:-1], salt, native_password_hash(password))


@given(PASSWORDS, SALTS)
def test_caching_sha2_matches_pymysql(password: bytes, salt: bytes) -> None:
    response = scramble_caching_sha2(password, salt)
    assert response == pymysql_auth.scramble_caching_sha2(password, salt)
    assert verify_caching_sha2(response, salt, password)
    assert not verify_caching_sha2(response, salt, password + b"x")


def test_empty_passwords() -> None:
    assert scramble_native_password(b"", SALT) == b"" == scramble_caching_sha2(b"", SALT)
    assert native_password_hash(b"") == b""
    assert verify_native_password(b"", SALT, b"")
    assert not verify_native_password(scramble_native_password(b"x", SALT), SALT, b"")
    assert not verify_native_password(b"", SALT, native_password_hash(b"x"))
    assert verify_caching_sha2(b"", SALT, b"")


def test_parse_native_hash() -> None:
    stage2 = native_password_hash(b"secret")
    text = "*" + stage2.hex().upper()
    assert text == "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7"  # SELECT PASSWORD('secret')
    assert parse_native_hash(text) == stage2
    assert parse_native_hash(stage2.hex()) == stage2
    assert parse_native_hash("") == b""
    for bad in ("*", "*12", "*" + "zz" * 20, "*" + "a " * 20):
        with pytest.raises(ValueError):
            parse_native_hash(bad)


def test_new_salt() -> None:
    for _ in range(50):
        salt = new_salt()
        assert len(salt) == 20 and all(0 < b < 0x80 and b != 0x24 for b in salt)


def test_captured_login_verifies() -> None:
    """MariaDB accepted this PyMySQL scramble for password 'rwsecret'; our verifier must too."""
    salt = bytes.fromhex(fixture_text("salt.txt"))
    response = parse_handshake_response(fixture_payloads("pymysql_handshake_response")[0])
    assert isinstance(response, HandshakeResponse41)
    stage2 = native_password_hash(fixture_text("password.txt").encode())
    assert verify_native_password(response.auth_response, salt, stage2)
    assert not verify_native_password(response.auth_response, salt, native_password_hash(b"wrong"))


@settings(max_examples=10, deadline=None)
@given(st.binary(min_size=0, max_size=100), SALTS)
def test_rsa_decrypt_matches_pymysql(rsa_key: RsaKeyPair, password: bytes, salt: bytes) -> None:
    encrypted = pymysql_auth.sha2_rsa_encrypt(password, salt, rsa_key.public_pem)
    assert decrypt_password(encrypted, rsa_key, salt) == password


def test_rsa_errors(rsa_key: RsaKeyPair) -> None:
    with pytest.raises(MalformedPacket):
        decrypt_password(b"\x00" * 256, rsa_key, SALT)
    assert rsa_key.public_pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    from cryptography.hazmat.primitives import serialization

    pem = rsa_key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert RsaKeyPair.from_pem(pem).public_pem == rsa_key.public_pem


def test_user_credential() -> None:
    with pytest.raises(ValueError):
        UserCredential("x", None, None)
    assert UserCredential("x", b"pw").stage2() == native_password_hash(b"pw")
    assert UserCredential("x", None, b"\x01" * 20).stage2() == b"\x01" * 20


# --- the dialogue as data ----------------------------------------------------------------------------

USERS = {
    "plain": UserCredential("plain", b"s3cret"),
    "hashed": UserCredential("hashed", None, native_password_hash(b"h4sh")),
    "empty": UserCredential("empty", b""),
}


def make_auth(
    *,
    tls: bool = False,
    rsa: RsaKeyPair | None = None,
    cache: set[str] | None = None,
    greeting: str = CACHING_SHA2_PLUGIN,
) -> ServerAuthenticator:
    """An authenticator whose greeting announced ``greeting`` (caching_sha2: MySQL 8's default)."""
    return ServerAuthenticator(
        SALT,
        USERS.get,
        tls_active=tls,
        rsa=rsa,
        sha2_cache=set() if cache is None else cache,
        client_host="10.0.0.9",
        greeting_plugin=greeting,
    )


def assert_denied(step: AuthStep, user: str, used: str, reason: AuthFailReason) -> None:
    assert step == AuthFailed(
        1045, f"Access denied for user '{user}'@'10.0.0.9' (using password: {used})", reason
    )


def test_native_ok_and_wrong() -> None:
    for user, pw in (("plain", b"s3cret"), ("hashed", b"h4sh")):
        for plugin in (NATIVE_PLUGIN, None):
            auth = make_auth()
            step = auth.start(user, plugin, scramble_native_password(pw, SALT))
            assert step == AuthOk(USERS[user]) and auth.done
        step = make_auth().start(user, NATIVE_PLUGIN, scramble_native_password(b"nope", SALT))
        assert_denied(step, user, "YES", AuthFailReason.WRONG_PASSWORD)
    assert_denied(
        make_auth().start("plain", NATIVE_PLUGIN, b""), "plain", "NO", AuthFailReason.WRONG_PASSWORD
    )


def test_unknown_user() -> None:
    assert_denied(
        make_auth().start("ghost", NATIVE_PLUGIN, b"x" * 20), "ghost", "YES", AuthFailReason.UNKNOWN_USER
    )
    assert_denied(
        make_auth().start("ghost", CACHING_SHA2_PLUGIN, b""), "ghost", "NO", AuthFailReason.UNKNOWN_USER
    )


def test_empty_password_user() -> None:
    assert make_auth().start("empty", NATIVE_PLUGIN, b"") == AuthOk(USERS["empty"])
    assert make_auth().start("empty", CACHING_SHA2_PLUGIN, b"") == AuthOk(USERS["empty"])
    assert make_auth().start("empty", CACHING_SHA2_PLUGIN, b"\x00") == AuthOk(USERS["empty"])
    step = make_auth().start("empty", NATIVE_PLUGIN, scramble_native_password(b"x", SALT))
    assert_denied(step, "empty", "YES", AuthFailReason.WRONG_PASSWORD)
    assert_denied(
        make_auth().start("plain", CACHING_SHA2_PLUGIN, b""), "plain", "NO", AuthFailReason.WRONG_PASSWORD
    )


def test_sha2_fast_path() -> None:
    cache = {"plain"}
    step = make_auth(cache=cache).start("plain", CACHING_SHA2_PLUGIN, scramble_caching_sha2(b"s3cret", SALT))
    assert step == AuthOk(USERS["plain"], extra_packets=(b"\x01\x03",))


@pytest.mark.parametrize("cached", [False, True])
def test_sha2_full_auth_over_tls(cached: bool) -> None:
    cache = {"plain"} if cached else set()
    auth = make_auth(tls=True, cache=cache)
    proof = scramble_caching_sha2(b"s3cret" if not cached else b"stale", SALT)  # cached: wrong scramble
    assert auth.start("plain", CACHING_SHA2_PLUGIN, proof) == SendMore(b"\x01\x04")
    assert auth.receive(b"s3cret\x00") == AuthOk(USERS["plain"])
    assert cache == {"plain"}
    # The next connection takes the fast path.
    step = make_auth(cache=cache).start("plain", CACHING_SHA2_PLUGIN, scramble_caching_sha2(b"s3cret", SALT))
    assert isinstance(step, AuthOk) and step.extra_packets == (b"\x01\x03",)


def test_sha2_full_auth_tls_wrong_or_malformed() -> None:
    cache: set[str] = set()
    auth = make_auth(tls=True, cache=cache)
    auth.start("plain", CACHING_SHA2_PLUGIN, b"x" * 32)
    assert_denied(auth.receive(b"guess\x00"), "plain", "YES", AuthFailReason.WRONG_PASSWORD)
    auth = make_auth(tls=True, cache=cache)
    auth.start("plain", CACHING_SHA2_PLUGIN, b"x" * 32)
    assert_denied(auth.receive(b"s3cret"), "plain", "YES", AuthFailReason.BAD_RESPONSE)  # no NUL
    assert cache == set()


def test_sha2_rsa_exchange(rsa_key: RsaKeyPair) -> None:
    cache: set[str] = set()
    auth = make_auth(rsa=rsa_key, cache=cache)
    assert auth.start("plain", CACHING_SHA2_PLUGIN, scramble_caching_sha2(b"s3cret", SALT)) == SendMore(
        b"\x01\x04"
    )
    assert auth.receive(b"\x02") == SendMore(b"\x01" + rsa_key.public_pem)
    encrypted = pymysql_auth.sha2_rsa_encrypt(b"s3cret", SALT, rsa_key.public_pem)
    assert auth.receive(encrypted) == AuthOk(USERS["plain"])
    assert cache == {"plain"}


def test_sha2_rsa_without_key_request(rsa_key: RsaKeyPair) -> None:
    auth = make_auth(rsa=rsa_key)
    auth.start("plain", CACHING_SHA2_PLUGIN, b"y" * 32)
    assert auth.receive(pymysql_auth.sha2_rsa_encrypt(b"s3cret", SALT, rsa_key.public_pem)) == AuthOk(
        USERS["plain"]
    )


def test_sha2_rsa_wrong_and_garbage(rsa_key: RsaKeyPair) -> None:
    auth = make_auth(rsa=rsa_key)
    auth.start("plain", CACHING_SHA2_PLUGIN, b"y" * 32)
    auth.receive(b"\x02")
    step = auth.receive(pymysql_auth.sha2_rsa_encrypt(b"other", SALT, rsa_key.public_pem))
    assert_denied(step, "plain", "YES", AuthFailReason.WRONG_PASSWORD)
    auth = make_auth(rsa=rsa_key)
    auth.start("plain", CACHING_SHA2_PLUGIN, b"y" * 32)
    assert_denied(auth.receive(b"garbage"), "plain", "YES", AuthFailReason.BAD_RESPONSE)


def test_sha2_without_tls_or_rsa_fails() -> None:
    auth = make_auth()
    auth.start("plain", CACHING_SHA2_PLUGIN, b"y" * 32)
    assert_denied(auth.receive(b"\x02"), "plain", "YES", AuthFailReason.INSECURE_TRANSPORT)
    auth = make_auth()
    auth.start("plain", CACHING_SHA2_PLUGIN, b"y" * 32)
    assert_denied(auth.receive(b"s3cret\x00"), "plain", "YES", AuthFailReason.INSECURE_TRANSPORT)


@pytest.mark.parametrize(
    ("user", "plugin"),
    [
        ("hashed", CACHING_SHA2_PLUGIN),
        ("plain", "client_ed25519"),
        ("plain", "mysql_clear_password"),
        ("plain", "sha256_password"),
        ("hashed", "dialog"),
    ],
)
def test_auth_switch_to_native(user: str, plugin: str) -> None:
    pw = b"s3cret" if user == "plain" else b"h4sh"
    auth = make_auth()
    step = auth.start(user, plugin, b"whatever")
    assert isinstance(step, SendMore)
    switch = parse_auth_switch_request(step.payload)
    assert (switch.plugin_name, switch.data) == (NATIVE_PLUGIN, SALT + b"\x00")
    assert auth.receive(scramble_native_password(pw, SALT)) == AuthOk(USERS[user])
    auth = make_auth()
    auth.start(user, plugin, b"")
    assert_denied(auth.receive(b"\x00" * 20), user, "YES", AuthFailReason.WRONG_PASSWORD)


@pytest.mark.parametrize("tls", [False, True])
@pytest.mark.parametrize("cached", [False, True])
def test_sha2_client_against_native_greeting_is_switched(tls: bool, cached: bool) -> None:
    """Defect: a client that answers the default greeting (mysql_native_password) with a
    caching_sha2_password scramble got perform-full-authentication, and without TLS a 1045. Now it
    is switched to mysql_native_password with the same salt, as MariaDB does, cache or not."""
    auth = make_auth(tls=tls, cache={"plain"} if cached else set(), greeting=NATIVE_PLUGIN)
    step = auth.start("plain", CACHING_SHA2_PLUGIN, scramble_caching_sha2(b"s3cret", SALT))
    assert isinstance(step, SendMore)
    switch = parse_auth_switch_request(step.payload)
    assert (switch.plugin_name, switch.data) == (NATIVE_PLUGIN, SALT + b"\x00")
    assert auth.receive(scramble_native_password(b"s3cret", SALT)) == AuthOk(USERS["plain"])
    auth = make_auth(tls=tls, greeting=NATIVE_PLUGIN)
    auth.start("plain", CACHING_SHA2_PLUGIN, scramble_caching_sha2(b"s3cret", SALT))
    step = auth.receive(scramble_native_password(b"wrong", SALT))
    assert_denied(step, "plain", "YES", AuthFailReason.WRONG_PASSWORD)
    # A cleartext password (what mysql-connector sends after "perform full authentication") is not a
    # native scramble: refused, never taken as a password.
    auth = make_auth(tls=tls, greeting=NATIVE_PLUGIN)
    auth.start("plain", CACHING_SHA2_PLUGIN, scramble_caching_sha2(b"s3cret", SALT))
    assert_denied(auth.receive(b"s3cret\x00"), "plain", "YES", AuthFailReason.WRONG_PASSWORD)


def test_native_greeting_switch_for_empty_and_hashed_users() -> None:
    for user, pw in (("empty", b""), ("hashed", b"h4sh")):
        auth = make_auth(greeting=NATIVE_PLUGIN)
        step = auth.start(user, CACHING_SHA2_PLUGIN, scramble_caching_sha2(pw, SALT))
        assert isinstance(step, SendMore)
        assert parse_auth_switch_request(step.payload).plugin_name == NATIVE_PLUGIN
        assert auth.receive(scramble_native_password(pw, SALT)) == AuthOk(USERS[user])


@pytest.mark.parametrize("greeting", [NATIVE_PLUGIN, CACHING_SHA2_PLUGIN])
def test_native_client_accepted_under_either_greeting(greeting: str) -> None:
    """MySQL 8 clients forced to mysql_native_password (and pre-8 clients) under a caching_sha2
    greeting: the native scramble is verified directly, no switch."""
    auth = make_auth(greeting=greeting)
    assert auth.start("plain", NATIVE_PLUGIN, scramble_native_password(b"s3cret", SALT)) == AuthOk(
        USERS["plain"]
    )


def test_mysql8_change_user_with_sha2_scramble() -> None:
    """COM_CHANGE_USER from a MySQL 8 client under a caching_sha2 greeting carries a caching_sha2
    scramble of the original salt: fast path when cached, else full authentication (RSA here)."""
    cache = {"plain"}
    step = make_auth(cache=cache).start("plain", CACHING_SHA2_PLUGIN, scramble_caching_sha2(b"s3cret", SALT))
    assert step == AuthOk(USERS["plain"], (b"\x01\x03",))
    step = make_auth(greeting=NATIVE_PLUGIN, cache=cache).start(
        "plain", CACHING_SHA2_PLUGIN, scramble_caching_sha2(b"s3cret", SALT)
    )
    assert isinstance(step, SendMore) and step.payload.startswith(b"\xfemysql_native_password\x00")


def test_steps_out_of_order() -> None:
    auth = make_auth()
    with pytest.raises(LocalProtocolError):
        auth.receive(b"x")
    auth.start("plain", NATIVE_PLUGIN, scramble_native_password(b"s3cret", SALT))
    with pytest.raises(LocalProtocolError):
        auth.receive(b"x")
    with pytest.raises(LocalProtocolError):
        auth.start("plain", NATIVE_PLUGIN, b"")
    failed = make_auth()
    failed.start("ghost", NATIVE_PLUGIN, b"")
    with pytest.raises(LocalProtocolError):
        failed.receive(b"")
    with pytest.raises(LocalProtocolError):
        ServerAuthenticator(b"short", USERS.get, tls_active=False, rsa=None, sha2_cache=set())


# --- real peer: PyMySQL over a socket pair -----------------------------------------------------------

SERVER_CAPS = int(
    C.LONG_PASSWORD | C.LONG_FLAG | C.PROTOCOL_41 | C.TRANSACTIONS | C.SECURE_CONNECTION | C.MULTI_RESULTS
    | C.PLUGIN_AUTH | C.PLUGIN_AUTH_LENENC_CLIENT_DATA | C.CONNECT_WITH_DB | C.CONNECT_ATTRS
)  # fmt: skip


def _serve(sock: socket.socket, plugin: str, auth: ServerAuthenticator, log: list[object]) -> None:
    decoder = PacketDecoder(1 << 20)

    def read() -> tuple[int, bytes]:
        while (packet := decoder.next_packet()) is None:
            data = sock.recv(65536)
            if not data:
                raise EOFError
            decoder.feed(data)
        return packet

    with sock:
        greeting = make_handshake_v10(
            server_version="8.0.36-rwproxy-test", connection_id=1, auth_plugin_data=SALT,
            capabilities=SERVER_CAPS, auth_plugin_name=plugin,
        )  # fmt: skip
        sock.sendall(frame(greeting, 0))
        seq, payload = read()
        response = parse_handshake_response(payload)
        assert isinstance(response, HandshakeResponse41)
        step = auth.start(response.username, response.auth_plugin_name, response.auth_response)
        while isinstance(step, SendMore):
            log.append(step.payload)
            sock.sendall(frame(step.payload, seq + 1))
            seq, payload = read()
            step = auth.receive(payload)
        log.append(step)
        if isinstance(step, AuthFailed):
            sock.sendall(frame(make_err(step.errno, step.message), seq + 1))
            return
        for extra in step.extra_packets:
            seq += 1
            sock.sendall(frame(extra, seq))
        sock.sendall(frame(make_ok(response.capabilities), seq + 1))
        try:
            while True:  # answer every command with OK until COM_QUIT / EOF
                _, payload = read()
                if payload[:1] == b"\x01":
                    return
                sock.sendall(frame(make_ok(response.capabilities), 1))
        except (EOFError, OSError):
            return


@pytest.fixture
def peer() -> Iterator[object]:
    threads: list[threading.Thread] = []

    def connect(plugin: str, auth: ServerAuthenticator, user: str, password: str) -> list[object]:
        server_sock, client_sock = socket.socketpair()
        server_sock.settimeout(5)
        client_sock.settimeout(5)
        log: list[object] = []
        thread = threading.Thread(target=_serve, args=(server_sock, plugin, auth, log), daemon=True)
        thread.start()
        threads.append(thread)
        conn = pymysql.Connection(user=user, password=password, defer_connect=True)
        try:
            conn.connect(client_sock)
            conn.ping(reconnect=False)
            conn.close()
        except pymysql.err.OperationalError as exc:
            log.append(exc.args)
            client_sock.close()
        thread.join(5)
        return log

    yield connect
    for thread in threads:
        thread.join(1)


def test_pymysql_native(peer) -> None:  # type: ignore[no-untyped-def]
    log = peer(NATIVE_PLUGIN, make_auth(), "hashed", "h4sh")
    assert log == [AuthOk(USERS["hashed"])]


def test_pymysql_wrong_password(peer) -> None:  # type: ignore[no-untyped-def]
    log = peer(NATIVE_PLUGIN, make_auth(), "hashed", "nope")
    assert isinstance(log[0], AuthFailed)
    assert log[1] == (1045, "Access denied for user 'hashed'@'10.0.0.9' (using password: YES)")


def test_pymysql_caching_sha2_rsa_then_fast(peer, rsa_key: RsaKeyPair) -> None:  # type: ignore[no-untyped-def]
    cache: set[str] = set()
    log = peer(CACHING_SHA2_PLUGIN, make_auth(rsa=rsa_key, cache=cache), "plain", "s3cret")
    assert log == [b"\x01\x04", b"\x01" + rsa_key.public_pem, AuthOk(USERS["plain"])]
    log = peer(CACHING_SHA2_PLUGIN, make_auth(rsa=rsa_key, cache=cache), "plain", "s3cret")
    assert log == [AuthOk(USERS["plain"], (b"\x01\x03",))]


def test_pymysql_caching_sha2_switch_for_hashed_user(peer) -> None:  # type: ignore[no-untyped-def]
    log = peer(CACHING_SHA2_PLUGIN, make_auth(), "hashed", "h4sh")
    assert log[-1] == AuthOk(USERS["hashed"])
    assert isinstance(log[0], bytes) and log[0].startswith(b"\xfemysql_native_password\x00")


# --- real peer: mysql-connector-python (pure) over loopback TCP ----------------------------------------


def _connector_login(greeting: str, auth: ServerAuthenticator, plugin: str, password: str) -> list[object]:
    import mysql.connector

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    log: list[object] = []

    def accept() -> None:
        with listener:
            sock, _ = listener.accept()
            sock.settimeout(5)
            _serve(sock, greeting, auth, log)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        conn = mysql.connector.connect(
            host="127.0.0.1",
            port=listener.getsockname()[1],
            user="plain",
            password=password,
            auth_plugin=plugin,
            use_pure=True,
            ssl_disabled=True,
            connection_timeout=5,
        )
        conn.ping()
        conn.close()
    except mysql.connector.Error as exc:
        log.append(exc.errno)
    thread.join(5)
    return log


def test_mysql_connector_sha2_against_native_greeting() -> None:
    """The defect, with the real client: mysql-connector-python with auth_plugin=caching_sha2_password
    against the default greeting is switched to mysql_native_password and logs in."""
    log = _connector_login(NATIVE_PLUGIN, make_auth(greeting=NATIVE_PLUGIN), CACHING_SHA2_PLUGIN, "s3cret")
    assert log[-1] == AuthOk(USERS["plain"])
    assert isinstance(log[0], bytes) and log[0].startswith(b"\xfemysql_native_password\x00")
    log = _connector_login(NATIVE_PLUGIN, make_auth(greeting=NATIVE_PLUGIN), CACHING_SHA2_PLUGIN, "nope")
    assert log[-1] == 1045


def test_mysql_connector_sha2_greeting_fast_path() -> None:
    """A MySQL 8 style greeting (caching_sha2_password) with the user cached: the fast path."""
    auth = make_auth(cache={"plain"})
    log = _connector_login(CACHING_SHA2_PLUGIN, auth, CACHING_SHA2_PLUGIN, "s3cret")
    assert log == [AuthOk(USERS["plain"], (b"\x01\x03",))]
