"""XML <-> data tree, namespace-aware and driven by the schema index.

``parse`` reads the children of a holder element (a NETCONF ``<config>`` or
``<data>``) into a tree and reports structural errors (unknown elements and
namespaces, state data in configuration, missing or duplicate keys) as
``ConfigError`` values rather than raising, so that offline validation can
print every problem at once.  Values are not type-checked here; that is
``validate``'s job, which reports them with their instance paths.

``render`` writes a tree back as XML in schema order (keys first, as RFC
7950 §7.8.5 requires), so parse-render is the identity on canonical input.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from lxml import etree

from nf.config.errors import MAX_ERRORS, ConfigError
from nf.config.tree import Child, Key, LeafList, ListNode, Node, key_of, quote, step
from nf.runtime.document import DocumentPatch, ListPatch, Segment
from nf.schema import QName, SchemaIndex, SchemaNode

if TYPE_CHECKING:
    from nf.config.diff import Change

NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
WD_NS = "urn:ietf:params:xml:ns:netconf:default:1.0"
"""RFC 6243 namespace of the ``default`` attribute (report-all-tagged)."""
WD_DEFAULT = f"{{{WD_NS}}}default"

MAX_XML_BYTES = 16 * 1024 * 1024


def xml_parser() -> etree.XMLParser:
    """A parser that never expands entities, loads DTDs or touches the network.

    This is what stops billion-laughs and external-entity attacks: entity
    references stay unexpanded and DTDs are not loaded.
    """
    return etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


_parsers = threading.local()


def _thread_parser() -> etree.XMLParser:
    """This thread's ``xml_parser()``, made once: a fresh parser made each
    parse its libxml2 context again, 4 of a small rpc's 11 us.  One per
    thread, as lxml's parsers are not to be shared between threads."""
    parser: etree.XMLParser | None = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = xml_parser()
    return parser


MAX_ELEMENTS = 1_000_000
"""Elements of one document (a 10 000-channel configuration has about
150 000): with the byte bound, what keeps every later linear pass bounded."""
MAX_ATTRIBUTES = 1_000_000
"""Attributes of one document, for the same reason."""


class TooBig(ValueError):
    """A document over one of the bounds (NETCONF error-tag too-big)."""


def parse_xml(data: bytes | str) -> etree._Element:
    """Parse XML text safely; raises etree.XMLSyntaxError or ValueError
    (TooBig for a document over the size, element or attribute bounds).

    libxml2 itself refuses nesting deeper than 256 and a text node over
    10 MB (``huge_tree=False``).  Whitespace before the XML declaration is
    dropped: strictly the declaration must come first, but NETCONF clients
    send a newline ahead of it (scrapli-netconf does in every hello and
    rpc), and whitespace outside the root element carries no meaning.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_XML_BYTES:
        raise TooBig(f"XML document larger than {MAX_XML_BYTES} bytes")
    root = etree.fromstring(raw.lstrip(b" \t\r\n"), parser=_thread_parser())
    if root.getroottree().docinfo.internalDTD is not None:
        raise ValueError("XML documents with a DTD are not accepted")
    # counted by libxml2 in C, linear; but an element takes 4 bytes at
    # least (<a/>), an attribute 5 ( a=""), and nothing expands (entities
    # stay references, no DTD): a shorter document is within the bounds
    # uncounted (the two counts were a tenth of a small rpc's own work)
    if len(raw) >= 4 * MAX_ELEMENTS:
        elements = int(cast(float, root.xpath("count(//*)")))
        if elements > MAX_ELEMENTS:
            raise TooBig(
                f"XML document has {elements} elements; at most {MAX_ELEMENTS} are accepted"
            )
    if len(raw) >= 5 * MAX_ATTRIBUTES:
        attributes = int(cast(float, root.xpath("count(//@*)")))
        if attributes > MAX_ATTRIBUTES:
            raise TooBig(
                f"XML document has {attributes} attributes; at most {MAX_ATTRIBUTES} are accepted"
            )
    return root


@functools.lru_cache(maxsize=4096)
def split_tag(tag: str) -> QName:
    """``{ns}name`` as (ns, name).  Cached: a document repeats a few dozen
    tags, and every reader of XML (parse, edit, filters) splits each
    element's tag, a hundred thousand times for a large request."""
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return (ns, name)
    return ("", tag)


def report_unknown(
    schema: SchemaIndex, elem: etree._Element, parent_path: str, errors: list[ConfigError]
) -> None:
    ns, name = split_tag(elem.tag)
    if schema.module_by_namespace(ns) is None:
        errors.append(
            ConfigError(
                "unknown-namespace",
                f'unknown namespace "{ns}" of element "{name}"'
                if ns
                else f'element "{name}" has no namespace',
                path=parent_path or "/",
                type="protocol",
                info=(("bad-element", name), ("bad-namespace", ns)),
            )
        )
    else:
        errors.append(
            ConfigError(
                "unknown-element",
                f'unknown element "{name}"',
                path=parent_path or "/",
                type="application",
                info=(("bad-element", name),),
            )
        )


_VALUE_PREFIX = re.compile(r"'[^']*'|\"[^\"]*\"|(?<![\w.:-])([A-Za-z_][\w.-]*):(?=[A-Za-z_*])")


def leaf_value(sn: SchemaNode, elem: etree._Element, schema: SchemaIndex) -> str:
    """The canonical value of a leaf element.  In a value that names schema
    nodes (identityref, instance-identifier, xpath1.0) the prefixes are the
    sender's XML prefixes; they become the modules' own prefixes, which
    render() declares again, so the value keeps its meaning once stored."""
    assert sn.type is not None
    value = sn.type.canonical(elem.text or "")
    if not sn.type.prefixed or ":" not in value:
        return value
    rename = {
        str(p): schema.prefixes[ns]
        for p, ns in elem.nsmap.items()
        if p is not None and ns in schema.prefixes
    }
    if not rename:
        return value

    def sub(match: re.Match[str]) -> str:
        prefix = match.group(1)
        if prefix is None or prefix not in rename:
            return match.group(0)
        return rename[prefix] + ":"

    return _VALUE_PREFIX.sub(sub, value)


def parse(
    holder: etree._Element,
    schema: SchemaIndex,
    *,
    allow_state: bool = False,
) -> tuple[Node, list[ConfigError]]:
    """Read the children of ``holder`` as top-level data nodes."""
    errors: list[ConfigError] = []
    node = parse_children(holder, schema.root, "", schema, allow_state, errors)
    return node, errors


def _given_twice(sn: SchemaNode, path: str) -> ConfigError:
    """A leaf or container that may appear once appeared again."""
    return ConfigError(
        "bad-element",
        f'{sn.keyword} "{sn.name}" given more than once',
        path=path,
        type="protocol",
        info=(("bad-element", sn.name),),
    )


def parse_children(
    elem: etree._Element,
    snode: SchemaNode,
    path: str,
    schema: SchemaIndex,
    allow_state: bool,
    errors: list[ConfigError],
) -> Node:
    children: dict[QName, Child] = {}
    # lists and leaf-lists are gathered here and made nodes at the end: one
    # copy per entry made a message of n entries cost n^2
    values_of: dict[QName, dict[str, None]] = {}
    entries_of: dict[QName, dict[Key, Node]] = {}
    for child in elem:
        if not isinstance(child.tag, str):
            continue
        if len(errors) > MAX_ERRORS:
            break  # enough to report; the document is refused anyway
        qname = split_tag(child.tag)
        sn = snode.children.get(qname)
        if sn is None or sn.keyword in ("input", "output", "action"):
            report_unknown(schema, child, path, errors)
            continue
        if not sn.config and not allow_state:
            errors.append(
                ConfigError(
                    "invalid-value",
                    f'"{sn.name}" is state data (config false) and cannot be configured',
                    path=path + step(sn),
                    info=(("bad-element", sn.name),),
                )
            )
            continue
        if sn.keyword in ("leaf", "leaf-list"):
            if len(child):
                errors.append(
                    ConfigError(
                        "invalid-value",
                        f'leaf "{sn.name}" cannot have child elements',
                        path=path + step(sn),
                        info=(("bad-element", sn.name),),
                    )
                )
                continue
            value = leaf_value(sn, child, schema)
            if sn.keyword == "leaf":
                if qname in children:
                    errors.append(_given_twice(sn, path + step(sn)))
                    continue
                children[qname] = value
            else:
                values = values_of.get(qname)
                if values is None:
                    values = values_of[qname] = {}
                    children[qname] = LeafList((), sn.user_ordered)  # its place; filled below
                if value in values:
                    errors.append(
                        ConfigError(
                            "invalid-value",
                            f'duplicate value "{value}" in leaf-list "{sn.name}"',
                            path=f"{path}{step(sn)}[.={quote(value)}]",
                            info=(("bad-element", sn.name),),
                        )
                    )
                    continue
                values[value] = None
        elif sn.keyword == "container":
            child_path = path + step(sn)
            if qname in children:
                errors.append(_given_twice(sn, child_path))
                continue
            inner = parse_children(child, sn, child_path, schema, allow_state, errors)
            if len(inner) or sn.presence:  # an empty non-presence container is none
                children[qname] = inner
        elif sn.keyword == "list":
            # the entry's path only matters in an error: it is computed (the
            # entry read again with it) only if reading the entry found one
            mark = len(errors)
            entry = parse_children(child, sn, "", schema, allow_state, errors)
            if len(errors) > mark:
                del errors[mark:]
                xml_key = xml_key_of(child, sn)
                entry_path = path + step(sn, xml_key) if xml_key is not None else path + step(sn)
                entry = parse_children(child, sn, entry_path, schema, allow_state, errors)
            missing = [k for k in sn.keys if not isinstance(entry.get(k), str)]
            if missing:
                child_path = path + step(sn)
                for _ns, kname in missing:
                    errors.append(
                        ConfigError(
                            "missing-element",
                            f'list entry "{sn.name}" lacks its key "{kname}"',
                            path=child_path,
                            info=(("bad-element", kname),),
                        )
                    )
                continue
            key = key_of(entry, sn)
            entries = entries_of.get(qname)
            if entries is None:
                entries = entries_of[qname] = {}
                children[qname] = ListNode(ordered=sn.user_ordered)  # its place; filled below
            if key in entries:
                errors.append(
                    ConfigError(
                        "operation-failed",
                        f'duplicate entry of list "{sn.name}"',
                        path=path + step(sn, key),
                        info=(("bad-element", sn.name),),
                    )
                )
                continue
            entries[key] = entry
        else:  # anydata/anyxml: not used by our modules; kept verbatim as text
            children[qname] = etree.tostring(child, encoding="unicode")
    for qname, gathered in values_of.items():
        children[qname] = LeafList(tuple(gathered), snode.children[qname].user_ordered)
    for qname, listed in entries_of.items():
        if listed:
            children[qname] = ListNode(listed, snode.children[qname].user_ordered)
        else:
            del children[qname]
    return Node(children)


def xml_key_of(elem: etree._Element, sn: SchemaNode) -> tuple[str, ...] | None:
    """Canonical key values of a list entry element, None if a key is missing."""
    values: list[str] = []
    for kq in sn.keys:
        key_elem = elem.find(f"{{{kq[0]}}}{kq[1]}")
        key_type = sn.children[kq].type
        if key_elem is None or key_type is None:
            return None
        values.append(key_type.canonical(key_elem.text or ""))
    return tuple(values)


def load_document(data: bytes | str | Path, schema: SchemaIndex) -> tuple[Node, list[ConfigError]]:
    """Read a configuration file: a top-level data element, or a NETCONF
    ``<config>``/``<data>`` wrapper around top-level data elements."""
    raw = data.read_bytes() if isinstance(data, Path) else data
    root = parse_xml(raw)
    ns, name = split_tag(root.tag)
    if name in ("config", "data") and ns in ("", NC_NS):
        return parse(root, schema)
    holder = etree.Element("data")
    holder.append(root)
    return parse(holder, schema)


Rendered = dict[int, tuple[Node, bytes]]
"""id(entry) -> (the entry, its XML): list entries of top-level containers
rendered alone, as ``Documents`` wants them (the entry is kept: an id is
only that entry's while it lives)."""


def render(
    tree: Node,
    schema: SchemaIndex,
    holder: etree._Element | None = None,
    kept: Rendered | None = None,
) -> etree._Element:
    """Write ``tree`` under ``holder`` (a new NETCONF ``<data>`` if None).

    ``kept``: also record there the XML of each entry of a list of a
    top-level container, each rendered alone (``render_entry``) and then
    put in place: ``Documents`` takes it instead of rendering the entry
    again (a boot of 10 000 channels rendered them twice)."""
    if holder is None:
        holder = etree.Element(f"{{{NC_NS}}}data", nsmap=_default_ns(NC_NS))
    prefixes = {prefix: ns for ns, prefix in schema.prefixes.items()}
    _render_children(tree, schema.root, holder, "", prefixes, kept)
    return holder


def render_entry(entry: Node, sn: SchemaNode, prefixes: dict[str, str]) -> etree._Element:
    """One list entry as an element of its own (its namespace declared on
    it): what ``Documents`` caches and what incremental validation puts in
    place of a changed entry.  ``prefixes``: prefix -> namespace."""
    ns, name = sn.qname
    elem = etree.Element(f"{{{ns}}}{name}", nsmap=_default_ns(ns))
    _render_children(entry, sn, elem, ns, prefixes)
    return elem


def _render_children(
    node: Node,
    snode: SchemaNode,
    elem: etree._Element,
    parent_ns: str,
    prefixes: dict[str, str],
    kept: Rendered | None = None,
) -> None:
    """``kept``: see ``render`` (given for the root and top-level containers)."""
    for qname, sn in ordered_children(snode):
        child = node.get(qname)
        if child is None:
            continue
        ns, name = qname
        nsmap = _default_ns(ns) if ns != parent_ns else None
        tag = f"{{{ns}}}{name}"
        if isinstance(child, str | LeafList):
            values = (child,) if isinstance(child, str) else child.values
            if sn.type is not None and sn.type.prefixed:
                for value in values:
                    nsmap_of = _value_nsmap(sn, value, nsmap, prefixes)
                    etree.SubElement(elem, tag, nsmap=nsmap_of).text = value
            else:  # the common case, a leaf-list of 100 000 values at worst
                sub_element = etree.SubElement
                for value in values:
                    sub_element(elem, tag, nsmap=nsmap).text = value
        elif isinstance(child, Node):
            sub = etree.SubElement(elem, tag, nsmap=nsmap)
            _render_children(child, sn, sub, ns, prefixes, kept if snode.parent is None else None)
        elif isinstance(child, ListNode):
            if kept is not None and snode.parent is not None:  # a top-level container's
                for _key, entry in child.items():
                    alone = render_entry(entry, sn, prefixes)
                    kept[id(entry)] = (entry, etree.tostring(alone))
                    elem.append(alone)
                continue
            for _key, entry in child.items():
                sub = etree.SubElement(elem, tag, nsmap=nsmap)
                _render_children(entry, sn, sub, ns, prefixes)


class Documents:
    """Whole configurations as XML documents, each in time proportional to
    what changed since the one before (plus a join of cached bytes).

    The data plane keeps the running configuration as a document, so every
    commit hands it one.  Rendering all of it each time would make a
    one-leaf commit cost as much as the configuration is big; but trees
    are persistent (an edit shares every unchanged subtree with the tree
    before it), so the XML of each list entry of a top-level container (a
    channel, a serial port, an access-control rule list) is kept, per list
    in the list's order, and only entries that are new objects are
    rendered.  Given the change from the tree rendered last (``old`` and
    its ``diff``), a list is patched: only its changed entries are looked
    at, in Python; the rest is one join of bytes.  Without it, or when the
    patched order is not the list's (a user-ordered list moved), the list
    is walked and unchanged entries (same object) reuse their bytes.
    Everything else (a top-level leaf, a container without lists) is small
    and rendered each time.  The result reads back with ``load_document``
    as the tree (tests/test_codec_documents.py)."""

    def __init__(self, schema: SchemaIndex) -> None:
        self.schema = schema
        self._prefixes = {prefix: ns for ns, prefix in schema.prefixes.items()}
        self._lists: dict[tuple[QName, QName], ListBytes] = {}
        self.rendered = 0
        """Entries rendered so far (the others came from the cache)."""
        self.visited = 0
        """Entries looked at in Python so far: the work of a render that
        does not follow the change shows here (tests count it)."""
        self._given: Rendered = {}
        """Entries rendered elsewhere, during ``patch``."""

    def render(self, tree: Node, old: Node | None = None, changes: Sequence[Change] = ()) -> bytes:
        """``tree`` as a ``<config>`` document.  ``old`` and ``changes``
        (``nf.config.diff.diff(old, tree)``), when given, let the lists be
        patched rather than walked."""
        return b"".join(self.pieces(tree, old, changes))

    def pieces(
        self, tree: Node, old: Node | None = None, changes: Sequence[Change] = ()
    ) -> list[bytes]:
        """``render``'s document in pieces, not joined: ``WholeGet`` wants
        only the lists (``lists``), and joining 1000 channels' bytes that
        it then drops cost a <get> 0.4 ms."""
        out: list[bytes] = []
        kept: dict[tuple[QName, QName], ListBytes] = {}
        for piece in self._layout(tree, old):
            if isinstance(piece, bytes):
                out.append(piece)
                continue
            mine = [c for c in changes if c.schema is piece.schema]
            patched = mine if old is not None else None
            done = self._list(piece.schema, piece.entries, piece.old, patched)
            kept[piece.key] = done
            out.append(done.joined)
        self._lists = kept  # lists of older trees are let go
        return out

    def patch(
        self,
        tree: Node,
        version: int,
        old: Node | None = None,
        changes: Sequence[Change] = (),
        base: int | None = None,
        rendered: Rendered | None = None,
    ) -> DocumentPatch:
        """``tree``'s document as a ``DocumentPatch`` (nf.runtime.document):
        of the document of ``old`` (version ``base``), given ``changes``
        (``nf.config.diff.diff(old, tree)``), or whole when ``base`` is
        None.  A partial patch renders only the changed entries: its cost
        follows the change.  A list is sent whole when its order may not be
        the kept one's (its order changed, or it was not derived from
        ``old``'s by edits: ``ListNode.changed_since``).  ``rendered``:
        entries already rendered (by the validation, ``Instance.rendered``),
        taken as they are."""
        self._given = rendered or {}
        try:
            return self._patch(tree, version, old, changes, base)
        finally:
            self._given = {}

    def _patch(
        self,
        tree: Node,
        version: int,
        old: Node | None,
        changes: Sequence[Change],
        base: int | None,
    ) -> DocumentPatch:
        layout: list[Segment] = []
        lists: list[ListPatch] = []
        for piece in self._layout(tree, old):
            if isinstance(piece, bytes):
                layout.append(("", piece))
                continue
            layout.append((piece.name, b""))
            if piece.old is piece.entries and base is not None:
                continue  # unchanged: the kept entries stand
            mine = [c for c in changes if c.schema is piece.schema]
            if (
                base is not None
                and isinstance(piece.old, ListNode)
                and all(c.key != () for c in mine)
                and piece.entries.changed_since(piece.old) is not None
            ):
                entries = tuple(
                    (
                        _piece_key(c.key),
                        None if c.new is None else self._render(c.new, piece.schema),
                    )
                    for c in mine
                )
                lists.append(ListPatch(piece.name, entries))
            else:
                done = self._list(piece.schema, piece.entries, None, None)
                self._lists[piece.key] = done
                whole = tuple((_piece_key(k), v) for k, v in done.parts.items())
                lists.append(ListPatch(piece.name, whole, whole=True))
        return DocumentPatch(version, base, tuple(layout), tuple(lists))

    def _layout(self, tree: Node, old: Node | None) -> Iterator[bytes | _Place]:
        """``tree``'s document in order, as ``render`` and ``patch`` build it:
        literal XML (small: rendered each time), and the place of each list
        of a top-level container, with the same list in ``old``."""
        yield f'<config xmlns="{NC_NS}">'.encode()
        for qname, sn in ordered_children(self.schema.root):
            child = tree.get(qname)
            if child is None:
                continue
            ns, name = qname
            if not (
                isinstance(child, Node)
                and any(isinstance(grandchild, ListNode) for _, grandchild in child.items())
            ):
                yield self._whole(Node({qname: child}), self.schema.root, "")
                continue
            old_top = old.get(qname) if old is not None else None
            yield f'<{name} xmlns="{ns}">'.encode()
            for sub_qname, sub_sn in ordered_children(sn):
                sub = child.get(sub_qname)
                if isinstance(sub, ListNode):
                    yield _Place(
                        (qname, sub_qname),
                        f"{{{ns}}}{name}/{{{sub_qname[0]}}}{sub_qname[1]}",
                        sub_sn,
                        sub,
                        old_top.get(sub_qname) if isinstance(old_top, Node) else None,
                    )
                elif sub is not None:
                    yield self._whole(Node({sub_qname: sub}), sn, ns)
            yield f"</{name}>".encode()
        yield b"</config>"

    def lists(self) -> Mapping[tuple[QName, QName], ListBytes]:
        """The lists of the document rendered last, by (top-level node,
        list): each entry's bytes, in order (``WholeGet`` adds state)."""
        return self._lists

    def _list(
        self, sn: SchemaNode, entries: ListNode, old: object, changes: list[Change] | None
    ) -> ListBytes:
        cached = self._lists.get((sn.parent.qname if sn.parent else ("", ""), sn.qname))
        if cached is not None and cached.entries is entries:
            return cached
        if (
            cached is not None
            and changes is not None
            and old is not None
            and cached.entries is old
            and all(c.key != () for c in changes)
        ):
            patched = dict(cached.parts)
            for change in changes:
                self.visited += 1
                if change.new is None:
                    patched.pop(change.key, None)
                else:
                    patched[change.key] = self._render(change.new, sn)
            if list(patched) == list(entries.keys()):  # in C: no Python work per entry
                return ListBytes(entries, patched, b"".join(patched.values()))
        before = cached.entries if cached is not None else ListNode()
        old_parts = cached.parts if cached is not None else {}
        parts: dict[tuple[str, ...], bytes] = {}
        for key, entry in entries.items():
            self.visited += 1
            if before.get(key) is entry and key in old_parts:
                parts[key] = old_parts[key]
            else:
                parts[key] = self._render(entry, sn)
        return ListBytes(entries, parts, b"".join(parts.values()))

    def _render(self, entry: Node, sn: SchemaNode) -> bytes:
        given = self._given.get(id(entry))
        if given is not None and given[0] is entry:
            return given[1]
        self.rendered += 1
        return etree.tostring(render_entry(entry, sn, self._prefixes))

    def _whole(self, node: Node, parent: SchemaNode, parent_ns: str) -> bytes:
        holder = etree.Element("holder", nsmap=_default_ns(parent_ns) if parent_ns else None)
        _render_children(node, parent, holder, parent_ns, self._prefixes)
        return b"".join(etree.tostring(child) for child in holder)


@dataclass(frozen=True, slots=True)
class _Place:
    """Where a list of a top-level container stands in a document."""

    key: tuple[QName, QName]
    """(top-level node, list): as ``Documents.lists`` names it."""
    name: str
    """As a ``DocumentPatch`` names it."""
    schema: SchemaNode
    entries: ListNode
    old: Child | None
    """The same list in the tree the change is from (None: none)."""


def _piece_key(key: Key) -> str:
    """A list entry's key values as one string (XML text has no NUL)."""
    return "\x00".join(key)


@dataclass(frozen=True)
class ListBytes:
    """One list of a rendered document: the list node it reflects, each
    entry's XML by key in the list's order, and all of them joined."""

    entries: ListNode
    parts: dict[tuple[str, ...], bytes]
    joined: bytes


def _value_nsmap(sn: SchemaNode, value: str, nsmap: Any, prefixes: dict[str, str]) -> Any:
    """A value naming schema nodes ("prefix:identity", "/p:a/p:b") needs its
    prefixes declared (RFC 7950 §9.10.3, §9.13.2)."""
    if sn.type is None or not sn.type.prefixed or ":" not in value:
        return nsmap
    used = {
        m.group(1): prefixes[m.group(1)]
        for m in _VALUE_PREFIX.finditer(value)
        if m.group(1) is not None and m.group(1) in prefixes
    }
    if not used:
        return nsmap
    return {**(nsmap or {}), **used}


def _default_ns(ns: str) -> Any:
    """An nsmap making ``ns`` the default namespace (None key; lxml-stubs disagree)."""
    return {None: ns}


@functools.lru_cache(maxsize=8192)
def ordered_children(snode: SchemaNode) -> tuple[tuple[QName, SchemaNode], ...]:
    """Schema children in XML order: list keys first (RFC 7950 §7.8.5).
    Made once per schema node (a schema is not changed once built): every
    rendering and every validation asks it for each entry."""
    if not snode.keys:
        return tuple(snode.children.items())
    keys = [(k, snode.children[k]) for k in snode.keys]
    return (*keys, *((q, n) for q, n in snode.children.items() if q not in snode.keys))


def to_string(elem: etree._Element, pretty: bool = True) -> str:
    return etree.tostring(elem, encoding="unicode", pretty_print=pretty)
