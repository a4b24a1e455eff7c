"""Immutable configuration data trees.

A datastore is a ``Node`` (the root): a mapping from qualified names to
children.  Edits build new nodes along the changed path and share every
untouched subtree, so the previous running configuration stays valid as it
was (rollback is keeping a reference) and diff can skip shared subtrees by
identity.  Leaf values are lexical strings, canonical where the type has a
canonical form.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Union

from nf.schema import QName, SchemaNode

Key = tuple[str, ...]
"""Key values of a list entry, in key order."""


class LeafList:
    """The values of a leaf-list, without duplicates.

    Values keep the order they were configured in, for display; an
    ``ordered-by system`` leaf-list (``ordered=False``) compares as a set,
    because its order carries no meaning and must not count as a change.
    """

    __slots__ = ("ordered", "values")

    def __init__(self, values: tuple[str, ...] = (), ordered: bool = False) -> None:
        self.values = values
        self.ordered = ordered

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LeafList):
            return NotImplemented
        if self.ordered or other.ordered:
            return self.values == other.values
        return frozenset(self.values) == frozenset(other.values)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LeafList({self.values!r})"


class ListNode:
    """The entries of a list, keyed by key values, in insertion order."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Mapping[Key, Node] | None = None) -> None:
        self._entries: dict[Key, Node] = dict(entries or {})

    def get(self, key: Key) -> Node | None:
        return self._entries.get(key)

    def keys(self) -> Iterator[Key]:
        return iter(self._entries)

    def items(self) -> Iterator[tuple[Key, Node]]:
        return iter(self._entries.items())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def set(self, key: Key, entry: Node) -> ListNode:
        entries = dict(self._entries)
        entries[key] = entry
        return ListNode(entries)

    def remove(self, key: Key) -> ListNode:
        entries = dict(self._entries)
        del entries[key]
        return ListNode(entries)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ListNode):
            return NotImplemented
        return self._entries == other._entries

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ListNode({self._entries!r})"


Child = Union[str, LeafList, "Node", ListNode]


class Node:
    """A container, list entry or the datastore root."""

    __slots__ = ("_children",)

    def __init__(self, children: Mapping[QName, Child] | None = None) -> None:
        self._children: dict[QName, Child] = dict(children or {})

    def get(self, qname: QName) -> Child | None:
        return self._children.get(qname)

    def items(self) -> Iterator[tuple[QName, Child]]:
        return iter(self._children.items())

    def __len__(self) -> int:
        return len(self._children)

    def __contains__(self, qname: object) -> bool:
        return qname in self._children

    def set(self, qname: QName, child: Child) -> Node:
        children = dict(self._children)
        children[qname] = child
        return Node(children)

    def remove(self, qname: QName) -> Node:
        if qname not in self._children:
            return self
        children = dict(self._children)
        del children[qname]
        return Node(children)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Node):
            return NotImplemented
        return self is other or self._children == other._children

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Node({self._children!r})"


EMPTY = Node()


def key_of(entry: Node, snode: SchemaNode) -> Key:
    """The key values of a list entry (missing keys read as empty)."""
    values = []
    for qname in snode.keys:
        value = entry.get(qname)
        values.append(value if isinstance(value, str) else "")
    return tuple(values)


def quote(value: str) -> str:
    """An XPath literal for ``value``."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    parts = value.split("'")
    return "concat(" + ', "\'", '.join(f"'{p}'" for p in parts) + ")"


def step(snode: SchemaNode, key: Key | None = None) -> str:
    """One instance-identifier step: /prefix:name[prefix:key='value']..."""
    text = f"/{snode.prefix}:{snode.name}"
    if key is not None:
        for (_ns, kname), value in zip(snode.keys, key, strict=False):
            text += f"[{snode.prefix}:{kname}={quote(value)}]"
    return text


def merge(base: Node, extra: Node) -> Node:
    """``base`` with ``extra``'s nodes added: config plus state for <get>.

    List entries with the same key are merged; a leaf present in both keeps
    ``extra``'s value.  Neither input is changed.
    """
    if len(extra) == 0:
        return base
    children = dict(base.items())
    for qname, child in extra.items():
        mine = children.get(qname)
        if isinstance(mine, Node) and isinstance(child, Node):
            children[qname] = merge(mine, child)
        elif isinstance(mine, ListNode) and isinstance(child, ListNode):
            entries = dict(mine.items())
            for key, entry in child.items():
                own = entries.get(key)
                entries[key] = merge(own, entry) if own is not None else entry
            children[qname] = ListNode(entries)
        else:
            children[qname] = child
    return Node(children)
