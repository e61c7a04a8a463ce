"""``tradecloud-sandbox``: run the offline Tradecloud on localhost until stopped."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, TypeVar

from tap_tradecloud.sandbox.core import DEFAULT_PASSWORD, DEFAULT_USERNAME, SandboxConfig
from tap_tradecloud.sandbox.server import SandboxServer
from tap_tradecloud.sandbox.webhook_sender import METHODS

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import FrameType

Number = TypeVar("Number", int, float)
logger = logging.getLogger("tap_tradecloud.sandbox")

DEFAULT_PORT = 8766
DEFAULT_ACTIVITY_CHANGES = 1000
ENV_PASSWORD = "TRADECLOUD_SANDBOX_PASSWORD"  # noqa: S105 - a variable name, not a secret
ENV_WEBHOOK_BASIC = "TRADECLOUD_SANDBOX_WEBHOOK_BASIC"
ENV_WEBHOOK_BEARER = "TRADECLOUD_SANDBOX_WEBHOOK_BEARER"

EPILOG = f"""\
The API is served under http://HOST:PORT/v2 as Tradecloud serves it. When bound to a loopback
address, these unauthenticated controls are also served:
  POST /_sandbox/control          JSON with fault settings (rate_limit_per_second, retry_after,
                                  error_rate, latency, indexing_lag, access_token_ttl,
                                  refresh_token_ttl), {{"change_orders": k}}, {{"add_orders": k}},
                                  {{"change_shipments": k}}, {{"add_shipments": k}},
                                  {{"expire_access_tokens": true}} or {{"inject_responses":
                                  {{"statuses": [429, 503], "retry_after": 1}}}}
  GET  /_sandbox/orders           the current orders
  GET  /_sandbox/webhooks/delivered
                                  the webhooks the receiver answered with 2xx
Environment: {ENV_PASSWORD} (instead of --password),
{ENV_WEBHOOK_BASIC}=USER:PASS and {ENV_WEBHOOK_BEARER}=TOKEN
(instead of the flags, which other users can see in `ps`).
SIGTERM or SIGINT stop it cleanly."""


def _line_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        bounds = (int(low), int(high or low))
    except ValueError:
        msg = f"expected MIN-MAX such as 1-50, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not 1 <= bounds[0] <= bounds[1]:
        msg = f"expected 1 <= MIN <= MAX, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return bounds


def _checked(
    cast: Callable[[str], Number], accept: Callable[[Number], bool], expected: str
) -> Callable[[str], Number]:
    """An argparse ``type`` that converts with ``cast`` and refuses values ``accept`` rejects."""

    def parse(text: str) -> Number:
        try:
            value = cast(text)
        except ValueError:
            msg = f"expected {expected}, got {text!r}"
            raise argparse.ArgumentTypeError(msg) from None
        if not accept(value):
            msg = f"expected {expected}, got {text!r}"
            raise argparse.ArgumentTypeError(msg)
        return value

    return parse


_fraction = _checked(float, lambda v: 0.0 <= v <= 1.0, "a fraction between 0 and 1")
_non_negative = _checked(float, lambda v: v >= 0, "a number >= 0")
_positive = _checked(float, lambda v: v > 0, "a number > 0")
_count = _checked(int, lambda v: v >= 0, "a whole number >= 0")
_positive_int = _checked(int, lambda v: v > 0, "a whole number > 0")


def build_parser() -> argparse.ArgumentParser:
    """The ``tradecloud-sandbox`` command line."""
    parser = argparse.ArgumentParser(
        prog="tradecloud-sandbox",
        description="An offline Tradecloud API (v2) with seeded orders, faults on demand and "
        "webhooks, for tests, demos and benchmarks. Never use it as a real endpoint.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    add(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="port; 0 picks a free one (default: %(default)s)",
    )
    add(
        "--seed",
        type=int,
        default=1,
        help="seed for orders, changes and faults (default: %(default)s)",
    )
    add(
        "--orders",
        type=_count,
        default=250,
        metavar="N",
        help="orders generated at start (default: %(default)s)",
    )
    add(
        "--shipments",
        type=_count,
        default=50,
        metavar="N",
        help="shipments of those orders' lines generated at start (default: %(default)s)",
    )
    add(
        "--lines-per-order",
        type=_line_range,
        default=(1, 50),
        metavar="MIN-MAX",
        help="lines per generated order (default: 1-50)",
    )
    add(
        "--start",
        default="2024-01-01T00:00:00.000Z",
        help="lastUpdatedAt of the oldest generated order (default: %(default)s)",
    )
    add("--username", default=DEFAULT_USERNAME, help="integration user (default: %(default)s)")
    add(
        "--password",
        default=None,
        help=f"its password (default: ${ENV_PASSWORD} or {DEFAULT_PASSWORD!r})",
    )
    add(
        "--access-token-ttl",
        type=_positive,
        default=3600.0,
        metavar="SECONDS",
        help="access token lifetime (default: %(default)s, Tradecloud's 1 hour)",
    )
    add(
        "--refresh-token-ttl",
        type=_positive,
        default=86400.0,
        metavar="SECONDS",
        help="refresh token lifetime (default: %(default)s, Tradecloud's 24 hours)",
    )
    add(
        "--max-limit",
        type=_positive_int,
        default=100,
        metavar="N",
        help="largest `limit` a search/poll accepts; larger ones get 400 (default: %(default)s, "
        "the documented maximum; Tradecloud's own SDK pages /poll by 1000)",
    )
    add(
        "--rate-limit",
        type=_positive,
        default=None,
        metavar="PER_SECOND",
        help="answer 429 above this many requests per second (Tradecloud's rule: 10; default: off)",
    )
    add(
        "--no-retry-after",
        action="store_true",
        help="send no Retry-After header with 429 and 503 answers",
    )
    add(
        "--error-rate",
        type=_fraction,
        default=0.0,
        metavar="FRACTION",
        help="fraction of API requests answered 502/503/504 (default: 0)",
    )
    add(
        "--latency",
        type=_non_negative,
        default=0.0,
        metavar="SECONDS",
        help="delay added to every answer (default: 0)",
    )
    add(
        "--indexing-lag",
        type=_non_negative,
        default=0.0,
        metavar="SECONDS",
        help="a change becomes searchable this long after its lastUpdatedAt (default: 0)",
    )
    add(
        "--webhook-url",
        default=None,
        help="send each change as a webhook here; for GET, put {orderId} in the path or the "
        "sandbox adds ?orderId=",
    )
    add("--webhook-method", choices=METHODS, default="POST", help="webhook method (default: POST)")
    add(
        "--webhook-basic",
        default=None,
        metavar="USER:PASS",
        help=f"Basic credentials for the webhook (or ${ENV_WEBHOOK_BASIC})",
    )
    add(
        "--webhook-bearer",
        default=None,
        metavar="TOKEN",
        help=f"static Bearer token for the webhook (or ${ENV_WEBHOOK_BEARER})",
    )
    add(
        "--webhook-single-delivery",
        action="store_true",
        help="send singleDeliveryOrderEvent instead of orderEvent",
    )
    add(
        "--webhook-max-attempts",
        type=_positive_int,
        default=8,
        help="attempts per webhook when the receiver answers >500 or is unreachable "
        "(default: %(default)s)",
    )
    add(
        "--webhook-backoff",
        type=_positive,
        default=1.0,
        metavar="SECONDS",
        help="wait before the first retry, doubled for each next one, at most 60 s "
        "(default: %(default)s)",
    )
    add(
        "--activity-interval",
        type=_positive,
        default=None,
        metavar="SECONDS",
        help="change or add one order every SECONDS (default: no activity)",
    )
    add(
        "--activity-changes",
        type=_positive_int,
        default=DEFAULT_ACTIVITY_CHANGES,
        metavar="N",
        help="stop the activity after N changes (default: %(default)s)",
    )
    add(
        "--max-runtime",
        type=_positive,
        default=None,
        metavar="SECONDS",
        help="stop by itself after SECONDS (default: run until SIGTERM/SIGINT)",
    )
    add(
        "--log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="log level on stderr; INFO logs one line per request (default: %(default)s)",
    )
    return parser


def _webhook_auth(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[str, ...] | None:
    basic = args.webhook_basic or os.environ.get(ENV_WEBHOOK_BASIC)
    bearer = args.webhook_bearer or os.environ.get(ENV_WEBHOOK_BEARER)
    if basic and bearer:
        parser.error("give Basic or Bearer webhook credentials, not both")
    if basic:
        user, separator, password = basic.partition(":")
        if not separator:
            parser.error("--webhook-basic must be USER:PASS")
        return ("basic", user, password)
    return ("bearer", bearer) if bearer else None


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> SandboxConfig:
    """The sandbox configuration the options describe; ``parser`` reports bad combinations."""
    return SandboxConfig(
        seed=args.seed,
        order_count=args.orders,
        shipment_count=args.shipments,
        lines_per_order=args.lines_per_order,
        start=args.start,
        username=args.username,
        password=args.password or os.environ.get(ENV_PASSWORD) or DEFAULT_PASSWORD,
        access_token_ttl=args.access_token_ttl,
        refresh_token_ttl=args.refresh_token_ttl,
        max_limit=args.max_limit,
        rate_limit_per_second=args.rate_limit,
        retry_after=not args.no_retry_after,
        error_rate=args.error_rate,
        latency=args.latency,
        indexing_lag=args.indexing_lag,
        host=args.host,
        port=args.port,
        webhook_url=args.webhook_url,
        webhook_method=args.webhook_method,
        webhook_auth=_webhook_auth(args, parser),
        webhook_single_delivery=args.webhook_single_delivery,
        webhook_max_attempts=args.webhook_max_attempts,
        webhook_backoff=args.webhook_backoff,
        activity_interval=args.activity_interval,
        activity_changes=args.activity_changes,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sandbox until SIGTERM, SIGINT or ``--max-runtime``; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    config = config_from_args(args, parser)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    logger.info("generating %d orders (seed %d)", config.order_count, config.seed)
    try:
        server = SandboxServer(config)
        server.start()
    except (RuntimeError, ValueError) as error:
        logger.error("%s", error)  # noqa: TRY400 - the message says it all; no traceback
        return 1
    logger.info(
        "tradecloud-sandbox listening on %s (user %s); controls %s",
        server.api_url,
        config.username,
        "on /_sandbox" if server.controls_enabled else "off (not a loopback address)",
    )
    if not stop.wait(args.max_runtime):
        logger.info("--max-runtime reached, stopping")
    server.stop()
    logger.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
