"""edit-config semantics (RFC 6241 §7.2) as a pure function on trees.

``edit(tree, config, default_operation)`` walks the ``<config>`` element
alongside the schema and the current tree and returns a new tree; the old
one is never modified, and every subtree the edit does not change is shared
with it (so diff can skip it by identity).  Operations: merge, replace,
create, delete, remove, and the default operation ``none``.  Errors carry
the RFC 6241 tags: data-exists (create of an existing node), data-missing
(delete of a missing node, or navigating into a missing node under
``none``), unknown-element, unknown-namespace, unknown-attribute,
bad-attribute, invalid-value for state data.

An explicit operation inside a ``replace`` acts on the existing data, as at
any other level: ``replace`` makes the node hold exactly the children named
in the edit, each of them edited with its own (or the inherited) operation.

The order of an ``ordered-by user`` list or leaf-list is configuration (RFC
7950 §7.7.7, §7.8.5).  Where an edit puts an entry follows RFC 7950 §7.8.6
and §7.7.9: the ``yang:insert`` attribute (first, last, before, after, with
``yang:key`` for a list entry or ``yang:value`` for a leaf-list value naming
the neighbour) places a created entry or moves an existing one in a merge,
replace or create; without it a new entry goes last and an existing one
stays where it is.  When the list's parent is replaced, the list is the
entries named in the request, so their order is the order of the request
(each placed after the ones before it, unless ``insert`` says otherwise).
Entries are placed one after the other in document order, so ``before`` or
``after`` may name an entry created earlier in the same edit.

The result is *not* validated here: the caller validates the whole new
datastore, because constraints such as must and unique span the tree.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass
from typing import SupportsIndex

from lxml import etree

from nf.config.codec import NC_NS, leaf_value, report_unknown, split_tag, xml_key_of
from nf.config.errors import MAX_ERRORS, ConfigError, EditError
from nf.config.tree import PREDICATE, Child, Key, LeafList, ListNode, Node, key_of, quote, step
from nf.schema import QName, SchemaIndex, SchemaNode

OPERATIONS = frozenset({"merge", "replace", "create", "delete", "remove"})
DEFAULT_OPERATIONS = frozenset({"merge", "replace", "none"})
_OP_ATTR = f"{{{NC_NS}}}operation"
_YANG_NS = "urn:ietf:params:xml:ns:yang:1"
_INSERT_ATTR = f"{{{_YANG_NS}}}insert"
INSERT_POSITIONS = ("first", "last", "before", "after")

Seen = set[tuple[QName, Key]]
"""The data nodes an edit names below one parent: (name, key or value or ())."""


@dataclass(frozen=True)
class _Insert:
    """Where an edit puts an entry of an ordered-by user list (RFC 7950 §7.8.6)."""

    where: str
    """first, last, before or after."""
    anchor: Key | None = None
    """The neighbour of before/after: its key, or (value,) in a leaf-list."""


def edit(
    tree: Node,
    config: etree._Element,
    default_operation: str = "merge",
    schema: SchemaIndex | None = None,
) -> Node:
    """Apply ``config`` (a ``<config>`` element) to ``tree``; raise EditError."""
    new, errors = edit_partial(tree, config, default_operation, schema)
    if errors:
        raise EditError(errors)
    return new


def edit_partial(
    tree: Node,
    config: etree._Element,
    default_operation: str = "merge",
    schema: SchemaIndex | None = None,
) -> tuple[Node, list[ConfigError]]:
    """Apply what can be applied; return the new tree and every error.

    A node whose own element is in error (unknown, bad attribute, create of
    an existing node...) is left as it was, and everything else is applied,
    which is what continue-on-error asks for; stop-on-error and
    rollback-on-error callers discard the tree when errors is not empty.
    """
    if schema is None:
        from nf.schema import default_schema

        schema = default_schema()
    if default_operation not in DEFAULT_OPERATIONS:
        return tree, [
            ConfigError(
                "invalid-value",
                f'default-operation "{default_operation}" is not merge, replace or none',
                type="protocol",
                info=(("bad-element", "default-operation"),),
            )
        ]
    editor = _Editor(schema)
    # default-operation replace: the datastore becomes exactly <config>
    # (RFC 6241 §7.2), except where children carry their own operations
    result = editor.children(
        tree, config, schema.root, default_operation, "", replace=default_operation == "replace"
    )
    editor.finish()
    return result, editor.errors


class _Editor:
    def __init__(self, schema: SchemaIndex) -> None:
        self.schema = schema
        self.errors: list[ConfigError] = []
        self._owned: dict[int, ListNode | LeafList] = {}
        """Lists and leaf-lists this edit created, which nothing else holds
        yet: adding to them in place keeps an edit of n entries O(n) (a copy
        per entry made 100 000 entries take minutes).  Keeping the objects
        here also keeps their ids from being reused."""
        self._read: dict[int, tuple[LeafList, frozenset[str]]] = {}
        """The values of leaf-lists looked into but not owned, as sets (with
        the leaf-list, which keeps its id from being reused): an edit
        naming n values of a leaf-list of n, all present, cost n^2 when each
        was looked for in the tuple (20 000: 2 s)."""

    def _own_list(self, entries: ListNode) -> ListNode:
        """``entries`` itself if this edit owns it, else an owned copy."""
        if id(entries) in self._owned:
            return entries
        copy = entries.derive()
        self._owned[id(copy)] = copy
        return copy

    def _own_leaf_list(self, old: LeafList | None, ordered: bool) -> LeafList:
        """An owned leaf-list.  Its values are a dict until ``finish`` (keys
        in order, O(1) to look up, add and delete: deleting n values one by
        one from a tuple of n cost n^2, 20 000 took 6.6 s)."""
        if old is not None and id(old) in self._owned:
            return old
        values = dict.fromkeys(old.values) if old is not None else {}
        fresh = LeafList(values, old.ordered if old is not None else ordered)  # type: ignore[arg-type]
        self._owned[id(fresh)] = fresh
        return fresh

    def _values(self, child: LeafList) -> Container[str]:
        """``child``'s values, for O(1) membership."""
        if id(child) in self._owned:
            return child.values  # a dict while owned
        read = self._read.get(id(child))
        if read is None or read[0] is not child:
            read = self._read[id(child)] = (child, frozenset(child.values))
        return read[1]

    def has(self, child: Child | None, ident: Key) -> bool:
        """Whether ``child`` (a list or leaf-list) holds the entry or value."""
        if isinstance(child, ListNode):
            return ident in child
        if isinstance(child, LeafList):
            return ident[0] in self._values(child)
        return False

    def finish(self) -> None:
        """Freeze what was built in place: leaf-list values become tuples."""
        for owned in self._owned.values():
            if isinstance(owned, LeafList):
                owned.values = tuple(owned.values)
        self._owned.clear()
        self._read.clear()

    def attribute_error(
        self,
        tag: str,
        message: str,
        path: str,
        attribute: str,
        element: str,
        *,
        app_tag: str | None = None,
        error_type: str = "protocol",
    ) -> None:
        """An error about an attribute of an element of the edit (operation,
        yang:insert and its key or value): error-info names both."""
        self.errors.append(
            ConfigError(
                tag,
                message,
                path=path,
                app_tag=app_tag,
                type=error_type,
                info=(("bad-attribute", attribute), ("bad-element", element)),
            )
        )

    def operation(
        self, elem: etree._Element, inherited: str, path: str, sn: SchemaNode
    ) -> str | None:
        """The effective operation of ``elem``; None (and an error) if invalid."""
        if not len(elem.attrib):
            return inherited  # the common case, 100 000 times in a large edit
        element = split_tag(elem.tag)[1]
        neighbour = "key" if sn.keyword == "list" else "value"
        for attr in elem.attrib:
            ns, name = split_tag(str(attr))
            if (ns == NC_NS and name != "operation") or (ns == "" and name == "operation"):
                # an unqualified operation="delete" is not the NETCONF attribute
                # (default namespaces do not apply to attributes); treating it
                # as merge would silently do something else than asked
                where = "in the NETCONF namespace" if ns else "without the NETCONF namespace"
                self.attribute_error(
                    "unknown-attribute",
                    f'unknown attribute "{name}" {where}',
                    path,
                    name,
                    element,
                )
                return None
            if ns == _YANG_NS and name in ("insert", "key", "value"):
                if sn.user_ordered and name in ("insert", neighbour):
                    continue
                self.attribute_error(
                    "bad-attribute",
                    f'"{name}" applies only to ordered-by user lists'
                    if not sn.user_ordered
                    else f'"{name}" does not apply to a {sn.keyword}',
                    path,
                    name,
                    element,
                )
                return None
        op = elem.get(_OP_ATTR)
        if op is None:
            return inherited
        if op not in OPERATIONS:
            self.attribute_error(
                "bad-attribute",
                f'operation "{op}" is not one of {", ".join(sorted(OPERATIONS))}',
                path,
                "operation",
                element,
            )
            return None
        return op

    def children(
        self,
        current: Node | None,
        xml: etree._Element,
        snode: SchemaNode,
        inherited: str,
        path: str,
        *,
        replace: bool = False,
    ) -> Node:
        """Edit the children of a container/list entry/root.

        With ``replace``, children the edit does not name are removed.
        """
        node = current if current is not None else Node()
        seen: Seen = set()
        orders: dict[QName, _Order] = {}  # working order of each ordered-by user list named
        for child in xml.iterchildren(etree.Element):  # elements only
            if len(self.errors) > MAX_ERRORS:
                break  # enough to report; the edit fails anyway
            qname = split_tag(child.tag)
            sn = snode.children.get(qname)
            if sn is None or sn.keyword in ("input", "output", "action"):
                report_unknown(self.schema, child, path, self.errors)
                continue
            if not sn.config:
                self.errors.append(
                    ConfigError(
                        "invalid-value",
                        f'"{sn.name}" is state data (config false) and cannot be configured',
                        path=path + step(sn),
                        info=(("bad-element", sn.name),),
                    )
                )
                continue
            if (
                sn.keyword == "leaf-list"
                and inherited in ("merge", "replace")
                and not sn.user_ordered
                and not len(child)
                and not len(child.attrib)
            ):
                # one more value of a leaf-list this edit owns already: the
                # general path below does the same, at twice the cost
                # (100 000 values of allowed-peer in one request)
                owned = node.get(qname)
                if owned is not None and id(owned) in self._owned:
                    value = leaf_value(sn, child, self.schema)
                    key = (qname, (value,))
                    if key not in seen:
                        seen.add(key)
                        owned.values.setdefault(value, None)  # type: ignore[union-attr]
                        continue
            instance = self.instance(child, sn, path)
            if instance is None:
                continue
            ident, child_path = instance
            if (qname, ident) in seen:
                self.duplicate(sn, ident, child_path)
                continue
            seen.add((qname, ident))
            op = self.operation(child, inherited, child_path, sn)
            if op is None:
                continue
            insert: _Insert | None = None
            if sn.user_ordered:
                # a replaced parent gets the list as the request gives it
                if qname not in orders:
                    orders[qname] = _Order([] if replace else _keys_of(node.get(qname)))
                order = orders[qname]
                mark = len(self.errors)
                insert = self.insertion(child, sn, op, ident, order, child_path)
                if len(self.errors) > mark:
                    continue
            if op in ("delete", "remove") and qname in snode.keys:
                self.attribute_error(
                    "bad-attribute",
                    f'list key "{sn.name}" cannot be deleted; '
                    f'delete the "{snode.name}" entry instead',
                    child_path,
                    "operation",
                    sn.name,
                )
                continue
            before, mark = node, len(self.errors)
            if sn.keyword == "leaf":
                node = self.leaf(node, child, sn, op, child_path)
            elif sn.keyword == "leaf-list":
                node = self.leaf_list(node, child, sn, ident[0], op, child_path)
            elif sn.keyword == "container":
                node = self.container(node, child, sn, op, child_path)
            elif sn.keyword == "list":
                node = self.list_entry(node, child, sn, ident, op, child_path)
            else:
                self.errors.append(
                    ConfigError(
                        "operation-not-supported",
                        f'editing {sn.keyword} "{sn.name}" is not supported',
                        path=child_path,
                        info=(("bad-element", sn.name),),
                    )
                )
            if node is not before and node.get(qname) is not None and sn.case_path:
                node = _clear_other_cases(node, sn, snode)
            if sn.user_ordered:
                # an entry whose edit failed is not moved, as it is not changed
                move = insert if len(self.errors) == mark else None
                _place(orders[qname], ident, self.has(node.get(qname), ident), move)
        if replace:
            node = _only(node, seen)
        for qname, order in orders.items():
            node = _in_order(node, qname, order)
        return node

    def insertion(
        self,
        xml: etree._Element,
        sn: SchemaNode,
        op: str,
        ident: Key,
        order: _Order,
        path: str,
    ) -> _Insert | None:
        """The ``yang:insert`` of an ordered-by user entry (RFC 7950 §7.8.6,
        §7.7.9); None when absent or meaningless for ``op`` (delete, remove
        and none place nothing).  Errors: an unknown position is a
        bad-attribute; before/after without ``key``/``value`` is a
        missing-attribute; a neighbour that is not an entry of the list is a
        bad-attribute with error-app-tag missing-instance (RFC 7950 §15.7)."""
        where = xml.get(_INSERT_ATTR)
        if where is None or op not in ("merge", "replace", "create"):
            return None
        element = sn.name
        if where not in INSERT_POSITIONS:
            self.attribute_error(
                "bad-attribute",
                f'insert "{where}" is not one of {", ".join(INSERT_POSITIONS)}',
                path,
                "insert",
                element,
            )
            return None
        if where in ("first", "last"):
            return _Insert(where)
        attr = "key" if sn.keyword == "list" else "value"
        text = xml.get(f"{{{_YANG_NS}}}{attr}")
        if text is None:
            self.attribute_error(
                "missing-attribute",
                f'insert "{where}" needs the "{attr}" attribute',
                path,
                attr,
                element,
            )
            return None
        anchor = self.anchor(xml, sn, text)
        if anchor is None or anchor == ident:
            problem = "is not a key predicate of" if anchor is None else "names the entry itself in"
            self.attribute_error(
                "bad-attribute",
                f'{attr} "{text}" {problem} {sn.keyword} "{sn.name}"',
                path,
                attr,
                element,
            )
            return None
        if anchor not in order:
            self.attribute_error(
                "bad-attribute",
                f'{attr} "{text}" names no entry of {sn.keyword} "{sn.name}"',
                path,
                attr,
                element,
                app_tag="missing-instance",
                error_type="application",
            )
            return None
        return _Insert(where, anchor)

    def anchor(self, xml: etree._Element, sn: SchemaNode, text: str) -> Key | None:
        """The neighbour a ``yang:key`` or ``yang:value`` names; None if malformed.

        ``key`` holds the key predicates of the entry's instance-identifier
        (RFC 7950 §7.8.6), e.g. ``[nacm:name='r1']``, each key once; a
        prefix bound on the element must be bound to the list's namespace.
        A prefix bound nowhere is read as a module prefix, as in leaf values
        (``codec.leaf_value``): lxml-based clients such as ncclient drop a
        declaration that only an attribute value uses when they wrap the
        config in the rpc.  An unprefixed key name is accepted too: it can
        only mean this list's key.
        """
        if sn.keyword == "leaf-list":
            assert sn.type is not None
            return (sn.type.canonical(text),)
        values: dict[str, str] = {}
        pos = 0
        text = text.strip()
        while pos < len(text):
            match = PREDICATE.match(text, pos)
            if match is None:
                return None
            prefix, name = match.group(1), match.group(2)
            if prefix is not None and xml.nsmap.get(prefix, _module_ns(self.schema, prefix)) != (
                sn.namespace
            ):
                return None
            if name in values:
                return None
            values[name] = match.group(3) if match.group(3) is not None else match.group(4)
            pos = match.end()
            while pos < len(text) and text[pos].isspace():
                pos += 1
        if sorted(values) != sorted(k[1] for k in sn.keys):
            return None
        key: list[str] = []
        for kq in sn.keys:
            key_type = sn.children[kq].type
            assert key_type is not None
            key.append(key_type.canonical(values[kq[1]]))
        return tuple(key)

    def instance(
        self, xml: etree._Element, sn: SchemaNode, parent_path: str
    ) -> tuple[Key, str] | None:
        """Which instance ``xml`` names, and its path; None (and an error) if unknown.

        A list entry is named by its key values, a leaf-list entry by its
        value (both canonical), any other node by its name alone.
        """
        if sn.keyword == "list":
            key = self.entry_key(xml, sn, parent_path)
            return None if key is None else (key, parent_path + step(sn, key))
        if sn.keyword == "leaf-list":
            value = leaf_value(sn, xml, self.schema)
            return (value,), f"{parent_path}{step(sn)}[.={quote(value)}]"
        return (), parent_path + step(sn)

    def entry_key(self, xml: etree._Element, sn: SchemaNode, parent_path: str) -> Key | None:
        key = xml_key_of(xml, sn)
        if key is None:
            missing = next(k for k in sn.keys if xml.find(f"{{{k[0]}}}{k[1]}") is None)
            self.errors.append(
                ConfigError(
                    "missing-element",
                    f'list entry "{sn.name}" lacks its key "{missing[1]}"',
                    path=parent_path + step(sn),
                    info=(("bad-element", missing[1]),),
                )
            )
        return key

    # -- node kinds ----------------------------------------------------------
    def leaf(self, node: Node, xml: etree._Element, sn: SchemaNode, op: str, path: str) -> Node:
        exists = sn.qname in node
        if op in ("delete", "remove"):
            if not exists:
                if op == "delete":
                    self.missing(sn, path)
                return node
            return node.remove(sn.qname)
        if len(xml):
            self.no_children(sn, path)
            return node
        if op == "create" and exists:
            self.exists(sn, path)
            return node
        if op == "none":
            return node
        value = leaf_value(sn, xml, self.schema)
        if node.get(sn.qname) == value:
            return node  # unchanged: keep sharing the old node
        return node.set(sn.qname, value)

    def leaf_list(
        self, node: Node, xml: etree._Element, sn: SchemaNode, value: str, op: str, path: str
    ) -> Node:
        old = node.get(sn.qname)
        current = old if isinstance(old, LeafList) else None
        present = current is not None and value in self._values(current)
        if op in ("delete", "remove"):
            if not present:
                if op == "delete":
                    self.missing(sn, path)
                return node
            owned = self._own_leaf_list(current, sn.user_ordered)
            del owned.values[value]  # type: ignore[attr-defined]  # a dict until finish()
            if not owned.values:
                return node.remove(sn.qname)
            return node if owned is old else node.set(sn.qname, owned)
        if len(xml):
            self.no_children(sn, path)
            return node
        if op == "create" and present:
            self.exists(sn, path)
            return node
        if op == "none" or present:
            return node
        owned = self._own_leaf_list(current, sn.user_ordered)
        owned.values[value] = None  # type: ignore[index]  # a dict until finish()
        return node if owned is old else node.set(sn.qname, owned)

    def container(
        self, node: Node, xml: etree._Element, sn: SchemaNode, op: str, path: str
    ) -> Node:
        old = node.get(sn.qname)
        current = old if isinstance(old, Node) else None
        result = self.subtree(current, xml, sn, op, path)
        if result is None:
            return node.remove(sn.qname)
        if result is current:
            return node
        if len(result) == 0 and not sn.presence:
            # an empty non-presence container is the same as none
            return node.remove(sn.qname)
        return node.set(sn.qname, result)

    def list_entry(
        self, node: Node, xml: etree._Element, sn: SchemaNode, key: Key, op: str, path: str
    ) -> Node:
        old_list = node.get(sn.qname)
        entries = old_list if isinstance(old_list, ListNode) else ListNode(ordered=sn.user_ordered)
        current = entries.get(key)
        result = self.subtree(current, xml, sn, op, path)
        if result is None:
            if current is None:
                return node
            rest = self._own_list(entries)
            rest.remove_in_place(key)
            return node.set(sn.qname, rest) if len(rest) else node.remove(sn.qname)
        if result is current:
            return node
        # keys always stay in the entry, whatever the children did
        for kq, value in zip(sn.keys, key, strict=True):
            if result.get(kq) != value:
                result = result.set(kq, value)
        if key_of(result, sn) != key:  # pragma: no cover - guarded above
            raise AssertionError("list key changed by an edit")
        owned = self._own_list(entries)
        owned.set_in_place(key, result)
        return node.set(sn.qname, owned)

    def subtree(
        self, current: Node | None, xml: etree._Element, sn: SchemaNode, op: str, path: str
    ) -> Node | None:
        """Apply ``op`` to a container or list entry; None means deleted."""
        if op in ("delete", "remove"):
            if current is None and op == "delete":
                self.missing(sn, path)
            return None
        if op == "create":
            if current is not None:
                self.exists(sn, path)
                return current
            return self.children(None, xml, sn, "merge", path)
        if op == "replace":
            # nested operations act on the existing children (RFC 6241
            # §7.2: an operation attribute overrides the inherited one);
            # children the edit does not name are removed
            return self.children(current, xml, sn, "replace", path, replace=True)
        if op == "none":
            if current is None and (sn.keyword == "list" or sn.presence):
                # RFC 6241 §7.2 "none": no corresponding level in the target
                self.missing(sn, path)
                return None
            result = self.children(current, xml, sn, "none", path)
            if current is None and len(result) == 0:
                return None
            return result
        return self.children(current, xml, sn, "merge", path)

    # -- errors ----------------------------------------------------------------
    def missing(self, sn: SchemaNode, path: str) -> None:
        self.errors.append(
            ConfigError.at("data-missing", f'"{sn.name}" does not exist', path, sn.name)
        )

    def exists(self, sn: SchemaNode, path: str) -> None:
        self.errors.append(
            ConfigError.at("data-exists", f'"{sn.name}" already exists', path, sn.name)
        )

    def no_children(self, sn: SchemaNode, path: str) -> None:
        self.errors.append(
            ConfigError.at(
                "invalid-value",
                f'{sn.keyword} "{sn.name}" cannot have child elements',
                path,
                sn.name,
            )
        )

    def duplicate(self, sn: SchemaNode, ident: Key, path: str) -> None:
        """The same data node twice in one edit: ambiguous, so refused
        (with the tags ``codec.parse`` uses for the same mistake)."""
        if sn.keyword == "list":
            error = ConfigError(
                "operation-failed",
                f'duplicate entry of list "{sn.name}"',
                path=path,
                info=(("bad-element", sn.name),),
            )
        elif sn.keyword == "leaf-list":
            error = ConfigError(
                "invalid-value",
                f'duplicate value "{ident[0]}" in leaf-list "{sn.name}"',
                path=path,
                info=(("bad-element", sn.name),),
            )
        else:
            error = ConfigError(
                "bad-element",
                f'{sn.keyword} "{sn.name}" given more than once',
                path=path,
                type="protocol",
                info=(("bad-element", sn.name),),
            )
        self.errors.append(error)


def _keys_of(child: Child | None) -> list[Key]:
    """The entries of a list, or the values of a leaf-list as 1-tuples, in order."""
    if isinstance(child, ListNode):
        return list(child.keys())
    if isinstance(child, LeafList):
        return [(value,) for value in child.values]
    return []


def _module_ns(schema: SchemaIndex, prefix: str) -> str | None:
    """The namespace of the module whose own prefix is ``prefix``."""
    return next((ns for ns, own in schema.prefixes.items() if own == prefix), None)


def _has(child: Child | None, ident: Key) -> bool:
    if isinstance(child, ListNode):
        return ident in child
    return isinstance(child, LeafList) and ident[0] in child.values


class _Order(list[Key]):
    """The working order of a list during an edit, with O(1) membership
    (an edit naming n entries of a list must not cost n^2)."""

    def __init__(self, keys: Iterable[Key] = ()) -> None:
        super().__init__(keys)
        self._members = set(self)

    def __contains__(self, key: object) -> bool:
        return key in self._members

    def append(self, key: Key) -> None:
        super().append(key)
        self._members.add(key)

    def insert(self, index: SupportsIndex, key: Key) -> None:
        super().insert(index, key)
        self._members.add(key)

    def remove(self, key: Key) -> None:
        super().remove(key)
        self._members.discard(key)


def _place(order: _Order, ident: Key, present: bool, insert: _Insert | None) -> None:
    """Put ``ident`` in the working ``order`` of its list: where ``insert``
    says, else last if new, else where it was (RFC 7950 §7.8.6: "insert"
    defaults to last for a new entry and moves an existing one only when
    given); out of it if the edit deleted it.  The neighbour of
    before/after was checked to be in ``order`` before the edit."""
    if ident in order:
        if present and insert is None:
            return
        order.remove(ident)
    if not present:
        return
    if insert is None or insert.where == "last":
        order.append(ident)
    elif insert.where == "first":
        order.insert(0, ident)
    else:
        assert insert.anchor is not None
        at = order.index(insert.anchor)
        order.insert(at if insert.where == "before" else at + 1, ident)


def _in_order(node: Node, qname: QName, order: _Order) -> Node:
    """``node`` with its list or leaf-list ``qname`` in ``order`` (the node
    itself, shared, when the order is unchanged)."""
    child = node.get(qname)
    if isinstance(child, ListNode):
        ordered = child.in_order(order)
        return node if ordered is child else node.set(qname, ordered)
    if isinstance(child, LeafList):
        current = set(child.values)
        values = tuple(v for (v,) in order if v in current)
        placed = set(values)
        values += tuple(v for v in child.values if v not in placed)
        if values == child.values:
            return node
        return node.set(qname, LeafList(values, child.ordered))
    return node


def _only(node: Node, seen: Seen) -> Node:
    """``node`` without the children, list entries and values not in ``seen``."""
    result = node
    for qname, child in node.items():
        if isinstance(child, ListNode):
            kept = {key: entry for key, entry in child.items() if (qname, key) in seen}
            if len(kept) != len(child):
                result = (
                    result.set(qname, ListNode(kept, child.ordered))
                    if kept
                    else result.remove(qname)
                )
        elif isinstance(child, LeafList):
            values = tuple(v for v in child.values if (qname, (v,)) in seen)
            if len(values) != len(child.values):
                result = (
                    result.set(qname, LeafList(values, child.ordered))
                    if values
                    else result.remove(qname)
                )
        elif (qname, ()) not in seen:
            result = result.remove(qname)
    return result


def _clear_other_cases(node: Node, sn: SchemaNode, parent: SchemaNode) -> Node:
    """Creating a node of one case deletes the nodes of the other cases (§7.9)."""
    for choice_name, case_name in sn.case_path:
        for choice in parent.choices:
            if choice.name != choice_name:
                continue
            for other, members in choice.cases.items():
                if other == case_name:
                    continue
                for qname in members:
                    node = node.remove(qname)
    return node
