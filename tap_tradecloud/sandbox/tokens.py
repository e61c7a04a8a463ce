"""Credentials and tokens: HS256 JWT access tokens and opaque, single-use refresh tokens."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class TokenPair:
    """An access token and its refresh token, as login and refresh hand them out."""

    access_token: str
    refresh_token: str


class TokenService:
    """Issues and checks tokens for one integration user, as Tradecloud's authentication does."""

    def __init__(
        self,
        username: str,
        password: str,
        *,
        access_token_ttl: float,
        refresh_token_ttl: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.username = username
        self._password = password
        self.access_token_ttl = access_token_ttl
        self.refresh_token_ttl = refresh_token_ttl
        self._clock = clock
        self._secret = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self.user_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"tradecloud-user:{username}"))
        self._refresh_tokens: dict[str, float] = {}  # token -> expiry
        self._access_tokens: dict[str, float] = {}  # jti -> exact expiry (the claim is whole s)

    def basic_ok(self, encoded: str) -> bool:
        """Whether a Basic credential (the part after ``Basic ``) is this user's."""
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        expected = f"{self.username}:{self._password}"
        return hmac.compare_digest(decoded.encode(), expected.encode())

    def issue(self) -> TokenPair:
        """A new token pair for the integration user.

        The access token's claims look like Tradecloud's
        (``{"data": {"username", "userId", ...}, "exp": <int>}``).
        """
        now = self._clock()
        expiry = now + self.access_token_ttl
        jti = secrets.token_hex(8)
        claims = {
            "data": {"username": self.username, "userId": self.user_id, "roles": ["integration"]},
            "iat": int(now),
            "exp": int(expiry),
            "jti": jti,
        }
        refresh_token = secrets.token_urlsafe(32)
        with self._lock:
            self._forget_expired(now)
            self._access_tokens[jti] = expiry
            self._refresh_tokens[refresh_token] = now + self.refresh_token_ttl
        return TokenPair(self._sign(claims), refresh_token)

    def _forget_expired(self, now: float) -> None:
        for tokens in (self._access_tokens, self._refresh_tokens):
            for token in [token for token, expiry in tokens.items() if expiry <= now]:
                del tokens[token]

    def _sign(self, claims: dict[str, object]) -> str:
        header = _b64url(b'{"alg":"HS256","typ":"JWT"}')
        payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.new(self._secret, f"{header}.{payload}".encode(), hashlib.sha256)
        return f"{header}.{payload}.{_b64url(signature.digest())}"

    def access_ok(self, token: str) -> bool:
        """Whether an access token is genuine, unexpired and not revoked."""
        parts = token.split(".")
        if len(parts) != 3:
            return False
        header, payload, signature = parts
        expected = hmac.new(self._secret, f"{header}.{payload}".encode(), hashlib.sha256)
        try:
            if not hmac.compare_digest(_unb64url(signature), expected.digest()):
                return False
            claims = json.loads(_unb64url(payload))
        except (binascii.Error, ValueError):
            return False
        with self._lock:
            expiry = self._access_tokens.get(claims.get("jti"))
        return expiry is not None and self._clock() < expiry

    def refresh(self, refresh_token: str) -> TokenPair | None:
        """Swap a refresh token for a new pair; the old one is spent, used or not."""
        with self._lock:
            expiry = self._refresh_tokens.pop(refresh_token, None)
        if expiry is None or self._clock() >= expiry:
            return None
        return self.issue()

    def logout(self, refresh_token: str) -> bool:
        """Invalidate ``refresh_token``; False when it was not valid."""
        with self._lock:
            return self._refresh_tokens.pop(refresh_token, None) is not None

    def expire_access_tokens(self) -> None:
        """Invalidate every access token issued so far."""
        with self._lock:
            self._access_tokens.clear()
