"""ConfigError -> <rpc-error> XML (RFC 6241 §4.3), the one place errors are rendered.

The config core already decides error-tag, error-type, error-app-tag,
error-path and error-info; this module only writes them down.  error-path
uses module prefixes, so the prefixes it uses are declared on the
<error-path> element itself (RFC 6241 §4.3: "the prefixes ... are bound
in the context of the error-path element").
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from lxml import etree

from nf.config.codec import NC_NS
from nf.config.errors import ConfigError
from nf.schema import SchemaIndex

YANG_NS = "urn:ietf:params:xml:ns:yang:1"
"""Namespace of RFC 7950 §15 error-info elements such as <non-unique>."""

_PREFIX = re.compile(r"([A-Za-z_][\w.-]*):[A-Za-z_]")
_YANG_INFO = frozenset({"non-unique", "missing-choice"})


def _nc(name: str) -> str:
    return f"{{{NC_NS}}}{name}"


def _declare_prefixes(elem: etree._Element, path: str, schema: SchemaIndex) -> etree._Element:
    """Return ``elem`` re-created with xmlns declarations for the path's prefixes."""
    by_prefix = {prefix: ns for ns, prefix in schema.prefixes.items()}
    nsmap = {p: by_prefix[p] for p in dict.fromkeys(_PREFIX.findall(path)) if p in by_prefix}
    if not nsmap:
        return elem
    parent = elem.getparent()
    fresh = etree.Element(elem.tag, nsmap=nsmap)
    fresh.text = elem.text
    if parent is not None:
        parent.replace(elem, fresh)
    return fresh


def rpc_error(error: ConfigError, schema: SchemaIndex) -> etree._Element:
    """One <rpc-error> element."""
    elem = etree.Element(_nc("rpc-error"))
    etree.SubElement(elem, _nc("error-type")).text = error.type
    etree.SubElement(elem, _nc("error-tag")).text = error.tag
    etree.SubElement(elem, _nc("error-severity")).text = "error"
    if error.app_tag:
        etree.SubElement(elem, _nc("error-app-tag")).text = error.app_tag
    if error.path:
        path_elem = etree.SubElement(elem, _nc("error-path"))
        path_elem.text = error.path
        _declare_prefixes(path_elem, error.path, schema)
    message = etree.SubElement(elem, _nc("error-message"))
    message.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    message.text = error.message
    if error.info:
        info = etree.SubElement(elem, _nc("error-info"))
        for name, text in error.info:
            tag = f"{{{YANG_NS}}}{name}" if name in _YANG_INFO else _nc(name)
            child = etree.SubElement(info, tag)
            child.text = text
            if name == "non-unique":
                _declare_prefixes(child, text, schema)
    return elem


def rpc_errors(errors: Iterable[ConfigError], schema: SchemaIndex) -> list[etree._Element]:
    return [rpc_error(e, schema) for e in errors]
