"""Small helpers for the sandbox's own tests: log in and page through the sandbox API."""

from __future__ import annotations

from typing import Any

import requests

from tap_tradecloud.sandbox import SandboxServer

USERNAME = "integration@example.com"
PASSWORD = "sandbox-password"
TIMEOUT = 10


def login(sb: SandboxServer) -> tuple[str, str]:
    """Log in with Basic credentials; returns (access token, refresh token)."""
    response = requests.get(
        f"{sb.api_url}/authentication/login", auth=(USERNAME, PASSWORD), timeout=TIMEOUT
    )
    assert response.status_code == 200, response.text
    return response.headers["Set-Authorization"], response.headers["Set-Refresh-Token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post(
    sb: SandboxServer, endpoint: str, body: Any, token: str | None = None
) -> requests.Response:
    """POST to ``/order-search/<endpoint>`` with a fresh login unless a token is given."""
    token = token or login(sb)[0]
    return requests.post(
        f"{sb.api_url}/order-search/{endpoint}", json=body, headers=bearer(token), timeout=TIMEOUT
    )


def ids(response: requests.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [order["id"] for order in response.json()["data"]]
