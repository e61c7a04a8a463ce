"""The tap: its settings, its streams and the ``tap-tradecloud`` command line."""

from __future__ import annotations

import typing as t
from functools import cached_property

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers._util import load_json
from singer_sdk.helpers.capabilities import PluginCapabilities
from singer_sdk.plugin_base import _ConfigInput
from singer_sdk.tap_base import CliTestOptionValue

from tap_tradecloud.compat import override
from tap_tradecloud.connection import TradecloudConnection
from tap_tradecloud.order_lines import OrderLinesStream
from tap_tradecloud.output import SingerOutput
from tap_tradecloud.settings import exit_on_invalid_config, setting_errors
from tap_tradecloud.streams import OrdersStream, ShipmentsStream

if t.TYPE_CHECKING:
    import click
    from singer_sdk import Stream
    from singer_sdk.helpers.capabilities import CapabilitiesEnum

PRODUCTION_API_URL = "https://api.tradecloud1.com/v2"
PROCESS_STATUSES = ["Issued", "InProgress", "Confirmed", "Rejected", "Completed", "Cancelled"]
LOGISTICS_STATUSES = ["Open", "Produced", "ReadyToShip", "Shipped", "Delivered", "Cancelled"]


class TapTradecloud(Tap):
    """Singer tap for Tradecloud orders and shipments."""

    name = "tap-tradecloud"
    message_writer_class = SingerOutput
    # Not BATCH: the SDK's batcher holds a whole batch of orders in memory (peak RSS grows with
    # batch_size, 1.1 GiB at the default), and target-postgres loads batch files without the
    # _sdc_* columns. Plain RECORD messages load as fast (README, "Use with Meltano").
    capabilities: t.ClassVar[list[CapabilitiesEnum]] = [
        capability for capability in Tap.capabilities if capability != PluginCapabilities.BATCH
    ]

    config_jsonschema = th.PropertiesList(
        th.Property(
            "api_url",
            th.URIType,
            default=PRODUCTION_API_URL,
            description=(
                "Base URL of the Tradecloud API, including `/v2`. Production: "
                "`https://api.tradecloud1.com/v2`; acceptance: "
                "`https://api.accp.tradecloud1.com/v2`; "
                "test: `https://api.test.tradecloud1.com/v2`; the offline sandbox: "
                "`http://127.0.0.1:8766/v2`."
            ),
        ),
        th.Property(
            "username",
            th.StringType,
            required=True,
            description="E-mail address of the Tradecloud integration user.",
        ),
        th.Property(
            "password",
            th.StringType,
            required=True,
            secret=True,
            description="Password of the Tradecloud integration user.",
        ),
        th.Property(
            "auth_method",
            th.StringType,
            default="login",
            allowed_values=["login", "basic"],
            description=(
                "`login`: log in once, use the access token and refresh it (recommended). "
                "`basic`: send Basic credentials on every request (slow; Tradecloud accepts it "
                "only on its poll endpoints, so it needs `polling_api=poll`)."
            ),
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description=(
                "Earliest `lastUpdatedAt` to extract on the first run (ISO 8601 with a time zone, "
                "for example `2024-01-01T00:00:00Z`). Later runs start from the bookmark."
            ),
        ),
        th.Property(
            "polling_api",
            th.StringType,
            default="poll",
            allowed_values=["poll", "search"],
            description=(
                "How the `orders` stream polls. `poll` (recommended, Tradecloud's documented "
                "way since 2024): `POST /order-search/poll` with the exclusive `lastUpdatedAfter` "
                "filter. `search` (the older recipe): `POST /order-search/search` with the "
                "inclusive `lastUpdatedSince` filter, sorted by `lastUpdatedAt` ascending."
            ),
        ),
        th.Property(
            "company_id",
            th.StringType,
            description=(
                "Only orders and shipments of this Tradecloud company id (for users with "
                "several companies; see `company_role`)."
            ),
        ),
        th.Property(
            "process_status",
            th.ArrayType(th.StringType(allowed_values=PROCESS_STATUSES)),
            description=f"Only orders in these process statuses: {', '.join(PROCESS_STATUSES)}.",
        ),
        th.Property(
            "logistics_status",
            th.ArrayType(th.StringType(allowed_values=LOGISTICS_STATUSES)),
            description=(
                f"Only orders in these logistics statuses: {', '.join(LOGISTICS_STATUSES)}."
            ),
        ),
        th.Property(
            "page_size",
            th.IntegerType(minimum=1, maximum=100),
            default=100,
            description="Orders or shipments per request, 1 to 100 (Tradecloud's maximum).",
        ),
        th.Property(
            "max_requests_per_second",
            th.NumberType(exclusive_minimum=0),
            default=10,
            description="Upper bound on requests per second to Tradecloud (Tradecloud's rule: 10).",
        ),
        th.Property(
            "company_role",
            th.StringType,
            default="buyer",
            allowed_values=["buyer", "supplier"],
            description=(
                "Whether `company_id` is the buyer or the supplier. With `polling_api=search`, "
                "orders are filtered on `filters.buyerOrder.companyId` or "
                "`filters.supplierOrder.companyId` (the poll API's `filters.companyId` matches "
                "either). `shipments` are filtered on `buyerShipment.companyId` for a buyer; "
                "for a supplier Tradecloud documents no shipment filter, so every shipment "
                "the user may see is read."
            ),
        ),
        th.Property(
            "lookback_seconds",
            th.NumberType(minimum=0),
            default=0,
            description=(
                "Re-read orders and shipments updated this many seconds before the newest one "
                "already extracted, and emit only the versions not sent before. Use it when "
                "changes become searchable late (out of `lastUpdatedAt` order); 0 turns it off."
            ),
        ),
        th.Property(
            "max_retries",
            th.IntegerType(minimum=0, maximum=20),
            default=5,
            description=(
                "Retries of a request that failed with 429, a 5xx, a timeout or a dropped "
                "connection (exponential backoff that honours `Retry-After`)."
            ),
        ),
        th.Property(
            "retry_max_wait_seconds",
            th.NumberType(minimum=0),
            default=60,
            description="Longest single wait between two tries of a request, in seconds.",
        ),
        th.Property(
            "request_timeout_seconds",
            th.IntegerType(minimum=1),
            default=60,
            description="Seconds to wait for Tradecloud to answer a request before retrying it.",
        ),
        th.Property(
            "spool_dir",
            th.StringType,
            description=(
                "Spool written by `tap-tradecloud-webhook`: a folder, or `s3://bucket/prefix` "
                "(also `gs://`, `az://`; needs `tap-tradecloud[s3]` and the store's usual "
                "variables, e.g. `AWS_ENDPOINT_URL`, `AWS_REGION`). When set, the "
                "`webhook_events` stream reads it; when unset, that stream is not offered."
            ),
        ),
        th.Property(
            "fetch_orders_for_notifications",
            th.BooleanType,
            default=True,
            description=(
                "For legacy GET notifications (which carry only an order id), fetch the whole "
                "order with `GET /order/{orderId}` and put it in the event record."
            ),
        ),
        th.Property(
            "spool_retention_hours",
            th.NumberType,
            default=168,
            description=(
                "Spooled events already loaded (at or below the bookmark a run starts with) are "
                "deleted once older than this many hours. Set 0 to never delete."
            ),
        ),
    ).to_dict()

    def __init__(self, *args: t.Any, validate_config: bool = True, **kwargs: t.Any) -> None:
        """Build the tap; with ``validate_config``, refuse bad settings before any request."""
        super().__init__(*args, validate_config=validate_config, **kwargs)
        if validate_config and (errors := setting_errors(self.config)):
            msg = "Config validation failed"
            raise ConfigValidationError(msg, errors=errors)

    @cached_property
    def connection(self) -> TradecloudConnection:
        """The one connection to Tradecloud that all streams of this run share."""
        return TradecloudConnection(self.config)

    @override
    def discover_streams(self) -> list[Stream]:
        """``orders``, its child ``order_lines``, ``shipments``; ``webhook_events`` with a spool."""
        orders = OrdersStream(tap=self)
        streams: list[Stream] = [
            orders,
            OrderLinesStream(tap=self, orders=orders),
            ShipmentsStream(tap=self),
        ]
        if self.config.get("spool_dir"):
            from tap_tradecloud.webhook_events import WebhookEventsStream  # noqa: PLC0415

            streams.append(WebhookEventsStream(tap=self))
        return streams

    def run(self) -> None:
        """Sync every selected stream, then log out, also when the sync fails."""
        try:
            self.sync_all()
        finally:
            try:
                self.output.close()  # every buffered message reaches the target
            finally:
                self.connection.close()

    @property
    def output(self) -> SingerOutput:
        """The message writer (buffered; :meth:`run` closes it)."""
        return t.cast("SingerOutput", self.message_writer)

    # Why `cb_test` and `invoke` copy the SDK's bodies (0.54.9, with its private `_ConfigInput`
    # and `load_json`): the session must be logged out after every run, and the hooks that wrap
    # a run, `sync_all` and `run_connection_test`, are `@final`. Keep both copies in step with
    # `singer_sdk/tap_base.py` when upgrading the SDK.
    @override
    @classmethod
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """``--test``: the SDK's connection test, then log out."""
        if value == CliTestOptionValue.Disabled.value:
            return
        config: _ConfigInput = ctx.params.get("config", _ConfigInput())
        with exit_on_invalid_config(cls.logger):
            tap = cls(config=config.config, parse_env_config=config.parse_env)
        try:
            if value == CliTestOptionValue.Schema.value:
                tap.write_schemas()
            else:
                tap.run_connection_test()
        finally:
            try:
                tap.output.close()
            finally:
                tap.connection.close()
        ctx.exit()

    @override
    @classmethod
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: _ConfigInput | None = None,
        state: t.IO[str] | None = None,
        catalog: t.IO[str] | None = None,
    ) -> None:
        """The SDK's sync command, but through :meth:`run` so the session is logged out."""
        super(Tap, cls).invoke(about=about, about_format=about_format)
        cls.print_version(print_fn=cls.logger.info)
        config = config or _ConfigInput()
        with exit_on_invalid_config(cls.logger):
            tap = cls(
                config=config.config,
                state=None if state is None else load_json(state.read()),
                catalog=None if catalog is None else load_json(catalog.read()),
                parse_env_config=config.parse_env,
            )
        tap.run()


if __name__ == "__main__":
    TapTradecloud.cli()
