"""``tap-tradecloud-webhook``: run the receiver. Secrets come only from the environment; the
Entra issuer, audience and key-set URL (public values) come from flags or the environment."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import ssl
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from tap_tradecloud.spool import (
    DEFAULT_MIN_FREE_BYTES,
    DEFAULT_MIN_FREE_INODES,
    SpoolError,
    SpoolWriter,
    validate_instance,
)
from tap_tradecloud.spool.journal import DEFAULT_JOURNAL_BYTES
from tap_tradecloud.webhook.app import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_PATH,
    ReceiverConfig,
    create_app,
)
from tap_tradecloud.webhook.auth import Credentials
from tap_tradecloud.webhook.entra import (
    DEFAULT_LEEWAY_SECONDS,
    EntraSettings,
    EntraTokenValidator,
)
from tap_tradecloud.webhook.json_logs import logging_to_stderr

if TYPE_CHECKING:
    from collections.abc import Sequence

LOGGER = logging.getLogger("tap_tradecloud.webhook")
# Under load the event loop's thread runs Python almost without pause, while the spool's
# committer needs the GIL back after each of the ten or so system calls of a segment write.
# At Python's default of 5 ms a segment took 1.5-1.9 ms to write instead of its 0.6 ms of
# system calls; a 0.5 ms interval gave 7-13% more acknowledged events/s at 16 connections.
SWITCH_INTERVAL_SECONDS = 0.0005


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        msg = f"must be a positive integer, got {text}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        msg = f"must be 0 or more, got {text}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _url_path(text: str) -> str:
    if not text.startswith("/"):
        msg = f"must start with '/', got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return text


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        prog="tap-tradecloud-webhook",
        description=(
            "Receive Tradecloud webhooks and spool them durably for tap-tradecloud. "
            "Credentials: TRADECLOUD_WEBHOOK_USERNAME + TRADECLOUD_WEBHOOK_PASSWORD (Basic) "
            "or TRADECLOUD_WEBHOOK_TOKEN (Bearer), from the environment; or OAuth via "
            "Microsoft Entra with the --entra-* flags."
        ),
    )
    parser.add_argument(
        "--spool-dir",
        required=True,
        help=(
            "Spool location, shared with the tap's spool_dir: a folder, or s3://bucket/prefix "
            "(gs://, az:// too; needs tap-tradecloud[s3], configured by AWS_* variables)."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="Address to bind (default 127.0.0.1).")
    parser.add_argument("--port", type=int, default=8080, help="Port to bind (default 8080).")
    parser.add_argument(
        "--path",
        type=_url_path,
        default=DEFAULT_PATH,
        help=f"Webhook path (default {DEFAULT_PATH}).",
    )
    parser.add_argument(
        "--instance-id",
        default=socket.gethostname(),
        help="This receiver's spool partition; unique per running receiver (default: host name).",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=(
            f"Larger bodies get 413 and are lost (default {DEFAULT_MAX_BODY_BYTES}, 32 MiB; "
            "a 500-line order event is about 1.2 MB)."
        ),
    )
    parser.add_argument(
        "--tls-cert", type=Path, help="PEM certificate chain; serve HTTPS (TLS >= 1.2)."
    )
    parser.add_argument("--tls-key", type=Path, help="PEM private key for --tls-cert.")
    _add_entra_arguments(parser)
    parser.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="Accept requests without credentials (testing only).",
    )
    parser.add_argument(
        "--min-free-bytes",
        type=int,
        default=DEFAULT_MIN_FREE_BYTES,
        help="Answer 503 when the spool file system has less free space (default 64 MiB).",
    )
    parser.add_argument(
        "--min-free-inodes",
        type=int,
        default=DEFAULT_MIN_FREE_INODES,
        help=f"Answer 503 below this many free inodes (default {DEFAULT_MIN_FREE_INODES}).",
    )
    parser.add_argument(
        "--journal-bytes",
        type=_non_negative_int,
        default=DEFAULT_JOURNAL_BYTES,
        help=(
            "Size of the local spool partition's write-ahead journal, which makes a busy "
            "receiver about a third faster (default 4 MiB; 0: none, every group of deliveries "
            "is written as a segment). Ignored for object stores."
        ),
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        help=(
            "After SIGTERM, seconds to let requests whose body has arrived finish their spool "
            "write (default 10). Uploads still in progress are cut and never acknowledged."
        ),
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return parser


def _add_entra_arguments(parser: argparse.ArgumentParser) -> None:
    entra = parser.add_argument_group(
        "OAuth via Microsoft Entra (Tradecloud sends an Entra access token as Bearer JWT)"
    )
    env = os.environ.get
    entra.add_argument(
        "--entra-issuer",
        default=env("TRADECLOUD_WEBHOOK_ENTRA_ISSUER"),
        help="Required `iss`, e.g. https://login.microsoftonline.com/<tenant>/v2.0 "
        "(env TRADECLOUD_WEBHOOK_ENTRA_ISSUER).",
    )
    entra.add_argument(
        "--entra-audience",
        default=env("TRADECLOUD_WEBHOOK_ENTRA_AUDIENCE"),
        help="Required `aud`: your app registration's client id or application ID URI "
        "(env TRADECLOUD_WEBHOOK_ENTRA_AUDIENCE).",
    )
    entra.add_argument(
        "--entra-jwks-url",
        default=env("TRADECLOUD_WEBHOOK_ENTRA_JWKS_URL"),
        help="The tenant's signing keys, e.g. https://login.microsoftonline.com/<tenant>/"
        "discovery/v2.0/keys (env TRADECLOUD_WEBHOOK_ENTRA_JWKS_URL).",
    )
    entra.add_argument(
        "--entra-leeway",
        type=float,
        default=env("TRADECLOUD_WEBHOOK_ENTRA_LEEWAY", str(DEFAULT_LEEWAY_SECONDS)),
        help=f"Seconds of clock skew allowed on exp/nbf/iat (default {DEFAULT_LEEWAY_SECONDS:g}).",
    )


def _entra_validator(args: argparse.Namespace) -> EntraTokenValidator | None:
    """An Entra validator when any ``--entra-*`` value is set; errors name what is missing."""
    if not (args.entra_issuer or args.entra_audience or args.entra_jwks_url):
        return None
    return EntraTokenValidator(
        EntraSettings(
            issuer=args.entra_issuer or "",
            audience=args.entra_audience or "",
            jwks_url=args.entra_jwks_url or "",
            leeway_seconds=args.entra_leeway,
        )
    )


def _ssl_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        msg = "Give both --tls-cert and --tls-key, or neither."
        raise ValueError(msg)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def main(argv: Sequence[str] | None = None) -> int:
    """Run the receiver until SIGTERM or SIGINT; return the exit code."""
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    parser = build_parser()
    args = parser.parse_args(argv)
    with logging_to_stderr(args.log_level):
        return _run(parser, args)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        instance = validate_instance(args.instance_id)
        entra = _entra_validator(args)
        credentials = None if args.insecure_no_auth else Credentials.from_env(entra=entra)
        ssl_context = _ssl_context(args.tls_cert, args.tls_key)
    except (ValueError, OSError, ssl.SSLError) as exc:
        parser.error(str(exc))
    if credentials is None:
        LOGGER.warning("--insecure-no-auth: every request is accepted without credentials")
    config = ReceiverConfig(
        credentials=credentials, path=args.path, max_body_bytes=args.max_body_bytes
    )
    try:
        writer = SpoolWriter(
            args.spool_dir,
            instance,
            min_free_bytes=args.min_free_bytes,
            journal_bytes=args.journal_bytes,
            min_free_inodes=args.min_free_inodes,
        )
        writer.open()
    except (SpoolError, OSError) as exc:
        LOGGER.error("Cannot open the spool: %s", exc)  # noqa: TRY400 - the message says it all
        return 1
    try:
        LOGGER.info(
            "Listening on %s://%s:%d%s, spooling to %s (instance %s, resuming after sequence %d)",
            "https" if ssl_context else "http",
            args.host,
            args.port,
            args.path,
            writer.partition,
            instance,
            writer.last_sequence,
        )
        web.run_app(
            create_app(config, writer),
            host=args.host,
            port=args.port,
            ssl_context=ssl_context,
            shutdown_timeout=args.shutdown_timeout,
            access_log=None,
            print=None,
        )
    finally:
        writer.close()
    LOGGER.info("Stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
