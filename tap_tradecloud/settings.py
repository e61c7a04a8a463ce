"""Setting checks that the JSON schema cannot express, and how bad settings are reported."""

from __future__ import annotations

import contextlib
import typing as t
from urllib.parse import urlparse

import click
from singer_sdk.exceptions import ConfigValidationError

from tap_tradecloud.timestamps import parse_utc

BASIC_AUTH_ENDPOINTS = "order-search/poll, shipment/poll, api-connector and object-storage/document"

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Iterator, Mapping


def setting_errors(config: Mapping[str, t.Any]) -> list[str]:
    """Problems with ``config``, one sentence each, saying which setting and how to fix it."""
    errors: list[str] = []
    api_url = str(config.get("api_url", ""))
    parsed = urlparse(api_url)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        errors.append(
            f"api_url must be an http(s) URL such as https://api.tradecloud1.com/v2, "
            f"not {api_url!r}."
        )
    if start_date := config.get("start_date"):
        try:
            parse_utc(str(start_date))
        except ValueError as error:
            errors.append(f"start_date: {error} (for example 2024-01-01T00:00:00Z).")
    for setting in ("username", "password"):
        if setting in config and not str(config[setting]).strip():
            errors.append(f"{setting} must not be empty.")
    errors.extend(_basic_auth_errors(config))
    return errors


def _basic_auth_errors(config: Mapping[str, t.Any]) -> list[str]:
    """Tradecloud accepts Basic credentials only on a few endpoints; refuse the others up front."""
    if config.get("auth_method") != "basic":
        return []
    if config.get("polling_api") == "search":
        return [
            "auth_method=basic does not work with polling_api=search: Tradecloud accepts Basic "
            f"authentication only on {BASIC_AUTH_ENDPOINTS}. Set polling_api=poll, or "
            "auth_method=login."
        ]
    return []


@contextlib.contextmanager
def exit_on_invalid_config(logger: logging.Logger) -> Iterator[None]:
    """Report bad settings in one line that names each setting and its rule, then exit 1.

    Left to the SDK's command line, a ``ConfigValidationError`` ends with a "Config validation
    failed" line that carries the whole settings schema (9.7 KB as JSON), and ``meltano config
    test`` shows only that last line.
    """
    try:
        yield
    except ConfigValidationError as error:
        logger.error("Invalid configuration: %s", "; ".join(error.errors) or error)  # noqa: TRY400
        raise click.exceptions.Exit(1) from None
