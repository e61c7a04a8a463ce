"""How Tradecloud authenticates to the receiver: Basic credentials, a static Bearer token, or an
Entra-issued JWT (OAuth 2.0 client credentials; validated by ``webhook.entra``)."""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tap_tradecloud.compat import override

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tap_tradecloud.webhook.entra import EntraTokenValidator

USERNAME_ENV = "TRADECLOUD_WEBHOOK_USERNAME"
PASSWORD_ENV = "TRADECLOUD_WEBHOOK_PASSWORD"  # noqa: S105 - the variable's name, not a secret
TOKEN_ENV = "TRADECLOUD_WEBHOOK_TOKEN"  # noqa: S105 - the variable's name, not a secret
REALM = "tradecloud-webhook"


class CredentialsError(ValueError):
    """The environment holds no usable credentials."""


@dataclass(frozen=True, repr=False)
class Credentials:
    """What a caller must present: any of Basic, a static Bearer token, an Entra JWT."""

    basic: bytes | None = None  # "username:password" as UTF-8
    token: bytes | None = None
    entra: EntraTokenValidator | None = None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] = os.environ, entra: EntraTokenValidator | None = None
    ) -> Credentials:
        """Read the credentials from the environment; raise CredentialsError if unusable.

        With ``entra`` (configured from flags or env by the CLI) no secret is required.
        """
        username = environ.get(USERNAME_ENV, "")
        password = environ.get(PASSWORD_ENV, "")
        token = environ.get(TOKEN_ENV, "")
        if bool(username) != bool(password):
            msg = f"Set both {USERNAME_ENV} and {PASSWORD_ENV} for Basic authentication."
            raise CredentialsError(msg)
        if ":" in username:
            msg = f"{USERNAME_ENV} must not contain ':' (Basic authentication forbids it)."
            raise CredentialsError(msg)
        if not (username or token or entra):
            msg = (
                f"No webhook credentials: set {USERNAME_ENV} and {PASSWORD_ENV} (Basic) or "
                f"{TOKEN_ENV} (Bearer), or --entra-issuer, --entra-audience and "
                "--entra-jwks-url (OAuth via Microsoft Entra), as configured in Tradecloud's "
                "webhook settings."
            )
            raise CredentialsError(msg)
        return cls(
            basic=f"{username}:{password}".encode() if username else None,
            token=token.encode() if token else None,
            entra=entra,
        )

    def challenge(self) -> str:
        """Return the ``WWW-Authenticate`` value for a 401."""
        scheme = "Basic" if self.basic is not None else "Bearer"
        return f'{scheme} realm="{REALM}"'

    async def authorize(self, authorization: str | None) -> bool:
        """Tell whether an ``Authorization`` header value carries the right credentials.

        Raises ``entra.KeySetUnavailableError`` when an Entra token cannot be judged right now.
        """
        if self.accepts(authorization):
            return True
        scheme, _, value = (authorization or "").strip().partition(" ")
        if self.entra is None or scheme.lower() != "bearer":
            return False
        return await self.entra.accepts(value.strip())

    def accepts(self, authorization: str | None) -> bool:
        """Tell whether an ``Authorization`` header value carries Basic or static credentials."""
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

    @override
    def __repr__(self) -> str:
        """Never show the secrets."""
        configured = (("basic", self.basic), ("bearer", self.token), ("entra", self.entra))
        kinds = [kind for kind, value in configured if value is not None]
        return f"Credentials({'+'.join(kinds)})"
