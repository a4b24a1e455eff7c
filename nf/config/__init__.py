"""The config core: pure functions over immutable data trees (no I/O)."""

from nf.config.codec import load_document, parse, parse_xml, render, to_string
from nf.config.errors import ConfigError, EditError
from nf.config.tree import EMPTY, LeafList, ListNode, Node
from nf.config.validate import complete, validate

__all__ = [
    "EMPTY",
    "ConfigError",
    "EditError",
    "LeafList",
    "ListNode",
    "Node",
    "complete",
    "load_document",
    "parse",
    "parse_xml",
    "render",
    "to_string",
    "validate",
]
