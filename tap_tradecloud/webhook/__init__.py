"""The webhook receiver: ``tap-tradecloud-webhook`` (aiohttp app in ``app``, CLI in ``cli``)."""
