"""JSON schemas of the tap's streams."""
