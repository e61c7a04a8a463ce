"""How Tradecloud authenticates to the receiver: Basic credentials or a static Bearer token."""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass

USERNAME_ENV = "TRADECLOUD_WEBHOOK_USERNAME"
PASSWORD_ENV = "TRADECLOUD_WEBHOOK_PASSWORD"  # noqa: S105 - the variable's name, not a secret
TOKEN_ENV = "TRADECLOUD_WEBHOOK_TOKEN"  # noqa: S105 - the variable's name, not a secret
REALM = "tradecloud-webhook"


class CredentialsError(ValueError):
    """The environment holds no usable credentials."""


@dataclass(frozen=True, repr=False)
class Credentials:
    """What a caller must present; either or both of Basic and Bearer."""

    basic: bytes | None = None  # "username:password" as UTF-8
    token: bytes | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Credentials:
        """Read the credentials from the environment; raise CredentialsError if unusable."""
        username = environ.get(USERNAME_ENV, "")
        password = environ.get(PASSWORD_ENV, "")
        token = environ.get(TOKEN_ENV, "")
        if bool(username) != bool(password):
            msg = f"Set both {USERNAME_ENV} and {PASSWORD_ENV} for Basic authentication."
            raise CredentialsError(msg)
        if ":" in username:
            msg = f"{USERNAME_ENV} must not contain ':' (Basic authentication forbids it)."
            raise CredentialsError(msg)
        if not (username or token):
            msg = (
                f"No webhook credentials: set {USERNAME_ENV} and {PASSWORD_ENV} (Basic) or "
                f"{TOKEN_ENV} (Bearer), as configured in Tradecloud's webhook settings."
            )
            raise CredentialsError(msg)
        return cls(
            basic=f"{username}:{password}".encode() if username else None,
            token=token.encode() if token else None,
        )

    def challenge(self) -> str:
        """Return the ``WWW-Authenticate`` value for a 401."""
        scheme = "Basic" if self.basic is not None else "Bearer"
        return f'{scheme} realm="{REALM}"'

    def accepts(self, authorization: str | None) -> bool:
        """Tell whether an ``Authorization`` header value carries the right credentials."""
        if not authorization:
            return False
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "basic" and self.basic is not None:
            try:
                presented = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return False
            return hmac.compare_digest(presented, self.basic)
        if scheme.lower() == "bearer" and self.token is not None:
            return hmac.compare_digest(value.encode("utf-8", "surrogateescape"), self.token)
        return False

    def __repr__(self) -> str:
        """Never show the secrets."""
        kinds = [k for k, v in (("basic", self.basic), ("bearer", self.token)) if v is not None]
        return f"Credentials({'+'.join(kinds)})"
