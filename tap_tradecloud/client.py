"""The base stream for Tradecloud's REST API: URL, auth, throttle, retries, error messages."""

from __future__ import annotations

import decimal
import json
import typing as t
from http import HTTPStatus
from urllib.parse import quote, urlparse

import msgspec
from singer_sdk import RESTStream
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError

from tap_tradecloud.compat import override
from tap_tradecloud.retry import is_retriable_status

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import requests
    from singer_sdk.authenticators import BasicAuthenticator

    from tap_tradecloud.auth import TradecloudLoginAuth
    from tap_tradecloud.connection import TradecloudConnection


class NotFoundError(FatalAPIError):
    """Tradecloud answered 404."""


# msgspec parses a page of orders several times faster than requests' JSON decoder.
_JSON_DECODER = msgspec.json.Decoder(float_hook=decimal.Decimal)


def page_json(response: requests.Response) -> dict[str, t.Any]:
    """The response body as JSON, numbers with decimals as :class:`~decimal.Decimal`."""
    try:
        body = _JSON_DECODER.decode(response.content)
    except ValueError as error:
        msg = (
            f"{response.request.method} {urlparse(response.url).path} answered HTTP "
            f"{response.status_code} with a body that is not JSON ({response.text[:200]!r}): "
            "check that api_url is the Tradecloud API base URL ending in /v2."
        )
        raise FatalAPIError(msg) from error
    if not isinstance(body, dict):
        msg = (
            f"{response.request.method} {urlparse(response.url).path} answered a JSON "
            f"{type(body).__name__} where Tradecloud sends an object."
        )
        raise FatalAPIError(msg)
    return body


class TradecloudStream(RESTStream[t.Any]):
    """A Tradecloud API stream. All streams of a tap share one :class:`TradecloudConnection`."""

    http_method = "POST"
    records_jsonpath = "$.data[*]"

    @property
    def connection(self) -> TradecloudConnection:
        """The tap's shared connection (session, throttle, authenticator, retry policy)."""
        return t.cast("TradecloudConnection", self._tap.connection)  # type: ignore[attr-defined]

    @override
    @property
    def url_base(self) -> str:
        """The ``api_url`` setting (``.../v2``)."""
        return self.connection.api_url

    @override
    @property
    def requests_session(self) -> requests.Session:
        """The tap's shared, throttled session."""
        return self.connection.session

    @override
    @property
    def authenticator(self) -> TradecloudLoginAuth | BasicAuthenticator:
        """The tap's shared authenticator (one login per run)."""
        return self.connection.authenticator

    @override
    @property
    def timeout(self) -> int:
        """Seconds to wait for an answer (``request_timeout_seconds``)."""
        return self.connection.timeout

    @override
    def request_decorator(self, func: Callable[..., t.Any]) -> Callable[..., t.Any]:
        """Retry under the connection's policy (honours ``Retry-After``, bounded tries)."""
        return self.connection.retry_policy.wrap(func, self.logger)

    @override
    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        """The ``data`` array of a Tradecloud list answer."""
        return t.cast("list[dict]", page_json(response).get("data") or [])

    @override
    def validate_response(self, response: requests.Response) -> None:
        """Retry 429/5xx; fail other 4xx at once with a message that says what to fix."""
        status = response.status_code
        if is_retriable_status(status):
            raise RetriableAPIError(self.response_error_message(response), response)
        if status == HTTPStatus.NOT_FOUND:
            raise NotFoundError(self.response_error_message(response))
        if status >= HTTPStatus.BAD_REQUEST:
            raise FatalAPIError(self.response_error_message(response))

    @override
    def response_error_message(self, response: requests.Response) -> str:
        """What failed and what to do about it; never a credential or token."""
        request = response.request
        where = f"{request.method} {urlparse(response.url).path}"
        status = f"HTTP {response.status_code} {response.reason}"
        answer = response.text[:1000]
        if response.status_code == HTTPStatus.UNAUTHORIZED:
            return (
                f"Tradecloud refused the credentials for {where} ({status}): check the "
                "username and password settings and that the user has Tradecloud's "
                "`integration` role; with auth_method=basic, note that Tradecloud accepts "
                "Basic only on a few endpoints (use auth_method=login)."
            )
        if response.status_code == HTTPStatus.FORBIDDEN:
            return (
                f"Tradecloud forbids {where} ({status}): the integration user lacks the rights "
                f"for this data (check company_id and the user's roles). Answer: {answer}"
            )
        if response.status_code == HTTPStatus.NOT_FOUND:
            return (
                f"Tradecloud has no {where} ({status}): check that api_url ({self.url_base}) "
                "is a Tradecloud API base URL ending in /v2."
            )
        if response.status_code == HTTPStatus.BAD_REQUEST:
            return (
                f"Tradecloud refused the request {where} ({status}). Body sent: "
                f"{_body_text(request)}. Answer: {answer}"
            )
        return f"{where} failed with {status}. Answer: {answer}"

    def fetch_order(self, order_id: str) -> dict | None:
        """``GET /order/{orderId}``: the whole order, or None if Tradecloud has no such order."""
        prepared = self.build_prepared_request(
            method="GET",
            url=f"{self.url_base}/order/{quote(order_id, safe='')}",
            headers=self.http_headers,
        )
        try:
            response = self.request_decorator(self._request)(prepared, None)
        except NotFoundError:
            return None
        return page_json(response)


def _body_text(request: requests.PreparedRequest) -> str:
    body = request.body
    if body is None:
        return "(none)"
    text = body.decode() if isinstance(body, bytes) else str(body)
    try:
        return json.dumps(json.loads(text), sort_keys=True)
    except ValueError:
        return text[:1000]
