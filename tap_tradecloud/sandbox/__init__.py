"""An offline Tradecloud: the same API and the same webhooks, on localhost.

For tests, demos and benchmarks only; the tap never imports it.
"""

from tap_tradecloud.sandbox.core import RequestRecord, SandboxConfig
from tap_tradecloud.sandbox.data import generate_orders
from tap_tradecloud.sandbox.ports import free_port
from tap_tradecloud.sandbox.server import SandboxServer
from tap_tradecloud.sandbox.shipments import generate_shipments
from tap_tradecloud.sandbox.webhook_sender import WebhookDelivery

__all__ = [
    "RequestRecord",
    "SandboxConfig",
    "SandboxServer",
    "WebhookDelivery",
    "free_port",
    "generate_orders",
    "generate_shipments",
]
