"""JSON schemas of the tap's streams: ``<stream key>.json`` beside this file."""

from importlib import resources

from singer_sdk import SchemaDirectory

#: Where every stream reads its schema: ``StreamSchema(SCHEMAS, key="order")``.
SCHEMAS = SchemaDirectory(resources.files(__name__))
