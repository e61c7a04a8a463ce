"""Singer tap for Tradecloud orders."""
