"""Immutable configuration data trees.

A datastore is a ``Node`` (the root): a mapping from qualified names to
children.  Edits build new nodes along the changed path and share every
untouched subtree, so the previous running configuration stays valid as it
was (rollback is keeping a reference) and diff can skip shared subtrees by
identity.  Leaf values are lexical strings, canonical where the type has a
canonical form.
"""

from __future__ import annotations

import functools
import re
import weakref
from collections.abc import Iterable, Iterator, Mapping
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
    """The entries of a list, keyed by key values, in insertion order.

    As for ``LeafList``, the order of an ``ordered-by user`` list
    (``ordered=True``) is configuration (RFC 7950 §7.7.7: it is the order
    the entries are processed in, e.g. NACM rules): it counts in equality,
    so a reorder is a change.  An ``ordered-by system`` list compares as a
    mapping.
    """

    __slots__ = ("__weakref__", "_base", "_changed", "_entries", "ordered")

    def __init__(self, entries: Mapping[Key, Node] | None = None, ordered: bool = False) -> None:
        self._entries: dict[Key, Node] = dict(entries or {})
        self.ordered = ordered
        self._base: weakref.ref[ListNode] | None = None
        """The list this one was made from by ``derive`` (weakly: a chain
        of old versions is not kept alive), and the keys set or removed
        since (``_changed``): what ``changed_since`` reads."""
        self._changed: set[Key] = set()

    def derive(self) -> ListNode:
        """A copy that remembers which keys it changes from this one, so
        that a diff of the two costs the change, not the list."""
        copy = ListNode(self._entries, self.ordered)
        copy._base = weakref.ref(self)
        return copy

    def changed_since(self, old: ListNode, limit: int = 64) -> set[Key] | None:
        """The keys that may differ between ``old`` and this list, if this
        list was derived from ``old`` (through at most ``limit`` copies)
        and the keys are few; else None (compare them all)."""
        keys: set[Key] = set()
        node: ListNode | None = self
        for _ in range(limit):
            if node is old:
                return keys
            if node is None or node._base is None or len(keys) > limit:
                return None
            keys |= node._changed
            node = node._base()
        return None

    def get(self, key: Key) -> Node | None:
        return self._entries.get(key)

    def keys(self) -> Iterator[Key]:
        return iter(self._entries)

    def items(self) -> Iterator[tuple[Key, Node]]:
        return iter(self._entries.items())

    def keys_reversed(self) -> Iterator[Key]:
        return reversed(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def last(self) -> Key | None:
        """The key of the last entry (None when empty), without a walk."""
        return next(reversed(self._entries), None)

    def set(self, key: Key, entry: Node) -> ListNode:
        """With ``entry`` at ``key``: in its place if the key exists, else last."""
        copy = self.derive()
        copy.set_in_place(key, entry)
        return copy

    def set_in_place(self, key: Key, entry: Node) -> None:
        """``set`` without a copy: only for a ListNode that its creator
        holds alone and has not published (an edit building its result)."""
        self._entries[key] = entry
        if self._base is not None:
            self._changed.add(key)

    def remove_in_place(self, key: Key) -> None:
        """``remove`` without a copy, under the same condition."""
        del self._entries[key]
        if self._base is not None:
            self._changed.add(key)

    def remove(self, key: Key) -> ListNode:
        copy = self.derive()
        copy.remove_in_place(key)
        return copy

    def in_order(self, keys: Iterable[Key]) -> ListNode:
        """The same entries with ``keys`` first, in that order (keys that are
        not entries are skipped), then the other entries as they were."""
        entries = {key: self._entries[key] for key in keys if key in self._entries}
        for key, entry in self._entries.items():
            entries.setdefault(key, entry)
        if list(entries) == list(self._entries):
            return self
        return ListNode(entries, self.ordered)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ListNode):
            return NotImplemented
        if self._entries != other._entries:
            return False
        if self.ordered or other.ordered:
            return list(self._entries) == list(other._entries)
        return True

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


@functools.lru_cache(maxsize=1024)
def _name_step(snode: SchemaNode) -> str:
    """/prefix:name, once per schema node (an edit names one per element)."""
    return f"/{snode.prefix}:{snode.name}"


PREDICATE = re.compile(
    r"\[\s*(?:([A-Za-z_][\w.-]*):)?([A-Za-z_][\w.-]*|\.)\s*=\s*(?:'([^']*)'|\"([^\"]*)\")\s*\]"
)
"""One instance-identifier predicate (RFC 7950 §9.13): ``[prefix:name='value']``
or ``[.='value']``; groups: prefix (or None), name, value in '' or in ""."""


def step(snode: SchemaNode, key: Key | None = None) -> str:
    """One instance-identifier step: /prefix:name[prefix:key='value']..."""
    text = _name_step(snode)
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
            children[qname] = ListNode(entries, mine.ordered)
        else:
            children[qname] = child
    return Node(children)
