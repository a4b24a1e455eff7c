"""ConfigError -> <rpc-error> XML (RFC 6241 §4.3), the one place errors are rendered.

The config core already decides error-tag, error-type, error-app-tag,
error-path and error-info; this module only writes them down.  error-path
uses module prefixes, so the prefixes it uses are declared on the
<error-path> element itself (RFC 6241 §4.3: "the prefixes ... are bound
in the context of the error-path element").
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable

from lxml import etree

from nf.config.codec import NC_NS
from nf.config.errors import MAX_ERRORS, ConfigError
from nf.schema import SchemaIndex

YANG_NS = "urn:ietf:params:xml:ns:yang:1"
"""Namespace of RFC 7950 §15 error-info elements such as <non-unique>."""

_PREFIX = re.compile(r"(?<![\w.-])([A-Za-z_][\w.-]*):(?=[A-Za-z_])")
"""A module prefix in a path: a name that starts a step.  The lookbehind
makes a match start only where a run of name characters starts, so the scan
is linear; without it a long value ("yyy...y") was tried from every one of its
characters, quadratic in its length (1 MB froze the daemon for hours)."""
_YANG_INFO = frozenset({"non-unique", "missing-choice"})
MAX_TEXT = 1024
"""Characters of an error-message or error-info value in a reply."""
MAX_PATH = 4096
"""Characters of an error-path; longer ones have their quoted values cut."""
_LITERAL = re.compile(r"'([^']*)'|\"([^\"]*)\"")
_LITERAL_KEEP = 64


def _bounded(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was: a 1 MB
    value must not come back in every error about it."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters, shortened)"


def _bounded_path(path: str) -> str:
    """An error-path of bounded length.  Only key and value literals can make
    a path long (node names are the schema's), so those are cut and marked;
    the path keeps its steps and still names the node for a human."""
    if len(path) <= MAX_PATH:
        return path

    def cut(match: re.Match[str]) -> str:
        quote = match.group(0)[0]
        value = match.group(1) if match.group(1) is not None else match.group(2)
        if len(value) <= _LITERAL_KEEP:
            return match.group(0)
        return f"{quote}{value[:_LITERAL_KEEP]}...{quote}"

    return _bounded(_LITERAL.sub(cut, path), MAX_PATH)


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
        path = _bounded_path(error.path)
        path_elem = etree.SubElement(elem, _nc("error-path"))
        path_elem.text = path
        _declare_prefixes(path_elem, path, schema)
    message = etree.SubElement(elem, _nc("error-message"))
    message.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    message.text = _bounded(error.message)
    if error.info:
        info = etree.SubElement(elem, _nc("error-info"))
        for name, value in error.info:
            tag = f"{{{YANG_NS}}}{name}" if name in _YANG_INFO else _nc(name)
            child = etree.SubElement(info, tag)
            text = _bounded_path(value) if name == "non-unique" else _bounded(value)
            child.text = text
            if name == "non-unique":
                _declare_prefixes(child, text, schema)
    return elem


def rpc_errors(errors: Iterable[ConfigError], schema: SchemaIndex) -> list[etree._Element]:
    """The <rpc-error> elements of a reply: at most MAX_ERRORS of them; when
    there were more, the last one's message says so."""
    shown = list(itertools.islice(errors, MAX_ERRORS + 1))
    more = len(shown) > MAX_ERRORS
    elems = [rpc_error(e, schema) for e in shown[:MAX_ERRORS]]
    if more:
        message = elems[-1].find(_nc("error-message"))
        assert message is not None
        message.text = (
            f"{message.text} (only the first {MAX_ERRORS} errors are reported; there are more)"
        )
    return elems
