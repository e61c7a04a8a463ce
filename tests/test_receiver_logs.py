"""No credential, header line or body byte reaches any log, at any level (DEBUG included)."""

from __future__ import annotations

import base64
import socket
import time
from typing import TYPE_CHECKING

from tests.webhook_helpers import PATH, TOKEN, ReceiverProcess

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

BASIC = base64.b64encode(b"tradecloud:basic-secret-8a1f").decode()
BODY_MARKER = "BODYBYTES-c0ffee"


def send_raw(port: int, data: bytes) -> bytes:
    """Send raw bytes on one connection; return whatever comes back before it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def request(headers: list[str], body: str = "") -> bytes:
    head = "\r\n".join([f"POST {PATH} HTTP/1.1", "Host: 127.0.0.1", *headers])
    return f"{head}\r\n\r\n{body}".encode()


MALFORMED = {
    "bearer with a control byte": request(
        [f"Authorization: Bearer {TOKEN}\x01", "Content-Length: 2"], "{}"
    ),
    "basic with a control byte": request(
        [f"Authorization: Basic {BASIC}\x7f", "Content-Length: 0"]
    ),
    "control byte before the credential": request(
        [f"Authorization: \x00Bearer {TOKEN}", "Content-Length: 0"]
    ),
    "content-length shorter than the body": request(
        [f"Authorization: Bearer {TOKEN}", "Content-Type: application/json", "Content-Length: 2"],
        "{}" + f"{BODY_MARKER} {{\x01 garbage}} {BODY_MARKER}\r\n\r\n",
    ),
    "content-length longer than the body": request(
        [f"Authorization: Bearer {TOKEN}", "Content-Type: application/json", "Content-Length: 999"],
        f'{{"orderEvent": {{"orderId": "{BODY_MARKER}"}}}}',
    ),
    "header line without a colon": request([f"Authorization Bearer {TOKEN}", f"X {BODY_MARKER}"]),
}


def test_malformed_requests_leave_no_credential_or_body_byte_in_the_debug_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONASYNCIODEBUG", "1")  # aiohttp's own debug logging too
    spool_dir = tmp_path / "spool"
    receiver = ReceiverProcess(spool_dir, "r1", "--log-level", "DEBUG")
    try:
        receiver.wait_healthy()
        for data in MALFORMED.values():
            send_raw(receiver.port, data)
    finally:
        receiver.stop()
    log = receiver.log()

    assert "DEBUG" in log  # the log really ran at DEBUG
    assert "Error handling request" in log  # aiohttp did log the bad requests
    for secret in (TOKEN, BASIC, "basic-secret", BODY_MARKER, "Authorization", "garbage"):
        assert secret not in log, f"{secret!r} is in the receiver log:\n{log}"
