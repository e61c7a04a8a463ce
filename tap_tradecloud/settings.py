"""Setting checks that the JSON schema cannot express; each message names its setting."""

from __future__ import annotations

import typing as t
from urllib.parse import urlparse

from tap_tradecloud.timestamps import parse_utc

if t.TYPE_CHECKING:
    from collections.abc import Mapping


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
    if config.get("batch_config"):
        errors.append(
            "batch_config is not supported: tap-tradecloud writes RECORD messages only "
            "(see the README, 'Use with Meltano'). Remove batch_config from the tap's settings."
        )
    for setting in ("username", "password"):
        if setting in config and not str(config[setting]).strip():
            errors.append(f"{setting} must not be empty.")
    return errors
