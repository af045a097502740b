"""Password scramble math and a sans-I/O server-side authentication dialogue.

- mysql_native_password:
  https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase_authentication_methods_native_password_authentication.html
- caching_sha2_password:
  https://dev.mysql.com/doc/dev/mysql-server/latest/page_caching_sha2_authentication_exchanges.html
- Authentication phase (auth switch, more data):
  https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html

The dialogue is data: :class:`ServerAuthenticator` takes the client's payloads and returns an
:data:`AuthStep` saying what to send next. The caller frames and sends it, and owns the socket.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from rwproxy.protocol.connection import make_auth_more_data, make_auth_switch_request
from rwproxy.protocol.constants import ErrorCode
from rwproxy.protocol.errors import LocalProtocolError, MalformedPacket

__all__ = [
    "CACHING_SHA2_PLUGIN",
    "NATIVE_PLUGIN",
    "SCRAMBLE_LENGTH",
    "AuthFailReason",
    "AuthFailed",
    "AuthOk",
    "AuthStep",
    "RsaKeyPair",
    "SendMore",
    "ServerAuthenticator",
    "UserCredential",
    "decrypt_password",
    "native_password_hash",
    "new_salt",
    "parse_native_hash",
    "scramble_caching_sha2",
    "scramble_native_password",
    "verify_caching_sha2",
    "verify_native_password",
]

NATIVE_PLUGIN = "mysql_native_password"
CACHING_SHA2_PLUGIN = "caching_sha2_password"
SCRAMBLE_LENGTH = 20

# caching_sha2_password AuthMoreData bodies.
_REQUEST_PUBLIC_KEY = b"\x02"
_FAST_AUTH_SUCCESS = b"\x03"
_PERFORM_FULL_AUTHENTICATION = b"\x04"


def _sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def new_salt() -> bytes:
    """A fresh 20-byte scramble of printable-range bytes 1..127 (no NUL, no ``$``), as MySQL makes it."""
    out = bytearray(secrets.token_bytes(SCRAMBLE_LENGTH))
    for i, b in enumerate(out):
        b &= 0x7F
        out[i] = b + 1 if b in (0x00, 0x24) else b
    return bytes(out)


# --- mysql_native_password ---------------------------------------------------------------------------


def native_password_hash(password: bytes) -> bytes:
    """The stored "stage2" hash ``SHA1(SHA1(password))`` (20 bytes); ``b""`` for an empty password, as
    MySQL stores it (an empty ``authentication_string``)."""
    return _sha1(_sha1(password)) if password else b""


def parse_native_hash(text: str) -> bytes:
    """Decode a stored native hash: ``*`` + 40 hex digits (``mysql.user`` form), or 40 hex digits, or
    ``""`` (empty password). Raises ``ValueError`` otherwise."""
    digits = text[1:] if text.startswith("*") else text
    if not digits and not text:
        return b""
    if len(digits) != 2 * SCRAMBLE_LENGTH:
        raise ValueError(f"native password hash must be '*' + 40 hex digits, got {len(text)} characters")
    raw = bytes.fromhex(digits)
    if len(raw) != SCRAMBLE_LENGTH:
        raise ValueError("native password hash must be 40 hex digits")
    return raw


def scramble_native_password(password: bytes, salt: bytes) -> bytes:
    """Client proof: ``SHA1(password) XOR SHA1(salt + SHA1(SHA1(password)))``; ``b""`` for no password."""
    if not password:
        return b""
    stage1 = _sha1(password)
    return _xor(stage1, _sha1(salt[:SCRAMBLE_LENGTH] + _sha1(stage1)))


def verify_native_password(response: bytes, salt: bytes, stage2: bytes) -> bool:
    """Check a native scramble against the stored stage2 hash, in constant time.

    Recovers ``SHA1(password)`` from the response and compares its SHA1 with ``stage2``. An empty
    ``stage2`` (empty password) matches only an empty response.
    """
    if not stage2:
        return hmac.compare_digest(response, b"")
    if len(response) != SCRAMBLE_LENGTH or len(stage2) != SCRAMBLE_LENGTH:
        return False
    stage1 = _xor(response, _sha1(salt[:SCRAMBLE_LENGTH] + stage2))
    return hmac.compare_digest(_sha1(stage1), stage2)


# --- caching_sha2_password ---------------------------------------------------------------------------


def scramble_caching_sha2(password: bytes, salt: bytes) -> bytes:
    """Client proof: ``SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + salt)``; ``b""`` for no password."""
    if not password:
        return b""
    p1 = _sha256(password)
    return _xor(p1, _sha256(_sha256(p1) + salt))


def verify_caching_sha2(response: bytes, salt: bytes, password: bytes) -> bool:
    """Check a caching_sha2 scramble against the plaintext ``password``, in constant time."""
    return hmac.compare_digest(response, scramble_caching_sha2(password, salt))


@dataclass(frozen=True, slots=True)
class RsaKeyPair:
    """The server's RSA key for caching_sha2 full authentication without TLS."""

    private_key: rsa.RSAPrivateKey
    public_pem: bytes

    @classmethod
    def generate(cls, bits: int = 2048) -> RsaKeyPair:
        """A fresh key pair (2048 bits by default)."""
        return cls.from_private_key(rsa.generate_private_key(public_exponent=65537, key_size=bits))

    @classmethod
    def from_private_key(cls, key: rsa.RSAPrivateKey) -> RsaKeyPair:
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(key, pem)

    @classmethod
    def from_pem(cls, private_pem: bytes, password: bytes | None = None) -> RsaKeyPair:
        """Load a PEM private key (e.g. MySQL's ``private_key.pem``)."""
        key = serialization.load_pem_private_key(private_pem, password)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("not an RSA private key")
        return cls.from_private_key(key)


_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


def decrypt_password(encrypted: bytes, key: RsaKeyPair, salt: bytes) -> bytes:
    """Recover the plaintext a client sent RSA-encrypted (MySQL 8.0.5+ clients: OAEP, SHA1/MGF1-SHA1).

    The client encrypts ``(password + NUL) XOR salt`` (salt cycled); the NUL is required and stripped.
    Raises :class:`MalformedPacket` if the blob does not decrypt or lacks the NUL.
    """
    try:
        plain = key.private_key.decrypt(encrypted, _OAEP)
    except ValueError:
        raise MalformedPacket("RSA-encrypted password does not decrypt with the server key") from None
    salt = salt[:SCRAMBLE_LENGTH]
    if not salt:
        raise LocalProtocolError("empty salt")
    text = bytes(b ^ salt[i % len(salt)] for i, b in enumerate(plain))
    if not text.endswith(b"\x00"):
        raise MalformedPacket("decrypted password is not NUL-terminated")
    return text[:-1]


# --- credentials and the server-side dialogue --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserCredential:
    """What the proxy knows about a user: the plaintext password and/or the native stage2 hash.

    With only ``native_stage2`` the user can log in with mysql_native_password only (caching_sha2
    clients get an auth switch). ``b""`` is an empty password in either field.
    """

    name: str
    password: bytes | None
    native_stage2: bytes | None = None

    def __post_init__(self) -> None:
        if self.password is None and self.native_stage2 is None:
            raise ValueError(f"user {self.name!r} needs a password or a native hash")

    def stage2(self) -> bytes:
        """The native stage2 hash, derived from the password when not given."""
        if self.native_stage2 is not None:
            return self.native_stage2
        assert self.password is not None  # guaranteed by __post_init__
        return native_password_hash(self.password)


class AuthFailReason(enum.Enum):
    """Why authentication failed (for logs and metrics; the client only sees the ERR)."""

    UNKNOWN_USER = "unknown_user"
    WRONG_PASSWORD = "wrong_password"
    INSECURE_TRANSPORT = "insecure_transport"
    BAD_RESPONSE = "bad_response"


@dataclass(frozen=True, slots=True)
class SendMore:
    """Send ``payload`` to the client (next sequence id), then feed its reply to ``receive``."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class AuthOk:
    """Authenticated. Send each of ``extra_packets`` first (e.g. caching_sha2's fast-auth-success
    ``0x01 0x03``), each with the next sequence id, then the OK packet."""

    user: UserCredential
    extra_packets: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class AuthFailed:
    """Send an ERR packet with ``errno``/``message`` (SQLSTATE from the table) and close."""

    errno: int
    message: str
    reason: AuthFailReason = AuthFailReason.WRONG_PASSWORD


AuthStep = SendMore | AuthOk | AuthFailed


class _State(enum.Enum):
    INITIAL = "initial"
    AWAIT_NATIVE_REPLY = "await_native_reply"  # after an auth switch to mysql_native_password
    AWAIT_FULL_AUTH = "await_full_auth"  # after caching_sha2 "perform full authentication"
    AWAIT_RSA_PASSWORD = "await_rsa_password"  # after sending the public key
    DONE = "done"


class ServerAuthenticator:
    """Server side of the authentication exchange, for one connection attempt.

    ``start()`` takes the handshake response's user, plugin and auth response (``client_plugin=None``
    for a client without ``CLIENT_PLUGIN_AUTH``: its response is a native scramble). Each later client
    payload goes to ``receive()``. Both return an :data:`AuthStep`; after :class:`AuthOk` or
    :class:`AuthFailed` the dialogue is over and any further call raises :class:`LocalProtocolError`.

    Exchanges:

    - mysql_native_password (or no plugin): verify the scramble.
    - caching_sha2_password with the plaintext known: scramble right and user in ``sha2_cache`` →
      ``AuthOk(extra_packets=(b"\\x01\\x03",))``; otherwise (cache miss or wrong scramble, as MySQL)
      ``SendMore(b"\\x01\\x04")`` then full authentication: the cleartext password + NUL (accepted only
      when ``tls_active``), or ``0x02`` (public key request → ``SendMore(0x01 + PEM)`` when ``rsa`` is set)
      then the RSA-encrypted password (also accepted without the request). Success adds the user to
      ``sha2_cache`` (which the caller shares between connections).
    - caching_sha2_password when the greeting announced another plugin (``greeting_plugin``, the
      default mysql_native_password greeting), caching_sha2 with only a native hash known, or any other
      plugin: ``SendMore`` an auth switch to mysql_native_password with the same salt + NUL, then verify
      the reply. This is what MariaDB does when a client answers with a plugin it did not offer (and
      what MySQL does when the client's plugin is not the account's); the switch also spares clients
      that cannot do caching_sha2's full authentication without TLS (mysql-connector-python sends the
      password in clear, which is refused) a failed login.
    """

    def __init__(
        self,
        salt: bytes,
        lookup: Callable[[str], UserCredential | None],
        *,
        tls_active: bool,
        rsa: RsaKeyPair | None,
        sha2_cache: set[str],
        client_host: str = "%",
        greeting_plugin: str = NATIVE_PLUGIN,
    ) -> None:
        if len(salt) != SCRAMBLE_LENGTH:
            raise LocalProtocolError(f"salt must be {SCRAMBLE_LENGTH} bytes, got {len(salt)}")
        self.salt = salt
        self._lookup = lookup
        self.tls_active = tls_active
        self._rsa = rsa
        self._sha2_cache = sha2_cache
        self.client_host = client_host
        self.greeting_plugin = greeting_plugin
        self._state = _State.INITIAL
        self._username = ""
        self._user: UserCredential | None = None
        self._password_used = False

    @property
    def done(self) -> bool:
        """True once :class:`AuthOk` or :class:`AuthFailed` has been returned."""
        return self._state is _State.DONE

    def start(self, username: str, client_plugin: str | None, auth_response: bytes) -> AuthStep:
        """Begin with the handshake response (or COM_CHANGE_USER) fields."""
        if self._state is not _State.INITIAL:
            raise LocalProtocolError(f"start() called in state {self._state.value}")
        self._username = username
        self._password_used = bool(auth_response)
        user = self._lookup(username)
        if user is None:
            return self._fail(AuthFailReason.UNKNOWN_USER)
        self._user = user
        if client_plugin is None or client_plugin == NATIVE_PLUGIN:
            return self._check_native(auth_response)
        if client_plugin == CACHING_SHA2_PLUGIN == self.greeting_plugin and user.password is not None:
            return self._fast_sha2(user.password, auth_response)
        self._state = _State.AWAIT_NATIVE_REPLY
        return SendMore(make_auth_switch_request(NATIVE_PLUGIN, self.salt + b"\x00"))

    def receive(self, payload: bytes) -> AuthStep:
        """Feed the client's next payload (the reply to the last :class:`SendMore`)."""
        state = self._state
        if state in (_State.INITIAL, _State.DONE):
            raise LocalProtocolError(f"receive() called in state {state.value}")
        self._password_used = self._password_used or bool(payload)
        if state is _State.AWAIT_NATIVE_REPLY:
            return self._check_native(payload)
        if state is _State.AWAIT_FULL_AUTH:
            if self.tls_active:
                return self._check_cleartext(payload)
            if payload == _REQUEST_PUBLIC_KEY:
                if self._rsa is None:
                    return self._fail(AuthFailReason.INSECURE_TRANSPORT)
                self._state = _State.AWAIT_RSA_PASSWORD
                return SendMore(make_auth_more_data(self._rsa.public_pem))
        return self._check_rsa(payload)

    # --- steps ---

    def _check_native(self, response: bytes) -> AuthStep:
        assert self._user is not None
        if verify_native_password(response, self.salt, self._user.stage2()):
            return self._ok()
        return self._fail(AuthFailReason.WRONG_PASSWORD)

    def _fast_sha2(self, password: bytes, response: bytes) -> AuthStep:
        if response == b"\x00":
            response = b""
        if not response:
            # No scramble sent: only an empty password matches (no fast/full dance, as MySQL).
            return self._ok() if not password else self._fail(AuthFailReason.WRONG_PASSWORD)
        if verify_caching_sha2(response, self.salt, password) and self._username in self._sha2_cache:
            return self._ok(extra=(make_auth_more_data(_FAST_AUTH_SUCCESS),))
        self._state = _State.AWAIT_FULL_AUTH
        return SendMore(make_auth_more_data(_PERFORM_FULL_AUTHENTICATION))

    def _check_cleartext(self, payload: bytes) -> AuthStep:
        if not payload.endswith(b"\x00"):
            return self._fail(AuthFailReason.BAD_RESPONSE)
        return self._check_full_password(payload[:-1])

    def _check_rsa(self, payload: bytes) -> AuthStep:
        if self._rsa is None:
            return self._fail(AuthFailReason.INSECURE_TRANSPORT)
        try:
            candidate = decrypt_password(payload, self._rsa, self.salt)
        except MalformedPacket:
            return self._fail(AuthFailReason.BAD_RESPONSE)
        return self._check_full_password(candidate)

    def _check_full_password(self, candidate: bytes) -> AuthStep:
        assert self._user is not None and self._user.password is not None
        if hmac.compare_digest(candidate, self._user.password):
            self._sha2_cache.add(self._username)
            return self._ok()
        return self._fail(AuthFailReason.WRONG_PASSWORD)

    def _ok(self, extra: tuple[bytes, ...] = ()) -> AuthOk:
        assert self._user is not None
        self._state = _State.DONE
        return AuthOk(self._user, extra)

    def _fail(self, reason: AuthFailReason) -> AuthFailed:
        self._state = _State.DONE
        used = "YES" if self._password_used else "NO"
        message = f"Access denied for user '{self._username}'@'{self.client_host}' (using password: {used})"
        return AuthFailed(ErrorCode.ER_ACCESS_DENIED_ERROR, message, reason)
