"""Who is calling: API keys (Bearer or HTTP Basic) and optional HMAC request signing.

* ``Authorization: Bearer <key>``, or ``Authorization: Basic base64(<client>:<key>)`` — what an SFCC
  service credential sends by default. Each client has at most two active keys (rotation).
* Signing (``hmac = "optional" | "required"``): ``X-Loyaltykit-Timestamp: <unix seconds>`` and
  ``X-Loyaltykit-Signature: v1=<hex>``, where the hex is HMAC-SHA256 keyed with the SHA-256 hex digest
  of the API key over ``"<timestamp>.<METHOD>.<path with query>.<sha256 hex of the body>"``. The
  timestamp must be within ``hmac_window`` seconds of the server's clock. Deriving the signing key
  from the API key keeps one secret per client, and the sidecar still stores only its hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

from .settings import SidecarSettings

TIMESTAMP_HEADER = "x-loyaltykit-timestamp"
SIGNATURE_HEADER = "x-loyaltykit-signature"


class AuthError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Principal:
    client: str
    key_hash: str  # "sha256:<hex>"


def sign(key: str, timestamp: int | str, method: str, path: str, body: bytes) -> str:
    """The ``X-Loyaltykit-Signature`` value a client sends (also used by the tests and benchmark)."""
    signing_key = hashlib.sha256(key.encode()).hexdigest()
    return "v1=" + _mac(signing_key, timestamp, method, path, body)


def _mac(signing_key: str, timestamp: int | str, method: str, path: str, body: bytes) -> str:
    message = f"{timestamp}.{method.upper()}.{path}.{hashlib.sha256(body).hexdigest()}".encode()
    return hmac.new(signing_key.encode(), message, hashlib.sha256).hexdigest()


class Authenticator:
    def __init__(self, settings: SidecarSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self._by_hash: dict[str, str] = {}
        self._clients: dict[str, set[str]] = {}
        for client in settings.clients:
            self._clients[client.name] = set(client.keys)
            for key_hash in client.keys:
                self._by_hash[key_hash] = client.name

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise AuthError("unauthorized", "an API key is required (Authorization: Bearer or Basic)")
        scheme, _, credentials = authorization.partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        if scheme == "bearer" and credentials:
            key_hash = _hash(credentials)
            client = _lookup(self._by_hash, key_hash)
            if client is not None:
                return Principal(client, key_hash)
        elif scheme == "basic" and credentials:
            try:
                decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise AuthError("unauthorized", "malformed Basic credentials") from None
            name, sep, key = decoded.partition(":")
            key_hash = _hash(key)
            if sep and any(hmac.compare_digest(key_hash, known) for known in self._clients.get(name, ())):
                return Principal(name, key_hash)
        raise AuthError("unauthorized", "unknown or revoked API key")

    def verify_signature(self, principal: Principal, method: str, path: str, body: bytes,
                         timestamp: str | None, signature: str | None) -> None:
        mode = self.settings.hmac
        if mode == "off" or (mode == "optional" and not signature and not timestamp):
            return
        if not signature or not timestamp:
            raise AuthError("signature_required", "this sidecar requires signed requests")
        try:
            sent_at = int(timestamp)
        except ValueError:
            raise AuthError("signature_invalid", "the signature timestamp is not unix seconds") from None
        if abs(self.clock() - sent_at) > self.settings.hmac_window:
            raise AuthError("signature_expired", "the signature timestamp is outside the accepted window")
        expected = "v1=" + _mac(principal.key_hash.removeprefix("sha256:"), timestamp, method, path, body)
        if not hmac.compare_digest(expected, signature.strip()):
            raise AuthError("signature_invalid", "the request signature does not match")


def _hash(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _lookup(table: dict[str, str], key_hash: str) -> str | None:
    # The dict lookup is on a hash of a high-entropy key: timing reveals nothing usable about a key.
    return table.get(key_hash)
