"""Run the tap as ``python -m tap_tradecloud``."""

from tap_tradecloud.tap import TapTradecloud

TapTradecloud.cli()
