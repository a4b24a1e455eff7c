"""edit-config semantics (RFC 6241 §7.2) as a pure function on trees.

``edit(tree, config, default_operation)`` walks the ``<config>`` element
alongside the schema and the current tree and returns a new tree; the old
one is never modified.  Operations: merge, replace, create, delete, remove,
and the default operation ``none``.  Errors carry the RFC 6241 tags:
data-exists (create of an existing node), data-missing (delete of a missing
node, or navigating into a missing node under ``none``), unknown-element,
unknown-namespace, bad-attribute, invalid-value for state data.

The result is *not* validated here: the caller validates the whole new
datastore, because constraints such as must and unique span the tree.
"""

from __future__ import annotations

from lxml import etree

from nf.config.codec import NC_NS, _unknown, split_tag
from nf.config.errors import ConfigError, EditError
from nf.config.tree import LeafList, ListNode, Node, key_of, step
from nf.schema import SchemaIndex, SchemaNode

OPERATIONS = frozenset({"merge", "replace", "create", "delete", "remove"})
DEFAULT_OPERATIONS = frozenset({"merge", "replace", "none"})
_OP_ATTR = f"{{{NC_NS}}}operation"
_YANG_NS = "urn:ietf:params:xml:ns:yang:1"


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

    Subtrees with errors are left as they were, which is what
    continue-on-error asks for; stop-on-error and rollback-on-error callers
    discard the tree when errors is not empty.
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
    if default_operation == "replace":
        # replace at the top: the datastore becomes exactly <config>,
        # except where children carry their own operations
        base: Node | None = Node()
        inherited = "replace"
    else:
        base = tree
        inherited = default_operation
    result = editor.children(base, config, schema.root, inherited, "")
    return (result if result is not None else Node()), editor.errors


class _Editor:
    def __init__(self, schema: SchemaIndex) -> None:
        self.schema = schema
        self.errors: list[ConfigError] = []

    def operation(self, elem: etree._Element, inherited: str, path: str) -> str | None:
        """The effective operation of ``elem``; None (and an error) if invalid."""
        for attr in elem.attrib:
            ns, name = split_tag(str(attr))
            if ns == NC_NS and name != "operation":
                self.errors.append(
                    ConfigError(
                        "unknown-attribute",
                        f'unknown attribute "{name}" in the NETCONF namespace',
                        path=path,
                        type="protocol",
                        info=(("bad-attribute", name), ("bad-element", split_tag(elem.tag)[1])),
                    )
                )
                return None
            if ns == _YANG_NS and name in ("insert", "key", "value"):
                self.errors.append(
                    ConfigError(
                        "bad-attribute",
                        f'"{name}" applies only to ordered-by user lists',
                        path=path,
                        type="protocol",
                        info=(("bad-attribute", name), ("bad-element", split_tag(elem.tag)[1])),
                    )
                )
                return None
        op = elem.get(_OP_ATTR)
        if op is None:
            return inherited
        if op not in OPERATIONS:
            self.errors.append(
                ConfigError(
                    "bad-attribute",
                    f'operation "{op}" is not one of {", ".join(sorted(OPERATIONS))}',
                    path=path,
                    type="protocol",
                    info=(("bad-attribute", "operation"), ("bad-element", split_tag(elem.tag)[1])),
                )
            )
            return None
        if inherited in ("delete", "remove") and op in ("merge", "replace", "create"):
            self.errors.append(
                ConfigError(
                    "bad-attribute",
                    f'operation "{op}" inside a "{inherited}"',
                    path=path,
                    type="protocol",
                    info=(("bad-attribute", "operation"), ("bad-element", split_tag(elem.tag)[1])),
                )
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
    ) -> Node | None:
        """Edit the children of a container/list entry/root; None deletes it."""
        node = current if current is not None else Node()
        for child in xml:
            if not isinstance(child.tag, str):
                continue
            qname = split_tag(child.tag)
            sn = snode.children.get(qname)
            if sn is None or sn.keyword in ("input", "output", "action"):
                _unknown(self.schema, child, path, self.errors)
                continue
            child_path = path + step(sn)
            if not sn.config:
                self.errors.append(
                    ConfigError(
                        "invalid-value",
                        f'"{sn.name}" is state data (config false) and cannot be configured',
                        path=child_path,
                        info=(("bad-element", sn.name),),
                    )
                )
                continue
            op = self.operation(child, inherited, child_path)
            if op is None:
                continue
            before = node
            if sn.keyword == "leaf":
                node = self.leaf(node, child, sn, op, child_path)
            elif sn.keyword == "leaf-list":
                node = self.leaf_list(node, child, sn, op, child_path)
            elif sn.keyword == "container":
                node = self.container(node, child, sn, op, child_path)
            elif sn.keyword == "list":
                node = self.list_entry(node, child, sn, op, path)
            if node is not before and node.get(qname) is not None and sn.case_path:
                node = _clear_other_cases(node, sn, snode)
        return node

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
            self.errors.append(
                ConfigError(
                    "invalid-value",
                    f'leaf "{sn.name}" cannot have child elements',
                    path=path,
                    info=(("bad-element", sn.name),),
                )
            )
            return node
        if op == "create" and exists:
            self.exists(sn, path)
            return node
        if op == "none":
            return node
        assert sn.type is not None
        return node.set(sn.qname, sn.type.canonical(xml.text or ""))

    def leaf_list(
        self, node: Node, xml: etree._Element, sn: SchemaNode, op: str, path: str
    ) -> Node:
        assert sn.type is not None
        value = sn.type.canonical(xml.text or "")
        old = node.get(sn.qname)
        values = old.values if isinstance(old, LeafList) else ()
        entry_path = f"{path}[.='{value}']"
        if op in ("delete", "remove"):
            if value not in values:
                if op == "delete":
                    self.missing(sn, entry_path)
                return node
            rest = tuple(v for v in values if v != value)
            return node.set(sn.qname, LeafList(rest)) if rest else node.remove(sn.qname)
        if op == "create" and value in values:
            self.exists(sn, entry_path)
            return node
        if op == "none" or value in values:
            return node
        return node.set(sn.qname, LeafList((*values, value)))

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
        self, node: Node, xml: etree._Element, sn: SchemaNode, op: str, parent_path: str
    ) -> Node:
        key_values: list[str] = []
        for kq in sn.keys:
            key_elem = next((c for c in xml if c.tag == f"{{{kq[0]}}}{kq[1]}"), None)
            if key_elem is None:
                self.errors.append(
                    ConfigError(
                        "missing-element",
                        f'list entry "{sn.name}" lacks its key "{kq[1]}"',
                        path=parent_path + step(sn),
                        info=(("bad-element", kq[1]),),
                    )
                )
                return node
            key_sn = sn.children[kq]
            assert key_sn.type is not None
            key_values.append(key_sn.type.canonical(key_elem.text or ""))
        key = tuple(key_values)
        path = parent_path + step(sn, key)
        old_list = node.get(sn.qname)
        entries = old_list if isinstance(old_list, ListNode) else ListNode()
        current = entries.get(key)
        result = self.subtree(current, xml, sn, op, path)
        if result is None:
            if current is None:
                return node
            rest = entries.remove(key)
            return node.set(sn.qname, rest) if len(rest) else node.remove(sn.qname)
        if result is current:
            return node
        # keys always stay in the entry, whatever the children did
        for kq, value in zip(sn.keys, key, strict=True):
            if result.get(kq) != value:
                result = result.set(kq, value)
        if key_of(result, sn) != key:  # pragma: no cover - guarded above
            raise AssertionError("list key changed by an edit")
        return node.set(sn.qname, entries.set(key, result))

    def subtree(
        self, current: Node | None, xml: etree._Element, sn: SchemaNode, op: str, path: str
    ) -> Node | None:
        """Apply ``op`` to a container or list entry; None means deleted."""
        if op in ("delete", "remove"):
            if current is None:
                if op == "delete":
                    self.missing(sn, path)
                return None
            return None
        if op == "create":
            if current is not None:
                self.exists(sn, path)
                return current
            return self.children(None, xml, sn, "merge", path)
        if op == "replace":
            return self.children(None, xml, sn, "replace", path)
        if op == "none":
            if current is None and (sn.keyword == "list" or sn.presence):
                # RFC 6241 §7.2 "none": no corresponding level in the target
                self.missing(sn, path)
                return None
            result = self.children(current, xml, sn, "none", path)
            if current is None and result is not None and len(result) == 0:
                return None
            return result
        return self.children(current, xml, sn, "merge", path)

    # -- errors ----------------------------------------------------------------
    def missing(self, sn: SchemaNode, path: str) -> None:
        self.errors.append(
            ConfigError(
                "data-missing",
                f'"{sn.name}" does not exist',
                path=path,
                info=(("bad-element", sn.name),),
            )
        )

    def exists(self, sn: SchemaNode, path: str) -> None:
        self.errors.append(
            ConfigError(
                "data-exists",
                f'"{sn.name}" already exists',
                path=path,
                info=(("bad-element", sn.name),),
            )
        )


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
