"""The throughput baseline: the least a correct client must do to extract every order.

Log in, page ``POST /order-search/search`` with a sliding window on the inclusive
``lastUpdatedSince`` (offset only skips the orders already read at the anchor timestamp),
write one Singer RECORD line per order with ``json.dumps``, log out.

    python bench/baseline_client.py API_URL USERNAME START > /dev/null   # password: $PASSWORD
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import typing as t

import requests

PAGE_SIZE = 100


def main(api_url: str, username: str, since: str) -> None:
    session = requests.Session()
    login = session.get(
        f"{api_url}/authentication/login", auth=(username, os.environ["PASSWORD"]), timeout=60
    )
    login.raise_for_status()
    session.headers["Authorization"] = f"Bearer {login.headers['Set-Authorization']}"
    at_anchor = 0
    write = sys.stdout.write
    while True:
        body: dict[str, t.Any] = {
            "filters": {"lastUpdatedSince": since},
            "offset": at_anchor,
            "limit": PAGE_SIZE,
        }
        response = session.post(f"{api_url}/order-search/search", json=body, timeout=60)
        response.raise_for_status()
        orders = json.loads(response.content)["data"]
        extracted = dt.datetime.now(dt.timezone.utc).isoformat()
        for order in orders:
            if order["lastUpdatedAt"] != since:
                since, at_anchor = order["lastUpdatedAt"], 0
            at_anchor += 1
            message = {"type": "RECORD", "stream": "orders", "record": order}
            write(json.dumps({**message, "time_extracted": extracted}) + "\n")
        if len(orders) < PAGE_SIZE:
            break
    session.post(
        f"{api_url}/authentication/logout",
        headers={"Refresh-Token": login.headers["Set-Refresh-Token"]},
        timeout=60,
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
