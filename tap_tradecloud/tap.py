"""The tap: its settings, its streams and the ``tap-tradecloud`` command line."""

from __future__ import annotations

from singer_sdk import Tap
from singer_sdk import typing as th

PRODUCTION_API_URL = "https://api.tradecloud1.com/v2"
PROCESS_STATUSES = ["Issued", "InProgress", "Confirmed", "Rejected", "Completed", "Cancelled"]
LOGISTICS_STATUSES = ["Open", "Produced", "ReadyToShip", "Shipped", "Delivered", "Cancelled"]


class TapTradecloud(Tap):
    """Singer tap for Tradecloud orders."""

    name = "tap-tradecloud"

    config_jsonschema = th.PropertiesList(
        th.Property(
            "api_url",
            th.URIType,
            default=PRODUCTION_API_URL,
            description=(
                "Base URL of the Tradecloud API, including `/v2`. Production: "
                "`https://api.tradecloud1.com/v2`; acceptance: `https://api.accp.tradecloud1.com/v2`; "
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
                "on few endpoints)."
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
            default="search",
            allowed_values=["search", "poll"],
            description=(
                "`search`: `POST /order-search/search` with the inclusive `lastUpdatedSince` filter. "
                "`poll`: `POST /order-search/poll` with the exclusive `lastUpdatedAfter` filter."
            ),
        ),
        th.Property(
            "company_id",
            th.StringType,
            description="Only orders of this Tradecloud company id (for users with several companies).",
        ),
        th.Property(
            "process_status",
            th.ArrayType(th.StringType),
            description=f"Only orders in these process statuses: {', '.join(PROCESS_STATUSES)}.",
        ),
        th.Property(
            "logistics_status",
            th.ArrayType(th.StringType),
            description=f"Only orders in these logistics statuses: {', '.join(LOGISTICS_STATUSES)}.",
        ),
        th.Property(
            "page_size",
            th.IntegerType,
            default=100,
            description="Orders per request, 1 to 100 (Tradecloud's maximum).",
        ),
        th.Property(
            "max_requests_per_second",
            th.NumberType,
            default=10,
            description="Upper bound on requests per second to Tradecloud (Tradecloud's rule: 10).",
        ),
        th.Property(
            "spool_dir",
            th.StringType,
            description=(
                "Spool folder written by `tap-tradecloud-webhook`. When set, the `webhook_events` "
                "stream reads it; when unset, that stream is not offered."
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

    def discover_streams(self) -> list:
        """Return the tap's streams."""
        return []


if __name__ == "__main__":
    TapTradecloud.cli()
