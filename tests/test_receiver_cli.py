"""``tap-tradecloud-webhook`` as a user runs it: credentials, one writer per instance, TLS."""

from __future__ import annotations

import shlex
import signal
import socket
import ssl
import subprocess
from typing import TYPE_CHECKING

import pytest
import requests

from tap_tradecloud.spool import SpoolWriter
from tap_tradecloud.webhook import cli
from tests.webhook_helpers import ReceiverProcess, auth_headers, event_body

if TYPE_CHECKING:
    from pathlib import Path

CREDENTIAL_VARIABLES = (
    "TRADECLOUD_WEBHOOK_USERNAME",
    "TRADECLOUD_WEBHOOK_PASSWORD",
    "TRADECLOUD_WEBHOOK_TOKEN",
)


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


@pytest.mark.usefixtures("no_credentials")
def test_refuses_to_start_without_credentials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--spool-dir", str(tmp_path)])

    assert exited.value.code == 2
    message = capsys.readouterr().err
    assert "TRADECLOUD_WEBHOOK_USERNAME" in message
    assert "TRADECLOUD_WEBHOOK_TOKEN" in message
    assert not (tmp_path / socket.gethostname()).exists()


@pytest.mark.usefixtures("no_credentials")
def test_refuses_half_basic_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRADECLOUD_WEBHOOK_USERNAME", "tradecloud")

    with pytest.raises(SystemExit):
        cli.main(["--spool-dir", str(tmp_path)])

    assert "Set both TRADECLOUD_WEBHOOK_USERNAME and TRADECLOUD_WEBHOOK_PASSWORD" in (
        capsys.readouterr().err
    )


def test_refuses_a_tls_certificate_without_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--spool-dir", str(tmp_path), "--insecure-no-auth", "--tls-cert", "c.pem"])

    assert "Give both --tls-cert and --tls-key" in capsys.readouterr().err


def test_journal_bytes_zero_writes_every_delivery_as_a_segment_and_no_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--spool-dir", str(tmp_path), "--insecure-no-auth", "--journal-bytes", "-1"])
    assert "--journal-bytes: must be 0 or more, got -1" in capsys.readouterr().err

    receiver = ReceiverProcess(tmp_path / "spool", "plain", "--journal-bytes", "0")
    try:
        receiver.wait_healthy()
        answer = requests.post(
            receiver.webhook_url, data=event_body(), headers=auth_headers(), timeout=10
        )
    finally:
        receiver.stop()

    assert answer.status_code == 200
    assert (tmp_path / "spool" / "plain" / "events").is_dir()
    assert not (tmp_path / "spool" / "plain" / "journal").exists()


def test_insecure_no_auth_accepts_anyone_and_says_so(tmp_path: Path) -> None:
    receiver = ReceiverProcess(tmp_path / "spool", "open", "--insecure-no-auth")
    try:
        receiver.wait_healthy()
        answer = requests.post(receiver.webhook_url, json={"orderEvent": {}}, timeout=10)
    finally:
        exit_code = receiver.stop()

    assert answer.status_code == 200
    assert exit_code == 0
    assert "--insecure-no-auth: every request is accepted" in receiver.log()


def test_a_second_receiver_on_the_same_instance_exits_with_a_clear_error(tmp_path: Path) -> None:
    first = ReceiverProcess(tmp_path / "spool", "shared")
    try:
        first.wait_healthy()
        second = ReceiverProcess(tmp_path / "spool", "shared")
        exit_code = second.process.wait(timeout=20)
    finally:
        first.stop()

    assert exit_code == 1
    assert "already written by another receiver" in second.log()
    assert "--instance-id" in second.log()


def test_sigterm_stops_cleanly_and_releases_the_partition(tmp_path: Path) -> None:
    receiver = ReceiverProcess(tmp_path / "spool", "term")
    try:
        receiver.wait_healthy()
        stored = requests.post(
            receiver.webhook_url, data=event_body(), headers=auth_headers(), timeout=10
        )
    finally:
        exit_code = receiver.stop(signal.SIGTERM)

    assert (stored.status_code, exit_code) == (200, 0)
    assert receiver.log().rstrip().endswith('"message": "Stopped"}')
    with SpoolWriter(tmp_path / "spool", "term") as restarted:
        assert restarted.last_sequence == 1


def test_serves_https_with_tls_1_2_or_newer(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_certificate = shlex.split(
        "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
        f"-addext subjectAltName=IP:127.0.0.1 -keyout {shlex.quote(str(key))} "
        f"-out {shlex.quote(str(cert))}"
    )
    subprocess.run(make_certificate, check=True, capture_output=True)
    receiver = ReceiverProcess(tmp_path / "spool", "tls", tls=(cert, key))
    try:
        receiver.wait_healthy()
        answer = requests.post(
            receiver.webhook_url,
            data=event_body(),
            headers=auth_headers(),
            verify=str(cert),
            timeout=10,
        )
    finally:
        receiver.stop()

    assert receiver.webhook_url.startswith("https://")
    assert answer.status_code == 200
    context = cli._ssl_context(cert, key)
    assert context is not None
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
