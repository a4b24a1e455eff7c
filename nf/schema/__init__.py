"""Schema layer: the YANG module compiled by pyang into a lookup index."""

from nf.schema.index import (
    MAIN_MODULE,
    YANG_DIR,
    Choice,
    ModuleInfo,
    Must,
    QName,
    SchemaError,
    SchemaIndex,
    SchemaNode,
    default_schema,
    load,
)
from nf.schema.types import LeafType
from nf.schema.xpath import XPathExpr

__all__ = [
    "MAIN_MODULE",
    "YANG_DIR",
    "Choice",
    "LeafType",
    "ModuleInfo",
    "Must",
    "QName",
    "SchemaError",
    "SchemaIndex",
    "SchemaNode",
    "XPathExpr",
    "default_schema",
    "load",
]
